"""``smeflow catalog repair`` killed (SIGKILL) at each of its steps, then run again.

A killed scan's catalog is repaired in a process that kills itself just before its
k-th step — each write of the repair's record, the copy, the clearing of HDF5's flags,
the rename of the closed copy over the frame file, its ``.sha256``, the rewrite of the
run from its journal (its start and stop documents), each metadata update and each
removal — for k = 1, 2, ... until a repair runs to its end. After every kill: no frame
is lost (the frames read back bit for bit), the frame file is either the one the scan
left or the one a repair makes, and a second ``repair`` finishes the job with the record
a repair that was never killed writes (the file's digest before and after included).
Before the repair recorded what it would change before changing it, a kill between the
rename and the catalog's update lost ``sha256_before`` for good.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dataflow.catalog import Catalog
from dataflow.cli import main as catalog_main
from dataflow.hdf5_files import file_sha256
from dataflow.integrity import read_sidecar, read_superblock
from dataflow.repair import repair_run
from tests.dataflow.test_kill import killed_scan
from tests.dataflow.test_killed_repair import frames_of

KILLED_AT = textwrap.dedent("""
    import os, pathlib, signal, sys
    import tiled.client.base
    import dataflow.event_pages as pages
    import dataflow.killed_file as killed
    from dataflow.cli import main

    at, count, log = 0, 0, None

    def step(name):
        global count
        count += 1
        log.write(f"{count} {name}\\n")
        log.flush()
        if count == at:
            os.kill(os.getpid(), signal.SIGKILL)

    def before(name, call):
        def stepped(*args, **kwargs):
            step(name if isinstance(name, str) else name(*args))
            return call(*args, **kwargs)
        return stepped

    os.replace = before(lambda src, dst: f"rename {pathlib.Path(dst).name}", os.replace)
    killed.shutil.copyfile = before("copy", killed.shutil.copyfile)
    killed._clear_flags = before("clear flags", killed._clear_flags)
    base = tiled.client.base.BaseClient
    base.update_metadata = before("update metadata", base.update_metadata)
    unlink = pathlib.Path.unlink
    pathlib.Path.unlink = lambda self, *a, **k: (
        step(f"unlink {self.name}") if self.suffix in (".jsonl", ".json") else None,
        unlink(self, *a, **k))[1]
    writer = pages.tiled_writer

    def tiled_writer(*args, **kwargs):
        inner = writer(*args, **kwargs)

        def write(name, doc):
            if name in ("start", "stop"):
                step(f"write {name}")
            return inner(name, doc)
        return write

    pages.tiled_writer = tiled_writer
    # one repair per line "DATA AT LOG UID" in a process of its own, forked from this one
    # (the imports above are done once, not once per kill); its exit code is the answer
    for line in sys.stdin:
        data, at_text, log_path, uid = line.rstrip("\\n").split("\\t")
        pid = os.fork()
        if pid == 0:  # (never back into this loop, whatever happens)
            code = 1
            try:
                at, log = int(at_text), open(log_path, "a")
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.dup2(null, 2)
                code = main(["repair", uid, "--data", data])
            finally:
                os._exit(code)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
""")


class Repairs:
    """A process that runs ``repair`` in a child it forks, which kills itself (SIGKILL)
    just before its ``at``-th step: every kill in a process of its own, as a separate
    ``smeflow catalog repair`` would be, without importing Tiled and the catalog again
    for each (about 4 s of CPU each)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", KILLED_AT], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def killed_at(self, data: Path, uid: str, at: int, log: Path) -> int:
        """The exit code of a repair killed before its ``at``-th step (never: 0)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{data}\t{at}\t{log}\t{uid}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"the repair process ended ({self.proc.wait(10)})"
        return int(answer)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


@pytest.fixture(scope="module")
def repairs() -> Iterator[Repairs]:
    server = Repairs()
    try:
        yield server
    finally:
        server.close()


def leftovers(data: Path) -> list[str]:
    """What a repair leaves behind when it is done: nothing in the journal folder, no
    copy nor temporary file beside the frame files."""
    return sorted(p.name for p in [*(data / "journal").iterdir(),
                                   *(data / "raw").glob("*.closing"),
                                   *(data / "raw").glob(".*.tmp")])


@pytest.mark.slow  # (a repair process per step: 4-6 min under load)
@pytest.mark.parametrize("source", ["journal", "catalog"])
def test_a_repair_killed_at_any_step_loses_nothing_and_the_next_one_finishes_it(
        tmp_path: Path, source: str, capsys: pytest.CaptureFixture[str],
        repairs: Repairs) -> None:
    data, template = tmp_path / "data", tmp_path / "template"
    killed_scan(data, batch_size=0 if source == "journal" else 1)
    with Catalog(data) as catalog:
        (summary,) = catalog.runs()
        uid = summary.uid
        (path,) = catalog.raw_dir.glob("det_*.h5")
    if source == "catalog":  # (a run written event by event: the catalog's copy is kept)
        for journal in (data / "journal").glob("*.jsonl"):
            journal.unlink()
    frames, before = frames_of(path), file_sha256(path)
    assert len(frames) >= 6 and read_superblock(path).open_for_write
    shutil.copytree(data, template)

    # a repair never killed: what every repair must end with
    assert repairs.killed_at(data, uid, 0, tmp_path / "log") == 0
    steps = [line.split(" ", 1)[1] for line in
             (tmp_path / "log").read_text().splitlines()]
    after = file_sha256(path)
    with Catalog(data) as catalog:
        md = catalog.run(uid).metadata
        stop, want = dict(md["stop"]), dict(md["recovery"])
    assert stop["reason"] == "recovered"
    (closed,) = want["files"]
    assert (closed["sha256_before"], closed["sha256"]) == (before, after) != (before, before)
    assert "rename det_" in " ".join(steps) and leftovers(data) == []

    # the catalog's copy kept: its steps once the file is closed (those before are the same)
    first = 1 if source == "journal" else 1 + max(
        i for i, step in enumerate(steps, 1) if step.endswith(".h5.sha256"))
    for at in range(first, len(steps) + 1):
        shutil.rmtree(data)
        shutil.copytree(template, data)
        assert repairs.killed_at(data, uid, at, tmp_path / f"log{at}") == -signal.SIGKILL, \
            f"not killed before step {at} ({steps[at - 1]})"
        where = f"killed before step {at} of {len(steps)} ({steps[at - 1]})"
        assert file_sha256(path) in (before, after), where
        np.testing.assert_array_equal(frames_of(path), frames, err_msg=where)

        with Catalog(data) as catalog:  # (one catalog: these machines are slow to open one)
            report = repair_run(catalog, uid)
            md = catalog.run(uid).metadata
        assert report.problems == [], (where, report.problems)
        assert file_sha256(path) == after and read_sidecar(path) == after, where
        assert not read_superblock(path).open_for_write, where
        np.testing.assert_array_equal(frames_of(path), frames, err_msg=where)
        assert md["stop"]["reason"] == "recovered" and md["stop"]["exit_status"] == "abort"
        assert {k: v for k, v in md["recovery"].items() if k != "time"} == \
            {k: v for k, v in want.items() if k != "time"}, where
        assert leftovers(data) == [], where
    assert catalog_main(["repair", uid, "--data", str(data)]) == 1
    assert "nothing to repair" in capsys.readouterr().err
