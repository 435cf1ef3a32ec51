"""The guards in front of the catalog's Tiled application (ASGI middleware).

In the order a request meets them (``dataflow.server.build_server_app``):

1. ``RequireApiKey`` — every HTTP request and every WebSocket upgrade needs the key; a
   WebSocket without it is refused at the upgrade (HTTP 401, or 403 from a server without
   the denial-response extension) and never accepted or held open;
2. ``LimitBodySize`` — a request body larger than the limit is answered with HTTP 413,
   whether its size is declared (``Content-Length``) or not (chunked): the body is counted
   as it arrives and reading stops at the limit;
3. ``ConfinedAssets`` — every ``data_uri`` in a JSON request body must pass the catalog's
   ``AssetPolicy`` (``dataflow.assets``) or the request is answered with HTTP 403 before
   Tiled sees it.

The embedded catalog (``dataflow.catalog.Catalog``) uses ``ConfinedAssets`` too: a client
of it in the same process registers through the same application.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .assets import AssetPolicy, data_uris

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/api/v1/", "/api/v1"})
"""Answered without the key (GET/HEAD only): they hold no data."""
DEFAULT_MAX_BODY = 64 * 1024 * 1024
"""Default request body limit (bytes): far above any document page or metadata update a
writer sends (frames go to HDF5 files, not through requests)."""
SERVER_SETTINGS = {"expose_raw_assets": False}
"""Tiled server settings of every smeflow catalog application: no download of raw asset
bytes (that route serves a registered file without Tiled's storage check)."""
_API_KEY_IN_TEXT = re.compile(r"(api_key=)[^&\s\"']+", re.IGNORECASE)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def _answer(send: Send, status: int, detail: str,
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """A complete JSON error response ``{"detail": ...}``."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if bytes(key).lower() == name:
            return bytes(value)
    return None


class RequireApiKey:
    """Every HTTP request and WebSocket upgrade must carry the key, but two that hold no
    data (``OPEN_PATHS``: ``GET /healthz``, so clients can tell "server down" from "key
    wrong", and Tiled's "about" document ``GET /api/v1/``, which every Tiled client reads
    before it sends its key). The key is ``Authorization: Apikey KEY`` or ``?api_key=KEY``,
    compared in constant time."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self._key = key.encode()

    def _offered(self, scope: Scope) -> bytes:
        value = _header(scope, b"authorization")
        if value is not None:
            scheme, _, token = value.partition(b" ")
            if scheme.lower() == b"apikey":
                return token.strip()
        for pair in bytes(scope.get("query_string", b"")).split(b"&"):
            name, _, found = pair.partition(b"=")
            if name == b"api_key":
                return unquote(found.decode("ascii", "replace")).encode()
        return b""

    def _allowed(self, scope: Scope) -> bool:
        if scope["type"] == "http" and scope["method"] in {"GET", "HEAD"} \
                and scope["path"] in OPEN_PATHS:
            return True
        return hmac.compare_digest(self._offered(scope), self._key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        detail = "API key required (Authorization: Apikey KEY)"
        if scope["type"] == "http":
            await _answer(send, 401, detail, ((b"www-authenticate", b"Apikey"),))
            return
        # A WebSocket: refuse the upgrade itself, never accept and wait.
        await receive()  # the "websocket.connect" message
        if "websocket.http.response" in scope.get("extensions", {}):
            body = json.dumps({"detail": detail}).encode()
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode()),
                                    (b"www-authenticate", b"Apikey")]})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})


class _TooLarge(Exception):
    """The body went past the limit while the application read it."""


class LimitBodySize:
    """HTTP 413 for a request body over ``max_bytes``: at once when ``Content-Length``
    says so, else as soon as the bytes received pass the limit (chunked bodies); the
    application's own answer to the cut-off body is replaced by the 413."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY) -> None:
        if max_bytes < 1:
            raise ValueError(f"request size limit {max_bytes}: must be >= 1 byte")
        self.app = app
        self.max_bytes = max_bytes

    def _detail(self) -> str:
        return f"request body larger than the server's limit of {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            text = declared.strip()
            if not text.isdigit():
                await _answer(send, 400, f"Content-Length {declared!r}: not a number")
                return
            if int(text) > self.max_bytes:
                await _answer(send, 413, self._detail())
                return
        seen = 0
        over = False
        answered = False

        async def counted() -> Message:
            nonlocal seen, over
            if over:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if over:  # whatever the application says about the cut-off body
                if not answered:
                    answered = True
                    await _answer(send, 413, self._detail())
                return
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, counted, guarded_send)
        if over and not answered:
            answered = True
            await _answer(send, 413, self._detail())


def _json_body(scope: Scope) -> bool:
    """The body would be parsed as JSON by FastAPI (no content type, or a JSON one)."""
    value = _header(scope, b"content-type")
    if value is None:
        return True
    kind = value.split(b";")[0].strip().lower()
    return kind.startswith(b"application/") and (kind == b"application/json"
                                                 or kind.endswith(b"+json"))


class ConfinedAssets:
    """HTTP 403 for a request whose JSON body names a ``data_uri`` the catalog's
    ``AssetPolicy`` refuses (any scheme; ``file:`` only inside the data folders).

    Every POST, PUT and PATCH with a body FastAPI would read as JSON is checked, whatever
    its path, so no route that takes assets (``/register``, ``/metadata``,
    ``/data_source``, any added later) is missed."""

    def __init__(self, app: ASGIApp, policy: AssetPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS \
                or not _json_body(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            parsed = json.loads(body) if body else None
        except (ValueError, RecursionError):
            parsed = None  # FastAPI refuses it too
        for uri in data_uris(parsed):
            reason = self.policy.refusal(uri)
            if reason is not None:
                log.warning("refused to register %s", reason)
                await _answer(send, 403, f"refusing to register {reason}")
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def answer_refusals(app: Any) -> None:
    """Answer Tiled's own refusal of a ``file:`` asset outside its storage ("Refusing to
    serve …", a RuntimeError, which would be an HTTP 500 that clients retry) with HTTP
    403 and the message; any other RuntimeError stays a server error."""
    from starlette.responses import JSONResponse

    async def refused(request: Any, exc: Exception) -> Any:
        if not str(exc).startswith("Refusing to serve "):
            raise exc
        detail = str(exc).replace("Refusing to serve ", "refusing to read asset URI ", 1)
        return JSONResponse({"detail": detail}, status_code=403)

    app.add_exception_handler(RuntimeError, refused)


def answer_damage(app: Any, db: Path) -> None:
    """Answer a request that met a damaged record or page of the catalog database ``db``
    with HTTP 409 and the error naming ``db`` and the node (``raw/<uid>``), and log it.

    Without this such a request was an HTTP 500 "Internal server error", which Tiled's
    client retries for 45 s and then shows without the reason. Tiled's client retries
    every 5xx and shows the ``detail`` of a 4xx other than 404/410/429 at once; 409
    (a conflict with the stored state) is what Tiled answers for its own
    ``Conflicts``. Finding the record reads every JSON value of ``db``
    (``dataflow.catalog_db.damage_of``), in a worker thread, once per state of the
    file: requests meeting the same damage get the answer found before. Any other
    failure stays a server error."""
    import sqlalchemy.exc
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    from .catalog_db import CORRUPTION, RECORD_ERRORS, damage_of

    lock = threading.Lock()
    found: dict[tuple[Any, ...], Exception | None] = {}

    def diagnose(exc: Exception) -> Exception | None:
        state = tuple(_state(db.with_name(db.name + end)) for end in ("", "-wal"))
        with lock:
            text = str(getattr(exc, "orig", None) or exc)
            marks = tuple(m for m in (*CORRUPTION, *RECORD_ERRORS) if m in text)
            key = (*state, type(exc), marks)  # (not the text: a client cannot vary it)
            if key not in found:
                if len(found) > 64:
                    found.clear()
                found[key] = damage_of(db, exc)
            return found[key]

    async def damaged(request: Any, exc: Exception) -> Any:
        error = await run_in_threadpool(diagnose, exc)
        if error is None:
            raise exc
        log.error("%s %s: %s", request.method, request.url.path, error)
        return JSONResponse({"detail": str(error)}, status_code=409)

    for kind in (sqlalchemy.exc.DBAPIError, json.JSONDecodeError):
        app.add_exception_handler(kind, damaged)


def _state(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return (0, -1)
    return (info.st_mtime_ns, info.st_size)


class MaskApiKey(logging.Filter):
    """Mask ``api_key=…`` in log records (uvicorn's access line shows the query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_API_KEY_IN_TEXT.sub(r"\1***", a) if isinstance(a, str) else a
                                for a in record.args)
        if isinstance(record.msg, str):
            record.msg = _API_KEY_IN_TEXT.sub(r"\1***", record.msg)
        return True


_MASK = MaskApiKey()
for _name in ("uvicorn.access", "uvicorn.error", "tiled"):
    logging.getLogger(_name).addFilter(_MASK)


__all__ = ["DEFAULT_MAX_BODY", "OPEN_PATHS", "SERVER_SETTINGS", "ConfinedAssets",
           "LimitBodySize", "MaskApiKey", "RequireApiKey", "answer_damage",
           "answer_refusals"]
