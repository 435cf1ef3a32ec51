"""Where a stream's frames are on disk, as Dask workers read them: :class:`FrameSource`
(the HDF5 files in order, with their dataset and frame counts; plain strings and
integers, so it pickles to any worker) and :func:`frame_source`, which builds it from a
catalog array node. The files must be at the same paths on the workers (a shared file
system); :mod:`analysis.tiled_frames` is the alternative that fetches frames from the
catalog server. :mod:`analysis.distributed` re-exports both names.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.reduce import ReductionError, uri_path
from dataflow.hdf5 import DEFAULT_DATASET, FrameReader

__all__ = ["FrameSource", "frame_source"]



@dataclass(frozen=True)
class FrameSource:
    """A stream's frames as a worker reads them: HDF5 files in order, each with the
    ``dataset`` path and its number of frames; ``shape`` is the stream's
    ``(frames, rows, cols)`` (the first ``shape[0]`` frames of the files, concatenated).

    Plain strings and integers only, so it pickles to any worker; the files must be at
    the same paths on the workers (a shared file system)."""

    files: tuple[tuple[str, str, int], ...]
    shape: tuple[int, int, int]
    uris: tuple[str, ...] = ()
    """The catalog's asset URIs (as recorded, for the derived run's ``inputs``)."""

    def read(self, frames: slice, rows: slice = slice(None)) -> npt.NDArray[Any]:
        """Frames ``frames`` (a step-1 slice), detector ``rows``, all columns."""
        with self.open() as readers:
            return readers.read(frames, rows)

    def open(self) -> _OpenSource:
        """Open the files once for several reads (a context manager)."""
        return _OpenSource(self)


class _OpenSource:
    """The files of a :class:`FrameSource` opened for reading (closed on exit)."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self._readers: list[FrameReader] = []

    def __enter__(self) -> _OpenSource:
        try:
            for path, dataset, _ in self.source.files:
                self._readers.append(FrameReader(path, dataset))
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close every file (idempotent)."""
        for reader in self._readers:
            reader.close()
        self._readers.clear()

    def read(self, frames: slice, rows: slice = slice(None)) -> npt.NDArray[Any]:
        """See :meth:`FrameSource.read`."""
        n = self.source.shape[0]
        start, stop, step = frames.indices(n)
        if step != 1:
            raise ReductionError(f"frames {frames}: expected a step of 1")
        parts: list[npt.NDArray[Any]] = []
        offset = 0
        for reader, (_, _, count) in zip(self._readers, self.source.files, strict=True):
            lo, hi = max(start, offset), min(stop, offset + count)
            if lo < hi:
                parts.append(reader.read(np.s_[lo - offset:hi - offset, rows, :]))
            offset += count
        if not parts:
            return np.zeros((0, *self.source.shape[1:]))[:, rows, :]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def frame_source(node: Any, what: str) -> FrameSource:
    """The :class:`FrameSource` of a catalog array node (its data sources' HDF5 assets).

    Opens each file's header (not its frames) to learn how many frames it holds; raises
    ``ReductionError`` naming ``what`` and the file when the node is not backed by HDF5
    frame files or they hold fewer frames than the node."""
    shape = tuple(int(v) for v in node.shape)
    if len(shape) != 3:
        raise ReductionError(f"{what}: expected frames (n, rows, cols), got shape {shape}")
    files: list[tuple[str, str, int]] = []
    uris: list[str] = []
    for source in node.data_sources() or []:
        if source.mimetype != "application/x-hdf5":
            raise ReductionError(f"{what}: data source of type {source.mimetype!r}; only "
                                 "HDF5 frame files can be read by Dask workers")
        dataset = str((source.parameters or {}).get("dataset") or DEFAULT_DATASET)
        uris.extend(str(asset.data_uri) for asset in source.assets)
        for asset in sorted(source.assets, key=lambda a: a.num or 0):
            path = uri_path(str(asset.data_uri))
            with FrameReader(path, dataset) as reader:
                if reader.frame_shape != shape[1:]:
                    raise ReductionError(f"{what}: {path} holds frames {reader.frame_shape}, "
                                         f"the run {shape[1:]}")
                files.append((str(path), dataset, len(reader)))
    if not files:
        raise ReductionError(f"{what}: no HDF5 file behind the frames")
    held = sum(count for _, _, count in files)
    if held < shape[0]:
        raise ReductionError(f"{what}: the run has {shape[0]} frames, its files "
                             f"({', '.join(p for p, _, _ in files)}) hold {held}")
    return FrameSource(tuple(files), (shape[0], shape[1], shape[2]), tuple(uris))
