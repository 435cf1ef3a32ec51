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

import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from . import fly_streams, run_files
from .asset_gate import AssetGate
from .assets import AssetPolicy, guard_adapters
from .catalog_db import (
    check_table_store,
    damage_named,
    damaged_record,
    database_ready,
    folder_lock,
    wait_when_busy,
    write_ahead_log,
)
from .errors import CatalogError
from .file_uri import check_uri_path
from .hdf5 import FrameWriter
from .journal import JOURNAL_DIR, JournalingWriter
from .relocate import settle_root
from .run_keys import RunMetadataKeys
from .run_queries import (  # re-exported: this module's public names since before the split
    DERIVED,
    LAYOUT,
    RAW,
    MalformedUidError,
    RunNotFoundError,
    RunSummary,
    check_frame_files,
    derived_beside,
    find_run,
    highest_scan_id,
    is_full_uid,
    is_uid_like,
    parse_time,
    parse_value,
    run_by_uid_prefix,
    run_details,
    run_summaries,
    search_runs,
    summarize,
)
from .scan_id import ScanIdCounter
from .server_guards import ConfinedAssets, answer_refusals

log = logging.getLogger(__name__)

ENV_VAR = "SMEFLOW_DATA"
DEFAULT_DIR = "smeflow-data"
ROOT_SPEC = {"name": "CatalogOfBlueskyRuns", "version": "3.0"}
"""The spec of a container of bluesky runs (``raw``, ``derived``; the top of an old catalog)."""

def default_data_dir() -> Path:
    """``$SMEFLOW_DATA`` when set, else ``./smeflow-data``."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def _open_client(root: Path, readable: Sequence[Path], quiet: bool) -> Any:
    """The Tiled catalog of ``root`` as an in-process client (root spec: runs catalog)."""
    from tiled.catalog import from_uri
    from tiled.client import from_context
    from tiled.client.context import Context

    from .inprocess import (
        buffered_http_middleware,
        one_trip_statements,
        release_when_unused,
        use_in_process_transport,
    )
    from .tiled_app import build_tiled_app
    from .tiled_index import numpy_structure_clients

    db = root / "catalog.db"
    ready = database_ready(db)
    check_table_store(root / "tables.db")
    with damage_named(db):
        if ready:  # moved or copied since it was written: its assets follow it
            with folder_lock(root):
                settle_root(root, f"sqlite:///{db}")
                write_ahead_log(db)
        adapter = from_uri(
            f"sqlite:///{root / 'catalog.db'}",
            writable_storage=[str(root / "storage"), f"sqlite:///{root / 'tables.db'}"],
            readable_storage=[str(p) for p in readable],
            init_if_not_exists=not ready)
    one_trip_statements(adapter)  # (before its first connection; see dataflow.inprocess)
    wait_when_busy(adapter)
    guard_adapters(adapter)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette's notice
        app = build_tiled_app(adapter, quiet=quiet, metrics=False)  # (no one scrapes it)
        app.add_middleware(ConfinedAssets, policy=AssetPolicy.of_adapter(adapter))
        app.add_middleware(RunMetadataKeys)
        answer_refusals(app)
        buffered_http_middleware(app)  # (answers are buffered in-process: dataflow.inprocess)
        context = Context.from_app(app)
    use_in_process_transport(context, adapter, errors=partial(damaged_record, db))
    release_when_unused(context)
    return from_context(context, structure_clients=numpy_structure_clients())


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
        from tiled.queries import KeysFilter

        for node in self.nodes:
            # asked first whether the node has it: indexing a node without it raises, and
            # Tiled's client keeps that failed request's exception in a reference cycle
            # (a retry future its traceback refers to) holding every caller's frame with
            # its locals — a live reducer's whole reconstruction stayed resident until
            # Python's cyclic collector happened to run
            if len(node.search(KeysFilter([uid]))):
                return node[uid]
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
        from .event_pages import tiled_writer

        return tiled_writer(self._with_data_sources(self.client), batch_size)

    def derived_writer(self, batch_size: int | None = None) -> Any:
        """A ``TiledWriter`` callback writing *derived* runs (reductions) into
        ``derived``; ``batch_size`` as for ``writer``. It is a
        ``dataflow.tiled_flush.FlushableTiledWriter``: a derived run writes its rows and
        volume registration (``flush()``) while its output file's digest is computed,
        before the stop document that carries the digest."""
        from .event_pages import tiled_writer

        return tiled_writer(self._with_data_sources(self.derived), batch_size,
                             flushable=True)

    def _with_data_sources(self, node: Any) -> Any:
        """``node`` as a ``TiledWriter`` works on it (its data sources included), asked of
        the catalog once: ``TiledWriter`` fetches that variation itself otherwise, one
        catalog request per writer, and a reduction makes its writer on the path before
        its first task (``analysis.distributed``)."""
        cached: dict[int, tuple[Any, Any]] = self.__dict__.setdefault("_writing_nodes", {})
        held = cached.get(id(node))
        if held is None or held[0] is not node:
            held = cached[id(node)] = (node, node.include_data_sources())
        return held[1]

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
            if self.derived is self.client or not is_uid_like(ref):
                raise
            try:  # a derived run's uid (reductions have no scan numbers)
                return run_by_uid_prefix(self.derived, str(ref).strip().lower(), self.where)
            except RunNotFoundError:
                raise missing from None

    def derived_runs(self, raw: str | int) -> Any:
        """The runs derived from the raw run ``raw`` (reductions: start ``raw_uid`` equal
        to its uid), as a Tiled node; see ``analysis.reduce``. ``raw`` is what
        :meth:`run` takes: a uid, a uid prefix or a scan number; a full uid is searched
        as given (its raw run need not be here), anything else is looked up first and
        raises as :meth:`run` does when no raw run matches."""
        from tiled.queries import Key

        uid = raw.strip().lower() if isinstance(raw, str) else ""
        if not is_full_uid(uid):
            uid = str(find_run(self.client, raw, self.where).metadata["start"]["uid"])
        return self.derived.search(Key("raw_uid") == uid)

    @property
    def every_run(self) -> AllRuns:
        """Raw and derived runs by full uid (``every_run[uid]``)."""
        return AllRuns(self.client, self.derived)

    # -- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the client's context (the in-process server or the HTTP connections)."""
        client, self.client, self.derived = self.client, None, None
        self.__dict__.pop("_writing_nodes", None)
        if "tree" in self.__dict__:  # (the top node holds the context too)
            self.tree = None
        if client is not None:
            from .inprocess import release_app_client

            client.context.close()
            release_app_client(client.context)

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
        readable = [self.raw_dir, *(Path(p).resolve() for p in readable_storage)]
        check_uri_path(self.root, "catalog folder", last=False)  # before anything is made
        for path in readable[1:]:
            check_uri_path(path, "readable storage folder")
        for folder in (self.root, self.raw_dir, self.root / "storage"):
            folder.mkdir(parents=True, exist_ok=True)
        self.assets = AssetPolicy([*readable, self.root / "storage"])
        """The folders the catalog reads files from (``dataflow.assets``)."""
        self.tree: Any = _open_client(self.root, readable, quiet)
        """The top of the Tiled catalog (``raw`` and ``derived``)."""
        self.client, self.derived = runs_nodes(self.tree, str(self.root))
        self.scan_ids = ScanIdCounter(self.root / "scan_id", initial=self.max_scan_id)

    # -- writing -----------------------------------------------------------------------

    def subscribe(self, RE: Any, batch_size: int | None = None) -> int:
        """Write ``RE``'s runs here and number them from the persisted scan counter.

        Every run is journaled (``dataflow.journal``) until its stop document is written,
        so a run whose process is killed can be recovered whole (``dataflow.repair``).
        A file announced outside the folders the catalog reads fails the run at its
        ``resource``/``stream_resource`` document, naming it (``dataflow.asset_gate``).
        The frame files of each run are closed before its stop document
        (``dataflow.run_files``): a file a full disk cut short fails the run. A flyer's
        stream is declared before its kickoff (``dataflow.fly_streams``), so ``bp.fly``
        records its frames with ``stream_resource``/``stream_datum``.

        Returns the subscription token (for ``RE.unsubscribe``).
        """
        RE.scan_id_source = self.scan_ids.scan_id_source
        run_files.install(RE)  # (a run's files closed before its stop: run_files)
        fly_streams.install(RE)  # (bp.fly's flyers announce stream_*: fly_streams)
        journaled = JournalingWriter(self.writer(batch_size), self.root / JOURNAL_DIR)
        gated = AssetGate(journaled, self.assets, str(self.root), str(self.raw_dir))
        token: int = RE.subscribe(gated)
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


__all__ = [
    "DEFAULT_DIR", "DERIVED", "ENV_VAR", "LAYOUT", "RAW", "ROOT_SPEC", "AllRuns", "Catalog",
    "CatalogError", "MalformedUidError", "RunNotFoundError", "RunSummary", "as_runs_catalog",
    "check_frame_files", "default_data_dir", "derived_beside", "find_run", "highest_scan_id",
    "parse_time", "parse_value", "run_details", "run_summaries", "runs_nodes", "search_runs",
    "summarize",
]
