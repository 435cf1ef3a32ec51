"""Whether a run on a catalog server holds each event once: a check after a live write.

``TiledWriter`` appends each batch of a stream's rows with a PATCH; when the server carries
one out but its answer is lost (a read timeout under load), the Tiled client sends it again
and the rows are appended twice — the writer only logs "the rows may be duplicated". The
run then reads back with more rows than events in some columns than in others, a wrong
answer with no error. :func:`rows_mismatch` compares, once the stop document is written,
the length of every column of every stream the writer sent events to with the number of
events it sent; ``dataflow.spool.SpoolingWriter`` then replays the run (which replaces
the server's copy) instead of leaving it so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["rows_mismatch"]


def rows_mismatch(client: Any, uid: str, events: Mapping[str, int]) -> str | None:
    """Why the run ``uid`` under ``client`` does not hold ``events[stream]`` rows in every
    column of each stream named (its shape on the server, nothing read), or ``None``."""
    run = client[uid]
    for stream, n in events.items():
        try:
            node = run[stream]
        except KeyError:
            return f"stream {stream!r} of run {uid} is missing ({n} events sent)"
        for key in node:
            shape = getattr(node[key], "shape", None)
            if shape and shape[0] != n:
                return (f"column {key!r} of stream {stream!r} of run {uid} has {shape[0]} "
                        f"rows for the {n} events sent")
    return None
