"""Frame files cut short after their writer closed them: serve the frames that are intact.

When the disk fills up mid-scan, the writer's last data writes fail but HDF5 still
updates the superblock as it closes the file: the file is marked closed and records an
end of file that its data never reached. h5py then refuses to open it without SWMR
("truncated file"), and in SWMR mode (how Tiled reads) it skips that size check but
retries any metadata that fails its checksum for minutes. Refusing the whole file would
lose every frame that was flushed intact before the disk filled up.

``FrameWriter`` stores the CRC-32 of every frame beside the frames
(``dataflow.integrity``), so an intact frame can be told from a damaged one:

- ``CutShortFile`` opens such a file without SWMR through a view that reports the
  length the superblock records and reads the missing tail as zeros (what HDF5's own
  POSIX driver does for a read beyond the physical end). HDF5 then checks every
  metadata checksum at once, so metadata lost with the tail fails immediately with an
  error naming the file instead of hanging the reader.
- ``verify_stored`` reads whole frames and requires each to match its stored CRC-32; a
  frame without one (or in a file without checksums) cannot be told from a damaged one
  and is refused, naming the file and the frame. Frames whose chunks lie beyond the end
  are refused before by ``dataflow.integrity.check_frames``.

So a frame of a cut file is served only when every byte of it is on disk and matches
what the writer computed from the acquired pixels.
"""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from .integrity import (
    ChecksumError,
    HDF5ReadError,
    IncompleteDataError,
    Superblock,
    checksums_of,
    frame_crc32,
)
from .regular_file import open_regular

_BLOCK_BYTES = 16 << 20
"""Whole frames are verified in blocks of about this many bytes."""


class _RecordedLength(io.RawIOBase):
    """The bytes of a file seen as ``length`` long: what lies beyond its physical end
    reads as zeros. Read-only."""

    def __init__(self, path: Path, length: int) -> None:
        super().__init__()
        self._file = open_regular(path)
        self._size = os.fstat(self._file.fileno()).st_size
        self._length = max(length, self._size)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._length - self._pos))
        if self._pos + n > self._size:
            raise OSError(errno.EIO, f"bytes {self._pos} to {self._pos + n} were lost when "
                          f"the file was cut short at {self._size}")
        self._file.seek(self._pos)
        got = self._file.readinto(view[:n]) or 0
        if got != n:
            raise OSError(errno.EIO, f"read {got} of {n} bytes at {self._pos}")
        self._pos += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


class CutShortFile:
    """A closed HDF5 file shorter than its superblock says, opened read-only without
    SWMR (see the module docstring); use as a context manager or ``close()`` it.

    Raises
    ------
    IncompleteDataError
        The file cannot be opened (metadata lost with its tail, a damaged superblock),
        naming the file and both sizes.
    """

    def __init__(self, path: str | os.PathLike[str], superblock: Superblock) -> None:
        self.path = Path(path)
        self.superblock = superblock
        self._view = _RecordedLength(self.path, superblock.offset + superblock.end_of_file)
        self.size = self._view._size
        try:
            self.file = h5py.File(self._view, "r")
        except (OSError, RuntimeError, ValueError) as exc:
            self._view.close()
            raise self.unreadable("cannot open it", _first_line(exc)) from None

    def unreadable(self, what: str, reason: str) -> IncompleteDataError:
        """The error for a file whose ``what`` cannot be read, naming both sizes."""
        return IncompleteDataError(
            f"{self.path}: not a readable HDF5 file (truncated: {self.size} bytes, its "
            f"superblock says {self.superblock.offset + self.superblock.end_of_file}): "
            f"{what}: {reason}", self.path)

    def dataset(self, name: str) -> h5py.Dataset:
        """The 3-D frame dataset ``name``, which must carry per-frame checksums (without
        them no frame of a cut file can be trusted)."""
        try:
            node = self.file[name]
            ok = isinstance(node, h5py.Dataset) and node.ndim == 3
            crc = checksums_of(node) if ok else None
        except (KeyError, OSError, RuntimeError, ValueError) as exc:
            raise self.unreadable(f"cannot read dataset {name!r}", _first_line(exc)
                                  ) from None
        if not ok:
            raise self.unreadable(repr(name), "not a 3-D frame dataset")
        if crc is None:
            raise self.unreadable(repr(name), "no per-frame checksums to tell its intact "
                                  "frames")
        try:
            dict(node.attrs)  # every attribute readable: none lies in the lost tail
        except (OSError, RuntimeError, ValueError) as exc:
            raise self.unreadable(f"cannot read the attributes of {name!r}",
                                  _first_line(exc)) from None
        return node

    def close(self) -> None:
        """Close the HDF5 file, then the file under it (idempotent)."""
        self.file.close()
        self._view.close()

    def __enter__(self) -> CutShortFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def verify_stored(ds: h5py.Dataset, path: str | os.PathLike[str], frames: range
                  ) -> npt.NDArray[Any]:
    """Read whole frames ``frames`` of ``ds``, require each to match the CRC-32 its
    writer stored (a frame without one is refused: see the module docstring), and
    return them.

    Raises
    ------
    ChecksumError
        Naming the file and the first frame whose bytes differ.
    IncompleteDataError
        Naming the file and the first frame that has no stored checksum.
    HDF5ReadError
        The frames or checksums cannot be read.
    """
    p = Path(path)
    stored = checksums_of(ds)
    have = 0 if stored is None else int(stored.shape[0])
    if frames and frames.stop > have:
        first = max(frames.start, have)
        raise IncompleteDataError(f"{p}: frame {first} cannot be verified: the file is cut "
                                  f"short and holds no checksum for it", p, first)
    parts: list[npt.NDArray[Any]] = []
    if not frames or stored is None:
        return np.empty((0, *ds.shape[1:]), dtype=ds.dtype)
    frame_bytes = max(1, int(np.prod(ds.shape[1:])) * ds.dtype.itemsize)
    step = max(1, _BLOCK_BYTES // frame_bytes)
    for start in range(frames.start, frames.stop, step):
        stop = min(start + step, frames.stop)
        try:
            data = np.asarray(ds[start:stop])
            want = np.asarray(stored[start:stop], dtype=np.uint32)
        except (OSError, RuntimeError, ValueError) as exc:
            raise HDF5ReadError(f"{p}: cannot read frames {start} to {stop - 1} (corrupt "
                                f"data?): {_first_line(exc)}") from None
        bad = np.flatnonzero(frame_crc32(data) != want)
        if bad.size:
            i = start + int(bad[0])
            raise ChecksumError(f"{p}: frame {i} is damaged (the file is cut short and the "
                                f"frame does not match the CRC-32 its writer stored)", p, i)
        parts.append(data)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.replace("Unable to synchronously ", "unable to ")


__all__ = ["CutShortFile", "verify_stored"]
