"""Tiled's SQL table store on SQLite with several writers.

**A new table's set-up is retried when SQLite refuses it.** Every stream of a run gets
its table in the catalog's SQLite table store when TiledWriter first writes it
(``SQLAdapter.init_storage``). That set-up is one transaction that first only reads
when the table exists already (``CREATE TABLE IF NOT EXISTS``, ``CREATE INDEX IF NOT
EXISTS``), then writes (the store's dataset counter). In write-ahead-log mode SQLite
cannot turn such a transaction into a writing one once another connection has committed
since it began: it fails at once with "database is locked", without the busy timeout's
wait (``dataflow.catalog_db.wait_when_busy``), because waiting could not help. Two writers
of one catalog (the beamline and a live consumer, or processes creating one catalog
together) starting a stream at the same moment then lost a run: the error reached the
RunEngine at the run's stop. The set-up commits only at its end, so a refused attempt
changed nothing and is made again until ``SQLITE_BUSY_MS`` have passed.

**The table store is only ever opened through the ADBC driver's SQLite.** The driver
links its own copy of SQLite, not the one of Python's ``sqlite3``. Two copies in one
process do not see each other's POSIX locks, and closing a file through one drops the
locks the other holds on it (SQLite's "multiple copies of SQLite linked into the same
application"): a catalog opened a second time in a process where the first still holds
the store would have left it unlocked against other processes' writers.
:func:`write_ahead_log` therefore switches the store's journal mode through the driver.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from contextlib import closing
from pathlib import Path
from typing import Any

__all__ = ["LOCKED", "is_locked", "retry_table_setup", "write_ahead_log"]

log = logging.getLogger(__name__)

LOCKED = "database is locked"
"""What SQLite (through the ADBC driver) says when it refuses a write transaction."""


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite refusing a write because of another writer."""
    return LOCKED in str(exc)


def write_ahead_log(db: Path, timeout_ms: int) -> None:
    """Put the table store ``db`` in write-ahead-log mode through the ADBC driver (see
    the module docstring; ``dataflow.catalog_db.write_ahead_log`` says why the mode). A
    store another process holds locked for longer than ``timeout_ms`` keeps its mode
    (logged): it works either way."""
    import adbc_driver_sqlite.dbapi

    try:
        with closing(adbc_driver_sqlite.dbapi.connect(str(db), autocommit=True)) as con, \
                closing(con.cursor()) as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {int(timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            mode = cursor.fetchone()
    except Exception as exc:  # (the driver's errors have no common base but Exception)
        log.warning("%s: left in its journal mode (%s)", db, exc)
        return
    if not mode or str(mode[0]).lower() != "wal":
        log.warning("%s: SQLite kept journal mode %s (write-ahead log refused)", db, mode)


def retry_table_setup(deadline_ms: int) -> None:
    """Make Tiled's ``SQLAdapter.init_storage`` on SQLite try again for up to
    ``deadline_ms`` when SQLite refuses it (module docstring); idempotent, process-wide
    (the adapter class is Tiled's, shared by every catalog of the process)."""
    from tiled.adapters.sql import SQLAdapter

    original = SQLAdapter.__dict__["init_storage"].__func__
    if getattr(original, "_smeflow_retrying", False):
        return

    @functools.wraps(original)
    def init_storage(cls: Any, storage: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(storage, "dialect", None) != "sqlite":
            return original(cls, storage, *args, **kwargs)
        give_up = time.monotonic() + deadline_ms / 1000
        pause = 0.005
        while True:
            try:
                return original(cls, storage, *args, **kwargs)
            except Exception as exc:
                if not is_locked(exc) or time.monotonic() + pause > give_up:
                    raise
            time.sleep(pause * (0.5 + random.random()))  # (writers racing: not in step)
            pause = min(pause * 2, 0.2)

    init_storage._smeflow_retrying = True  # type: ignore[attr-defined]
    SQLAdapter.init_storage = classmethod(init_storage)


def strict_table_reads() -> None:
    """Make Tiled's SQL table reads keep Tiled's adapter contract (idempotent,
    process-wide): a field the table lacks raises ``KeyError`` and a partition outside
    the table's ``IndexError``, which Tiled's routes answer with HTTP 400 ("No such field
    nope.", "Partition out of range"). tiled 0.2.20's ``SQLAdapter`` dropped unknown
    fields silently (``?column=seq_num&column=nope`` answered ``seq_num`` alone; every
    field unknown made "SELECT  FROM", an HTTP 500) and answered any partition number,
    ``-1`` and ``10**11`` included, with an empty table."""
    from tiled.adapters.sql import SQLAdapter

    original = SQLAdapter._read_full_table_or_partition
    if getattr(original, "_smeflow_strict", False):
        return

    @functools.wraps(original)
    def read(self: Any, fields: Any = None, partition: Any = None) -> Any:
        structure = self.structure()
        names = set(structure.arrow_schema_decoded.names)
        for field in fields or ():
            if field not in names:
                raise KeyError(field)
        if partition is not None and not 0 <= int(partition) < structure.npartitions:
            raise IndexError(partition)
        return original(self, fields=fields, partition=partition)

    read._smeflow_strict = True  # type: ignore[attr-defined]
    SQLAdapter._read_full_table_or_partition = read
