"""The embedded catalog's request path, made cheap: a bluesky run's documents become a
dozen catalog requests, each of which the in-process Tiled server used to spend as many
thread hand-overs on as on work.

The embedded ``Catalog`` serves its Tiled application in this process, on an event loop
in a thread of its own (Tiled's ``Context.from_app``, through starlette's ``TestClient``).
Three costs of that path are not the catalog's work:

- **Thread trips per request.** The ``TestClient`` transport crosses into the loop's
  thread about nine times per request (creating events, a stream, a cancel scope, the
  app's task, then one trip per body chunk). ``InProcessTransport`` makes it one: the
  whole exchange runs as one coroutine in the loop and the answer (status, headers,
  body, buffered) comes back at once. Server exceptions are raised in the caller, as
  ``TestClient`` does; WebSocket requests still go through ``TestClient``.
- **Thread trips per SQL statement.** SQLAlchemy's ``aiosqlite`` adapter asks the
  connection's thread four times per statement (make a cursor, execute, fetch all, close
  the cursor), each a wake-up of that thread and one back, for a statement that takes
  microseconds; a request makes a dozen statements. ``one_trip_statements`` gives the
  catalog database's engine connections whose cursor does the four in one trip. The
  statements still run in the connection's thread, so a statement waiting for another
  writer's lock (``dataflow.catalog_db.SQLITE_BUSY_MS``) holds up that connection only,
  never the event loop. SQLAlchemy also rolls back every connection twice as a session
  lets it go (the session's rollback, then the pool's reset on return), though reading
  statements leave SQLite outside any transaction: 63 of a reduction's 167 trips did
  nothing. A connection outside a transaction (SQLite's own flag, which no running
  statement can change meanwhile: SQLAlchemy awaits each call on a connection in turn)
  answers a rollback at once; inside one it goes to SQLite as before.
- **Closing streams nobody can follow.** ``TiledWriter`` ends every run by closing the
  stream of each node it wrote (five requests for a one-stream run, a third of the run's
  closing requests), each a full look-up of the node, so that the server can tell its
  WebSocket subscribers and webhooks. A server with neither (no streaming cache, no
  webhook keys; the embedded catalog has none) does nothing else for them, and the
  transport answers them as Tiled does (``200``, ``null``) without the look-up. Closing
  a stream of a node that does not exist therefore succeeds here (Tiled would answer
  404): closing changes nothing stored either way.
- **Five task groups per request.** Tiled's application wraps every request in five
  ``@app.middleware("http")`` functions (CSRF cookie, client version check, cookies set
  by dependencies, ``Server-Timing``, the logging principal; the catalog server's also
  counts Prometheus metrics, which the embedded catalog leaves out), each
  run by starlette's ``BaseHTTPMiddleware``, which streams the inner answer through a
  task group, a memory stream and a response wrapper so that it can be relayed chunk by
  chunk: about a sixth of a catalog request's CPU time in the embedded catalog's loop
  thread, and five more task switches. The in-process transport buffers every answer
  anyway; ``buffered_http_middleware`` runs the same five functions (Tiled's own code,
  unchanged) with a ``call_next`` that runs the inner application to its complete
  answer and hands it back as one response. The catalog server keeps starlette's
  streaming layers.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any
from urllib.parse import unquote

import aiosqlite
import anyio
import httpx
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response

STREAM_CLOSE = "/stream/close/"
"""The path part of Tiled's request that closes a node's stream (``DELETE``)."""


# -- one trip per request ----------------------------------------------------------------------


class InProcessTransport(httpx.BaseTransport):
    """An httpx transport calling an ASGI ``app`` on ``portal``'s event loop, one trip per
    request (module docstring).

    Parameters
    ----------
    app
        The ASGI application.
    portal
        The ``anyio`` blocking portal of the loop the application runs on (the
        ``TestClient``'s, whose lifespan started the application).
    fallback
        The transport for what this one does not carry (WebSocket requests).
    keeps_streams
        Asked per stream-close request: does the server keep streams (subscribers or
        webhooks) that closing one must reach? When not, the request is answered here.
    state
        The application's lifespan state (each request gets a copy, as ``TestClient``
        gives).
    raise_server_exceptions
        Raise an exception the application raised in the caller (else answer 500).
    errors
        Asked for the exception to raise in its place (None: itself), e.g. one naming
        the damaged database behind a query's failure.
    """

    def __init__(self, app: Any, portal: Any, fallback: httpx.BaseTransport, *,
                 keeps_streams: Callable[[], bool], state: dict[str, Any] | None = None,
                 raise_server_exceptions: bool = True,
                 errors: Callable[[BaseException], BaseException | None] | None = None,
                 ) -> None:
        self.app = app
        self.errors = errors
        self.portal = portal
        self.fallback = fallback
        self.keeps_streams = keeps_streams
        self.state = dict(state or {})
        self.raise_server_exceptions = raise_server_exceptions

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` from the application."""
        url = request.url
        if url.scheme not in ("http", "https"):
            return self.fallback.handle_request(request)
        if request.method == "DELETE" and STREAM_CLOSE in url.path and \
                not self.keeps_streams():
            return httpx.Response(200, json=None, request=request)
        body = request.read()
        headers = [(key.lower().encode("latin-1"), value.encode("latin-1"))
                   for key, value in request.headers.multi_items()]
        if "host" not in request.headers:
            headers.insert(0, (b"host", url.netloc))
        scope = {
            "type": "http", "http_version": "1.1", "method": request.method,
            "path": unquote(url.path), "raw_path": url.raw_path.split(b"?", 1)[0],
            "root_path": "", "scheme": url.scheme, "query_string": url.query,
            "headers": headers, "client": ("testclient", 50000),
            "server": [url.raw_host.decode("ascii"),
                       url.port or (443 if url.scheme == "https" else 80)],
            "extensions": {}, "state": dict(self.state),
        }
        exchange = self.portal.call(_exchange, self.app, scope, body)
        if exchange.error is not None and (self.raise_server_exceptions
                                           or exchange.status is None):
            mapped = self.errors(exchange.error) if self.errors is not None else None
            if mapped is not None:
                raise mapped from exchange.error
            raise exchange.error
        if exchange.status is None:
            raise RuntimeError(f"{request.method} {url.path}: the catalog application "
                               "sent no response")
        return httpx.Response(exchange.status, headers=exchange.headers,
                              content=b"".join(exchange.body), request=request)

    def close(self) -> None:
        """Close the fallback transport (the application's lifetime is its owner's)."""
        self.fallback.close()


class _Exchange:
    """One request's answer as the application sent it."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.error: BaseException | None = None


async def _exchange(app: Any, scope: dict[str, Any], body: bytes) -> _Exchange:
    """Run ``app`` on one request (in the loop's thread); its answer, or its exception."""
    answer = _Exchange()
    done = anyio.Event()
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # (middleware listens for a disconnect until the answer is out)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            answer.status = int(message["status"])
            answer.headers = [(key.decode("latin-1"), value.decode("latin-1"))
                              for key, value in message.get("headers", [])]
        elif kind == "http.response.body":
            answer.body.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                done.set()

    try:
        await app(scope, receive, send)
    except Exception as exc:
        answer.error = exc
    finally:
        done.set()
    return answer


def use_in_process_transport(
        context: Any, adapter: Any,
        errors: Callable[[BaseException], BaseException | None] | None = None) -> None:
    """Route the requests of Tiled client ``context`` (made by ``Context.from_app``) through
    an ``InProcessTransport``; stream closes are answered locally while the catalog
    ``adapter``'s server keeps no streams; ``errors`` as ``InProcessTransport`` takes."""
    http = context.http_client
    tiled_transport = http._transport  # Tiled's caching transport around TestClient's
    inner = tiled_transport.transport
    if isinstance(inner, InProcessTransport):
        return
    server = adapter.context

    def keeps_streams() -> bool:
        return (getattr(server, "streaming_cache", None) is not None
                or getattr(server, "webhook_dispatcher", None) is not None)

    tiled_transport.transport = InProcessTransport(
        inner.app, http.portal, inner, keeps_streams=keeps_streams,
        state=getattr(inner, "app_state", None),
        raise_server_exceptions=bool(getattr(inner, "raise_server_exceptions", True)),
        errors=errors)


# -- one trip per SQL statement ----------------------------------------------------------------


class OneTripCursor:
    """An ``aiosqlite`` cursor whose ``execute`` also fetches every row and closes the
    SQLite cursor, in one trip to the connection's thread; the fetches then read those
    rows. (SQLAlchemy's adapter fetches every row of a statement at once anyway.)"""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.lastrowid: int | None = None
        self.rowcount = -1
        self.arraysize = 1

    def _run(self, sql: str, parameters: Any, many: bool) -> tuple[Any, list[Any], Any, int]:
        cursor = self._connection._conn.cursor()  # (in the connection's thread)
        try:
            if many:
                cursor.executemany(sql, parameters)
            elif parameters is None:
                cursor.execute(sql)
            else:
                cursor.execute(sql, parameters)
            rows = cursor.fetchall() if cursor.description else []
            return cursor.description, rows, cursor.lastrowid, cursor.rowcount
        finally:
            cursor.close()

    async def _trip(self, sql: str, parameters: Any, many: bool) -> OneTripCursor:
        self._rows = []
        run: Any = self._connection._execute  # (aiosqlite's, untyped)
        self.description, self._rows, self.lastrowid, self.rowcount = \
            await run(self._run, sql, parameters, many)
        return self

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        """Run ``sql`` and keep its rows."""
        return await self._trip(sql, parameters, False)

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> OneTripCursor:
        """Run ``sql`` once per parameter set."""
        return await self._trip(sql, parameters, True)

    async def fetchone(self) -> Any:
        """The next row, or ``None``."""
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        """The next ``size`` rows (default ``arraysize``)."""
        size = self.arraysize if size is None else size
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def fetchall(self) -> list[Any]:
        """The remaining rows."""
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        """Drop the remaining rows (the SQLite cursor is closed already)."""
        self._rows = []


class OneTripConnection(aiosqlite.Connection):
    """An ``aiosqlite`` connection whose cursors are ``OneTripCursor``: making one costs
    no trip to the connection's thread, nor does a rollback with no transaction open."""

    async def cursor(self) -> OneTripCursor:  # type: ignore[override]
        """A new cursor (checked against a closed connection, as aiosqlite does)."""
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return OneTripCursor(self)

    async def rollback(self) -> None:
        """Roll back the open transaction; with none open there is nothing to undo
        (SQLite's rollback would return at once) and no trip is made (module
        docstring). A closed connection raises as aiosqlite's does."""
        connection = self._connection
        if self._running and connection is not None and not connection.in_transaction:
            return
        await super().rollback()


class _OneTripModule:
    """The ``aiosqlite`` module as SQLAlchemy's adapter of one engine sees it, whose
    ``connect`` makes ``OneTripConnection`` s."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def connect(self, database: str | bytes, *, iter_chunk_size: int = 64,
                **kwargs: Any) -> OneTripConnection:
        where = database.decode() if isinstance(database, bytes) else str(database)
        return OneTripConnection(partial(sqlite3.connect, where, **kwargs), iter_chunk_size)


def one_trip_statements(adapter: Any) -> bool:
    """Make the connections the catalog ``adapter``'s SQLite engine opens from now on
    ``OneTripConnection`` s (module docstring); idempotent. False (and nothing changed)
    when the catalog is not on SQLite through aiosqlite."""
    engine = adapter.context.engine
    dbapi: Any = getattr(engine.dialect, "dbapi", None)
    if engine.dialect.driver != "aiosqlite" or not hasattr(dbapi, "aiosqlite"):
        return False
    if not isinstance(dbapi.aiosqlite, _OneTripModule):
        dbapi.aiosqlite = _OneTripModule(dbapi.aiosqlite)
    return True


# -- one layer per middleware function, no task group -------------------------------------------


TILED_MIDDLEWARE = "tiled.server.app"
"""The module whose ``@app.middleware("http")`` functions ``buffered_http_middleware``
runs buffered (``build_app``'s own; anything else keeps starlette's layer)."""


class BufferedHTTPMiddleware:
    """An ASGI middleware running a ``dispatch(request, call_next)`` function as
    starlette's ``BaseHTTPMiddleware`` does, with ``call_next`` running the inner
    application to its complete answer (module docstring): no task group, no stream.

    ``call_next`` raises what the inner application raised, as starlette's does; an
    answer the dispatch function returns is sent as it is (its headers and cookies as the
    function left them)."""

    def __init__(self, app: Any, dispatch: Callable[..., Any]) -> None:
        self.app = app
        self.dispatch = dispatch

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def call_next(request: Request) -> Response:
            return await _complete_answer(self.app, scope, receive, send)

        response = await self.dispatch(Request(scope, receive), call_next)
        await response(scope, receive, send)


async def _complete_answer(app: Any, scope: dict[str, Any], receive: Any,
                           send: Any) -> Response:
    """Run ``app`` on the request and return its whole answer as one ``Response``
    (messages other than the answer's start and body, e.g. early hints, go on at once)."""
    start: dict[str, Any] | None = None
    body: list[bytes] = []

    async def keep(message: dict[str, Any]) -> None:
        nonlocal start
        kind = message["type"]
        if kind == "http.response.start":
            start = message
        elif kind == "http.response.body":
            body.append(bytes(message.get("body", b"")))
        else:
            await send(message)

    await app(scope, receive, keep)
    if start is None:
        raise RuntimeError("No response returned.")
    response = Response(b"".join(body), status_code=int(start["status"]))
    response.raw_headers = list(start.get("headers", []))  # (as sent: length, type, ...)
    return response


def buffered_http_middleware(app: Any) -> int:
    """Run Tiled's ``@app.middleware("http")`` functions of ``app`` (not built yet) through
    ``BufferedHTTPMiddleware`` instead of starlette's streaming layer (module docstring);
    returns how many were replaced. For an application whose answers are buffered
    anyway (the in-process transport), not for one served over a network."""
    replaced = 0
    layers = list(app.user_middleware)
    for i, layer in enumerate(layers):
        dispatch = layer.kwargs.get("dispatch")
        if layer.cls is BaseHTTPMiddleware and \
                getattr(dispatch, "__module__", None) == TILED_MIDDLEWARE:
            layers[i] = Middleware(BufferedHTTPMiddleware, dispatch=dispatch)
            replaced += 1
    app.user_middleware = layers
    return replaced


def release_app_client(context: Any) -> None:
    """Let a closed ``Context.from_app`` client, and the whole application it served, be
    freed. Tiled registers the ``TestClient``'s ``__exit__`` with the ``threading``
    module's shutdown hooks (``threading._register_atexit``: its portal thread must stop
    before the interpreter joins threads) and never takes it back, so every embedded
    catalog opened and closed kept its application alive for the rest of the process:
    about 64 000 objects (FastAPI routes, pydantic validators) each time, which every
    full garbage collection then walks. Call after ``context.close()``, which has run that
    ``__exit__``; a client that was not made from an app has no hook to drop."""
    _drop_hooks(context.http_client)


def release_when_unused(context: Any) -> None:
    """Stop the application of ``Context.from_app`` client ``context`` once nothing uses
    the context any more (the catalog and every node read from it dropped, unclosed).

    Tiled's shutdown hook (``release_app_client``) is the only thing left that refers to
    the application then, and it ran only at interpreter exit: a notebook that opened
    catalogs and let them go (``Catalog(folder).run(-1)``, ``open_broker(folder)``
    dropped, a catalog per loop) kept each one's three threads (its event loop, SQLite's
    connection thread, AnyIO's worker), its open files (``catalog.db``, ``tables.db`` and
    their journals) and its application for the rest of the process. Here the
    application is shut down as ``context.close()`` would, in a thread of its own (the
    garbage collector may run in one of the application's threads, which cannot join
    itself), unless ``close()`` did it already."""
    weakref.finalize(context, _release_unused, weakref.ref(context.http_client))


def _release_unused(client: weakref.ref[Any]) -> None:
    http = client()  # (alive while Tiled's hook holds it: the catalog was not closed)
    if http is None or not _drop_hooks(http):
        return  # closed already (or not made from an app)
    try:
        threading.Thread(target=http.__exit__, name=RELEASE_THREAD).start()
    except RuntimeError:  # the interpreter is shutting down: exit it here
        http.__exit__()


RELEASE_THREAD = "smeflow-release-catalog"
"""The name of the thread that stops an unused catalog's application."""
_HOOKS_LOCK = threading.Lock()


def _drop_hooks(http: Any) -> bool:
    """Remove the threading shutdown hooks registered for ``http`` (a ``TestClient``);
    whether there were any."""
    hooks = getattr(threading, "_threading_atexits", None)
    if not isinstance(hooks, list):  # (a Python without the hook list: nothing kept)
        return False

    def ours(hook: Any) -> bool:
        bound = getattr(hook, "func", hook)  # (registered as functools.partial(__exit__))
        return getattr(bound, "__self__", None) is http

    with _HOOKS_LOCK:
        kept = [hook for hook in hooks if not ours(hook)]
        dropped = len(kept) != len(hooks)
        hooks[:] = kept
    return dropped


__all__ = ["STREAM_CLOSE", "TILED_MIDDLEWARE", "BufferedHTTPMiddleware", "InProcessTransport",
           "OneTripConnection", "OneTripCursor", "buffered_http_middleware",
           "one_trip_statements", "release_app_client", "release_when_unused",
           "use_in_process_transport"]
