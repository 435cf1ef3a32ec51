"""Query parameters the catalog server refuses before Tiled sees them (ASGI middleware).

Found by sending hostile requests to ``smeflow catalog serve`` (tiled 0.2.20; the tests
in ``tests/dataflow/test_server_requests.py``); each was a wrong answer, a server error
(HTTP 500, which Tiled's client retries for 45 s and then shows without the reason) or
memory spent for nothing, and is now HTTP 400 (403 for zarr) naming the parameter:

- ``filter[NAME][condition][FIELD]`` with a query type Tiled does not know
  (``filter[eqq]…``, a typo) was ignored: the search answered every run. One with a
  field the type does not have, a field missing, or a value Tiled cannot decode
  (``filter[eq][condition][value]={bad``, not JSON; nested past Python's recursion
  limit) was a 500. Each query is decoded here as Tiled will (``QueryType.decode``)
  and its error named;
- ``slice`` with a step of 0 (``::0``) was a 500 (numpy and ``range`` refuse it);
- ``page[offset]`` past SQLite's and PostgreSQL's 64-bit integers was a 500;
- ``sort`` by a key of thousands of dotted parts was a 500 (a recursion error);
- ``/zarr/v2/…`` and ``/zarr/v3/…``: Tiled's zarr routes answer a block past the array's
  end with HTTP 200 and zeros, after allocating an array of every block up to it (block
  10^6 of a 2-frame array: 200 OK, +450 MB of RSS; 10^8 would be 51 GB). No smeflow or
  Tiled Python client reads through them, so the server does not serve them (403), as
  it does not serve raw asset downloads.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from .server_guards import ASGIApp, Receive, Scope, Send

MAX_OFFSET = 2**63 - 1
"""The largest ``page[offset]`` a database takes (a signed 64-bit integer)."""
MAX_KEY_PARTS = 64
"""The most dotted parts a ``sort`` key may have (metadata is never nested that deep)."""
_FILTER = re.compile(r"filter\[([^\]]*)\]\[condition\]\[([^\]]*)\]")


def _query_types() -> dict[str, tuple[Any, frozenset[str]]]:
    """Tiled's query types by name, with the fields a client may send."""
    from tiled.query_registration import default_query_registry

    return {name: (kind, frozenset(f.name for f in dataclasses.fields(kind)
                                   if not f.metadata.get("internal")))
            for name, kind in default_query_registry.name_to_query_type.items()}


def _slice_error(text: str) -> str | None:
    for dim in text.split(","):
        parts = dim.split(":")
        if len(parts) == 3 and parts[2].strip().lstrip("-").isdigit() \
                and int(parts[2]) == 0:
            return f"slice {text!r}: a step of 0 (dimension {dim!r}) selects nothing"
    return None


def _filters_error(groups: dict[str, dict[str, list[str]]],
                   known: dict[str, tuple[Any, frozenset[str]]]) -> str | None:
    for name, fields in groups.items():
        kind, _ = known[name]
        counts = {len(values) for values in fields.values()}
        if len(counts) > 1:
            listed = ", ".join(f"{len(v)} {f}" for f, v in sorted(fields.items()))
            return f"filter[{name}]: the fields of its queries do not pair up ({listed})"
        for i in range(counts.pop()):
            try:
                kind.decode(**{field: values[i] for field, values in fields.items()})
            except json.JSONDecodeError as exc:
                field = next((f for f, v in fields.items() if v[i] == exc.doc), "?")
                return (f"filter[{name}][condition][{field}] {exc.doc[:80]!r}: not JSON "
                        f"({exc})")
            except RecursionError:
                return f"filter[{name}]: a value nested too deep"
            except (TypeError, ValueError) as exc:
                reason = re.sub(r"^[\w.]*decode\(\) ", "", str(exc))
                return f"filter[{name}]: {reason}"
    return None


def refusal(method: str, path: str, query: bytes) -> tuple[int, str] | None:
    """``(status, detail)`` for a request the server refuses (module docstring), else
    None."""
    if path.startswith(("/zarr/v2/", "/zarr/v3/")) or path in ("/zarr/v2", "/zarr/v3"):
        return (403, "this server does not serve zarr: read arrays through "
                            "/api/v1/array (Tiled's zarr routes answer a block past the "
                            "end with zeros)")
    if not query:
        return None
    try:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    except ValueError as exc:
        return (400, f"malformed query string: {exc}")
    known: dict[str, tuple[Any, frozenset[str]]] | None = None
    groups: dict[str, dict[str, list[str]]] = {}
    for name, value in pairs:
        if name == "slice" and (why := _slice_error(value)) is not None:
            return (400, why)
        if name == "page[offset]" and value.strip().isdigit() and int(value) > MAX_OFFSET:
            return (400, f"page[offset] {value[:40]}: larger than {MAX_OFFSET}")
        if name == "sort":
            for key in value.split(","):
                if key.count(".") >= MAX_KEY_PARTS:
                    return (400, f"sort key {key[:40]!r}…: more than "
                                        f"{MAX_KEY_PARTS} dotted parts")
        if name.startswith("filter["):
            known = known if known is not None else _query_types()
            match = _FILTER.fullmatch(name)
            if match is None or match[1] not in known:
                types = ", ".join(sorted(known))
                return (400, f"{name}: not a query Tiled knows (expected "
                                    f"filter[TYPE][condition][FIELD], TYPE one of {types})")
            fields = known[match[1]][1]
            if match[2] not in fields:
                return (400, f"{name}: the {match[1]} query has no field "
                                    f"{match[2]!r} (its fields: {', '.join(sorted(fields))})")
            groups.setdefault(match[1], {}).setdefault(match[2], []).append(value)
    if groups and known is not None:
        why = _filters_error(groups, known)
        if why is not None:
            return (400, why)
    return None


class CheckedRequests:
    """HTTP 400 (403 for zarr) with ``{"detail": …}`` for a request ``refusal`` refuses,
    before Tiled sees it; every other request goes on unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = refusal(scope["method"], scope["path"],
                              bytes(scope.get("query_string", b"")))
            if refused is not None:
                status, detail = refused
                body = json.dumps({"detail": detail}).encode()
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


__all__ = ["MAX_KEY_PARTS", "MAX_OFFSET", "CheckedRequests", "refusal"]
