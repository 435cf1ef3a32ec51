"""Creating a catalog is atomic: a process killed while it creates the catalog database
leaves none (it used to leave a half-made one that broke the folder for good), and
several processes creating one catalog at once get one working database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

from dataflow.catalog import Catalog, _initialized, database_ready

KILLED_CREATOR = textwrap.dedent("""
    import os, signal, sys
    import tiled.alembic_utils

    def killed(*args, **kwargs):  # the tables exist, the version stamp does not yet
        os.kill(os.getpid(), signal.SIGKILL)

    tiled.alembic_utils.stamp_head = killed
    from dataflow.catalog import Catalog
    Catalog(sys.argv[1])
""")


def test_a_creator_killed_halfway_leaves_no_broken_catalog(tmp_path: Path) -> None:
    folder = tmp_path / "new"
    done = subprocess.run([sys.executable, "-c", KILLED_CREATOR, str(folder)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == -9, done.stderr
    assert not (folder / "catalog.db").exists()  # not half-made
    with Catalog(folder) as catalog:  # the next process creates it whole
        RE = RunEngine({})
        catalog.subscribe(RE)
        (uid,) = RE(count([det], 2))
        assert catalog.run(uid).metadata["stop"]["exit_status"] == "success"
    assert not list(folder.glob(".catalog.db.*"))  # the killed creator's file is gone


def test_a_database_is_created_whole_or_not_at_all(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    assert database_ready(db) and _initialized(db)
    assert database_ready(db)  # again: nothing to do
    other = tmp_path / "notes.db"
    other.write_text("not a catalog")
    assert not database_ready(other)  # never overwritten; Tiled reports it
    assert other.read_text() == "not a catalog"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.db", "notes.db"]
