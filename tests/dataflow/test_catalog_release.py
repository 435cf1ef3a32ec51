"""Embedded catalogs a user opens and lets go without ``close()``: their threads, open
files and application go with them, not at interpreter exit; and a process that opens
several catalogs, closed or not, exits at once without a word.

Tiled's ``Context.from_app`` registers its ``TestClient.__exit__`` with the ``threading``
module's shutdown hooks; that hook kept every catalog's application, its three threads
and its open SQLite files alive until the process ended. What the operating system says
(``/proc/self/fd``, the process's threads) is the reference.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import weakref
from pathlib import Path
from typing import Any

from bluesky import RunEngine
from bluesky.plans import count

from dataflow.broker import open_broker
from dataflow.catalog import Catalog
from dataflow.inprocess import RELEASE_THREAD

ROOT = Path(__file__).resolve().parents[2]
APP_THREADS = ("asyncio-portal", "AnyIO worker")
"""The threads of a catalog's application (besides SQLite's, named ``Thread-N
(_connection_worker_thread)``)."""


def open_files_under(folder: Path) -> list[str]:
    """The files under ``folder`` this process has open, as the kernel lists them."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    return found


def collected() -> None:
    """Collect garbage, wait for the catalogs released meanwhile, collect what they held
    (a context freed in one collection frees its application in the next)."""
    gc.collect()
    for thread in threading.enumerate():
        if thread.name == RELEASE_THREAD:
            thread.join(timeout=30)
    gc.collect()


def test_a_catalog_dropped_unclosed_frees_its_threads_and_files(tmp_path: Path,
                                                               frame_cam: Any) -> None:
    collected()
    threads = {t.ident for t in threading.enumerate()}
    cat = Catalog(tmp_path / "data")
    RE = RunEngine()
    cat.subscribe(RE)
    (uid,) = RE(count([frame_cam(name="cam", folder=cat.raw_dir)], 2))
    assert cat.run(uid)["primary"]["cam_image"][1].shape == (40, 24)
    app = weakref.ref(cat.client.context.http_client)
    assert open_files_under(tmp_path / "data")
    del cat, RE
    collected()
    assert app() is None
    assert open_files_under(tmp_path / "data") == []
    extra = [t.name for t in threading.enumerate() if t.ident not in threads]
    assert not [name for name in extra if name.startswith(APP_THREADS)
                or "_connection_worker_thread" in name], extra


def test_a_catalog_in_use_is_not_released(tmp_path: Path, frame_cam: Any) -> None:
    """``open_broker(folder)`` keeps no reference to the Catalog it opened, only to its
    client: the catalog works as long as the Broker is used."""
    cat = Catalog(tmp_path / "data")
    RE = RunEngine()
    cat.subscribe(RE)
    RE(count([frame_cam(name="cam", folder=cat.raw_dir)], 3))
    cat.close()
    db = open_broker(tmp_path / "data")
    collected()
    assert len(db[-1].table()) == 3
    run = Catalog(tmp_path / "data").client[-1]  # (the Catalog itself dropped at once)
    collected()
    assert run["primary"]["cam_image"][2].shape == (40, 24)


def test_a_closed_catalog_is_released_once(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "data")
    app = weakref.ref(cat.client.context.http_client)
    cat.close()
    del cat
    collected()
    assert app() is None
    assert not [t for t in threading.enumerate() if t.name == RELEASE_THREAD]


def test_a_process_with_several_catalogs_exits_at_once_and_silently(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import gc, sys
        sys.path.insert(0, {str(ROOT / "tests" / "dataflow")!r})
        from bluesky import RunEngine
        from bluesky.plans import count
        from conftest import FrameCam
        from dataflow.broker import open_broker
        from dataflow.catalog import Catalog

        kept = []
        for i in range(4):
            cat = Catalog({str(tmp_path)!r} + f"/data{{i}}")
            RE = RunEngine()
            cat.subscribe(RE)
            RE(count([FrameCam(name="cam", folder=cat.raw_dir)], 2))
            assert len(open_broker(cat)[-1].table(fill=True)) == 2
            if i == 0:
                cat.close()
            elif i == 1:
                kept.append(cat)  # open at exit
            gc.collect()
        print("done")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    assert done.stderr == ""
