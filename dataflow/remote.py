"""The catalog over HTTP: ``RemoteCatalog(url, api_key)`` mirrors the embedded ``Catalog``.

    remote = RemoteCatalog("http://127.0.0.1:8000")        # key from $SMEFLOW_API_KEY
    remote.subscribe(RE, spool_dir="smeflow-spool")           # write runs; spool if down
    remote.run(3)["primary"]["det_image"][0, :10, :10]

Writing, reading and searching are the embedded catalog's (``dataflow.catalog.ClientCatalog``,
the base of both) on a Tiled HTTP client. Scan numbers come from the server, which hands
them out under a lock (``dataflow.server.SCAN_ID_PATH``), above the highest ``scan_id`` in
the catalog: RunEngines sharing a server never draw the same number. While the server is
unreachable the numbering continues from the last number this process saw (a warning
says that another RunEngine may then draw the same number).

Frames are external HDF5 files the server reads itself: a beamline writing through a
``RemoteCatalog`` must write them into the server's ``raw/`` folder (``raw_dir`` when
given, on the same machine or a shared file system). A run that announces a file the
server would refuse fails at that ``resource``/``stream_resource`` document, as with the
embedded catalog (``dataflow.asset_gate``): ``subscribe`` asks the server
(:class:`ServerAssetPolicy`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import fly_streams, run_files
from .asset_gate import AssetGate
from .catalog import (
    Catalog,
    CatalogError,
    ClientCatalog,
    default_data_dir,
    runs_nodes,
)
from .server import API_KEY_ENV, ASSET_CHECK_PATH, SCAN_ID_PATH, read_api_key
from .spool import SpoolingWriter, server_reachable

log = logging.getLogger(__name__)


class ServerAssetPolicy:
    """A catalog server's asset policy, asked per URI (``POST ASSET_CHECK_PATH``): the
    server decides on its own file system, where the files must be.

    A server that cannot be asked (a plain Tiled server: HTTP 404; or one away, while a
    spooling writer keeps the run) refuses nothing here: the server itself still refuses
    the file when the run is written (HTTP 403), as before."""

    def __init__(self, url: str, api_key: str, timeout: float) -> None:
        self.url = url
        self._key = api_key
        self.timeout = timeout

    def refusal(self, uri: object) -> str | None:
        """Why the server would refuse to register ``uri``, or ``None``."""
        import httpx

        if not isinstance(uri, str):
            return f"asset URI {uri!r}: not a URI"
        try:
            response = httpx.post(self.url + ASSET_CHECK_PATH, json={"uri": uri},
                                  headers={"Authorization": f"Apikey {self._key}"},
                                  timeout=self.timeout)
        except httpx.HTTPError as exc:
            self._unasked(uri, f"cannot be asked ({exc})")
            return None
        if response.status_code in (404, 405):
            return None
        if response.status_code != 200:
            self._unasked(uri, f"answered HTTP {response.status_code}")
            return None
        try:
            answer = response.json()
        except ValueError:  # (a proxy's or login page's HTML: not the smeflow server's)
            answer = None
        if not isinstance(answer, dict):
            self._unasked(uri, f"answered {response.text[:80]!r}, not the check's JSON "
                               "object")
            return None
        why = answer.get("refusal")
        return str(why) if why is not None else None

    def _unasked(self, uri: str, why: str) -> None:
        """No verdict on ``uri`` (logged): the server refuses nothing here and still checks
        the file when it gets the run."""
        log.warning("catalog server %s: checking asset %s before the run is written: %s; "
                    "the server checks it when it gets the run", self.url, uri, why)


class RemoteCatalog(ClientCatalog):
    """The run catalog of a ``smeflow catalog serve`` server (or any Tiled server of runs).

    Parameters
    ----------
    url
        The server, e.g. ``http://127.0.0.1:8000``.
    api_key
        The server's key; default ``$SMEFLOW_API_KEY``.
    raw_dir
        The server's ``raw/`` folder as this machine sees it, for ``frame_writer`` users
        (``None`` when unknown).
    probe_timeout
        Seconds to wait for the server's ``/healthz`` before declaring it unreachable.

    Raises
    ------
    CatalogError
        No server answers at ``url``, or it refuses the key.
    """

    def __init__(self, url: str, api_key: str | None = None, *,
                 raw_dir: str | os.PathLike[str] | None = None,
                 probe_timeout: float = 2.0) -> None:
        from tiled.client import from_uri

        from .tiled_index import numpy_structure_clients

        self.url = url.rstrip("/")
        self._key = api_key if api_key is not None else read_api_key(None)
        self._raw_dir = Path(raw_dir).resolve() if raw_dir is not None else None
        self.probe_timeout = probe_timeout
        if not server_reachable(self.url, probe_timeout):
            raise CatalogError(f"no catalog server answers at {self.url}")
        import httpx

        try:
            self.tree: Any = from_uri(self.url, api_key=self._key,
                                      structure_clients=numpy_structure_clients())
        except httpx.HTTPStatusError as exc:
            code = exc.response.status_code
            if code in (401, 403):
                raise CatalogError(f"the catalog server at {self.url} refused the API key "
                                   f"(HTTP {code}); check ${API_KEY_ENV} or the key file"
                                   ) from None
            raise CatalogError(f"the catalog server at {self.url} answered HTTP {code}"
                               ) from None
        self.client, self.derived = runs_nodes(self.tree, self.url)
        self._last_scan_id = 0

    @property
    def api_key(self) -> str:
        """The server's key this catalog uses (to hand to processes of the same user,
        e.g. local Dask workers reading frames from the server; never logged)."""
        return self._key

    # -- writing -----------------------------------------------------------------------

    def spooling_writer(self, spool_dir: str | os.PathLike[str], *,
                        batch_size: int = 1) -> SpoolingWriter:
        """A writer that keeps documents in ``spool_dir`` while the server is away."""
        return SpoolingWriter(self.client, spool_dir, batch_size=batch_size,
                              probe_timeout=self.probe_timeout)

    def scan_id_source(self, md: Mapping[str, Any]) -> int:
        """For ``RunEngine.scan_id_source``: the next scan number, from the server.

        The smeflow server hands it out under a lock (``dataflow.server.SCAN_ID_PATH``),
        so RunEngines sharing a server never get the same number; it is above the
        highest ``scan_id`` on the server, ``md["scan_id"]`` and the last number handed
        out here. A plain Tiled server (no such endpoint) gives its highest scan number
        + 1; an unreachable one, the last number here + 1 (with a warning).
        """
        floor = md.get("scan_id", 0)
        floor = floor if isinstance(floor, int) and not isinstance(floor, bool) else 0
        floor = max(floor, self._last_scan_id)
        try:
            if server_reachable(self.url, self.probe_timeout):
                floor = max(floor, self.max_scan_id())
                try:
                    handed = self._server_scan_id(floor)
                except Exception:  # one retry: a dropped answer may still have counted
                    handed = self._server_scan_id(floor)
                if handed is not None:
                    self._last_scan_id = handed
                    return handed
            else:
                log.warning("catalog server %s unreachable: scan number continues from "
                            "%d (another RunEngine may draw the same)", self.url, floor)
        except Exception as exc:  # never abort a run over its number
            log.warning("catalog server %s: cannot get a scan number (%s); continuing from "
                        "%d (another RunEngine may draw the same)", self.url, exc, floor)
        self._last_scan_id = floor + 1
        return self._last_scan_id

    def _server_scan_id(self, floor: int) -> int | None:
        """The server's next scan number above ``floor``; None when it has no counter."""
        import httpx

        response = httpx.post(self.url + SCAN_ID_PATH, json={"floor": floor},
                              headers={"Authorization": f"Apikey {self._key}"},
                              timeout=max(self.probe_timeout, 10.0))
        if response.status_code in (404, 405):
            return None
        response.raise_for_status()
        value = response.json().get("scan_id")
        if isinstance(value, bool) or not isinstance(value, int) or value <= floor:
            raise CatalogError(f"{self.url}{SCAN_ID_PATH} answered {response.text[:80]!r}")
        return value

    def subscribe(self, RE: Any, batch_size: int | None = None, *,
                  spool_dir: str | os.PathLike[str] | None = None) -> int:
        """Write ``RE``'s runs to the server and number them from the server's catalog.

        With ``spool_dir`` the writer is a ``SpoolingWriter`` (``batch_size`` 1 unless
        given), which keeps documents locally while the server is unreachable and sends
        them when it is back. The frame files of each run are closed before its stop
        document (``dataflow.run_files``); a flyer's stream is declared before its kickoff
        (``dataflow.fly_streams``). A file announced that the server would refuse fails
        the run at its ``resource``/``stream_resource`` document, naming it
        (``dataflow.asset_gate``, the server asked: :class:`ServerAssetPolicy`). Returns
        the subscription token.
        """
        RE.scan_id_source = self.scan_id_source
        run_files.install(RE)  # (a run's files closed before its stop: run_files)
        fly_streams.install(RE)  # (bp.fly's flyers announce stream_*: fly_streams)
        callback: Any
        if spool_dir is not None:
            callback = self.spooling_writer(spool_dir, batch_size=batch_size or 1)
        else:
            callback = self.writer(batch_size)
        raw = str(self._raw_dir) if self._raw_dir is not None else "the server's raw/ folder"
        gated = AssetGate(callback, ServerAssetPolicy(self.url, self._key, self.probe_timeout),
                          f"at {self.url}", raw, hint=lambda uri: "")
        token: int = RE.subscribe(gated)
        return token

    @property
    def where(self) -> str:
        """The server's address."""
        return self.url

    @property
    def raw_dir(self) -> Path:
        """The server's ``raw/`` folder, where files for its runs must be written (same
        machine); ``CatalogError`` when it was not given."""
        if self._raw_dir is None:
            raise CatalogError(f"{self.url}: no raw_dir given: files for this server's runs "
                               "must go into its data folder's raw/ (pass raw_dir=, or "
                               "--data DIR on the command line)")
        return self._raw_dir

    def __repr__(self) -> str:
        return f"<RemoteCatalog {self.url}>"


def open_catalog(data: str | os.PathLike[str] | None = None, url: str | None = None,
                 api_key_file: str | os.PathLike[str] | None = None) -> Catalog | RemoteCatalog:
    """The catalog a command works on: the server at ``url`` (key from ``api_key_file`` or
    ``$SMEFLOW_API_KEY``; ``data`` is then the server's data folder, whose ``raw/`` takes
    the files written for its runs) or else the embedded catalog in ``data`` (default
    ``default_data_dir()``), which must exist.

    Raises ``CatalogError`` (one line) for a missing catalog or an unreachable server.
    """
    folder = Path(data) if data else default_data_dir()
    if url:
        return RemoteCatalog(url, read_api_key(api_key_file), raw_dir=folder / "raw")
    if not (folder / "catalog.db").is_file():
        raise CatalogError(f"no catalog in {folder.resolve()} (give --data DIR or set "
                           "SMEFLOW_DATA)")
    return Catalog(folder)


__all__ = ["RemoteCatalog", "ServerAssetPolicy", "open_catalog"]
