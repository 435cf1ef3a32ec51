"""A listing with its data sources costs the catalog one query per page, not four per
node, and answers what Tiled answers for each node asked alone."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from event_model import compose_run
from sqlalchemy import event
from sqlalchemy.engine import Engine
from tiled.queries import SpecsQuery

from analysis.run_nodes import run_nodes
from dataflow.catalog import Catalog
from dataflow.hdf5 import FrameWriter
from dataflow.tiled_batch import batch_data_sources


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """The SQL statements any catalog database runs while the test does."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def _run(catalog: Catalog, streams: tuple[str, ...], files: int = 1) -> str:
    """A run whose ``streams`` each hold 2 external frames (in ``files`` HDF5 files, one
    data source with that many assets) and a reading ``x``; its uid."""
    writer = catalog.writer()
    bundle = compose_run(metadata={"plan_name": "batch_test"})
    uid: str = bundle.start_doc["uid"]
    writer("start", bundle.start_doc)
    for stream in streams:
        per_file = [FrameWriter(catalog.raw_dir, f"{stream}_{i}_{uid[:8]}.h5", (3, 4),
                                data_key="cam_image") for i in range(files)]
        desc = bundle.compose_descriptor(name=stream, data_keys={
            "cam_image": per_file[0].describe_key(),
            "x": {"source": "test", "dtype": "number", "shape": []}})
        writer("descriptor", desc.descriptor_doc)
        seq = 1
        for i, frames in enumerate(per_file):
            frames.append_many(np.full((2, 3, 4), i, dtype=np.uint16))
            for name, doc in frames.asset_docs():
                doc = ({**doc, "run_start": uid} if name == "stream_resource" else
                       {**doc, "descriptor": desc.descriptor_doc["uid"],
                        "seq_nums": {"start": seq, "stop": seq + 2}})
                writer(name, doc)
            frames.close()
            for _ in range(2):
                writer("event", desc.compose_event(data={"x": float(seq)},
                                                   timestamps={"x": time.time()},
                                                   seq_num=seq))
                seq += 1
    writer("stop", bundle.compose_stop())
    return uid


def _deep(run: Any) -> dict[tuple[str, ...], Any]:
    base = getattr(run, "base", run)
    return dict(base.new_variation(include_data_sources=True).search_deep(
        SpecsQuery([]), max_depth=2).items())


def _answer(node: Any) -> list[dict[str, Any]]:
    return [dataclasses.asdict(source) for source in node.data_sources() or []]


def test_installed_once_by_the_catalog() -> None:
    assert batch_data_sources() is True  # (the catalog's application installed it)
    assert batch_data_sources() is True


def test_a_listing_queries_per_page_not_per_node(tmp_path: Path,
                                                 statements: list[str]) -> None:
    """Listing a run of three streams (nine nodes: streams, event tables, frame arrays)
    with their data sources reads data sources, asset links and assets in as many
    statements as listing a run of one stream (three nodes); Tiled's per-node loading
    took four more per node (42 statements for the nine, now 16 — 19 before the run's
    node was found by its whole path in one query, dataflow.tiled_lookup: what grows with
    the streams is Tiled's count of each stream's children)."""
    tables = ("data_sources", "data_source_asset_association", "assets", "structures")
    reads: list[dict[str, int]] = []
    totals: list[int] = []
    with Catalog(tmp_path / "c") as catalog:
        for streams in (("primary",), ("primary", "dark", "flat")):
            run = catalog.run(_run(catalog, streams))
            statements.clear()
            assert len(_deep(run)) == 3 * len(streams)
            reads.append({t: sum(f" FROM {t} " in f"{' '.join(s.split())} "
                                 for s in statements) for t in tables})
            totals.append(len(statements))
    assert reads[0] == reads[1], reads
    assert reads[1]["assets"] == 1
    assert totals == [14, 16], totals


def test_a_listing_answers_as_each_node_asked_alone(tmp_path: Path) -> None:
    """Every node of a listing (deep, and one level) has the data sources — structure,
    parameters, assets in order — that its own metadata request answers (Tiled's
    per-node path), the stream containers none."""
    with Catalog(tmp_path / "c") as catalog:
        run = catalog.run(_run(catalog, ("primary", "dark"), files=3))
        listed = _deep(run)
        assert len(listed) == 6
        alone_of: dict[tuple[str, ...], Any] = {}
        base = getattr(run, "base", run).new_variation(include_data_sources=True)
        for path in listed:
            node = base
            for key in path:  # (each a request for one node, with its data sources)
                node = getattr(node, "base", node)[key]
            alone_of[path] = _answer(node)
        assert {path: _answer(node) for path, node in listed.items()} == alone_of
        arrays = [path for path, node in listed.items() if node.structure_family == "array"]
        assert sorted(arrays) == [("dark", "cam_image"), ("primary", "cam_image")]
        assets = alone_of[("dark", "cam_image")][0]["assets"]
        assert [Path(a["data_uri"]).name for a in assets] == \
            [f"dark_{i}_{run.metadata['start']['uid'][:8]}.h5" for i in range(3)]
        assert alone_of[("dark",)] == [] and alone_of[("primary", "internal")] != []
        shallow = getattr(run["dark"], "base", run["dark"]).new_variation(
            include_data_sources=True)
        assert {(("dark", key)): _answer(node) for key, node in shallow.items()} == \
            {path: answer for path, answer in alone_of.items() if path[:1] == ("dark",)
             and len(path) == 2}


def test_reductions_find_their_files_through_it(tmp_path: Path) -> None:
    """The reductions' run listing (one request) names each stream's frame files."""
    with Catalog(tmp_path / "c") as catalog:
        uid = _run(catalog, ("primary", "dark", "flat"), files=2)
        nodes = run_nodes(catalog.run(uid))
        for stream in ("primary", "dark", "flat"):
            (source,) = nodes.arrays[(stream, "cam_image")].data_sources()
            assert [Path(str(a.data_uri)).name for a in source.assets] == \
                [f"{stream}_{i}_{uid[:8]}.h5" for i in range(2)]


def test_a_new_container_answers_its_empty_data_sources_without_a_query(
        tmp_path: Path, statements: list[str]) -> None:
    """Creating a container (a run, a stream) answers its data sources, none, from the
    node Tiled loaded; a node whose data sources were not loaded still asks."""
    from sqlalchemy import select
    from sqlalchemy.orm import lazyload
    from tiled.catalog import orm

    from dataflow.tiled_batch import _loaded_without_data_sources

    per_node = "FROM data_sources WHERE data_sources.node_id = "
    with Catalog(tmp_path / "c") as catalog:
        statements.clear()
        run = catalog.derived.create_container(key="r1", metadata={"start": {}})
        stream = run.create_container(key="primary", metadata={})
        created = [" ".join(s.split()) for s in statements]
        assert stream.data_sources() == [] and run.data_sources() == []
        assert not [s for s in created if per_node in s], created
        assert sum(s.startswith("INSERT INTO nodes") for s in created) == 2
        adapter = catalog.tree.context.http_client._transport.transport.app.state.root_tree

        async def unloaded() -> Any:
            async with adapter.context.session() as db:
                return (await db.execute(select(orm.Node).where(orm.Node.key == "r1")
                                         .options(lazyload(orm.Node.data_sources)))).scalar()

        node = catalog.tree.context.http_client.portal.call(unloaded)
        assert not _loaded_without_data_sources(node)
        assert not _loaded_without_data_sources(adapter.node)  # (the root: not a row)
