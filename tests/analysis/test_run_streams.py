"""``analysis.reduce.run_streams``: a run's streams with their metadata in one catalog
request, for both run layouts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

from analysis.reduce import run_streams
from dataflow.catalog import Catalog


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
    stream = ("BlueskyEventStream",)
    old = _Node({"streams": _Node({"primary": _Node(specs=stream),
                                   "dark": _Node(specs=stream)})})
    assert sorted(run_streams(old)) == ["dark", "primary"]
    named_streams = _Node({"primary": _Node(specs=stream), "streams": _Node(specs=stream)})
    assert sorted(run_streams(named_streams)) == ["primary", "streams"]
