"""A stream's table set-up in the SQLite table store while another writer commits
(``dataflow.table_store``): SQLite refuses the set-up's write at once, and it is made
again instead of failing the run."""

from __future__ import annotations

import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tiled.adapters.sql import SQLAdapter
from tiled.storage import EmbeddedSQLStorage
from tiled.structures.core import StructureFamily
from tiled.structures.data_source import DataSource
from tiled.structures.table import TableStructure

from dataflow.catalog_db import SQLITE_BUSY_MS
from dataflow.table_store import retry_table_setup, write_ahead_log


def other_process(db: Path, sql: str) -> str:
    """Run ``sql`` on ``db`` in another process (the other writer, or a reader of what is
    stored) and commit: Python's SQLite and the ADBC driver's are two copies of the
    library, and in one process closing one's file would drop the other's locks."""
    script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=30); "
              "r = c.execute(sys.argv[2]).fetchall(); c.commit(); print(r[0][0] if r else '')")
    done = subprocess.run([sys.executable, "-c", script, str(db), sql], capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.strip()


def data_source() -> DataSource[TableStructure]:
    table = pa.table({"x": [1, 2]})
    return DataSource(structure_family=StructureFamily.table,
                      structure=TableStructure.from_arrow_table(table, npartitions=1),
                      mimetype="application/x-tiled-sql-table")


class Interleaved:
    """A storage whose first ``times`` connections let another writer commit right after
    their first statement (the set-up's read-only start), as a second process does."""

    def __init__(self, storage: EmbeddedSQLStorage, db: Path, times: int) -> None:
        self.storage, self.db, self.times = storage, db, times
        self.dialect, self.uri = storage.dialect, storage.uri
        self.attempts = 0

    def connect(self) -> Any:
        self.attempts += 1
        conn = self.storage.connect()
        return conn if self.attempts > self.times else Racing(conn, self.db)


class Racing:
    """A pooled connection after whose first statement another writer commits."""

    def __init__(self, conn: Any, db: Path) -> None:
        self.conn, self.db, self.statements = conn, db, 0

    def cursor(self) -> Any:
        return RacingCursor(self, self.conn.cursor())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


class RacingCursor:
    def __init__(self, owner: Racing, cursor: Any) -> None:
        self.owner, self.cursor = owner, cursor

    def __enter__(self) -> RacingCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, *args: Any) -> Any:
        self.owner.statements += 1
        return self.cursor.execute(*args)

    def close(self) -> None:
        self.cursor.close()
        if self.owner.statements == 1:
            other_process(self.owner.db, "UPDATE _dataset_id_counter SET value = value + 100")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cursor, name)


@pytest.fixture
def storage(tmp_path: Path) -> tuple[EmbeddedSQLStorage, Path]:
    db = tmp_path / "tables.db"
    write_ahead_log(db, SQLITE_BUSY_MS)  # (as the catalog does)
    store = EmbeddedSQLStorage(uri=f"sqlite:///{db}")
    SQLAdapter.init_storage(store, data_source(), [])  # the table and counter exist
    return store, db


def test_sqlite_refuses_a_set_up_that_read_before_another_writer_committed(
        storage: tuple[EmbeddedSQLStorage, Path]) -> None:
    """The failure itself, with Tiled's own set-up (no retry): "database is locked" at
    once, which the busy timeout does not cover."""
    store, db = storage
    plain = SQLAdapter.__dict__["init_storage"].__func__
    plain = getattr(plain, "__wrapped__", plain)
    with pytest.raises(Exception, match="database is locked"):
        plain(SQLAdapter, Interleaved(store, db, 1), data_source(), [])


def counter(db: Path) -> int:
    return int(other_process(db, "SELECT value FROM _dataset_id_counter"))


@pytest.mark.parametrize("refusals", [1, 3])
def test_table_set_up_is_made_again_after_sqlite_refused_it(
        storage: tuple[EmbeddedSQLStorage, Path], refusals: int) -> None:
    """Made again until it goes through, and on new connections: the refused one would
    hand out dataset numbers that are never stored (the counter on disk must be what
    every later set-up got)."""
    store, db = storage
    retry_table_setup(SQLITE_BUSY_MS)
    racing = Interleaved(store, db, refusals)
    got = SQLAdapter.init_storage(racing, data_source(), [])
    assert racing.attempts == refusals + 1
    # the counter: 1 from the fixture, +100 per commit of the other writer, +1 now
    assert got.parameters["dataset_id"] == counter(db) == 1 + 100 * refusals + 1
    for n in range(2, 5):
        again = SQLAdapter.init_storage(store, data_source(), [])
        assert again.parameters["dataset_id"] == counter(db) == 1 + 100 * refusals + n


def test_other_errors_are_not_retried(storage: tuple[EmbeddedSQLStorage, Path]) -> None:
    store, _ = storage
    retry_table_setup(SQLITE_BUSY_MS)
    bad = data_source()
    bad.parameters["primary_key"] = ["nope"]
    calls = []
    connect = store.connect

    class Counting:
        dialect = store.dialect

        def connect(self) -> Any:
            calls.append(1)
            return connect()

    with pytest.raises(ValueError, match="primary_key column 'nope'"):
        SQLAdapter.init_storage(Counting(), bad, [])
    assert calls == []


def test_the_store_is_switched_to_a_write_ahead_log_through_the_drivers_sqlite(
        tmp_path: Path) -> None:
    """Opened in the mode by the ADBC driver (no second SQLite copy touches the file in
    this process), and the mode is the file's: another process sees it."""
    import adbc_driver_sqlite.dbapi

    db = tmp_path / "tables.db"
    with closing(adbc_driver_sqlite.dbapi.connect(str(db))) as holder:  # the store is open
        with closing(holder.cursor()) as cursor:
            cursor.execute("CREATE TABLE t (v INTEGER)")
        holder.commit()
        write_ahead_log(db, SQLITE_BUSY_MS)
    assert other_process(db, "PRAGMA journal_mode") == "wal"
