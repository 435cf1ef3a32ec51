"""Tiled's routes find a catalog node by its whole path in one query when no access
policy applies (``dataflow.tiled_lookup``): the same node, the same errors, as Tiled's
walk down the path one segment at a time, in a fraction of the SQL statements."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy
from fastapi import HTTPException

from dataflow.catalog import Catalog
from dataflow.tiled_lookup import direct_lookup, looked_up_directly, node_from_segments


def _lookups(catalog: Catalog) -> tuple[Any, Any, Any]:
    """The catalog's adapter, the application loop's portal and Tiled's walking
    ``get_entry`` beside the one the routes use now."""
    from tiled.server import router

    direct_lookup()
    app = catalog.tree.context.http_client._transport.transport.app
    portal = catalog.tree.context.http_client.portal
    assert getattr(router.get_entry, "_smeflow_direct", False)
    return app.state.root_tree, portal, router.get_entry


def _entry(portal: Any, get_entry: Any, root: Any, path: str,
           families: Any = None) -> tuple[str, Any]:
    """``("node", (id, family))`` or ``("error", (status, detail))`` for ``path``."""

    async def find() -> Any:
        return await get_entry(path, ["read:metadata"], None, None, set(), root, {}, {},
                               families, None)

    try:
        entry = portal.call(find)
    except HTTPException as exc:
        return "error", (exc.status_code, exc.detail)
    return "node", (getattr(getattr(entry, "node", None), "id", None),
                    entry.structure_family)


def test_the_same_node_or_error_as_the_walk_in_fewer_statements(
        run_with_frames: tuple[Any, Path], catalog: Catalog) -> None:
    from tiled.structures.core import StructureFamily

    root, portal, direct = _lookups(catalog)
    walking = direct.__wrapped__
    uid = run_with_frames[0].metadata["start"]["uid"]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = root.context.engine.sync_engine
    sqlalchemy.event.listen(engine, "before_cursor_execute", count)
    try:
        paths = [f"raw/{uid}", f"raw/{uid}/primary", f"raw/{uid}/primary/cam_image",
                 f"raw/{uid}/primary/internal", f"raw/{uid}/no-such-stream",
                 "raw/no-such-run/primary", "raw", ""]
        used: dict[str, list[int]] = {"direct": [], "walking": []}
        for path in paths:
            answers = {}
            for name, get_entry in (("direct", direct), ("walking", walking)):
                del statements[:]
                answers[name] = _entry(portal, get_entry, root, path)
                used[name].append(len(statements))
            assert answers["direct"] == answers["walking"], path
            assert answers["direct"][0] == ("node" if "no-such" not in path else "error")
        deepest = paths.index(f"raw/{uid}/primary/cam_image")
        assert used["direct"][deepest] * 3 <= used["walking"][deepest]
        # a route taking another structure family: Tiled's own 404 with its message
        only_tables = {StructureFamily.table}
        path = f"raw/{uid}/primary/cam_image"
        assert _entry(portal, direct, root, path, only_tables) == \
            _entry(portal, walking, root, path, only_tables)
        assert _entry(portal, direct, root, path, only_tables)[1][0] == 404
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", count)


def test_a_node_found_by_its_path_knows_its_path(
        run_with_frames: tuple[Any, Path], catalog: Catalog) -> None:
    """``path_segments()`` of a node looked up directly is Tiled's answer, without a
    statement; a node found by Tiled's walk asks the database as before."""
    from tiled.catalog.adapter import CatalogNodeAdapter

    from dataflow.tiled_lookup import _TILED_OWN

    root, portal, direct = _lookups(catalog)
    uid = run_with_frames[0].metadata["start"]["uid"]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async def find(get_entry: Any, path: str) -> Any:
        return await get_entry(path, ["read:metadata"], None, None, set(), root, {}, {},
                               None, None)

    async def segments(entry: Any) -> tuple[Any, Any]:
        return await entry.path_segments(), await _TILED_OWN["path_segments"](entry)

    engine = root.context.engine.sync_engine
    for path in ("raw", f"raw/{uid}", f"raw/{uid}/primary/cam_image"):
        entry = portal.call(find, direct, path)
        walked = portal.call(find, direct.__wrapped__, path)
        assert isinstance(entry, CatalogNodeAdapter)
        sqlalchemy.event.listen(engine, "before_cursor_execute", count)
        try:
            del statements[:]
            known, tiled_s = portal.call(segments, entry)
            assert len(statements) == 1  # (Tiled's own, asked for the comparison only)
            del statements[:]
            assert portal.call(segments, walked)[0] == tiled_s
            assert len(statements) == 2  # (the walked node asks the database)
        finally:
            sqlalchemy.event.remove(engine, "before_cursor_execute", count)
        assert known == list(tiled_s) == path.split("/")


def test_an_access_policy_or_a_search_keeps_the_walk() -> None:
    root = SimpleNamespace(lookup_adapter=None, conditions=[], access_filters=[])
    assert looked_up_directly("raw/x/primary", root, {}, None)
    assert not looked_up_directly("raw/x/primary", root, {}, object())  # a policy filters
    assert not looked_up_directly("raw/x/primary", root, {"state": 1}, None)
    assert looked_up_directly("raw", root, {}, None)  # (one segment: its path is known)
    assert not looked_up_directly("", root, {}, None)  # the root: Tiled's own
    searched = SimpleNamespace(lookup_adapter=None, conditions=["x"], access_filters=[])
    assert not looked_up_directly("raw/x/primary", searched, {}, None)
    assert not looked_up_directly("raw/x/primary", object(), {}, None)  # not a catalog


def test_installing_twice_wraps_once(catalog: Catalog) -> None:
    from tiled.server import dependencies, router

    direct_lookup()
    first = router.get_entry
    direct_lookup()
    assert router.get_entry is first is dependencies.get_entry
    with pytest.raises(AttributeError):
        first.__wrapped__.__wrapped__  # noqa: B018  (one layer over Tiled's own)


def test_the_path_query_is_tiled_s_with_aliases_made_once() -> None:
    """The same SQL and parameters as Tiled's own statement for paths of depth 0 to 5,
    and the second statement of a depth reuses the first one's aliases."""
    from tiled.catalog import adapter

    direct_lookup()
    assert adapter.node_from_segments is node_from_segments
    from dataflow.tiled_lookup import _TILED_OWN

    tiled_own = _TILED_OWN["node_from_segments"]
    assert tiled_own.__module__ == "tiled.catalog.adapter"
    for depth in range(6):
        path = [f"k{i}-{depth}" for i in range(depth)]
        ours, theirs = node_from_segments(path, root_id=7), tiled_own(path, root_id=7)
        assert str(ours) == str(theirs)
        assert ours.compile().params == theirs.compile().params
    def first_table(statement: Any) -> Any:
        (join,) = statement.get_final_froms()
        while hasattr(join, "left"):
            join = join.left
        return join

    assert first_table(node_from_segments(["a", "b"], root_id=1)) is \
        first_table(node_from_segments(["c", "d"], root_id=2))
    assert first_table(tiled_own(["a", "b"])) is not first_table(tiled_own(["c", "d"]))
