"""Reading frame files back: :class:`FrameReader` (also while a writer still has the file
open, through SWMR), :func:`open_frames`, :func:`read_counters` and :func:`read_lost`.

Every failure of a file itself — missing, truncated, cut short by a full disk, corrupt,
without the frame dataset — is one ``HDF5ReadError`` naming the file (and the frame where
one frame is damaged), never an h5py traceback or a hang. ``dataflow.hdf5`` writes these
files and re-exports this module's names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from .cut_short import CutShortFile, verify_stored
from .hdf5_positions import SamplePositions, read_sample_positions
from .integrity import (
    HDF5ReadError,
    Superblock,
    check_frames,
    frame_range,
    read_superblock,
    verify_read,
)
from .regular_file import NotRegularFileError, check_regular, h5_open

DEFAULT_DATASET = "/entry/data/data"
"""Where the frames live inside the file (the NeXus-style path area detectors use)."""

COUNTERS_DATASET = "/entry/instrument/detector/counters"
"""Where a file's counters (``FrameWriter(counters=...)``) live; names in attr ``names``."""

LOST_ATTR = "lost_frames"
"""The frame dataset's attribute naming the dataset of its lost frames' indices
(``FrameWriter(lost_frames=True)``)."""


class FrameReader:
    """Read frames from an HDF5 frame file, also while it is being written (SWMR).

    Every failure of the file itself (missing, truncated, corrupt, no such dataset) is an
    ``HDF5ReadError`` naming the file, not an h5py traceback.
    """

    def __init__(self, path: str | os.PathLike[str], dataset: str = DEFAULT_DATASET) -> None:
        self.path = Path(path)
        try:
            check_regular(self.path)
        except NotRegularFileError as exc:
            raise HDF5ReadError(str(exc)) from None
        except OSError as exc:
            raise HDF5ReadError(f"{self.path}: no such frame file" if not
                                self.path.exists() else
                                f"{self.path}: cannot read: {exc.strerror or exc}") from None
        # A complete file is checked without SWMR first: HDF5 then compares the file's
        # size with the end of file its superblock records and fails at once on bad
        # metadata. In SWMR mode it skips the size check (the file may be growing) and
        # retries a metadata read that fails its checksum for a long time (minutes), so
        # a truncated or corrupt file would hang the reader. A file still open for
        # writing (or left so by a killed writer) cannot be opened without SWMR: it is
        # checked in SWMR mode only. A file closed but cut short (the disk filled up) is
        # read through ``dataflow.cut_short``: only frames that match their CRC-32.
        self._cut: CutShortFile | None = None
        try:
            superblock: Superblock | None = read_superblock(self.path)
        except HDF5ReadError:
            superblock = None  # the checks below say what is wrong
        if superblock is not None and superblock.cut_short:
            self._cut = CutShortFile(self.path, superblock)
            try:
                self._file, self._ds = self._cut.file, self._cut.dataset(dataset)
            except BaseException:
                self._cut.close()
                raise
            return
        try:
            checked: tuple[h5py.File, h5py.Dataset] | None = _open_checked(
                self.path, dataset, swmr=False)
        except _StillWritten:
            checked = None
        try:
            self._file, self._ds = _open_checked(self.path, dataset, swmr=True)
        except HDF5ReadError as exc:
            # Another handle in this process has the file open without SWMR, and HDF5
            # shares one open file per process: read through the checked handle.
            if checked is None or "SWMR read access flag" not in str(exc):
                raise
            self._file, self._ds = checked
            return
        finally:
            if checked is not None and checked[0] is not getattr(self, "_file", None):
                checked[0].close()

    def refresh(self) -> int:
        """See frames flushed by the writer since opening; returns the frame count."""
        if not self._file.swmr_mode:  # opened without SWMR: nobody else is writing it
            return len(self)
        try:
            self._ds.refresh()
        except (OSError, RuntimeError) as exc:
            raise HDF5ReadError(f"{self.path}: cannot refresh (corrupt file?): "
                                f"{_reason(exc)}") from None
        return len(self)

    def __len__(self) -> int:
        return int(self._ds.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the frames."""
        return (int(self._ds.shape[1]), int(self._ds.shape[2]))

    @property
    def dtype(self) -> np.dtype[Any]:
        """Pixel type."""
        dtype: np.dtype[Any] = np.dtype(self._ds.dtype)
        return dtype

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """The dataset's chunk shape."""
        chunks = self._ds.chunks
        return tuple(chunks) if chunks is not None else None

    def read(self, index: Any = ()) -> np.ndarray[Any, Any]:
        """``dataset[index]`` with file errors reported as ``HDF5ReadError``: frames not
        completely on disk (``dataflow.integrity.IncompleteDataError``), whole frames that
        fail their stored CRC-32 (``ChecksumError``), anything h5py cannot read."""
        try:
            frames = frame_range(index, len(self))
            check_frames(self._ds, self.path, frames)
            if self._cut is not None:
                verify_stored(self._ds, self.path, frames)
            data = np.asarray(self._ds[index])
            verify_read(self._ds, self.path, index, data)
        except HDF5ReadError:
            raise
        except (OSError, RuntimeError, ValueError) as exc:
            raise HDF5ReadError(f"{self.path}: cannot read {index!r} (corrupt data?): "
                                f"{_reason(exc)}") from None
        return data

    def frame(self, i: int) -> np.ndarray[Any, Any]:
        """Frame ``i`` (negative counts from the end)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.path}: frame {i} out of range, file has {n} frames")
        return self.read(i)

    def sinogram(self, row: int) -> np.ndarray[Any, Any]:
        """Detector row ``row`` of every frame: shape ``(n_frames, cols)``."""
        rows = self.frame_shape[0]
        if not 0 <= row < rows:
            raise IndexError(f"{self.path}: row {row} out of range 0..{rows - 1}")
        return self.read(np.s_[:, row, :])

    def sample_positions(self) -> SamplePositions | None:
        """The sample's positions the file records frame by frame, paired with its frames
        (``dataflow.hdf5_positions``: frame ``i`` has row ``i``; a file still being written,
        or one its writer never closed, has positions for fewer frames than it holds); None
        when it records none."""
        try:
            return read_sample_positions(self._file, self._ds.name, len(self), self.path)
        except HDF5ReadError:
            raise
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise HDF5ReadError(f"{self.path}: cannot read the sample positions (corrupt "
                                f"file?): {_reason(exc)}") from None

    def close(self) -> None:
        """Close the file (idempotent)."""
        self._file.close()
        if self._cut is not None:
            self._cut.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_counters(path: str | os.PathLike[str]) -> dict[str, int]:
    """The counters a ``FrameWriter`` stored in ``path`` (empty when it declared none).

    Raises ``HDF5ReadError`` naming the file when it cannot be read."""
    p = Path(path)
    try:
        with h5_open(p, swmr=True) as f:
            node = f.get(COUNTERS_DATASET)
            if not isinstance(node, h5py.Dataset):
                return {}
            names = [str(n) for n in node.attrs.get("names", [])]
            values = [int(v) for v in node[...]]
    except NotRegularFileError as exc:
        raise HDF5ReadError(f"{p}: cannot read counters: {exc.strerror}") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise HDF5ReadError(f"{p}: cannot read counters: {_reason(exc)}") from None
    if len(names) != len(values):
        raise HDF5ReadError(f"{p}: {COUNTERS_DATASET} has {len(values)} values for "
                            f"{len(names)} names")
    return dict(zip(names, values, strict=True))


def read_lost(path: str | os.PathLike[str], dataset: str = DEFAULT_DATASET) -> list[int]:
    """The acquisition indices of the frames lost before reaching ``dataset`` of
    ``path`` (``FrameWriter(lost_frames=True)``; empty when none were, or none recorded).

    Raises ``HDF5ReadError`` naming the file when it cannot be read."""
    p = Path(path)
    try:
        with h5_open(p, swmr=True) as f:
            frames = f.get(dataset)
            name = frames.attrs.get(LOST_ATTR) if isinstance(frames, h5py.Dataset) else None
            node = f.get(str(name)) if name is not None else None
            return [int(v) for v in node[...]] if isinstance(node, h5py.Dataset) else []
    except NotRegularFileError as exc:
        raise HDF5ReadError(f"{p}: cannot read the lost frames: {exc.strerror}") from None
    except (OSError, RuntimeError, ValueError) as exc:
        raise HDF5ReadError(f"{p}: cannot read the lost frames: {_reason(exc)}") from None


class _StillWritten(Exception):
    """A frame file that a writer still has open (only SWMR can read it)."""


def _open_checked(path: Path, dataset: str, swmr: bool) -> tuple[h5py.File, h5py.Dataset]:
    """Open ``path`` and its 3-D ``dataset``, checking every indexed chunk lies inside the
    file (a truncated file opens fine in SWMR mode but misses its tail).

    Raises ``HDF5ReadError`` naming the file, or ``_StillWritten`` when ``swmr`` is False
    and a writer has the file open."""
    try:
        f = h5_open(path, swmr=swmr)
    except NotRegularFileError as exc:
        raise HDF5ReadError(str(exc)) from None
    except (OSError, RuntimeError) as exc:
        text = str(exc)
        if not swmr and ("already open for write" in text
                         or re.search(r"\block(ing)?\b", text)):  # not "sblock"
            raise _StillWritten(text) from None
        sizes = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text)
        if sizes:
            raise HDF5ReadError(f"{path}: not a readable HDF5 file (truncated: {sizes[1]} "
                                f"bytes, its superblock says {sizes[2]})") from None
        raise HDF5ReadError(f"{path}: not a readable HDF5 file (truncated or corrupt?): "
                            f"{_reason(exc)}") from None
    try:
        try:
            node = f[dataset]
        except (KeyError, OSError, RuntimeError, ValueError) as exc:
            raise HDF5ReadError(f"{path}: no readable dataset {dataset!r} "
                                f"({_reason(exc)})") from None
        if not isinstance(node, h5py.Dataset) or node.ndim != 3:
            raise HDF5ReadError(f"{path}: {dataset!r} is not a 3-D frame dataset")
        size = path.stat().st_size
        try:
            # one pass over the chunk index (get_chunk_info(i) walks it from the start
            # for every i: quadratic, 45 s for a 1000-frame megapixel file)
            beyond: list[Any] = []
            node.id.chunk_iter(lambda info: beyond.append(info) if not beyond
                               and info.byte_offset + info.size > size else None)
            if beyond:
                info = beyond[0]
                raise HDF5ReadError(
                    f"{path}: not a readable HDF5 file (truncated?): chunk "
                    f"{info.chunk_offset} ends at byte {info.byte_offset + info.size}, "
                    f"the file has {size} bytes")
        except HDF5ReadError:
            raise
        except (OSError, RuntimeError, ValueError) as exc:
            raise HDF5ReadError(f"{path}: not a readable HDF5 file (truncated or "
                                f"corrupt?): {_reason(exc)}") from None
    except BaseException:
        f.close()
        raise
    return f, node


def open_frames(path: str | os.PathLike[str], dataset: str = DEFAULT_DATASET) -> FrameReader:
    """Open a frame file for reading (SWMR, so it may still be being written)."""
    return FrameReader(path, dataset)


def _reason(exc: BaseException) -> str:
    """The useful part of an h5py error message (its first line, without the prefix)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace("Unable to synchronously ", "unable to ")


__all__ = ["COUNTERS_DATASET", "DEFAULT_DATASET", "LOST_ATTR", "FrameReader", "SamplePositions",
           "open_frames", "read_counters", "read_lost"]
