"""The embedded run catalog: Tiled on SQLite in a local folder, served in-process.

This is smeflow's default "DataBroker": ``Catalog(directory)`` opens (creating on first
use) a folder holding

- ``catalog.db``  — the Tiled catalog (SQLite): run metadata and where data lives;
- ``tables.db``   — Tiled's tabular storage (SQLite): the event columns of each stream;
- ``storage/``    — arrays Tiled writes itself (e.g. small per-event arrays);
- ``raw/``        — the HDF5 frame files detectors write (``FrameWriter``), registered
  as external data and read lazily; Tiled only reads folders listed as readable;
- ``scan_id``     — the last scan number handed out (see ``dataflow.scan_id``);
- ``journal/``    — the documents of runs being written (``dataflow.journal``): a run
  whose process was killed leaves its journal, from which ``smeflow catalog repair``
  recovers it;
- ``catalog-root.json`` — where the folder is, so that a folder moved or copied keeps
  working (``dataflow.relocate``).

The folder defaults to ``./smeflow-data``; the environment variable ``SMEFLOW_DATA``
overrides the default (read only by ``default_data_dir()``, i.e. when no directory is
passed). The catalog is a real Tiled server application called through an in-process
transport, so everything written and queried goes through the same API as
``tiled serve`` would give over HTTP.

Inside the Tiled catalog, two containers of runs (``LAYOUT``): ``raw`` holds what the
instrument recorded, ``derived`` the reductions of raw runs (``analysis.reduce``; each
names its raw run in ``raw_uid``). ``Catalog.client`` is ``raw``, so ``client[-1]``,
databroker's ``db[-1]`` and every search mean the instrument's runs, whatever was reduced
since; ``Catalog.derived`` is the other container. This is the layout databroker expects
from a facility's Tiled server (``Broker.named`` looks for ``raw`` itself). A catalog
written before this layout (runs at the top) is opened as it is: both ``client`` and
``derived`` are then its top (with a warning).

Runs are written by ``bluesky_tiled_plugins.TiledWriter``; ``subscribe(RE)`` also makes
the RunEngine number its scans from the persisted counter, so scan numbers continue
across processes. Queries are Tiled's own (``Key``, ``FullText``) plus bluesky's
``TimeRange``, so the same searches work from any Tiled client.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import re
import sqlite3
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self
from urllib.parse import urlparse

from . import run_search
from .assets import AssetPolicy, guard_adapters
from .errors import CatalogError
from .hdf5 import FrameWriter
from .journal import JOURNAL_DIR, JournalingWriter
from .relocate import settle_root
from .scan_id import ScanIdCounter
from .server_guards import ConfinedAssets, answer_refusals

log = logging.getLogger(__name__)

ENV_VAR = "SMEFLOW_DATA"
DEFAULT_DIR = "smeflow-data"
ROOT_SPEC = {"name": "CatalogOfBlueskyRuns", "version": "3.0"}
"""The spec of a container of bluesky runs (``raw``, ``derived``; the top of an old catalog)."""
RAW = "raw"
DERIVED = "derived"
LAYOUT = (RAW, DERIVED)
"""The containers of runs at the top of a catalog (module docstring)."""
_UID_RE = re.compile(r"^[0-9a-f][0-9a-f-]{4,35}$")
_FULL_UID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


NO_STOP = "incomplete"
"""Exit status shown for a run without a stop document: it is still running, or the
process that acquired it died (killed, crashed) before closing it; its documents and
frames up to that moment are in the catalog (with a batching writer, in its journal
until ``smeflow catalog repair`` recovers them)."""


class MalformedUidError(CatalogError, ValueError):
    """A run reference that is neither a (partial) uid nor a scan number."""


class RunNotFoundError(CatalogError, LookupError):
    """No run matches a uid or scan number."""


def default_data_dir() -> Path:
    """``$SMEFLOW_DATA`` when set, else ``./smeflow-data``."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def parse_time(value: str | float | datetime, what: str = "time") -> float:
    """A point in time as seconds since the epoch.

    Accepts a number (epoch seconds), a ``datetime`` or an ISO 8601 string
    (``2026-05-01``, ``2026-05-01 14:30``, ``2026-05-01T14:30:00+02:00``); times
    without a zone are local time.

    Raises
    ------
    CatalogError
        Naming ``what`` and the value: not a date, not finite, or out of range.
    """
    moment = value if isinstance(value, datetime) else None
    seconds: float = 0.0
    if isinstance(value, int | float):
        seconds = value
    elif moment is None:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise CatalogError(f"{what} {value!r}: not a date; use YYYY-MM-DD, "
                                   "'YYYY-MM-DD HH:MM[:SS]' or seconds since 1970") from None
    try:  # nan, inf, and dates the platform cannot convert (year 1) are refused too
        seconds = moment.timestamp() if moment is not None else seconds
        if math.isfinite(seconds):
            return float(seconds)
    except (OverflowError, OSError, ValueError):
        pass
    raise CatalogError(f"{what} {value!r}: not a time this machine can convert (a finite "
                       "number of seconds since 1970, or a date)")


@dataclass(frozen=True)
class RunSummary:
    """One line about a run, as ``smeflow catalog search`` prints it."""

    scan_id: int | None
    uid: str
    plan_name: str
    time: float
    exit_status: str
    num_points: int | None

    @property
    def time_text(self) -> str:
        """Local start time, to the second."""
        return datetime.fromtimestamp(self.time).strftime("%Y-%m-%d %H:%M:%S")


def summarize(start: Mapping[str, Any], stop: Mapping[str, Any] | None) -> RunSummary:
    """A ``RunSummary`` from a run's start and (possibly missing) stop documents."""
    stop = stop or {}
    num = start.get("num_points")
    if not isinstance(num, int):
        events = stop.get("num_events") or {}
        num = events.get("primary") if isinstance(events, Mapping) else None
    scan_id = start.get("scan_id")
    return RunSummary(
        scan_id=scan_id if isinstance(scan_id, int) else None, uid=str(start["uid"]),
        plan_name=str(start.get("plan_name", "")), time=float(start.get("time", 0.0)),
        exit_status=str(stop.get("exit_status", NO_STOP)),
        num_points=num if isinstance(num, int) else None)


def _initialized(db: Path) -> bool:
    """True when ``db`` is an SQLite database Tiled has already set up (stamped by
    alembic). Tiled initializes a catalog in a subprocess (seconds), so skip it then."""
    if not db.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as con:
            return bool(con.execute("SELECT COUNT(*) FROM alembic_version").fetchone()[0])
    except sqlite3.Error:
        return False


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
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
    database used to break the catalog for good). False means ``db`` exists but is not
    a catalog Tiled set up (Tiled's own initialization then reports why)."""
    if _initialized(db):
        return True
    with _folder_lock(db.parent):
        if _initialized(db):
            return True
        if db.exists():
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
    file write-ahead logging (readers never block the writer). Returns ``adapter``.
    """
    import sqlalchemy

    def patient(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        finally:
            cursor.close()

    for storage in getattr(adapter.context, "writable_storage", {}).values():
        if getattr(storage, "dialect", None) != "sqlite":
            continue
        path = "/" + urlparse(str(storage.uri)).path.lstrip("/")  # sqlite://localhost//x
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_ahead_log(Path(path))
        sqlalchemy.event.listen(storage._connection_pool, "connect", patient)
    return adapter


def write_ahead_log(db: Path, timeout: float = SQLITE_BUSY_MS / 1000) -> None:
    """Put the SQLite database ``db`` in write-ahead-log mode (a property of the file,
    kept by every later connection): readers never block the writer, and a commit
    appends to the log instead of syncing a rollback journal and the database (each
    document a run writes is a few commits; in rollback mode each cost milliseconds of
    disk syncs). Tiled asks for the mode when it creates a catalog, but from inside a
    transaction, where SQLite ignores it. A database another process holds locked
    keeps its mode (logged after ``timeout`` seconds): it works either way."""
    try:
        with closing(sqlite3.connect(db, timeout=timeout)) as con:
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()
    except sqlite3.Error as exc:
        log.warning("%s: left in its journal mode (%s)", db, exc)
        return
    if not mode or str(mode[0]).lower() != "wal":
        log.warning("%s: SQLite kept journal mode %s (write-ahead log refused)", db, mode)


def _open_client(root: Path, readable: Sequence[Path], quiet: bool) -> Any:
    """The Tiled catalog of ``root`` as an in-process client (root spec: runs catalog)."""
    from tiled.catalog import from_uri
    from tiled.client import from_context
    from tiled.client.context import Context

    from .tiled_app import build_tiled_app

    db = root / "catalog.db"
    ready = database_ready(db)
    if ready:  # moved or copied since it was written: its assets follow it
        with _folder_lock(root):
            settle_root(root, f"sqlite:///{db}")
            write_ahead_log(db)
    adapter = from_uri(
        f"sqlite:///{root / 'catalog.db'}",
        writable_storage=[str(root / "storage"), f"sqlite:///{root / 'tables.db'}"],
        readable_storage=[str(p) for p in readable],
        init_if_not_exists=not ready)
    wait_when_busy(adapter)
    guard_adapters(adapter)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette's notice
        app = build_tiled_app(adapter, quiet=quiet)
        app.add_middleware(ConfinedAssets, policy=AssetPolicy.of_adapter(adapter))
        answer_refusals(app)
        context = Context.from_app(app)
    return from_context(context)


def runs_nodes(top: Any, where: str) -> tuple[Any, Any]:
    """The ``(raw, derived)`` containers of runs under a catalog's top Tiled node.

    A catalog written before the layout existed keeps its runs at the top: both are then
    the top, seen as a catalog of runs, and a warning says so once."""
    from tiled.client.container import Container

    from .tiled_app import fix_structure_clients_copy

    fix_structure_clients_copy()  # before anyone can ask these clients for .v2
    keys = set(top) if isinstance(top, Container) else set()
    if set(LAYOUT) <= keys:
        return Container.__getitem__(top, RAW), Container.__getitem__(top, DERIVED)
    log.warning("%s: runs at the top of the catalog (written before the raw/derived "
                "layout); reading and writing them there", where)
    runs = as_runs_catalog(top)
    return runs, runs


def as_runs_catalog(node: Any) -> Any:
    """``node`` seen through bluesky's catalog-of-runs client (``catalog[-1]``, scan
    numbers, ``TimeRange``), whatever specs the server gave it."""
    import copy

    from bluesky_tiled_plugins.clients.catalog_of_bluesky_runs import CatalogOfBlueskyRuns

    if isinstance(node, CatalogOfBlueskyRuns):
        return node
    item = copy.deepcopy(node.item)
    item["attributes"]["specs"] = [ROOT_SPEC]
    return CatalogOfBlueskyRuns(node.context, item=item,
                                structure_clients=node.structure_clients)


class AllRuns:
    """Raw and derived runs of a catalog by full uid: ``runs[uid]`` (``KeyError`` when in
    neither)."""

    def __init__(self, *nodes: Any) -> None:
        self.nodes = [n for i, n in enumerate(nodes) if all(n is not m for m in nodes[:i])]

    def __getitem__(self, uid: str) -> Any:
        for node in self.nodes:
            try:
                return node[uid]
            except (KeyError, ValueError):
                continue
        raise KeyError(uid)


class RunCatalog(Protocol):
    """What reducers need from a catalog, embedded (``Catalog``) or over HTTP
    (``dataflow.remote.RemoteCatalog``): find runs, write runs, a folder for files."""

    client: Any
    """The Tiled client of the catalog's raw runs."""

    derived: Any
    """The Tiled client of the catalog's derived runs."""

    @property
    def raw_dir(self) -> Path:
        """Folder the catalog reads external files from (same machine)."""

    def run(self, ref: str | int) -> Any:
        """The run with uid, uid prefix or scan number ``ref``."""

    def writer(self, batch_size: int | None = None) -> Any:
        """A TiledWriter callback writing raw runs into the catalog."""

    def derived_writer(self, batch_size: int | None = None) -> Any:
        """A TiledWriter callback writing derived runs into the catalog."""


class ClientCatalog:
    """A catalog of bluesky runs behind a Tiled client, embedded or over HTTP: the raw runs
    (``self.client``) and the derived ones (``self.derived``), writing and querying them,
    and the client's lifetime (``close()``, idempotent, ends its connection or in-process
    server; usable as a context manager). Subclasses say where the runs are (``where``,
    for error messages)."""

    client: Any
    derived: Any

    @property
    def where(self) -> str:
        """The catalog's place, as error messages name it (a folder, a server address)."""
        raise NotImplementedError

    # -- writing -----------------------------------------------------------------------

    def writer(self, batch_size: int | None = None) -> Any:
        """A ``TiledWriter`` callback writing runs into this catalog.

        ``batch_size=1`` writes each event and frame announcement as it arrives, which
        live consumers of the catalog need; the default batches until the stop document
        (several times faster).
        """
        return _tiled_writer(self.client, batch_size)

    def derived_writer(self, batch_size: int | None = None) -> Any:
        """A ``TiledWriter`` callback writing *derived* runs (reductions) into
        ``derived``; ``batch_size`` as for ``writer``."""
        return _tiled_writer(self.derived, batch_size)

    def max_scan_id(self) -> int:
        """The highest ``scan_id`` of any run in the catalog (0 when empty)."""
        return highest_scan_id(self.client)

    # -- reading -----------------------------------------------------------------------

    def search(self, criteria: Mapping[str, Any] | None = None, *,
               since: str | float | datetime | None = None,
               until: str | float | datetime | None = None,
               text: str | None = None, one_of: Mapping[str, Sequence[Any]] | None = None,
               holding: Mapping[str, Any] | None = None, **key_values: Any) -> Any:
        """Runs matching every condition, as a Tiled node (iterate, index, search further).

        Parameters
        ----------
        criteria, key_values
            ``key == value`` on the start document, or ``key`` a list holding ``value``
            (``motors="sample_x"``); ``"stop.exit_status"`` style keys reach the stop
            document; use ``criteria`` for keys with dots.
        one_of
            ``key`` is one of the values (Tiled's ``In``).
        holding
            ``key`` is a list holding the value (Tiled's ``Contains``).
        since, until
            Start time bounds (``since <= time < until``); see ``parse_time``.
        text
            Words searched in all metadata (Tiled full-text search).
        """
        return search_runs(self.client, criteria, since=since, until=until, text=text,
                           one_of=one_of, holding=holding, **key_values)

    def summaries(self, node: Any = None) -> list[RunSummary]:
        """One ``RunSummary`` per run of ``node`` (default: the whole catalog), oldest first."""
        return run_summaries(self.client if node is None else node)

    def runs(self) -> list[RunSummary]:
        """Every run, oldest first."""
        return self.summaries()

    def run(self, ref: str | int) -> Any:
        """The run (a Tiled ``BlueskyRun`` node) with uid, uid prefix or scan number ``ref``:
        a raw run, else a derived run with that uid (prefix).

        Its external frames are read lazily: ``run["primary"]["det_image"][0, :10, :10]``
        reads one region of one frame.

        Raises
        ------
        MalformedUidError
            ``ref`` is neither a scan number nor hex digits and dashes (>= 5 characters).
        RunNotFoundError
            Nothing matches.
        CatalogError
            A uid prefix matches several runs.
        """
        try:
            return find_run(self.client, ref, self.where)
        except RunNotFoundError as missing:
            if self.derived is self.client or not _is_uid_like(ref):
                raise
            try:  # a derived run's uid (reductions have no scan numbers)
                return _run_by_uid_prefix(self.derived, str(ref).strip().lower(), self.where)
            except RunNotFoundError:
                raise missing from None

    def derived_runs(self, raw_uid: str) -> Any:
        """The runs derived from raw run ``raw_uid`` (reductions: start ``raw_uid`` equal
        to it), as a Tiled node; see ``analysis.reduce``."""
        from tiled.queries import Key

        return self.derived.search(Key("raw_uid") == raw_uid)

    @property
    def every_run(self) -> AllRuns:
        """Raw and derived runs by full uid (``every_run[uid]``)."""
        return AllRuns(self.client, self.derived)

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the client's context (the in-process server or the HTTP connections)."""
        client, self.client, self.derived = self.client, None, None
        if client is not None:
            client.context.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Catalog(ClientCatalog):
    """The embedded Tiled catalog of bluesky runs in one folder.

    Parameters
    ----------
    directory
        The catalog folder, created on first use; default ``default_data_dir()``.
    readable_storage
        Further folders holding external files runs may refer to (``raw/`` always is).
    quiet
        Silence the in-process server's start-up banner.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None, *,
                 readable_storage: Iterable[str | os.PathLike[str]] = (),
                 quiet: bool = True) -> None:
        self.root = Path(directory if directory is not None else default_data_dir()).resolve()
        if self.root.exists() and not self.root.is_dir():
            raise CatalogError(f"catalog folder {self.root} is a file, not a folder")
        self.raw_dir = self.root / "raw"
        for folder in (self.root, self.raw_dir, self.root / "storage"):
            folder.mkdir(parents=True, exist_ok=True)
        readable = [self.raw_dir, *(Path(p).resolve() for p in readable_storage)]
        self.tree: Any = _open_client(self.root, readable, quiet)
        """The top of the Tiled catalog (``raw`` and ``derived``)."""
        self.client, self.derived = runs_nodes(self.tree, str(self.root))
        self.scan_ids = ScanIdCounter(self.root / "scan_id", initial=self.max_scan_id)

    # -- writing -----------------------------------------------------------------------

    def subscribe(self, RE: Any, batch_size: int | None = None) -> int:
        """Write ``RE``'s runs here and number them from the persisted scan counter.

        Every run is journaled (``dataflow.journal``) until its stop document is written,
        so a run whose process is killed can be recovered whole (``dataflow.repair``).

        Returns the subscription token (for ``RE.unsubscribe``).
        """
        RE.scan_id_source = self.scan_ids.scan_id_source
        journaled = JournalingWriter(self.writer(batch_size), self.root / JOURNAL_DIR)
        token: int = RE.subscribe(journaled)
        return token

    def frame_writer(self, name: str, frame_shape: Sequence[int], **kwargs: Any) -> FrameWriter:
        """A ``FrameWriter`` for a new file ``name`` inside ``raw_dir`` (see ``FrameWriter``)."""
        return FrameWriter(self.raw_dir, name, frame_shape, **kwargs)

    @property
    def where(self) -> str:
        """The catalog folder."""
        return str(self.root)

    def __repr__(self) -> str:
        return f"<Catalog {self.root}>"


def _tiled_writer(node: Any, batch_size: int | None) -> Any:
    from bluesky_tiled_plugins import TiledWriter

    if batch_size is None:
        return TiledWriter(node)
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size}: must be >= 1")
    return TiledWriter(node, batch_size=batch_size)


def _is_uid_like(ref: str | int) -> bool:
    """A string that can be (the start of) a uid."""
    return isinstance(ref, str) and _UID_RE.match(ref.strip().lower()) is not None


# -- queries on any Tiled client of a runs catalog (embedded or over HTTP) -----------------


_TEXT_WORD = re.compile(r"[^\W_]+")
"""A word of a free-text search: letters and digits (anything else separates words)."""


def search_runs(client: Any, criteria: Mapping[str, Any] | None = None, *,
                since: str | float | datetime | None = None,
                until: str | float | datetime | None = None,
                text: str | None = None, one_of: Mapping[str, Sequence[Any]] | None = None,
                holding: Mapping[str, Any] | None = None, **key_values: Any) -> Any:
    """Runs of ``client`` matching every condition (see ``Catalog.search``).

    Works on any Tiled client node of a runs catalog: the embedded one or one reached
    over HTTP (``dataflow.remote.RemoteCatalog``), on SQLite or PostgreSQL. ``text`` is
    plain words: a run matches when its metadata has every word (letters and digits,
    any case); quotes, operators and other punctuation only separate words. Text without
    any word raises ``CatalogError``.
    """
    from bluesky_tiled_plugins.queries import TimeRange
    from tiled.queries import FullText

    node = client
    for key, value in {**(criteria or {}), **key_values}.items():
        node = run_search.equal_or_holding(node, key, value)
    for key, values in (one_of or {}).items():
        node = run_search.one_of(node, key, values)
    for key, value in (holding or {}).items():
        node = run_search.holding(node, key, value)
    if since is not None or until is not None:
        t0 = parse_time(since, "since") if since is not None else None
        t1 = parse_time(until, "until") if until is not None else None
        if t0 is not None and t1 is not None and t0 > t1:
            raise CatalogError(f"since {since!r} is after until {until!r}")
        node = node.search(TimeRange(since=t0, until=t1, timezone="UTC"))
    if text:
        # Each word is its own FullText query on its lowercase letters and digits, so no
        # text is ever read as query syntax: SQLite's FTS5 MATCH would take quotes,
        # AND/OR/NOT, '*', '^' and 'col:' as operators, PostgreSQL's to_tsquery '&', '|',
        # '!' and spaces. Both databases fold case and split words at punctuation.
        words = [w.lower() for w in _TEXT_WORD.findall(text)]
        if not words:
            raise CatalogError(f"text {text!r}: no words to search for (letters or digits)")
        for word in dict.fromkeys(words):
            node = node.search(FullText(word))
    return node


def run_summaries(node: Any) -> list[RunSummary]:
    """One ``RunSummary`` per run of a Tiled node, oldest first."""
    out = [summarize(run.metadata.get("start") or {"uid": key}, run.metadata.get("stop"))
           for key, run in node.items()]
    return sorted(out, key=lambda s: s.time)


def highest_scan_id(client: Any) -> int:
    """The highest ``scan_id`` of any run of ``client`` (0 when there is none)."""
    latest = client.sort(("start.scan_id", -1)).values().head(1)
    if not latest:
        return 0
    value = latest[0].metadata.get("start", {}).get("scan_id", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def find_run(client: Any, ref: str | int, where: str) -> Any:
    """The run of ``client`` with uid, uid prefix or scan number ``ref`` (see ``Catalog.run``).

    A string of decimal digits is a scan number first; when no run has that number and the
    digits can be a uid prefix (five or more), it is looked up as one, since uids are hex
    and their first characters are sometimes all digits. Five or more digits starting
    with 0 are only ever a uid prefix (nobody writes scan 12 as 00012). ``where`` names
    the catalog in error messages (a folder or a server address).
    """
    if isinstance(ref, bool):
        raise MalformedUidError(f"run {ref!r}: expected a uid or a scan number")
    if isinstance(ref, int) and ref >= 10**18:  # (str() of a huge int is itself an error)
        shown = ref if ref.bit_length() <= 64 else "(more than 64 bits)"
        raise MalformedUidError(f"scan number {shown}: too large")
    text = str(ref).strip()
    uid = text.lower()
    if isinstance(ref, str) and text.startswith("0") and len(text) >= 5 \
            and text.isascii() and text.isdigit():
        return _run_by_uid_prefix(client, uid, where)
    if isinstance(ref, int) or (text.isascii() and text.isdigit()):
        can_be_uid = isinstance(ref, str) and _UID_RE.match(uid) is not None
        if len(text) > 18 and not can_be_uid:  # more than any scan counter (or SQLite) holds
            raise MalformedUidError(f"scan number {text[:20]}{'...' * (len(text) > 20)}: "
                                    "too large")
        scan_id = int(text)
        if scan_id < 1 and not can_be_uid:
            raise MalformedUidError(f"scan number {scan_id}: must be >= 1")
        if 1 <= scan_id < 10**18:
            from tiled.queries import Key

            by_number = client.search(Key("scan_id") == scan_id).values()
            if len(by_number):
                return by_number.last()  # scan numbers may repeat if a counter was reset
        if not can_be_uid:
            raise RunNotFoundError(f"no run with scan number {scan_id} in {where}")
        try:
            return _run_by_uid_prefix(client, uid, where)
        except RunNotFoundError:
            raise RunNotFoundError(f"no run with scan number {text} nor a uid starting "
                                   f"with {uid!r} in {where}") from None
    if not _UID_RE.match(uid):
        raise MalformedUidError(
            f"run {text!r}: not a uid (hex digits and dashes, at least 5 characters, "
            "e.g. 3f2a9c1e) nor a scan number")
    if _FULL_UID_RE.match(uid):
        try:
            return client[uid]
        except KeyError:
            raise RunNotFoundError(f"no run with uid {uid} in {where}") from None
    return _run_by_uid_prefix(client, uid, where)


def _run_by_uid_prefix(client: Any, prefix: str, where: str) -> Any:
    """The one run whose uid starts with ``prefix``."""
    from tiled.queries import Like

    found = client.search(Like("start.uid", f"{prefix}%")).values().head(2)
    if not found:
        raise RunNotFoundError(f"no run whose uid starts with {prefix!r} in {where}")
    if len(found) > 1:
        raise CatalogError(f"uid prefix {prefix!r} matches several runs; give more characters")
    return found[0]


def derived_beside(run: Any) -> Any:
    """The container of derived runs of the catalog ``run`` is in (the run's own container
    in a catalog without the layout); ``None`` for a run without a parent."""
    from tiled.client.container import Container

    container = getattr(run, "parent", None)
    if container is None or container.item["id"] != RAW \
            or container.item["attributes"]["ancestors"]:  # not the top's raw container
        return container
    top = container.parent
    if isinstance(top, Container) and DERIVED in set(top):
        return Container.__getitem__(top, DERIVED)
    return container


def run_details(run: Any, derived_runs: Any = None) -> dict[str, Any]:
    """What ``smeflow catalog show`` prints: start/stop metadata and every stream's keys.

    Returns ``{"start": ..., "stop": ..., "streams": {name: {"events": n,
    "data_keys": {key: {"shape": [...], "dtype": ..., "external": bool}}}},
    "derived": [{"uid", "reduction", "live", "time", "exit_status", "reason"}, ...]}``,
    the derived runs being the reductions of this run (start ``raw_uid`` == its uid) in
    ``derived_runs`` (a container; default: the ``derived`` container beside the run's,
    or the run's own in a catalog without the layout), oldest first.
    """
    from tiled.queries import Key

    md = run.metadata
    stop = md.get("stop") or {}
    num_events = stop.get("num_events") or {}
    streams: dict[str, Any] = {}
    for name in run:
        node = run[name]
        stream_md = node.metadata or {}
        keys = {}
        for key, desc in (stream_md.get("data_keys") or {}).items():
            keys[key] = {"shape": list(desc.get("shape") or []),
                         "dtype": desc.get("dtype_numpy") or desc.get("dtype", "?"),
                         "external": "external" in desc}
            if "external" in desc:  # frames the catalog knows (none yet: not registered)
                keys[key]["frames"] = _length(node, key)
        events = num_events.get(name)
        if events is None and not stop:  # an incomplete run: what was written so far
            events = _length(node, "seq_num")
        streams[name] = {"events": events, "data_keys": keys}
    derived: list[dict[str, Any]] = []
    uid = (md.get("start") or {}).get("uid")
    root = derived_runs if derived_runs is not None else derived_beside(run)
    if uid and root is not None:
        for child in root.search(Key("raw_uid") == uid).values():
            d_start = child.metadata.get("start") or {}
            d_stop = child.metadata.get("stop") or {}
            derived.append({"uid": d_start.get("uid"), "reduction": d_start.get("reduction"),
                            "live": d_start.get("live"), "time": d_start.get("time", 0.0),
                            "exit_status": d_stop.get("exit_status", "(running)"),
                            "reason": d_stop.get("reason", "")})
    derived.sort(key=lambda d: float(d["time"] or 0.0))
    return {"start": dict(md.get("start") or {}), "stop": dict(stop), "streams": streams,
            "derived": derived, "recovery": md.get("recovery")}


def _length(node: Any, key: str) -> int:
    """Rows of ``node[key]`` (0 when the key was never written, as in a killed run)."""
    try:
        return int(node[key].shape[0]) if key in node else 0
    except Exception:  # a table Tiled cannot size yet
        return 0


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (``3``, ``true``, ``"x"``), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def check_frame_files(run: Any) -> list[Path]:
    """The external HDF5 frame files of ``run``, each opened and checked (``FrameReader``).

    Call it before reading a run's frames through Tiled: Tiled opens them in SWMR mode,
    where a truncated file hangs instead of failing, and a missing or corrupt one raises
    h5py's error without saying which run file it was.

    Raises
    ------
    HDF5ReadError
        Naming the first file that is missing, truncated or corrupt (and the run's key).
    """
    from .hdf5 import HDF5ReadError, open_frames

    files: list[Path] = []
    for name in run:
        stream = run[name]
        for key, desc in ((stream.metadata or {}).get("data_keys") or {}).items():
            if "external" not in desc or key not in stream:  # none registered (killed run)
                continue
            for source in stream[key].data_sources() or []:
                dataset = (source.parameters or {}).get("dataset", "/entry/data/data")
                for asset in source.assets:
                    path = Path(urlparse(asset.data_uri).path)
                    try:
                        open_frames(path, dataset).close()
                    except HDF5ReadError as exc:
                        raise HDF5ReadError(f"{exc} (data key {name}/{key})") from None
                    files.append(path)
    return files


__all__ = [
    "DEFAULT_DIR", "DERIVED", "ENV_VAR", "LAYOUT", "RAW", "ROOT_SPEC", "AllRuns", "Catalog",
    "CatalogError", "MalformedUidError", "RunNotFoundError", "RunSummary", "as_runs_catalog",
    "check_frame_files", "default_data_dir", "derived_beside", "find_run", "highest_scan_id",
    "parse_time", "parse_value", "run_details", "run_summaries", "runs_nodes", "search_runs",
    "summarize",
]
