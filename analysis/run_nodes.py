"""A stored run's streams and their arrays, found in as few catalog requests as possible.

A reduction needs each stream's metadata (its data keys say which one holds the frames)
and the frame arrays' data sources (the files behind them). Asked node by node that is a
request for the run's listing, then one per stream; over HTTP, and in the embedded
catalog's in-process server alike, each costs tens of milliseconds of the client's serial
time before the first task can start. :func:`run_nodes` lists them in one: a Tiled deep
search two levels below the run (the streams, and the nodes inside them with their data
sources). Runs of the older layout (streams under ``streams/``) and servers without deep
search get :func:`run_streams`' one-level listing, the arrays then asked for one by one.
:mod:`analysis.reduce` re-exports both names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunNodes", "run_nodes", "run_streams"]

STREAM_SPEC = "BlueskyEventStream"


def _is_stream(node: Any) -> bool:
    return STREAM_SPEC in {getattr(s, "name", s) for s in getattr(node, "specs", None) or []}


def run_streams(run: Any) -> dict[str, Any]:
    """The run's streams by name, each node with its metadata, in one catalog request (the
    run's own listing takes three, then each stream one more). A run of the older layout
    (streams under ``streams/``) is listed there."""
    nodes = dict(getattr(run, "base", run).items())
    inner: Any = nodes.get("streams")
    if inner is not None and not _is_stream(inner):
        nodes = dict(getattr(inner, "base", inner).items())
    return nodes


@dataclass(frozen=True)
class RunNodes:
    """A run's streams by name (nodes with their metadata) and, when the listing had them,
    the array nodes inside them by ``(stream, key)``, each with its data sources."""

    streams: dict[str, Any]
    arrays: dict[tuple[str, str], Any] = field(default_factory=dict)

    def __contains__(self, stream: object) -> bool:
        return stream in self.streams


def run_nodes(run: Any) -> RunNodes:
    """The run's streams and their arrays with data sources, in one catalog request where
    the server offers deep search (Tiled 0.2.20 and later), else :func:`run_streams`."""
    base = getattr(run, "base", run)
    try:
        from tiled.queries import SpecsQuery

        deep = base.new_variation(include_data_sources=True).search_deep(
            SpecsQuery([]), max_depth=2)  # no required specs: every node
    except (AttributeError, NotImplementedError, TypeError):
        return RunNodes(run_streams(run))
    streams: dict[str, Any] = {}
    arrays: dict[tuple[str, str], Any] = {}
    for path, node in deep.items():  # (iterated: asking len() would be one more request)
        if len(path) == 1:
            streams[path[0]] = node
        elif len(path) == 2 and getattr(node, "structure_family", None) == "array":
            arrays[(path[0], path[1])] = node
    inner = streams.get("streams")
    if inner is not None and not _is_stream(inner):  # the older layout: one level down
        return RunNodes(run_streams(run))
    return RunNodes(streams, arrays)
