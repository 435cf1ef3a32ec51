"""The embedded catalog's request path (``dataflow.inprocess``): one thread trip per request
and per SQL statement, stream closes answered without a look-up while nobody can follow
streams, and the same answers as starlette's ``TestClient``."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio.from_thread
import httpx
import pytest
import sqlalchemy
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det
from sqlalchemy.ext.asyncio import create_async_engine
from tiled.catalog.adapter import CatalogNodeAdapter

from dataflow.catalog import Catalog
from dataflow.inprocess import (
    TILED_MIDDLEWARE,
    BufferedHTTPMiddleware,
    InProcessTransport,
    OneTripConnection,
    buffered_http_middleware,
    one_trip_statements,
    use_in_process_transport,
)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog(tmp_path / "c") as cat:
        yield cat


def _transport(catalog: Catalog) -> InProcessTransport:
    transport = catalog.tree.context.http_client._transport.transport
    assert isinstance(transport, InProcessTransport)
    return transport


def test_answers_as_testclient_does(catalog: Catalog) -> None:
    """The same requests through the in-process transport and through TestClient's get
    the same status, media type and body: found, searched, missing, refused."""
    RE = RunEngine({})
    catalog.subscribe(RE)
    (uid,) = RE(count([det], 2))  # type: ignore[misc]
    http = catalog.tree.context.http_client
    ours = _transport(catalog)
    requests = [("GET", f"/api/v1/metadata/raw/{uid}"),
                ("GET", f"/api/v1/search/raw?filter[fulltext][condition][text]={uid[:8]}"),
                ("GET", "/api/v1/metadata/raw/no-such-run"),
                ("GET", f"/api/v1/table/full/raw/{uid}/primary/internal?format=text/csv"),
                ("POST", "/api/v1/metadata/raw/no-such-run")]
    for method, path in requests:
        answers = []
        for transport in (ours, ours.fallback):
            http._transport.transport = transport
            answers.append(http.request(method, path))
        http._transport.transport = ours
        mine, theirs = answers
        assert (mine.status_code, mine.headers.get("content-type")) == \
            (theirs.status_code, theirs.headers.get("content-type")), path
        if mine.headers.get("content-type", "").startswith("application/json"):
            assert mine.json() == theirs.json(), path
        else:
            assert mine.content == theirs.content, path
    assert len(catalog.run(uid)["primary"]["det"].read()) == 2


def test_tiled_middleware_answers_as_starlettes_layers_do(catalog: Catalog) -> None:
    """Tiled's middleware functions run buffered in the embedded catalog and answer as
    through starlette's streaming layers (the catalog server's): the CSRF cookie set on a
    request without one, ``Server-Timing`` with the same metrics, a too-old client refused
    with 400, the same status and body."""
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.testclient import TestClient

    from dataflow.tiled_app import build_tiled_app

    app = catalog.tree.context.http_client._transport.transport.app
    kinds = [(layer.cls, getattr(layer.kwargs.get("dispatch"), "__module__", None))
             for layer in app.user_middleware]
    assert (BufferedHTTPMiddleware, TILED_MIDDLEWARE) in kinds
    assert (BaseHTTPMiddleware, TILED_MIDDLEWARE) not in kinds
    streaming = build_tiled_app(_adapter(catalog), quiet=True)  # (as the server builds it)
    key = {"authorization": catalog.tree.context.http_client.headers["authorization"]}
    old = {**key, "user-agent": "python-tiled/0.1.0a90"}  # (older than Tiled supports)
    requests = [("GET", "/api/v1/metadata/raw", key),
                ("GET", "/api/v1/metadata/raw/no-such-run", key),
                ("POST", "/api/v1/metadata/raw/no-such-run", key),
                ("GET", "/api/v1/metadata/raw", {}),
                ("GET", "/api/v1/metadata/raw", old)]
    with TestClient(app) as buffered_client, TestClient(streaming) as streaming_client:
        for method, path, headers in requests:
            mine = buffered_client.request(method, path, headers=headers)
            theirs = streaming_client.request(method, path, headers=headers)
            assert mine.status_code == theirs.status_code, path
            assert mine.content == theirs.content, path
            assert ("tiled_csrf" in mine.cookies) == ("tiled_csrf" in theirs.cookies), path
            assert _timed(mine) == _timed(theirs) != set(), path
        statuses = [buffered_client.request(method, path, headers=headers).status_code
                    for method, path, headers in requests]
        assert statuses == [200, 404, 422, 401, 400]


def test_only_the_catalog_server_counts_prometheus_metrics(catalog: Catalog) -> None:
    """Tiled's Prometheus metrics (a middleware counting every request, ~1 ms of CPU
    each, and ``/api/v1/metrics``) are left out of the embedded catalog, which nothing
    outside its process can scrape; an application built as the catalog server builds
    it serves them."""
    from starlette.testclient import TestClient

    from dataflow.tiled_app import build_tiled_app

    key = {"authorization": catalog.tree.context.http_client.headers["authorization"]}
    embedded = catalog.tree.context.http_client._transport.transport.app
    served = build_tiled_app(_adapter(catalog), quiet=True)
    with TestClient(embedded) as mine, TestClient(served) as theirs:
        assert mine.get("/api/v1/metrics", headers=key).status_code == 404
        answer = theirs.get("/api/v1/metrics", headers=key)
        assert answer.status_code == 200 and "tiled_request_duration" in answer.text


def _timed(answer: Any) -> set[str]:
    """The metric names of an answer's ``Server-Timing`` header."""
    header = answer.headers.get("server-timing", "")
    return {part.split(";")[0] for part in header.split(", ") if part}


def _adapter(catalog: Catalog) -> Any:
    """A fresh Tiled adapter of ``catalog``'s folder (for a second application)."""
    from tiled.catalog import from_uri

    root = catalog.root
    return from_uri(f"sqlite:///{root / 'catalog.db'}",
                    writable_storage=[str(root / "storage"),
                                      f"sqlite:///{root / 'tables.db'}"],
                    readable_storage=[str(catalog.raw_dir)])


def test_buffered_middleware_keeps_call_next_semantics() -> None:
    """``call_next`` gives the inner answer whole (headers and cookies the dispatch
    function adds are sent), raises the inner application's exception, and a dispatch
    function may answer without calling it; only Tiled's functions are replaced."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def ok(request: Any) -> Any:
        return PlainTextResponse("inner" * 500, headers={"x-inner": "1"})

    async def broken(request: Any) -> Any:
        raise ValueError("inner failure")

    async def dispatch(request: Any, call_next: Any) -> Any:
        if request.url.path == "/refused":
            return PlainTextResponse("no", status_code=403)
        response = await call_next(request)
        response.headers["x-outer"] = "2"
        response.set_cookie("token", "abc")
        return response

    dispatch.__module__ = TILED_MIDDLEWARE

    async def other(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    app = Starlette(routes=[Route("/ok", ok), Route("/broken", broken)],
                    middleware=[Middleware(BaseHTTPMiddleware, dispatch=dispatch),
                                Middleware(BaseHTTPMiddleware, dispatch=other)])
    assert buffered_http_middleware(app) == 1
    kinds: list[Any] = [layer.cls for layer in app.user_middleware]
    assert kinds == [BufferedHTTPMiddleware, BaseHTTPMiddleware]
    with TestClient(app) as client:
        answer = client.get("/ok")
        assert (answer.status_code, answer.text) == (200, "inner" * 500)
        assert answer.headers["x-inner"] == "1" and answer.headers["x-outer"] == "2"
        assert answer.headers["content-length"] == str(len("inner" * 500))
        assert answer.cookies["token"] == "abc"
        assert client.get("/refused").status_code == 403
        with pytest.raises(ValueError, match="inner failure"):
            client.get("/broken")


def test_stream_closes_skip_the_lookup_only_without_streams(
        catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's five stream closes reach no handler while the server keeps no streams; a
    server that keeps them gets every close, and Tiled's own answers (404 when missing)."""
    closed: list[Any] = []
    original = CatalogNodeAdapter.close_stream

    async def recording(self: Any) -> None:
        closed.append(self.node.key)
        await original(self)

    monkeypatch.setattr(CatalogNodeAdapter, "close_stream", recording)
    RE = RunEngine({})
    catalog.subscribe(RE)
    (uid,) = RE(count([det], 2))  # type: ignore[misc]
    assert closed == []
    _transport(catalog).keeps_streams = lambda: True
    (uid2,) = RE(count([det], 2))  # type: ignore[misc]
    assert uid2 in closed and "primary" in closed
    http = catalog.tree.context.http_client
    assert http.delete("/api/v1/stream/close/raw/no-such-run").status_code == 404
    assert len(catalog.run(uid)["primary"]["det"].read()) == 2


_NOWHERE = httpx.MockTransport(lambda request: httpx.Response(599))
"""A fallback transport the tests never reach."""


def _portal() -> Any:
    return anyio.from_thread.start_blocking_portal()


def test_exchange_carries_body_query_and_waits_for_disconnect() -> None:
    """The request's body, query and headers reach the application; a second ``receive``
    (middleware watching for a disconnect) answers only after the response is out."""
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["request"] = await receive()
        seen["query"], seen["method"] = scope["query_string"], scope["method"]
        seen["headers"] = dict(scope["headers"])

        async def after() -> None:
            seen["after"] = await receive()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(after)
            await anyio.sleep(0.01)
            assert "after" not in seen  # no disconnect before the answer
            await send({"type": "http.response.start", "status": 201,
                        "headers": [(b"x-echo", b"yes")]})
            await send({"type": "http.response.body", "body": b"ab", "more_body": True})
            await send({"type": "http.response.body", "body": seen["request"]["body"]})

    with _portal() as portal:
        transport = InProcessTransport(app, portal, _NOWHERE,
                                       keeps_streams=lambda: False)
        with httpx.Client(transport=transport, base_url="http://local") as client:
            answer = client.put("/x?a=1&b=%20", content=b"payload", headers={"X-Y": "z"})
    assert (answer.status_code, answer.headers["x-echo"], answer.content) == \
        (201, "yes", b"abpayload")
    assert seen["query"] == b"a=1&b=%20" and seen["method"] == "PUT"
    assert seen["headers"][b"x-y"] == b"z"
    assert seen["after"] == {"type": "http.disconnect"}


def test_server_exceptions_reach_the_caller() -> None:
    """An application's exception is raised in the caller (as TestClient raises it); an
    application that answers nothing is an error, not an empty response."""

    async def failing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("broken handler")

    async def silent(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    with _portal() as portal:
        for app, raised, match in ((failing, ValueError, "broken handler"),
                                   (silent, RuntimeError, "sent no response")):
            transport = InProcessTransport(app, portal, _NOWHERE,
                                           keeps_streams=lambda: False)
            with httpx.Client(transport=transport, base_url="http://local") as client, \
                    pytest.raises(raised, match=match):
                client.get("/anything")


def test_installing_twice_keeps_one_transport(catalog: Catalog) -> None:
    transport = _transport(catalog)
    use_in_process_transport(catalog.tree.context, SimpleNamespace(context=None))
    assert _transport(catalog) is transport


def test_a_closed_catalog_frees_its_application(tmp_path: Path) -> None:
    """Closing the embedded catalog frees its Tiled application and the client that
    served it: Tiled's shutdown hook for the client (``threading._register_atexit``)
    kept both alive, ~64 000 objects per catalog opened and closed, walked by every full
    garbage collection. Another catalog's hook stays until that catalog closes."""
    import gc
    import weakref

    from starlette.testclient import TestClient

    def clients_hooked() -> set[int]:
        hooks = threading._threading_atexits  # type: ignore[attr-defined]
        return {id(h.func.__self__) for h in hooks
                if isinstance(getattr(getattr(h, "func", None), "__self__", None), TestClient)}

    before = clients_hooked()
    with Catalog(tmp_path / "a") as kept, Catalog(tmp_path / "b") as first:
        ours = {id(c.tree.context.http_client) for c in (kept, first)}
        assert clients_hooked() == before | ours
        app = weakref.ref(first.tree.context.http_client.app)
        client = weakref.ref(first.tree.context.http_client)
        first.close()
        gc.collect()
        assert app() is None and client() is None
        assert clients_hooked() == before | {id(kept.tree.context.http_client)}
        assert kept.runs() == []  # the other catalog still serves
    assert clients_hooked() == before


def _engine(path: Path) -> Any:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    assert one_trip_statements(SimpleNamespace(context=SimpleNamespace(engine=engine)))
    return engine


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the calls ``OneTripConnection``s send to their threads, in order."""
    calls: list[str] = []
    original = OneTripConnection._execute

    async def counting(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__name__", repr(fn)))
        run: Any = original
        return await run(self, fn, *args, **kwargs)

    monkeypatch.setattr(OneTripConnection, "_execute", counting)
    return calls


def test_one_trip_statements_keep_sqlalchemy_semantics(tmp_path: Path,
                                                       trips: list[str]) -> None:
    """Rows, row counts, inserted ids and errors are SQLAlchemy's as before, and each
    statement costs one trip to the connection's thread (four before)."""
    text = sqlalchemy.text

    async def work() -> dict[str, Any]:
        engine = _engine(tmp_path / "t.db")
        try:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
                inserted = await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
                many = await conn.execute(text("INSERT INTO t (v) VALUES (:v)"),
                                          [{"v": "b"}, {"v": "c"}])
                trips.clear()
                rows = (await conn.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
                one_statement = len(trips)
                updated = await conn.execute(text("UPDATE t SET v = v || '!' WHERE id > 1"))
            with pytest.raises(sqlalchemy.exc.IntegrityError, match="UNIQUE"):
                async with engine.begin() as conn:
                    await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
            async with engine.connect() as conn:
                after = (await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars().all()
            return {"lastrowid": inserted.lastrowid, "many": many.rowcount, "rows": rows,
                    "trips": one_statement, "updated": updated.rowcount, "after": after}
        finally:
            await engine.dispose()

    got = asyncio.run(work())
    assert got["rows"] == [(1, "a"), (2, "b"), (3, "c")]
    assert (got["lastrowid"], got["many"], got["updated"]) == (1, 2, 2)
    assert got["after"] == ["a", "b!", "c!"]
    assert got["trips"] == 1


def test_a_statement_waiting_for_a_lock_leaves_the_event_loop_running(tmp_path: Path) -> None:
    """A statement waiting for another writer's lock (busy timeout) waits in its
    connection's thread: the event loop serves other work meanwhile, and the statement
    succeeds once the lock is released."""
    db = tmp_path / "l.db"
    with sqlite3.connect(db) as setup:
        setup.execute("CREATE TABLE t (v INTEGER)")
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))

    async def work() -> tuple[int, float, int]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{db}",
                                     connect_args={"timeout": 10})
        one_trip_statements(SimpleNamespace(context=SimpleNamespace(engine=engine)))
        ticks = 0

        async def ticking() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(ticking())
        try:
            t0 = time.perf_counter()
            release.start()
            async with engine.begin() as conn:
                await conn.execute(sqlalchemy.text("INSERT INTO t VALUES (2)"))
            waited = time.perf_counter() - t0
            async with engine.connect() as conn:
                rows = (await conn.execute(sqlalchemy.text("SELECT COUNT(*) FROM t"))).scalar_one()
            return ticks, waited, rows
        finally:
            ticker.cancel()
            await engine.dispose()

    try:
        ticks, waited, rows = asyncio.run(work())
    finally:
        release.cancel()
        holder.close()
    assert waited >= 0.4 and rows == 2
    assert ticks >= 10  # the loop kept running while the insert waited


def test_a_rollback_without_a_transaction_makes_no_trip(tmp_path: Path,
                                                        trips: list[str]) -> None:
    """SQLAlchemy's rollbacks of a connection that only read cost no trip to its thread;
    a rollback of an open transaction still undoes it."""
    text = sqlalchemy.text

    async def work() -> dict[str, Any]:
        engine = _engine(tmp_path / "r.db")
        try:
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE t (v INTEGER)"))
                await conn.execute(text("INSERT INTO t VALUES (1)"))
            trips.clear()
            async with engine.connect() as conn:  # (read only: rolled back on the way out)
                read = (await conn.execute(text("SELECT v FROM t"))).scalars().all()
            reading = list(trips)
            trips.clear()
            async with engine.connect() as conn:  # (a write left open: rolled back)
                await conn.execute(text("INSERT INTO t VALUES (2)"))
                await conn.rollback()
            writing = list(trips)
            async with engine.connect() as conn:
                after = (await conn.execute(text("SELECT v FROM t"))).scalars().all()
            return {"read": read, "reading": reading, "writing": writing, "after": after}
        finally:
            await engine.dispose()

    got = asyncio.run(work())
    assert got["read"] == [1] and got["after"] == [1]
    assert got["reading"] == ["_run"]  # (the statement alone: two rollbacks before)
    assert got["writing"].count("rollback") == 1
