"""Frames that Dask workers read from the catalog server over HTTP instead of from files.

:class:`analysis.distributed.FrameSource` needs the raw HDF5 files at the same paths on
every worker (a shared file system). When the workers are elsewhere — a cluster that
sees the catalog server but not its disks — :class:`TiledFrameSource` is the same
stream's frames as the Tiled server serves them: each task asks the server for its block
of frames (``node[frames, rows, :]``: only those bytes travel) and never opens a file.
:func:`analysis.distributed.reduce_on_dask` uses it with ``frames_from="tiled"`` (for
a :class:`dataflow.remote.RemoteCatalog`).

The server's API key is not part of the task: a task graph travels through the scheduler
and may be shown on its dashboard. Each worker takes the key from its own environment
(``SMEFLOW_API_KEY``, the variable ``smeflow catalog serve`` reads), so start the workers
with it set (a local cluster inherits the client's environment).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.reduce import ReductionError

__all__ = ["API_KEY_ENV", "TiledFrameSource", "tiled_frame_source"]

API_KEY_ENV = "SMEFLOW_API_KEY"

_CLIENTS: dict[str, Any] = {}
_LOCK = threading.Lock()


def _client(url: str) -> Any:
    """This process's Tiled client of the server at ``url`` (opened once, key from the
    environment)."""
    from tiled.client import from_uri

    from dataflow.tiled_index import numpy_structure_clients

    with _LOCK:
        client = _CLIENTS.get(url)
        if client is None:
            key = os.environ.get(API_KEY_ENV)
            if not key:
                raise ReductionError(f"the catalog server {url}: this worker has no API key "
                                     f"(start it with ${API_KEY_ENV} set)")
            try:
                client = from_uri(url, api_key=key,
                                  structure_clients=numpy_structure_clients())
            except Exception as exc:
                raise ReductionError(f"the catalog server {url}: cannot connect "
                                     f"({type(exc).__name__}: {exc})") from None
            _CLIENTS[url] = client
        return client


@dataclass(frozen=True)
class TiledFrameSource:
    """A stream's frames as a worker reads them from the Tiled server at ``url``:
    ``path`` is the array node's path on the server (its container, the run's uid, the
    stream, the data key), ``shape`` the
    stream's ``(frames, rows, cols)``; ``uris`` the catalog's asset URIs (for the
    derived run's ``inputs``). Plain strings and integers: it pickles to any worker."""

    url: str
    path: tuple[str, ...]
    shape: tuple[int, int, int]
    uris: tuple[str, ...] = ()

    def read(self, frames: slice, rows: slice = slice(None)) -> npt.NDArray[Any]:
        """Frames ``frames`` (a step-1 slice), detector ``rows``, all columns."""
        with self.open() as node:
            return node.read(frames, rows)

    def open(self) -> _OpenTiled:
        """The array node on the server, for several reads (a context manager)."""
        return _OpenTiled(self)


class _OpenTiled:
    """The array node of a :class:`TiledFrameSource` (nothing to close: the client is
    kept per process)."""

    def __init__(self, source: TiledFrameSource) -> None:
        self.source = source
        node = _client(source.url)
        try:
            for key in source.path:
                node = node[key]
        except (KeyError, ValueError):  # ValueError: a run catalog's malformed uid
            raise ReductionError(f"the catalog server {source.url} has no "
                                 f"{'/'.join(source.path)}") from None
        self._node = node

    def __enter__(self) -> _OpenTiled:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        return None

    def read(self, frames: slice, rows: slice = slice(None)) -> npt.NDArray[Any]:
        """Frames ``frames``, rows ``rows`` (all columns), fetched from the server."""
        n = self.source.shape[0]
        lo, hi, step = frames.indices(n)
        if step != 1:
            raise ReductionError(f"frames {frames}: only step-1 slices are read")
        if hi <= lo:
            return np.zeros((0, *self.source.shape[1:]))[:, rows, :]
        return np.asarray(self._node[lo:hi, rows, :])


def tiled_frame_source(node: Any, url: str, what: str) -> TiledFrameSource:
    """The :class:`TiledFrameSource` of a catalog array ``node`` (a Tiled client node of
    the server at ``url``: its path on the server is the node's own); ``ReductionError``
    naming ``what`` when it holds no frames."""
    shape = tuple(int(v) for v in node.shape)
    if len(shape) != 3:
        raise ReductionError(f"{what}: expected frames (n, rows, cols), got shape {shape}")
    uris = tuple(str(asset.data_uri) for source in node.data_sources() or []
                 for asset in source.assets)
    path = tuple(str(part) for part in node.path_parts)
    return TiledFrameSource(url.rstrip("/"), path, (shape[0], shape[1], shape[2]), uris)
