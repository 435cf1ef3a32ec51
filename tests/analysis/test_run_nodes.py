"""``analysis.run_nodes``: a run's streams with their metadata, and the arrays inside them
with their data sources, in one catalog request; both run layouts; servers without deep
search."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

from analysis.reduce import run_streams
from analysis.run_nodes import RunNodes, run_nodes
from dataflow.catalog import Catalog
from dataflow.synthetic_run import write_frames_run


def _count_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The catalog requests sent from now on (path and query)."""
    sent: list[str] = []
    send = httpx.Client.send

    def counting(self: Any, request: httpx.Request, **kwargs: Any) -> Any:
        sent.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        return send(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", counting)
    return sent


def _run_with_frames(catalog: Catalog, **md: Any) -> str:
    """A tomography run: ``primary``, ``dark`` and ``flat`` streams with external frames
    and a reading ``x`` (0, 1, 2, …); start ``angles`` unless ``md`` says otherwise."""
    stacks = {stream: np.arange(frames * 20, dtype=np.uint16).reshape(frames, 4, 5)
              for stream, frames in (("primary", 3), ("dark", 2), ("flat", 2))}
    return write_frames_run(catalog, {"plan_name": "tomo_scan", **(md or {
        "angles": [0.0, 60.0, 120.0]})}, stacks, source="test", data_key="cam_image",
        reading="x", reading_dtype="number")


def test_streams_and_frame_arrays_in_one_request(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with Catalog(tmp_path / "c") as catalog:
        uid = _run_with_frames(catalog)
        run = catalog.run(uid)
        sent = _count_requests(monkeypatch)
        nodes = run_nodes(run)
        assert len(sent) == 1 and "search-deep" in sent[0], sent
        sources = {key: node.data_sources() for key, node in nodes.arrays.items()}
        assert len(sent) == 1, sent  # the data sources came with the listing
        monkeypatch.undo()
        assert sorted(nodes.streams) == ["dark", "flat", "primary"] and "dark" in nodes
        assert sorted(nodes.arrays) == [("dark", "cam_image"), ("flat", "cam_image"),
                                        ("primary", "cam_image")]
        assert nodes.streams["primary"].metadata["data_keys"] == \
            run["primary"].metadata["data_keys"]
        assert [a.data_uri for a in sources[("dark", "cam_image")][0].assets] == \
            [a.data_uri for a in run["dark"]["cam_image"].data_sources()[0].assets]
        assert nodes.arrays[("primary", "cam_image")][1].tolist() == \
            (np.arange(20, 40).reshape(4, 5)).tolist()


def test_reduction_requests_of_a_dask_tomography(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """What the Dask reduction asks the catalog before its tasks can go out: the run and
    its listing (stream metadata, the frame files), nothing per stream."""
    from analysis.distributed import _stream_source
    from analysis.reduce import listed_run

    with Catalog(tmp_path / "c") as catalog:
        uid = _run_with_frames(catalog)
        sent = _count_requests(monkeypatch)
        run, start, reduction, listing = listed_run(catalog, uid)
        sources = [_stream_source(run, s, start, {"frames_from": "files"}, None, listing)
                   for s in ("dark", "flat", "primary")]
        assert len(sent) == 2, sent
        assert reduction == "tomo_fbp"
        assert [s.shape for s in sources] == [(2, 4, 5), (2, 4, 5), (3, 4, 5)]


def test_angles_read_from_the_listed_stream(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose angles are a rotation stage's readings: the stream node comes from the
    listing, only the readings are asked for."""
    from analysis.reduce import listed_run, tomo_angles_of

    with Catalog(tmp_path / "c") as catalog:
        uid = _run_with_frames(catalog, rotation_axis="x")
        run, start, reduction, listing = listed_run(catalog, uid)
        assert reduction == "tomo_fbp"
        alone = tomo_angles_of(run, start, "primary", 3)
        sent = _count_requests(monkeypatch)
        angles, source = tomo_angles_of(run, start, "primary", 3, nodes=listing)
        monkeypatch.undo()
        assert source == "events" and angles.tolist() == [0.0, 1.0, 2.0]
        assert angles.tolist() == alone[0].tolist() and alone[1] == "events"
        assert not any(s.endswith(("/primary?", "/primary")) for s in sent), sent


def test_streams_and_metadata_in_one_request(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with Catalog(tmp_path / "c") as catalog:
        RE = RunEngine({})
        catalog.subscribe(RE)
        (uid,) = RE(count([det], 2), md={"sample": "x"})  # type: ignore[misc]
        run = catalog.run(uid)
        sent: list[str] = []
        send = httpx.Client.send

        def counting(self: Any, request: httpx.Request, **kwargs: Any) -> Any:
            sent.append(f"{request.method} {request.url.path}")
            return send(self, request, **kwargs)

        monkeypatch.setattr(httpx.Client, "send", counting)
        streams = run_streams(run)
        assert len(sent) == 1, sent
        monkeypatch.undo()
        assert sorted(streams) == sorted(run)
        assert streams["primary"].metadata["data_keys"] == run["primary"].metadata["data_keys"]
        assert streams["primary"]["det"].read().shape == (2,)


class _Node:
    """A stand-in for a Tiled container: children by key and specs."""

    def __init__(self, children: dict[str, Any] | None = None, specs: tuple[str, ...] = ()):
        self.children = children or {}
        self.specs = [SimpleNamespace(name=s) for s in specs]

    def items(self) -> Any:
        return self.children.items()


def test_older_layout_lists_the_streams_namespace() -> None:
    """(stand-ins without deep search: ``run_nodes`` falls back to ``run_streams``)"""
    stream = ("BlueskyEventStream",)
    old = _Node({"streams": _Node({"primary": _Node(specs=stream),
                                   "dark": _Node(specs=stream)})})
    assert sorted(run_streams(old)) == ["dark", "primary"]
    named_streams = _Node({"primary": _Node(specs=stream), "streams": _Node(specs=stream)})
    assert sorted(run_streams(named_streams)) == ["primary", "streams"]
    assert run_nodes(old) == RunNodes(run_streams(old))


class _DeepNode(_Node):
    """A stand-in with deep search, listing ``deep`` (path -> node)."""

    def __init__(self, deep: dict[tuple[str, ...], Any]) -> None:
        super().__init__({p[0]: n for p, n in deep.items() if len(p) == 1})
        self.deep = deep
        self.asked: list[Any] = []

    def new_variation(self, include_data_sources: bool = False) -> _DeepNode:
        assert include_data_sources
        return self

    def search_deep(self, *queries: Any, max_depth: int | None = None) -> Any:
        self.asked.append((queries, max_depth))
        return self.deep


def test_deep_listing_of_the_older_layout_falls_back() -> None:
    stream = ("BlueskyEventStream",)
    primary = _Node(specs=stream)
    old = _DeepNode({("streams",): _Node({"primary": primary}),
                     ("streams", "primary"): primary})
    assert run_nodes(old) == RunNodes({"primary": primary})
    array = SimpleNamespace(structure_family="array")
    table = SimpleNamespace(structure_family="table")
    new = _DeepNode({("primary",): primary, ("primary", "cam"): array,
                     ("primary", "internal"): table})
    assert run_nodes(new) == RunNodes({"primary": primary}, {("primary", "cam"): array})
    assert new.asked[0][1] == 2


def test_a_server_without_deep_search_gets_the_one_level_listing() -> None:
    class _Old(_Node):
        def new_variation(self, include_data_sources: bool = False) -> _Old:
            return self

        def search_deep(self, *queries: Any, max_depth: int | None = None) -> Any:
            raise NotImplementedError("This server does not support deep search.")

    primary = _Node(specs=("BlueskyEventStream",))
    assert run_nodes(_Old({"primary": primary})) == RunNodes({"primary": primary})
