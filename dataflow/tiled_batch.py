"""A catalog listing's data sources loaded in one database query, not one per node.

A listing asked for with its data sources (``include_data_sources``: what a reduction
needs to find the files behind a run's frames, in one request —
:func:`analysis.run_nodes.run_nodes`) makes Tiled's server load each listed node's data
sources with their structures and assets on its own: four SQL statements per node, the
stream containers and event tables included, 36 of the 42 statements of a tomography
run's listing and a third of its CPU time (the embedded catalog serves it in the
reducing process, on the path before the first task can start).

:func:`batch_data_sources` makes a listing page load them for every node of the page
at once, the first time a node of the page is asked for its data sources: the same
statement Tiled makes per node, for all the page's nodes (plus its three eager loads),
ordered by data source as Tiled's per-node statement returns them. The answer is
unchanged, only its number of queries is; a node asked for alone (its own metadata
request) takes Tiled's path as before. The listing's page is the set of nodes the
server already chose to return (access rules applied), so no other node's data source is
read.

A node with no data sources (a run, a stream: every container) is asked for them with
their assets too — by every request creating one, for its answer — and Tiled queries
the database though the node was loaded with its data sources a moment before (Tiled's
node rows load them with the row: ``lazy="selectin"``). Such a node answers ``[]`` from
what it was loaded with; a node whose data sources were not loaded, or that has some,
asks the database as before.
"""

from __future__ import annotations

from typing import Any

__all__ = ["batch_data_sources"]


class _Page:
    """The nodes of one listing page and, once asked, their data sources by node id."""

    __slots__ = ("ids", "loaded")

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.loaded: dict[int, list[Any]] | None = None


async def _load(context: Any, ids: list[int]) -> dict[int, list[Any]]:
    """The data sources (with structure and assets) of the nodes ``ids``, in one query."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload
    from tiled.catalog import orm
    from tiled.server.schemas import DataSource

    statement = (
        select(orm.DataSource)
        .where(orm.DataSource.node_id.in_(ids))
        .order_by(orm.DataSource.node_id, orm.DataSource.id)
        .options(selectinload(orm.DataSource.structure),
                 selectinload(orm.DataSource.asset_associations).selectinload(
                     orm.DataSourceAssetAssociation.asset)))
    async with context.session() as db:
        rows = (await db.execute(statement)).scalars().all()
    found: dict[int, list[Any]] = {}
    for row in rows:
        found.setdefault(row.node_id, []).append(DataSource.from_orm(row,
                                                                     include_assets=True))
    return found


def _loaded_without_data_sources(node: Any) -> bool:
    """Whether the catalog ``node`` (an ORM row) was loaded with its data sources and has
    none (module docstring)."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import NoInspectionAvailable

    try:
        state = inspect(node)
    except NoInspectionAvailable:  # (the root: not a row)
        return False
    return "data_sources" not in state.unloaded and not node.data_sources


def batch_data_sources() -> bool:
    """Make listings load their nodes' data sources in one query per page (module
    docstring); process-wide, idempotent. False (nothing changed, listings as slow and
    right as before) on a Tiled without the catalog adapter's ``items_page`` and
    ``data_sources(include_assets=...)`` this was written against."""
    try:
        from tiled.catalog.adapter import CatalogContainerAdapter, CatalogNodeAdapter
    except ImportError:  # pragma: no cover - Tiled without its SQL catalog
        return False
    if getattr(CatalogNodeAdapter, "_smeflow_batched", False):
        return True
    items_page = getattr(CatalogContainerAdapter, "items_page", None)
    data_sources = getattr(CatalogNodeAdapter, "data_sources", None)
    if items_page is None or data_sources is None or \
            "include_assets" not in data_sources.__code__.co_varnames:
        return False

    async def paged_items(self: Any, cursor: int | None = None,
                          limit: int | None = None) -> Any:
        items, next_cursor = await items_page(self, cursor, limit)
        nodes = [adapter for _, adapter in items if isinstance(adapter, CatalogNodeAdapter)]
        page = _Page([adapter.node.id for adapter in nodes])
        for adapter in nodes:
            adapter._smeflow_page = page
        return items, next_cursor

    async def paged_data_sources(self: Any, include_assets: bool = False) -> Any:
        if include_assets and _loaded_without_data_sources(self.node):
            return []
        page: _Page | None = getattr(self, "_smeflow_page", None)
        if not include_assets or page is None:
            return await data_sources(self, include_assets)
        if page.loaded is None:
            page.loaded = await _load(self.context, page.ids)
        return list(page.loaded.get(self.node.id, ()))

    paged_items.__doc__ = items_page.__doc__
    paged_data_sources.__doc__ = data_sources.__doc__
    CatalogContainerAdapter.items_page = paged_items
    CatalogNodeAdapter.data_sources = paged_data_sources
    CatalogNodeAdapter._smeflow_batched = True
    return True
