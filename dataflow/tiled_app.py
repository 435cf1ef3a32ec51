"""How smeflow builds Tiled's server application, embedded or over HTTP.

The embedded ``Catalog`` and ``smeflow catalog serve`` serve their Tiled catalog through
the same application, set up here once:

- **Clients**: ``fix_structure_clients_copy`` mends a Tiled client bug that turned every
  run in the process into a databroker v2 run once anything used ``.v2``.
- **Layout**: on a new catalog the application creates the containers ``raw`` and
  ``derived`` when it starts (``add_layout_task``; see ``dataflow.catalog``).

- **``run.documents()``**: databroker's v2 ``BlueskyRun.documents()`` (and v1
  ``Header.documents()``, ``db.get_documents``) asks the server for the run as
  ``application/json-seq``. Tiled has no such exporter by default (the request answers
  406); the one ``bluesky_tiled_plugins`` ships (``exporters.json_seq_exporter``) is
  registered for the ``BlueskyRun`` spec, as its docs ask a server's configuration to do.
- **Table reads as Tiled's routes expect**: an unknown column or partition of an event
  table is HTTP 400 (``dataflow.table_store.strict_table_reads``), not a column dropped,
  an empty table or a 500.
- **An array as HTML**: Tiled 0.2.20's ``text/html`` exporter of arrays called the PNG
  and CSV exporters without the media type, so every such request was an HTTP 500; the
  same exporter with the call fixed is registered in its place (``_array_html``).
- **Full-text search with any punctuation**: Tiled hands the text of a ``FullText`` query
  to the database's own query language unchanged — SQLite's FTS5 ``MATCH`` and
  PostgreSQL's ``to_tsquery`` — so a hyphen (``sample-3``), a quote, a colon or a
  parenthesis is query syntax there and the request fails with HTTP 500. smeflow
  registers a translation that keeps the text literal: each whitespace-separated piece
  is one FTS5 string (a phrase: ``sample-3`` matches the words "sample" then "3"), and
  PostgreSQL gets ``plainto_tsquery``, which reads the text as plain words. Every piece
  must match (AND), as before for plain words. This changes the translation for every
  Tiled catalog in the process (Tiled keeps one translation per query type), which is
  the point: no client of this process's catalogs can break it with punctuation.
- **Settings without per-request dependency analysis**: Tiled puts its server settings
  into the application as a FastAPI dependency override of ``get_settings``. With any
  override present, FastAPI re-analyses every dependency of a route on every request
  (about 160 signatures and parameter models for a metadata request) in case one is
  overridden: half the CPU time of a catalog request, which a run pays a few dozen
  times. Tiled's override is cached: its first call writes the application's settings
  into the process-wide ``get_settings()`` object and returns that object, and every
  later call returns it unchanged. ``apply_settings_once`` makes that first call when
  the application is built, so ``get_settings()`` is what the override would give, and
  hides the override from FastAPI (the last application built in a process sets the
  settings, as with Tiled's own override).
- **Response models built once**: Tiled builds each entry's response model as a
  parametrised pydantic generic (``Resource[NodeAttributes, <links>, <meta>]``) inside
  the request; pydantic keeps such models only while something refers to them, so every
  request built its model class anew (about a tenth of a metadata request's time).
  ``pin_resource_models`` builds them once and keeps them.
- **A listing's data sources in one query**: a listing with its data sources (a
  reduction's look-up of a run's frame files) loaded them node by node, four SQL
  statements each; :func:`dataflow.tiled_batch.batch_data_sources` loads them per page.
- **A node by its whole path**: without an access policy a request's node is found in
  one query, not one database session per path segment
  (:func:`dataflow.tiled_lookup.direct_lookup`).
- **One set of routes per process**: Tiled builds its API's routes (``get_router``, and
  the Zarr routers) for every application, and FastAPI analyses each route's signature
  and dependencies as it is added: about half a second, which every catalog opened in a
  process paid again (tests open hundreds). The routes depend only on the registries
  and the authenticators Tiled passes, and find their catalog through the request's
  application, so ``share_api_routers`` builds them once per set of registries and
  includes them in every application without authenticators (a server with
  authentication builds its API router itself, as before). FastAPI then analysed the
  routes once more per application, for the context of their inclusion, at its first
  requests (another 0.2 s of CPU): ``share_inclusions`` lets the applications share the
  inclusions too, which answer to no dependency overrides — what every such application
  has once ``apply_settings_once`` hid Tiled's.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import threading
import warnings
from typing import Any

from .server_guards import SERVER_SETTINGS
from .table_store import strict_table_reads
from .tiled_batch import batch_data_sources
from .tiled_lookup import direct_lookup

JSON_SEQ = "application/json-seq"
"""The media type of a run as a stream of bluesky documents (RFC 7464)."""


@functools.cache
def serialization_registry() -> Any:
    """Tiled's default exporters plus the bluesky run exporter (``JSON_SEQ``): one
    registry per process (the shared API router's key, ``share_api_routers``)."""
    from bluesky_tiled_plugins.exporters import json_seq_exporter
    from tiled.media_type_registration import default_serialization_registry

    async def run_documents(mimetype: str, adapter: Any, metadata: Any,
                            filter_for_access: Any) -> Any:
        """bluesky-tiled-plugins 2.0.12's exporter, without the stop document it makes up
        for a run that has none (``{"name": "stop", "doc": {}}``: a run still going, or
        whose process was killed): ``run.documents()`` gives what the RunEngine emitted,
        and a callback replaying it would take ``{}`` for the run's end."""
        records = json_seq_exporter(mimetype, adapter, metadata, filter_for_access)
        async for record in records:
            if not metadata.get("stop") and record == _MADE_UP_STOP:
                continue
            yield record

    registry = copy.deepcopy(default_serialization_registry)
    registry.register("BlueskyRun", JSON_SEQ, run_documents)
    registry.register("array", "text/html", functools.partial(_array_html, registry))
    return registry


def _array_html(registry: Any, mimetype: str, array: Any, metadata: Any) -> str:
    """An array as HTML: a PNG image, else a CSV table (tiled 0.2.20's ``serialize_html``
    called both without the media type, so every ``?format=text/html`` of an array was
    an HTTP 500); a shape neither takes is Tiled's ``UnsupportedShape`` (HTTP 406)."""
    import base64

    try:
        png = registry.dispatch("array", "image/png")("image/png", array, metadata)
    except Exception:  # (as Tiled's: any failure of the image falls back to the table)
        table = registry.dispatch("array", "text/csv")("text/csv", array, metadata)
        return f"<html><body>{bytes(table).decode()}</body></html>"
    return (f'<html><body><img src="data:image/png;base64,'
            f'{base64.b64encode(bytes(png)).decode()}"/></body></html>')


_MADE_UP_STOP = "\x1e" + json.dumps({"name": "stop", "doc": {}}) + "\n"
"""The record bluesky-tiled-plugins' exporter writes for a run without a stop document."""


def fts5_literal(text: str) -> str:
    """``text`` as an SQLite FTS5 query that matches it literally: each whitespace-separated
    piece a double-quoted string (quotes doubled), all of them required.

    Text without any piece gives ``'""'``, which matches nothing.
    """
    pieces = text.split()
    if not pieces:
        return '""'
    return " ".join('"' + piece.replace('"', '""') + '"' for piece in pieces)


def _full_text(query: Any, tree: Any) -> Any:
    """Tiled's ``FullText`` translation with the text kept literal (module docstring)."""
    from sqlalchemy import cast, func
    from sqlalchemy.dialects.postgresql import JSONB, REGCONFIG
    from tiled.catalog import orm
    from tiled.query_registration import UnsupportedQueryType

    dialect = tree.context.engine.url.get_dialect().name
    if dialect == "sqlite":
        condition = orm.metadata_fts5.c.metadata.match(fts5_literal(query.text))
    elif dialect == "postgresql":
        tsvector = func.jsonb_to_tsvector(cast("simple", REGCONFIG), orm.Node.metadata_,
                                          cast(["string"], JSONB))
        condition = tsvector.op("@@")(func.plainto_tsquery("simple", query.text))
    else:
        raise UnsupportedQueryType("full_text")
    return tree.new_variation(conditions=[*tree.conditions, condition])


def install_queries() -> None:
    """Register smeflow's ``FullText`` translation with Tiled's catalog (idempotent)."""
    from tiled.catalog.adapter import CatalogNodeAdapter
    from tiled.queries import FullText

    CatalogNodeAdapter.register_query(FullText, _full_text)


def add_layout_task(adapter: Any) -> None:
    """Make the server create the catalog's containers of runs (``dataflow.catalog.LAYOUT``)
    when it starts on an empty catalog.

    A catalog that already has other entries at its top (runs written before the layout)
    is left as it is. Two processes starting on one new catalog may race: the loser finds
    the container made (Tiled's ``Collision``) and goes on.
    """
    from tiled.catalog.adapter import Collision
    from tiled.structures.core import Spec, StructureFamily

    from .catalog import LAYOUT, ROOT_SPEC

    async def create_layout() -> None:
        keys = list(await adapter.keys_range(offset=0, limit=None))
        if any(key not in LAYOUT for key in keys):
            return
        for key in LAYOUT:
            if key in keys:
                continue
            with contextlib.suppress(Collision):  # another process made it meanwhile
                await adapter.create_node(StructureFamily.container,
                                          metadata={"description": _DESCRIPTIONS[key]},
                                          key=key, specs=[Spec(**ROOT_SPEC)])

    adapter.startup_tasks.append(create_layout)


_DESCRIPTIONS = {"raw": "bluesky runs as the instrument recorded them",
                 "derived": "runs derived from raw runs (reductions), linked by raw_uid"}


def fix_structure_clients_copy() -> None:
    """Make a copy of Tiled's ``OneShotCachedMap`` a copy (idempotent; process-wide).

    ``copy.copy`` of the map (tiled 0.2.x) shares its dictionary with the original, so
    ``catalog.v2`` in ``bluesky_tiled_plugins`` — which copies the client's structure
    clients and sets ``BlueskyRun`` to the v2 class in the copy — changes the *original*
    too, and with it the process-wide defaults: after anything touched ``.v2`` (databroker's
    v1 ``Header`` does), every run of every client in the process is a v2 run, whose
    ``run["primary"]["det_image"]`` raises ``KeyError``. With a real copy ``.v2`` gives v2
    runs and leaves every other client as it was.
    """
    from tiled.utils import OneShotCachedMap

    if getattr(OneShotCachedMap, "_smeflow_copy", False):
        return

    def __copy__(self: Any) -> Any:
        twin = OneShotCachedMap.__new__(type(self))
        twin.__setstate__(dict(self.__getstate__()))
        return twin

    OneShotCachedMap.__copy__ = __copy__
    OneShotCachedMap._smeflow_copy = True


class _SettingsOverride(dict[Any, Any]):
    """An application's dependency overrides, false for FastAPI while Tiled's settings
    override is the only one (module docstring); any other override makes FastAPI apply
    them all, per dependency, as before."""

    def __init__(self, overrides: Any = (), settings: Any = None) -> None:
        super().__init__(overrides)
        self.settings = settings
        """Tiled's ``get_settings`` (FastAPI asks for the truth value per dependency)."""

    def __bool__(self) -> bool:
        return any(key is not self.settings for key in self)


def apply_settings_once(app: Any) -> Any:
    """Apply Tiled's settings override of ``app`` now, and let FastAPI resolve the
    routes' dependencies as analysed once (module docstring); returns ``app``."""
    from tiled.server.settings import get_settings

    override = app.dependency_overrides.get(get_settings)
    if override is None or override() is not get_settings():
        return app  # (a Tiled whose override gives other settings keeps it, slow and right)
    app.dependency_overrides = _SettingsOverride(app.dependency_overrides, get_settings)
    return app


_PINNED_MODELS: list[Any] = []
"""The parametrised Tiled resource models kept alive (``pin_resource_models``)."""


def pin_resource_models() -> None:
    """Build the resource models Tiled parametrises per request once and keep them, so
    pydantic's cache of parametrised generics (weakly held) finds them (idempotent)."""
    from tiled.server import schemas

    if _PINNED_MODELS:
        return
    links = {schemas.SelfLinkOnly, *schemas.resource_links_type_by_structure_family.values()}
    _PINNED_MODELS.append(schemas.Resource[schemas.NodeAttributes, schemas.ContainerLinks,
                                           schemas.ContainerMeta])
    _PINNED_MODELS.extend(schemas.Resource[schemas.NodeAttributes, link, schemas.EmptyDict]
                          for link in sorted(links, key=lambda cls: cls.__name__))


_ROUTERS: dict[tuple[int, ...], tuple[Any, tuple[Any, ...]]] = {}
"""The API routers built (``share_api_routers``), by their registries' ids, with the
registries (kept alive, so an id is never reused while its router is here)."""
_SHARED: dict[int, Any] = {}
"""Every router applications share, by id (kept alive)."""
_INCLUSIONS: dict[tuple[int, str], Any] = {}
"""The inclusions of shared routers that applications share (``share_inclusions``), by
the router's id and the path prefix."""
_ROUTERS_LOCK = threading.Lock()


def _shared(router: Any) -> Any:
    _SHARED[id(router)] = router
    return router


def share_api_routers() -> None:
    """Make Tiled's applications without authenticators share their API and Zarr
    routers, built once per set of registries (module docstring; idempotent,
    process-wide)."""
    import tiled.server.app as tiled_app

    if getattr(tiled_app, "_smeflow_shared_routers", False):
        return
    build = tiled_app.get_router

    def get_router(*registries: Any, **named: Any) -> Any:
        if named or len(registries) != 5 or registries[-1]:  # (a call of another Tiled,
            return build(*registries, **named)  # or routes closing over authenticators)
        kinds = registries[:-1]
        key = tuple(map(id, kinds))
        with _ROUTERS_LOCK:
            if key not in _ROUTERS:
                _ROUTERS[key] = (_shared(build(*registries)), kinds)
            return _ROUTERS[key][0]

    def once(build: Any) -> Any:
        return functools.cache(lambda: _shared(build()))

    tiled_app.get_router = get_router
    tiled_app.get_zarr_router_v2 = once(tiled_app.get_zarr_router_v2)
    tiled_app.get_zarr_router_v3 = once(tiled_app.get_zarr_router_v3)
    tiled_app._smeflow_shared_routers = True


class _NoOverrides:
    """The dependency overrides a shared inclusion answers to: none."""

    dependency_overrides: dict[Any, Any] = {}


def share_inclusions(app: Any) -> Any:
    """Let ``app`` include the shared routers (``share_api_routers``) through inclusions
    shared with every other such application, so FastAPI builds each included route's
    context (its signature and dependencies analysed again, at the first request) once
    per process instead of once per application; returns ``app``.

    FastAPI's inclusion answers to its application's dependency overrides; a shared one
    to none, which is what an application has once ``apply_settings_once`` hid Tiled's
    settings override. An application with any other override keeps its own inclusions,
    as does one under a FastAPI whose inclusions are not what this expects."""
    import dataclasses

    from fastapi import routing

    included = getattr(routing, "_IncludedRouter", None)
    if included is None or app.dependency_overrides \
            or not hasattr(app.router, "_mark_routes_changed"):
        return app
    routes = app.router.routes
    with _ROUTERS_LOCK:
        for i, route in enumerate(routes):
            router = getattr(route, "original_router", None)
            if type(route) is not included or id(router) not in _SHARED:
                continue
            context = route.include_context
            key = (id(router), context.prefix)
            if key not in _INCLUSIONS:
                _INCLUSIONS[key] = included(
                    original_router=router, include_context=dataclasses.replace(
                        context, dependency_overrides_provider=_NoOverrides()))
            routes[i] = _INCLUSIONS[key]
    app.router._mark_routes_changed()
    return app


def build_tiled_app(adapter: Any, authentication: Any = None, *, quiet: bool = False,
                    metrics: bool = True) -> Any:
    """The Tiled application serving ``adapter`` with smeflow's exporters and queries.

    ``quiet`` silences the version banner the application logs when it starts (an
    embedded catalog would print it on every open). ``metrics=False`` leaves out Tiled's
    Prometheus metrics (its ``/api/v1/metrics`` route and the middleware that counts
    every request, about 1 ms of CPU each): the embedded catalog's, which only its own
    process can ask, and nothing scrapes; the catalog server keeps them."""
    import logging

    from tiled.config import MetricsConfig
    from tiled.server.app import build_app

    if quiet:  # (after the import: tiled's app module sets its logger's level on import)
        logging.getLogger("tiled.server.app").setLevel(logging.WARNING)
    install_queries()
    strict_table_reads()
    pin_resource_models()
    batch_data_sources()
    direct_lookup()
    share_api_routers()
    add_layout_task(adapter)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*")  # starlette's notice
        settings = SERVER_SETTINGS if metrics else {  # (Tiled's default: $TILED_METRICS_*)
            **SERVER_SETTINGS, "metrics": MetricsConfig(prometheus=False)}
        app = build_app(adapter, authentication, server_settings=settings,
                        serialization_registry=serialization_registry())
    return share_inclusions(apply_settings_once(app))


__all__ = ["JSON_SEQ", "add_layout_task", "apply_settings_once", "build_tiled_app",
           "fix_structure_clients_copy", "fts5_literal", "install_queries",
           "pin_resource_models", "serialization_registry", "share_api_routers",
           "share_inclusions"]
