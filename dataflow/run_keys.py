"""Sort and ``distinct`` keys of a catalog of runs: the start document's, or refused.

A run's Tiled metadata is ``{"start": {...}, "stop": {...}, ...}``: ``scan_id`` is
``start.scan_id``. bluesky-tiled-plugins 2.0.12 reads a query's key that way
(``Key("scan_id") == 2`` searches ``start.scan_id``), but not a sort or ``distinct`` key,
which Tiled looks up at the top of the metadata, finds in no run, and answers anyway:
``catalog.sort(("scan_id", -1))`` kept the runs in the order they were written, with no
error, and ``catalog.distinct("plan_name", counts=True)`` said every run had no
``plan_name`` (``[{"value": None, "count": 5}]``). Both are the examples of Tiled's own
client documentation (sorting, "distinct") written for a catalog of runs.

Two parts fix it, one on each side of HTTP:

- ``start_key`` is bluesky's rule for a query key (a key not under ``start.`` or ``stop.``
  means the start document's), which smeflow's catalog of runs (``open_broker``'s ``db.v2``,
  ``dataflow.broker.dict_searching``) applies to sort and ``distinct`` keys too, answering
  ``distinct`` under the key the caller gave; its ``sort`` takes Tiled's ``ASCENDING`` and
  ``DESCENDING`` too (``direction``), which Tiled's own client refuses with a ``TypeError``;
- ``RunMetadataKeys``, ASGI middleware of the embedded catalog and the server, answers a
  sort or ``distinct`` request on the ``raw`` or ``derived`` runs whose key is not under
  one of a run's metadata sections (``RUN_SECTIONS``) with HTTP 400 naming the key and the
  one to use: a client without smeflow's rule (``tiled.client.from_uri``, a profile,
  ``Catalog.client``) gets that error instead of the unsorted answer.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from .run_queries import DERIVED, RAW

RUN_SECTIONS = frozenset({"start", "stop", "summary", "notes"})
"""The top-level keys of a run's metadata (what a sort or ``distinct`` key may start with)."""
_DEFAULT_ORDER = frozenset({"", "_"})
"""Tiled's sort keys for "the order the nodes were written"."""
_ROUTES = {f"/api/v1/{route}/{container}": route
           for route in ("search", "distinct") for container in (RAW, DERIVED)}

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def start_key(key: str) -> str:
    """``key`` as bluesky reads a query's key: under ``start.`` unless it names the start
    or stop document already (``"scan_id"`` -> ``"start.scan_id"``); Tiled's default sort
    key ``"_"`` stays."""
    if key in _DEFAULT_ORDER or key.startswith(("start.", "stop.")):
        return key
    return f"start.{key}"


def direction(way: Any) -> int:
    """A sort direction as Tiled's client sends it: 1 or -1. Tiled's own ``ASCENDING`` and
    ``DESCENDING`` (``tiled.client``, the names its ``sort`` documentation uses) are
    integers only through ``__index__``, and tiled 0.2.20's ``sort`` compares them with
    ``< 0``: ``TypeError``. Anything else is a ``ValueError`` naming it."""
    try:
        value = operator.index(way)
    except TypeError:
        value = 0
    if value not in (1, -1) or isinstance(way, bool):
        raise ValueError(f"sort direction {way!r}: expected 1 (ASCENDING) or -1 (DESCENDING)")
    return value


def refused_key(key: str) -> str | None:
    """Why a sort or ``distinct`` key cannot mean anything on a catalog of runs, or
    ``None`` when it can."""
    if key in _DEFAULT_ORDER or key.split(".", 1)[0] in RUN_SECTIONS:
        return None
    return (f"{key!r} is no key of a run's metadata, which holds the start document "
            f"under 'start' and the stop document under 'stop': use {start_key(key)!r}")


def refusal(path: str, query_string: bytes) -> str | None:
    """The reason to refuse a request for ``path`` with ``query_string``, or ``None``."""
    route = _ROUTES.get(path.rstrip("/"))
    if route is None:
        return None
    params = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    if route == "search":
        keys = [s[1:] if s.startswith(("+", "-")) else s for s in params.get("sort", [])]
        what = "sort key"
    else:
        keys = params.get("metadata", [])
        what = "distinct key"
    for key in keys:
        reason = refused_key(key)
        if reason is not None:
            return f"{what} {reason}"
    return None


class RunMetadataKeys:
    """HTTP 400 for a sort or ``distinct`` key that no run's metadata can hold, on the
    ``raw`` and ``derived`` catalogs of runs (module docstring)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = None
        if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
            reason = refusal(str(scope.get("path", "")), bytes(scope.get("query_string", b"")))
        if reason is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": reason}).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


__all__ = ["RUN_SECTIONS", "RunMetadataKeys", "direction", "refusal", "refused_key",
           "start_key"]
