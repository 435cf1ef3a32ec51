"""Creating a catalog is atomic: a process killed while it creates the catalog database
leaves none (it used to leave a half-made one that broke the folder for good), and
several processes creating one catalog at once get one working database."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import pytest
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

from dataflow.catalog import Catalog
from dataflow.catalog_db import (
    DamagedDatabaseError,
    _initialized,
    database_ready,
    write_ahead_log,
)

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
    with pytest.raises(DamagedDatabaseError, match=r"notes\.db: is not an SQLite database"):
        database_ready(other)  # never overwritten (test_damaged_catalog.py)
    assert other.read_text() == "not a catalog"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.db", "notes.db"]


CREATOR = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd.sim import det
    go = Path(sys.argv[2])
    while not go.exists():  # every creator starts at the same moment
        time.sleep(0.005)
    from dataflow.catalog import Catalog
    with Catalog(sys.argv[1]) as catalog:
        RE = RunEngine({})
        catalog.subscribe(RE)
        (uid,) = RE(count([det], 1))
        print(uid)
""")


def test_creators_racing_for_one_new_catalog_get_one_working_database(tmp_path: Path
                                                                      ) -> None:
    """Four processes open one new catalog folder at the same moment and each writes a
    run: every one succeeds and the catalog holds the four runs."""
    folder, go = tmp_path / "new", tmp_path / "go"
    creators = [subprocess.Popen([sys.executable, "-c", CREATOR, str(folder), str(go)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    go.touch()
    uids = []
    for proc in creators:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        uids.append(out.split()[-1])
    with Catalog(folder) as catalog:
        assert sorted(r.uid for r in catalog.runs()) == sorted(uids)
    assert not list(folder.glob(".catalog.db.*"))


def _journal_mode(db: Path) -> str:
    with closing(sqlite3.connect(db)) as con:
        return str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def test_the_catalog_database_keeps_a_write_ahead_log(tmp_path: Path) -> None:
    folder = tmp_path / "cat"
    with Catalog(folder) as catalog:  # new: tiled's own request for WAL came too late
        RE = RunEngine({})
        catalog.subscribe(RE)
        RE(count([det], 2))
    assert _journal_mode(folder / "catalog.db") == "wal"
    with closing(sqlite3.connect(folder / "catalog.db")) as con:  # an older catalog
        con.execute("PRAGMA journal_mode = DELETE")
    assert _journal_mode(folder / "catalog.db") == "delete"
    with Catalog(folder) as catalog:  # opening it converts it, runs intact
        assert len(list(catalog.search({}))) == 1
    assert _journal_mode(folder / "catalog.db") == "wal"


def test_a_locked_database_keeps_its_mode_and_opens(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "plain.db"
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a write
        with caplog.at_level(logging.WARNING, logger="dataflow.catalog"):
            write_ahead_log(db, timeout=0.1)
        holder.execute("ROLLBACK")
    assert "plain.db" in caplog.text
    assert _journal_mode(db) == "delete"
