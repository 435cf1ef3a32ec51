"""A catalog node found by its whole path in one query when no access policy applies.

Every Tiled request names a node by its path (``/metadata/derived/<uid>/primary``), and
Tiled's ``get_entry`` walks the path one segment at a time — for each, a database
session with three statements (the node, its access tags, its data sources) — so that
an access policy can filter every level on the way down. A bluesky run's nodes are two
to four segments deep: a run's closing requests spent most of their SQL on walking, a
third of the catalog's statements for a reduction's derived run.

smeflow's catalogs have no access policy (the embedded catalog is one user's; the
catalog server admits by API key, with every key seeing the whole catalog). Then
nothing filters on the way and Tiled's own ``lookup_adapter`` can jump to the node
directly: one query joining the path's nodes (``node_from_segments``), the same node.
:func:`direct_lookup` makes the routers' ``get_entry`` do that where it gives the same
answer — no access policy, no session state, a catalog root without search conditions,
and a node the database holds (a path into a file's inside, a missing node, a link that
broke or a node of another structure family than the route takes go Tiled's own way,
so every answer and error stays Tiled's).

The query itself (Tiled's ``node_from_segments``: the path's nodes joined parent to
child) was built from new aliases of the node table every time, and SQLAlchemy works out
each new alias's columns on its first use in a join: about 1.2–1.8 ms of CPU per
request, more than the query. :func:`direct_lookup` also makes it use one set of aliases
per path depth, built once: the same SQL (0.05–0.12 ms to build).

A node found from the catalog's root by its path also knows its path: Tiled's
``path_segments()`` asks the database for the node's ancestors (one statement in a
session of its own), which every request creating a node below it makes to name the new
node's place — four of a derived run's requests. A node found here answers it with the
segments it was found by (the same keys: ancestors from the root down, the root's own
excluded); any other node asks the database as before. So a node one segment deep (the
container of runs a new run goes into) is looked up here too: the same statements as
Tiled's walk of one segment, and its path known.
"""

from __future__ import annotations

import functools
from typing import Any

__all__ = ["MAX_DIRECT_DEPTH", "direct_lookup", "looked_up_directly", "node_from_segments"]

_MODULES = ("tiled.server.dependencies", "tiled.server.router", "tiled.server.zarr",
            "tiled.server.webhook_router")
"""Where Tiled's routes find ``get_entry`` (each imported the name)."""


MAX_DIRECT_DEPTH = 16
"""The deepest path looked up in one query (a run's nodes are two to four segments deep).
A deeper one goes Tiled's walk, which stops at the first missing segment: a missing
node of depth n makes Tiled's ``lookup_adapter`` try every prefix of the path (n joins
of up to n tables), and the aliases made for each depth are kept — a request for a
5000-segment path took 48 s and kept 250 MB."""


def looked_up_directly(path: str, root_tree: Any, session_state: Any,
                       access_policy: Any) -> bool:
    """Whether a request for ``path`` may find its node in one query (module docstring)."""
    parts = [part for part in path.split("/") if part]
    return (access_policy is None and not session_state
            and hasattr(root_tree, "lookup_adapter")
            and not getattr(root_tree, "conditions", None)
            and not getattr(root_tree, "access_filters", None)
            and 0 < len(parts) <= MAX_DIRECT_DEPTH)


def direct_lookup() -> None:
    """Make Tiled's routes look a node up by its whole path when nothing filters the way
    (module docstring); idempotent, process-wide."""
    import importlib

    from tiled.server import dependencies

    walking = dependencies.get_entry
    if getattr(walking, "_smeflow_direct", False):
        return

    @functools.wraps(walking)
    async def get_entry(path: str, security_scopes: Any, principal: Any,
                        authn_access_tags: Any, authn_scopes: Any, root_tree: Any,
                        session_state: Any, metrics: Any, structure_families: Any = None,
                        access_policy: Any = None) -> Any:
        if looked_up_directly(path, root_tree, session_state, access_policy):
            entry = await _node_at(root_tree, path)
            if entry is not None and (structure_families is None
                                      or entry.structure_family in structure_families):
                return entry
        return await walking(path, security_scopes, principal, authn_access_tags,
                             authn_scopes, root_tree, session_state, metrics,
                             structure_families, access_policy)

    get_entry._smeflow_direct = True  # type: ignore[attr-defined]
    adapter_module = importlib.import_module("tiled.catalog.adapter")
    _TILED_OWN.setdefault("node_from_segments", adapter_module.node_from_segments)
    setattr(adapter_module, "node_from_segments", node_from_segments)  # noqa: B010
    node_adapter = adapter_module.CatalogNodeAdapter
    _TILED_OWN.setdefault("path_segments", node_adapter.path_segments)
    node_adapter.path_segments = _path_segments
    for name in _MODULES:
        module = importlib.import_module(name)
        if getattr(module, "get_entry", None) is walking:
            setattr(module, "get_entry", get_entry)  # noqa: B010  (a module of Tiled's)


async def _node_at(root_tree: Any, path: str) -> Any:
    """The catalog node at ``path`` in one query, or None where Tiled's walk must answer
    (not in the database, a broken link, the inside of a file)."""
    from tiled.catalog.adapter import CatalogNodeAdapter

    parts = [part for part in path.split("/") if part]
    try:
        entry = await root_tree.lookup_adapter(parts)
    except Exception:  # (NoEntry, BrokenLink, ...: Tiled's walk gives its own answer)
        return None
    node = getattr(entry, "node", None)
    if not isinstance(entry, CatalogNodeAdapter) or getattr(node, "key", None) != parts[-1]:
        return None  # (found inside a file: Tiled's walk reads it its own way)
    if getattr(getattr(root_tree, "node", None), "id", None) == 0:  # (the database's root)
        entry._smeflow_path = tuple(parts)
    return entry


async def _path_segments(self: Any) -> list[str]:
    """Tiled's ``CatalogNodeAdapter.path_segments``: the keys from the root down to this
    node, without a query for a node found by its path from the root (module
    docstring)."""
    known: tuple[str, ...] | None = getattr(self, "_smeflow_path", None)
    if known is not None:
        return list(known)
    segments: list[str] = await _TILED_OWN["path_segments"](self)
    return segments


_TILED_OWN: dict[str, Any] = {}
"""Tiled's functions as they were before :func:`direct_lookup` replaced them."""

_ALIASES: dict[int, list[Any]] = {}
"""The node table's aliases for a path of each depth (``node_from_segments``)."""


def node_from_segments(segments: list[str], root_id: int = 0) -> Any:
    """Tiled's statement selecting the node at path ``segments`` below node ``root_id``
    (``tiled.catalog.adapter.node_from_segments``: the same SQL), from aliases of the node
    table made once per depth (module docstring)."""
    from sqlalchemy import select
    from sqlalchemy.orm import aliased
    from tiled.catalog import orm

    nodes = _ALIASES.get(len(segments))
    if nodes is None:
        nodes = _ALIASES.setdefault(len(segments), [
            *(aliased(orm.Node) for _ in segments), orm.Node])
    statement = select(nodes[-1]).select_from(nodes[0]).where(nodes[0].id == root_id)
    for parent, child, segment in zip(nodes, nodes[1:], segments, strict=False):
        statement = statement.join(child, child.parent == parent.id).where(
            child.key == segment)
    return statement
