"""The catalog as a Tiled server over HTTP: SQLite or PostgreSQL, an API key on every request.

    SMEFLOW_API_KEY=... smeflow catalog serve --data ./smeflow-data
    smeflow catalog serve --db postgresql://smeflow@127.0.0.1:5432/catalog --api-key-file key
    smeflow catalog replay ./smeflow-data/spool --url http://127.0.0.1:8000

(The commands are in ``dataflow.server_cli``, the request guards in
``dataflow.server_guards``.)

The server opens the same data folder layout as the embedded ``Catalog`` (``catalog.db``,
``tables.db``, ``storage/``, ``raw/``), so either can open a folder (not both at once).
With ``--db postgresql://…`` the run metadata and the event tables live in PostgreSQL;
``storage/`` and ``raw/`` stay in the data folder. Raw HDF5 files must be written into the
server's ``raw/`` folder (same machine or a shared file system); they are registered as
external data and read by the server.

Security:

- it binds 127.0.0.1 unless ``--host`` asks for another address, and it binds its port
  before it creates any file or folder (a busy port leaves nothing behind);
- every request and WebSocket upgrade needs the API key (Tiled's single-user key; no
  anonymous access), except ``GET /healthz`` and Tiled's "about" document ``GET /api/v1/``
  (no data; every Tiled client reads it before sending its key). The key comes from
  ``$SMEFLOW_API_KEY`` or ``--api-key-file`` (a file only its owner may read); it is never
  printed or logged: Tiled's banner with the key URL is not shown, and ``api_key=`` in a
  logged request line is masked;
- request bodies are limited (``--max-request-mb``, 64 MiB by default; HTTP 413);
- malformed query parameters are refused with HTTP 400 naming them, and Tiled's zarr
  routes are not served (``dataflow.server_requests``);
- every asset URI a client registers, and every one read, must pass the catalog's
  ``AssetPolicy`` (``dataflow.assets``): ``file:`` inside the data folders only, no other
  scheme but the catalog's own table store; raw asset downloads are off.

Scan numbers: the server hands them out (``POST /smeflow/v1/scan_id``, key required) from
the data folder's ``scan_id`` counter, the file the embedded ``Catalog`` uses, under an
exclusive lock, above the ``floor`` the client sends (``RemoteCatalog`` sends the highest
``scan_id`` it finds in the catalog): RunEngines in several processes or on several
machines writing to one server never get the same number (``RemoteCatalog.scan_id_source``
asks for it).

Tiled keeps the single-user key in process-wide settings: run one server per process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from .assets import AssetPolicy, guard_adapters
from .catalog_db import (
    DamagedDatabaseError,
    check_table_store,
    database_ready,
    folder_lock,
    wait_when_busy,
)
from .file_uri import check_uri_path
from .relocate import DamagedRootFileError, settle_root
from .run_keys import RunMetadataKeys
from .scan_id import ScanIdCounter
from .server_config import (
    API_KEY_ENV,
    ServerConfigError,
    _tables_uri,
    check_key,
    database_uri,
    read_api_key,
    redact,
)
from .server_guards import (
    DEFAULT_MAX_BODY,
    ConfinedAssets,
    LimitBodySize,
    RequireApiKey,
    answer_damage,
    answer_refusals,
)
from .server_requests import CheckedRequests

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
SCAN_ID_PATH = "/smeflow/v1/scan_id"
"""``POST {"floor": N}`` → ``{"scan_id": M}``: the next scan number, M > N (see the module)."""
ASSET_CHECK_PATH = "/smeflow/v1/asset_check"
"""``POST {"uri": U}`` → ``{"refusal": why or null}``: whether the server would refuse to
register a file at ``U`` (its ``AssetPolicy``), asked when a run announces it
(``dataflow.remote``: a remote subscriber fails the run there, as the embedded catalog's
``AssetGate`` does)."""
MAX_SCAN_ID = 10**18 - 1
"""The largest scan number handed out (what SQLite's and PostgreSQL's integers hold)."""


def catalog_adapter(data_dir: Path, database: str, readable: Sequence[Path]) -> Any:
    """The Tiled catalog adapter the server serves (created on first use)."""
    from tiled.catalog import from_uri

    init = True
    if database.startswith("sqlite:///"):
        db = Path(database[len("sqlite:///"):].partition("?")[0])
        init = not database_ready(db)
    if _tables_uri(database, data_dir).startswith("sqlite:"):
        check_table_store(data_dir / "tables.db")
    try:
        adapter = from_uri(database, writable_storage=[str(data_dir / "storage"),
                                                       _tables_uri(database, data_dir)],
                           readable_storage=[str(p) for p in readable],
                           init_if_not_exists=init)
        with folder_lock(data_dir):  # a folder moved since: its assets follow it
            settle_root(data_dir, database)
        return guard_adapters(wait_when_busy(adapter))
    except DamagedRootFileError as exc:  # (not the database: the file it names)
        raise ServerConfigError(str(exc)) from None
    except Exception as exc:
        raise ServerConfigError(f"cannot open catalog database {redact(database)}: "
                                f"{_failure_reason(exc, database)}") from None


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Failure|Warning): (.+)$")
_SQLALCHEMY_PREFIX = re.compile(r"^\([\w.]+\)\s*")  # "(sqlite3.DatabaseError) ..."


def _failure_reason(exc: BaseException, database: str) -> str:
    """The database's own message for a failure to open ``database``, on one line.

    SQLAlchemy errors carry the driver's exception (``orig``); tiled reports a failed
    initialization with the whole (rich) traceback of its subprocess, whose last
    ``SomethingError: message`` line is the reason. SQLAlchemy's "[SQL: …]" and
    "(Background on this error at …)" lines are dropped, and the URI's password masked.
    """
    reason = ""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen and not reason:
        seen.add(id(link))
        orig = getattr(link, "orig", None)
        if isinstance(orig, BaseException):
            reason = next((x.strip() for x in str(orig).splitlines() if x.strip()), "")
        link = link.__cause__ or link.__context__
    if not reason:
        lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
        found = [m.group(1) for m in map(_EXCEPTION_LINE.match, lines) if m]
        plain = [x for x in lines if not x.startswith(("[SQL:", "(Background on this error"))
                 and x[0].isascii()]  # the traceback box is drawn with non-ASCII lines
        reason = found[-1] if found else plain[0] if plain else ""
    reason = _SQLALCHEMY_PREFIX.sub("", reason).strip() or type(exc).__name__
    password = urlsplit(database).password
    if password:
        reason = reason.replace(f":{password}@", ":***@")
        if len(password) >= 4:
            reason = reason.replace(password, "***")
    return reason


def build_server_app(data_dir: str | os.PathLike[str], api_key: str, *,
                     database: str | None = None,
                     readable_storage: Iterable[str | os.PathLike[str]] = (),
                     max_body: int = DEFAULT_MAX_BODY) -> Any:
    """The ASGI application: Tiled serving the catalog of ``data_dir``, key required.

    Parameters
    ----------
    data_dir
        The data folder (``storage/`` and ``raw/`` are created in it).
    api_key
        The single key every request must carry (``Authorization: Apikey …``).
    database
        ``sqlite:///…`` or ``postgresql://…``; default the folder's ``catalog.db``.
    readable_storage
        Further folders external files may live in (``raw/`` always may).
    max_body
        The largest request body accepted (bytes); larger ones get HTTP 413.
    """
    from tiled.config import Authentication

    from .tiled_app import build_tiled_app

    root = Path(data_dir).resolve()
    if root.exists() and not root.is_dir():
        raise ServerConfigError(f"--data {root}: a file, not a folder")
    key = check_key(api_key, "the API key")
    extra = [Path(p).resolve() for p in readable_storage]
    check_uri_path(root, "data folder", last=False, error=ServerConfigError)
    for path in extra:
        check_uri_path(path, "readable folder", error=ServerConfigError)
    uri = database_uri(database, root)  # checked before any folder is created
    raw = root / "raw"
    created = [f for f in (root, raw, root / "storage") if not f.exists()]
    for folder in (root, raw, root / "storage"):
        folder.mkdir(parents=True, exist_ok=True)
    readable = [raw, *extra]
    try:
        adapter = catalog_adapter(root, uri, readable)
    except (ServerConfigError, DamagedDatabaseError):  # no empty data folder left behind
        for folder in reversed(created):
            with contextlib.suppress(OSError):  # not empty: something was written, keep it
                folder.rmdir()
        raise
    app = build_tiled_app(adapter, Authentication(single_user_api_key=key,
                                                  allow_anonymous_access=False))
    app.add_route(SCAN_ID_PATH, _scan_id_endpoint(ScanIdCounter(root / "scan_id")),
                  methods=["POST"])
    policy = AssetPolicy.of_adapter(adapter)
    app.add_route(ASSET_CHECK_PATH, _asset_check_endpoint(policy), methods=["POST"])
    app.add_middleware(ConfinedAssets, policy=policy)
    app.add_middleware(RunMetadataKeys)
    answer_refusals(app)
    if uri.startswith("sqlite"):  # (a damaged record: HTTP 409 naming it, not 500)
        answer_damage(app, Path(uri.split(":///", 1)[1].partition("?")[0]))
    app.add_middleware(CheckedRequests)
    app.add_middleware(LimitBodySize, max_bytes=max_body)
    app.add_middleware(RequireApiKey, key=key)  # added last: runs first
    return app


async def _json_object(request: Any) -> dict[str, Any] | None:
    """The JSON object a request's body holds (``{}`` for no body), or ``None`` for a body
    that is not one: what the endpoints answer with HTTP 422."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _scan_id_endpoint(counter: ScanIdCounter) -> Callable[[Any], Awaitable[Any]]:
    """The handler of ``POST SCAN_ID_PATH``: one number per call, never handed out twice."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    async def next_scan_id(request: Any) -> Any:
        body = await _json_object(request)
        floor = body.get("floor", 0) if body is not None else None
        if isinstance(floor, bool) or not isinstance(floor, int) \
                or not 0 <= floor < MAX_SCAN_ID:
            return JSONResponse({"detail": f"expected {{\"floor\": N}} with N an integer "
                                           f"in 0 … {MAX_SCAN_ID - 1}"}, status_code=422)
        try:
            value = await run_in_threadpool(counter.next, floor)
        except ValueError as exc:  # an unreadable counter file: say which and why
            return JSONResponse({"detail": str(exc)}, status_code=500)
        return JSONResponse({"scan_id": value})

    return next_scan_id


def _asset_check_endpoint(policy: AssetPolicy) -> Callable[[Any], Awaitable[Any]]:
    """The handler of ``POST ASSET_CHECK_PATH``: the policy's refusal of one URI."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    async def asset_check(request: Any) -> Any:
        body = await _json_object(request)
        uri = body.get("uri") if body is not None else None
        if not isinstance(uri, str):
            return JSONResponse({"detail": 'expected {"uri": "..."}'}, status_code=422)
        return JSONResponse({"refusal": await run_in_threadpool(policy.refusal, uri)})

    return asset_check


# -- running -----------------------------------------------------------------------------


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServerConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                                ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _uvicorn_server(app: Any, host: str, port: int) -> Any:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="on",
                            timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


class ServerHandle:
    """A catalog server running in a thread of this process: ``start()``, ``stop()``, again.

    ``port=0`` picks a free port on the first start; later starts reuse that port, so
    clients (and a spooling writer) find the server again after a restart.

    Parameters
    ----------
    data_dir, api_key, database, readable_storage, max_body
        As for ``build_server_app``.
    host, port
        The address to listen on (loopback by default).
    """

    def __init__(self, data_dir: str | os.PathLike[str], api_key: str, *,
                 database: str | None = None, host: str = DEFAULT_HOST, port: int = 0,
                 readable_storage: Iterable[str | os.PathLike[str]] = (),
                 max_body: int = DEFAULT_MAX_BODY) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.max_body = max_body
        self._key = check_key(api_key, "the API key")
        self.database = database
        self.host = host
        self.port = port
        self.readable_storage = list(readable_storage)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 60.0) -> ServerHandle:
        """Build the app, listen and serve in a daemon thread; return when it answers.

        Raises
        ------
        ServerConfigError
            Bad configuration, a busy port, or the server failed to start.
        """
        if self.running:
            raise ServerConfigError(f"the catalog server at {self.url} is already running")
        sock = _bind(self.host, self.port)  # before any file: a busy port leaves none
        try:
            app = build_server_app(self.data_dir, self._key, database=self.database,
                                   readable_storage=self.readable_storage,
                                   max_body=self.max_body)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        server = _uvicorn_server(app, self.host, self.port)
        self._failure = None

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # SystemExit from uvicorn included
                self._failure = exc
            finally:
                sock.close()

        thread = threading.Thread(target=serve, name=f"smeflow-catalog-server:{self.port}",
                                  daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        started = threading.Event()
        while not started.wait(0.02):
            if server.started:
                started.set()
            elif not thread.is_alive() or timeout <= 0:
                self.stop()
                reason = f": {self._failure}" if self._failure else ""
                raise ServerConfigError(f"the catalog server at {self.url} did not start"
                                        f"{reason}")
            timeout -= 0.02
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the requests in flight, close the port and the database (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self.start() if not self.running else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<ServerHandle {self.url} {state} data={self.data_dir}>"


def serve(data_dir: str | os.PathLike[str], api_key: str, *, database: str | None = None,
          host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          readable_storage: Iterable[str | os.PathLike[str]] = (),
          max_body: int = DEFAULT_MAX_BODY) -> None:
    """Run the server in this thread until SIGINT/SIGTERM (what ``catalog serve`` does).

    The port is bound first: when it is busy nothing is created (no data folder, no
    database)."""
    sock = _bind(host, port)
    try:
        app = build_server_app(data_dir, api_key, database=database,
                               readable_storage=readable_storage, max_body=max_body)
        if host not in _LOOPBACK:
            print(f"warning: listening on {host}: reachable from other machines; every "
                  "request still needs the API key, but traffic is plain HTTP",
                  file=sys.stderr)
        shown = database_uri(database, Path(data_dir).resolve())
        print(f"smeflow catalog server on http://{host}:{port}  database {redact(shown)}  "
              f"data {Path(data_dir).resolve()}  (API key required)", file=sys.stderr,
              flush=True)
        _uvicorn_server(app, host, port).run(sockets=[sock])
    finally:
        sock.close()


__all__ = ["API_KEY_ENV", "ASSET_CHECK_PATH", "DEFAULT_HOST", "DEFAULT_PORT", "SCAN_ID_PATH",
           "ServerConfigError", "ServerHandle", "build_server_app", "catalog_adapter",
           "database_uri", "read_api_key", "redact", "serve"]
