"""The catalog's SQLite databases sync at checkpoints, not at every commit
(``dataflow.catalog_db.SYNCHRONOUS``), and a writer killed with SIGKILL still loses
nothing it committed: every run whose stop document was written is whole afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from dataflow.catalog import Catalog
from dataflow.catalog_db import SYNCHRONOUS

NORMAL, FULL = 1, 2
"""SQLite's numbers for ``synchronous`` (what ``PRAGMA synchronous`` answers)."""


def _catalog_sync(adapter: Any) -> int:
    """``PRAGMA synchronous`` on a connection of the catalog database's engine."""

    async def ask() -> int:
        async with adapter.context.engine.connect() as connection:
            return int((await connection.exec_driver_sql("PRAGMA synchronous")).scalar())

    return asyncio.run(ask())


def _store_sync(adapter: Any) -> int:
    """``PRAGMA synchronous`` on a pooled connection of the catalog's table store."""
    (store,) = [s for s in adapter.context.writable_storage.values()
                if getattr(s, "dialect", None) == "sqlite"]
    connection = store.connect()
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA synchronous")
        value = int(cursor.fetchone()[0])
        cursor.close()
        return value
    finally:
        connection.close()


def test_both_databases_sync_at_checkpoints(tmp_path: Path) -> None:
    """The embedded catalog's connections to ``catalog.db`` and ``tables.db`` run
    ``synchronous = NORMAL``; a connection of SQLite's own (what Tiled keeps) has FULL."""
    assert SYNCHRONOUS == "NORMAL"
    with Catalog(tmp_path / "c") as catalog:
        app = catalog.tree.context.http_client._transport.transport.app
        adapter = app.state.root_tree
        assert _catalog_sync(adapter) == NORMAL
        assert _store_sync(adapter) == NORMAL
        with closing(sqlite3.connect(catalog.root / "catalog.db")) as plain:
            assert plain.execute("PRAGMA synchronous").fetchone()[0] == FULL
            assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


WRITER = textwrap.dedent("""
    import sys
    from bluesky import RunEngine
    from bluesky.plans import count
    from ophyd.sim import det
    from dataflow.catalog import Catalog

    catalog = Catalog(sys.argv[1])
    RE = RunEngine({})
    catalog.subscribe(RE, batch_size=int(sys.argv[2]) or None)  # 0: the default batching
    RE.subscribe(lambda name, doc: print("event", flush=True) if name == "event" else None)
    while True:
        (uid,) = RE(count([det], 4))
        print("stopped", uid, flush=True)   # RE returned: its stop document is written
""")


def _killed_writer(data: Path, batch_size: int, runs_before: int) -> list[str]:
    """Write runs in a process and SIGKILL it in the middle of the run after
    ``runs_before`` complete ones; the uids of the complete runs."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(data), str(batch_size)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    stopped: list[str] = []
    events_after = 0
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline().split()
            if not line:
                break
            if line[0] == "stopped":
                stopped.append(line[1])
            elif line[0] == "event" and len(stopped) >= runs_before:
                events_after += 1
                if events_after == 2:  # in the middle of the next run
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert len(stopped) >= runs_before and events_after == 2, "the writer did not get going"
    return stopped


def test_a_killed_writer_loses_nothing_it_committed(tmp_path: Path) -> None:
    """SIGKILL in the middle of a run, with each event written as it comes (batch_size=1)
    and with the default batching: every run the writer had stopped is in the catalog
    whole (stop document, its 4 events), and both databases pass SQLite's integrity
    check."""
    for batch_size in (1, 0):
        data = tmp_path / f"batch{batch_size}"
        stopped = _killed_writer(data, batch_size, runs_before=3)
        for db in ("catalog.db", "tables.db"):
            with closing(sqlite3.connect(data / db)) as con:
                assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok", db
        with Catalog(data) as catalog:
            for uid in stopped:
                run = catalog.run(uid)
                assert run.metadata["stop"]["exit_status"] == "success", uid
                assert np.asarray(run["primary"]["det"].read()).shape == (4,), uid
            assert len(list(catalog.search({}))) == len(stopped) + 1  # the killed one too
