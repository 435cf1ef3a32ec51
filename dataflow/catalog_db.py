"""The embedded catalog's SQLite databases, made safe for several processes at once.

``catalog.db`` (Tiled's catalog) is created atomically under a lock on its folder
(:func:`database_ready`), so creators racing for one new catalog get one working
database and a killed creator leaves none; both databases keep a write-ahead log
(:func:`write_ahead_log`), and writers wait for each other (:func:`wait_when_busy`)
instead of meeting SQLite's immediate "database is locked". Used by the in-process
catalog (:mod:`dataflow.catalog`) and the catalog server (:mod:`dataflow.server`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import struct
import warnings
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .errors import CatalogError

log = logging.getLogger(__name__)

__all__ = ["SQLITE_BUSY_MS", "SYNCHRONOUS", "DamagedDatabaseError", "check_pages",
           "check_records", "check_table_store", "damage_named", "damage_of",
           "damaged_record",
           "database_damage", "database_ready", "folder_lock",
           "sync_at_checkpoints", "wait_when_busy", "write_ahead_log"]

SYNCHRONOUS = "NORMAL"
"""SQLite's ``synchronous`` setting on every connection to a catalog's databases (module
docstring: synced at checkpoints, not at every commit)."""


def _read_only(db: Path) -> closing[sqlite3.Connection]:
    """A read-only connection to ``db``, closed at the end of its ``with`` block."""
    return closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True))


def _initialized(db: Path) -> bool:
    """True when ``db`` is an SQLite database Tiled has already set up (stamped by
    alembic). Tiled initializes a catalog in a subprocess (seconds), so skip it then."""
    if not db.is_file():
        return False
    try:
        with _read_only(db) as con:
            return bool(con.execute("SELECT COUNT(*) FROM alembic_version").fetchone()[0])
    except sqlite3.Error as exc:  # damaged pages or schema: never initialized again
        if any(c in str(exc) for c in CORRUPTION):
            raise _refused(db, f"is damaged (SQLite: {exc})") from None
        return False


class DamagedDatabaseError(CatalogError):
    """A catalog database that exists but cannot be what it should be: damaged, cut
    short, or not a database (never set up afresh in its place)."""


SQLITE_HEADER = b"SQLite format 3\x00"


def database_damage(db: Path) -> str | None:
    """What is wrong with the existing file ``db`` as an SQLite database, or None when
    nothing shows without reading it all.

    Cheap (its first 100 bytes and its size), so it runs on every open: SQLite reads a
    file cut short without a word as long as no query reaches the missing pages (a copy
    one byte short answers every search). A database with a non-empty write-ahead log
    beside it is not checked for size: another process may be checkpointing it, which
    writes the header (the new size) before the pages that extend the file."""
    try:
        info = db.stat()
        if not db.is_file():
            return "is not a file (a folder or a device in place of the database)"
        with db.open("rb") as file:
            header = file.read(100)
    except OSError as exc:
        return f"cannot be opened ({exc.strerror or exc})"
    if info.st_size == 0:
        return "is empty (0 bytes)"
    if not header.startswith(SQLITE_HEADER) or len(header) < 100:
        return "is not an SQLite database (its first bytes are not SQLite's header)"
    page_size = struct.unpack(">H", header[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    pages, changes, valid_for = (struct.unpack(">I", header[i:i + 4])[0]
                                 for i in (28, 24, 92))
    wal = db.with_name(db.name + "-wal")
    logged = wal.is_file() and wal.stat().st_size > 0
    expected = pages * page_size
    if changes == valid_for and not logged and info.st_size < expected:
        return f"is cut short: {info.st_size} bytes of the {expected} its header records"
    return None


def _refused(db: Path, why: str) -> DamagedDatabaseError:
    what = ("the event columns of the runs" if db.name == "tables.db"
            else "the runs it lists")
    return DamagedDatabaseError(f"{db}: {why}; left as it is: restore it from a backup "
                                f"({what} are not found without it)")


def check_table_store(db: Path) -> None:
    """Raise :class:`DamagedDatabaseError` when the catalog's table store ``db``
    (``tables.db``) is damaged (:func:`database_damage`). An empty one passes: SQLite may
    leave the file empty until the first table is written."""
    if os.path.lexists(db) and not (db.is_file() and db.stat().st_size == 0):
        _refuse_damaged(db)


def _refuse_damaged(db: Path) -> None:
    """Raise :class:`DamagedDatabaseError` when :func:`database_damage` finds any."""
    why = database_damage(db)
    if why is not None:
        raise _refused(db, why)


CORRUPTION = ("database disk image is malformed", "file is not a database",
              "malformed database schema")
"""SQLite's messages for a database whose pages (or schema) are damaged."""


def check_pages(db: Path) -> None:
    """SQLite's ``PRAGMA quick_check`` of ``db``: :class:`DamagedDatabaseError` naming it
    with SQLite's first finding when a page is damaged.

    Reads every page: about 2.3 ms a megabyte with the file in memory, 5.5 from disk
    (measured: 33 MB, 10^4 runs, 78 / 174 ms; 340 MB, 10^5 runs, 0.78 / 1.9 s), too much
    for every open (which checks the header only, :func:`database_damage`), so
    ``smeflow catalog verify`` runs it. It sees damaged pages, not a changed value in a
    record: SQLite keeps no checksums (``verify`` compares the run's documents with its
    provenance record for that)."""
    if not db.is_file() or db.stat().st_size == 0:
        return
    _refuse_damaged(db)
    try:
        with _read_only(db) as con:
            found = [" ".join(str(row[0]).split())
                     for row in con.execute("PRAGMA quick_check(10)")]
    except sqlite3.DatabaseError as exc:
        found = [str(exc)]
    if found != ["ok"]:
        more = f" and {len(found) - 1} more" if len(found) > 1 else ""
        raise _refused(db, f"is damaged (SQLite's quick_check: {found[0]}{more})")


@contextmanager
def damage_named(db: Path) -> Iterator[None]:
    """SQLite's corruption errors (:data:`CORRUPTION`, raised by ``sqlite3`` or through
    SQLAlchemy) inside the block as one :class:`DamagedDatabaseError` naming ``db``:
    damage past the header that :func:`database_damage` does not see."""
    try:
        yield
    except Exception as exc:
        text = str(getattr(exc, "orig", None) or exc)
        found = next((c for c in CORRUPTION if c in text), None)
        if found is None:
            raise
        raise _refused(db, f"is damaged (SQLite: {found})") from exc


def damage_of(db: Path, exc: BaseException) -> DamagedDatabaseError | None:
    """The error naming ``db`` when ``exc``, raised by a query of ``db``, comes of damage:
    a damaged record (:func:`damaged_record`) or page (:data:`CORRUPTION`); else None."""
    text = str(getattr(exc, "orig", None) or exc)
    found = next((c for c in CORRUPTION if c in text), None)
    if found is not None:
        return _refused(db, f"is damaged (SQLite: {found})")
    return damaged_record(db, exc)


RECORD_ERRORS = ("Could not decode to UTF-8 column", "malformed JSON")
"""The messages of Python's ``sqlite3`` and of SQLite's JSON functions for a stored
value that is not UTF-8 text or not JSON."""


def damaged_record(db: Path, exc: BaseException) -> DamagedDatabaseError | None:
    """The error naming ``db`` and its first damaged record when ``exc``, raised by a query
    of the catalog database ``db``, comes of a stored JSON value that is not UTF-8 text or
    not JSON (a byte changed inside a record: SQLite keeps no checksums, its page checks
    pass such a file); None when ``exc`` is something else or no such record is found
    (then ``exc`` stands as it is). Reads every JSON value of ``db`` (on failure only)."""
    text = str(getattr(exc, "orig", None) or exc)
    if not isinstance(exc, json.JSONDecodeError) and not any(m in text for m in RECORD_ERRORS):
        return None
    try:
        with _read_only(db) as con:
            con.text_factory = bytes
            found = _first_damaged_record(con)
    except sqlite3.Error:
        return None
    return None if found is None else _refused(db, f"is damaged: {found}")


def check_records(db: Path) -> None:
    """Raise :class:`DamagedDatabaseError` naming ``db`` and the first record (of any
    run) whose stored JSON is not UTF-8 text or not JSON: what ``smeflow catalog
    verify`` runs after :func:`check_pages`, which passes such a file. Reads every JSON
    value (3.8 s for 4·10^5 nodes, 520 MB). A search that needs the changed key misses
    the run without an error (docs/catalog.md, "A changed byte")."""
    if not db.is_file() or db.stat().st_size == 0:
        return
    try:
        with _read_only(db) as con:
            con.text_factory = bytes
            found = _first_damaged_record(con)
    except sqlite3.DatabaseError as exc:
        raise _refused(db, f"is damaged (SQLite: {exc})") from None
    if found is not None:
        raise _refused(db, f"is damaged: {found}")


def _first_damaged_record(con: sqlite3.Connection) -> str | None:
    """Where the first stored JSON value that is not UTF-8 JSON text is, and what is wrong
    with it (the nodes' first: what searches read)."""
    tables = [bytes(row[0]).decode() for row in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name != 'nodes', name")]
    for table in tables:
        columns = [bytes(row[1]).decode() for row in con.execute(f'PRAGMA table_info("{table}")')
                   if bytes(row[2]).decode().upper() == "JSON"]
        for column in columns:
            for rowid, value in con.execute(f'SELECT rowid, "{column}" FROM "{table}"'):
                why = _not_json_text(value)
                if why is not None:
                    return f"the {column} of {_record_place(con, table, rowid)} {why}"
    return None


def _not_json_text(value: Any) -> str | None:
    if not isinstance(value, bytes):
        return None
    try:
        json.loads(value.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"is not UTF-8 text (byte 0x{value[exc.start]:02x} at {exc.start})"
    except ValueError as exc:
        return f"is not JSON ({exc})"
    return None


def _record_place(con: sqlite3.Connection, table: str, rowid: int) -> str:
    """A node as its path in the catalog (``raw/<uid>/primary``), else table and row."""
    node = rowid if table == "nodes" else None
    if table in ("data_sources", "revisions"):
        row = con.execute(f'SELECT node_id FROM "{table}" WHERE rowid = ?', (rowid,)).fetchone()
        node = row[0] if row else None
    keys: list[str] = []
    while node is not None and len(keys) < 64:
        row = con.execute("SELECT parent, key FROM nodes WHERE id = ?", (node,)).fetchone()
        if row is None or row[0] is None:
            break
        node, key = row
        keys.insert(0, bytes(key).decode("utf-8", "backslashreplace"))
    path = "/".join(keys) or "the catalog's top"
    return path if table == "nodes" else f"{path}'s {table} record (row {rowid})"


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` itself (no lock file left behind), shared by every
    process on this machine."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def database_ready(db: Path) -> bool:
    """Make ``db`` a stamped Tiled catalog database unless it is one; True when it is.

    Creation is atomic: under a lock on its folder, the database is built in a temporary
    file and renamed into place, so two processes creating one catalog at once get one
    working database, and a process killed while creating leaves none (a half-made
    database used to break the catalog for good). An existing ``db`` that is damaged
    (:func:`database_damage`: empty, cut short, not SQLite, not a file) raises
    :class:`DamagedDatabaseError` and is left as it is. False means ``db`` is an intact
    SQLite database but not a catalog Tiled set up (Tiled's own initialization then
    reports why)."""
    if os.path.lexists(db):
        _refuse_damaged(db)
    if _initialized(db):
        return True
    with folder_lock(db.parent):
        if _initialized(db):
            return True
        if os.path.lexists(db):
            _refuse_damaged(db)
            return False
        for stale in db.parent.glob(f".{db.name}.*.creating"):  # left by a killed creator
            stale.unlink(missing_ok=True)
        tmp = db.with_name(f".{db.name}.{os.getpid()}.creating")
        if not _initialize(tmp):
            return False
        os.replace(tmp, db)
        return True


def _initialize(db: Path) -> bool:
    """Create and stamp a new Tiled catalog database in-process; False if that failed.

    ``tiled.catalog.from_uri(init_if_not_exists=True)`` does the same in a Python
    subprocess, which costs seconds per new catalog (every test's temporary catalog).
    It runs in a short-lived thread of its own so that a running event loop in the
    caller (Jupyter) does not matter; tiled's subprocess path remains the fallback.
    """
    import asyncio
    import threading

    def work() -> None:
        from sqlalchemy.ext.asyncio import create_async_engine
        from tiled.alembic_utils import stamp_head
        from tiled.catalog.alembic_constants import ALEMBIC_DIR, ALEMBIC_INI_TEMPLATE_PATH
        from tiled.catalog.core import initialize_database

        uri = f"sqlite+aiosqlite:///{db}"

        async def create() -> None:
            engine = create_async_engine(uri)
            try:
                await initialize_database(engine)
            finally:
                await engine.dispose()

        asyncio.run(create())
        with warnings.catch_warnings():  # alembic's notice about tiled's ini template
            warnings.simplefilter("ignore", DeprecationWarning)
            stamp_head(ALEMBIC_INI_TEMPLATE_PATH, ALEMBIC_DIR, uri)

    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except Exception as exc:
            failures.append(exc)

    thread = threading.Thread(target=guarded, name="smeflow-catalog-init")
    thread.start()
    thread.join()
    if failures:
        db.unlink(missing_ok=True)  # half-made: let tiled's own initialization redo it
    return not failures


SQLITE_BUSY_MS = 30_000
"""How long a write to an SQLite table store waits for another writer (ms)."""


def wait_when_busy(adapter: Any) -> Any:
    """Make ``adapter``'s SQLite table stores wait for each other instead of failing.

    Two writers of one catalog — the raw run's writer and a live reducer's derived run in
    one process, or the beamline and a consumer process — otherwise meet SQLite's
    immediate "database is locked". Every pooled connection gets a busy timeout and the
    file write-ahead logging (readers never block the writer); every connection to
    either database syncs at checkpoints only (``SYNCHRONOUS``, module docstring).
    Returns ``adapter``.
    """
    import sqlalchemy

    from .table_store import retry_table_setup
    from .table_store import write_ahead_log as store_write_ahead_log

    retry_table_setup(SQLITE_BUSY_MS)  # (what the busy timeout cannot cover)

    def patient(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
            with _outside_transaction(connection):  # (SQLite refuses it inside one)
                cursor.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
        finally:
            cursor.close()

    for storage in getattr(adapter.context, "writable_storage", {}).values():
        if getattr(storage, "dialect", None) != "sqlite":
            continue
        path = "/" + urlparse(str(storage.uri)).path.lstrip("/")  # sqlite://localhost//x
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        store_write_ahead_log(Path(path), SQLITE_BUSY_MS)  # (through the store's SQLite)
        sqlalchemy.event.listen(storage._connection_pool, "connect", patient)
    sync_at_checkpoints(adapter)
    return adapter


@contextmanager
def _outside_transaction(connection: Any) -> Iterator[None]:
    """An ADBC connection (the table store's) out of the transaction its driver keeps
    open while not in autocommit mode, for the block; other connections as they are."""
    adbc = getattr(connection, "adbc_connection", None)
    if adbc is None or adbc.get_option("adbc.connection.autocommit") == "true":
        yield
        return
    adbc.set_autocommit(True)  # (ends the driver's empty transaction)
    try:
        yield
    finally:
        adbc.set_autocommit(False)


def sync_at_checkpoints(adapter: Any) -> bool:
    """Make every connection ``adapter``'s catalog database engine opens from now on run
    ``PRAGMA synchronous = NORMAL`` (module docstring); idempotent. False (and nothing
    changed) when the catalog is not on SQLite."""
    import sqlalchemy

    engine = adapter.context.engine
    if engine.dialect.name != "sqlite":
        return False
    target = engine.sync_engine
    if not sqlalchemy.event.contains(target, "connect", _sync_at_checkpoints):
        sqlalchemy.event.listen(target, "connect", _sync_at_checkpoints)
    return True


def _sync_at_checkpoints(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
    finally:
        cursor.close()


def write_ahead_log(db: Path, timeout: float = SQLITE_BUSY_MS / 1000) -> None:
    """Put the SQLite database ``db`` in write-ahead-log mode (a property of the file,
    kept by every later connection): readers never block the writer, and a commit
    appends to the log instead of syncing a rollback journal and the database (each
    document a run writes is a few commits; in rollback mode each cost milliseconds of
    disk syncs). Tiled asks for the mode when it creates a catalog, but from inside a
    transaction, where SQLite ignores it. A database another process holds locked
    keeps its mode (logged after ``timeout`` seconds): it works either way. For the
    catalog database, which Python's ``sqlite3`` opens (aiosqlite); the table store has
    its own (``dataflow.table_store.write_ahead_log``)."""
    try:
        with closing(sqlite3.connect(db, timeout=timeout)) as con:
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()
    except sqlite3.Error as exc:
        log.warning("%s: left in its journal mode (%s)", db, exc)
        return
    if not mode or str(mode[0]).lower() != "wal":
        log.warning("%s: SQLite kept journal mode %s (write-ahead log refused)", db, mode)
