"""Frames written into a frame file by other processes, at places the writer reserved.

A Dask reduction's workers compute the slices of a volume; sending them to the client,
which writes them into the one HDF5 file, costs the client as much CPU as the workers
spend sending (64 MB for 256 slices of 256²), on a machine whose cores the workers use.
:class:`ReservedFrameWriter` is a :class:`~dataflow.hdf5.FrameWriter` whose frame dataset
has its chunks allocated when it grows (HDF5's early allocation, no fill values
written): :meth:`~ReservedFrameWriter.reserve` adds frames and returns where each one's
bytes go in the file, :func:`write_frames_at` (in any process that sees the file at the
same path) writes them there and returns their CRC-32s, and
:meth:`~ReservedFrameWriter.set_checksums` records those. HDF5 itself never touches the
reserved bytes (its metadata lives elsewhere in the file), so the file is the one
``append_many`` would have written: same dataset, layout, checksums and NeXus tree.

Only per-frame chunks without compression qualify (a frame is then one chunk holding
the frame's bytes in C order, little-endian). Frames are announced (``asset_docs``)
only once every reserved frame has its checksum: a frame never written cannot be.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from .hdf5 import FrameWriter
from .integrity import frame_crc32

__all__ = ["ReservedFrameWriter", "chunk_offsets", "write_frames_at"]


class ReservedFrameWriter(FrameWriter):
    """A :class:`FrameWriter` whose frames other processes may write (module docstring).

    Takes ``FrameWriter``'s arguments; ``layout`` must give one chunk per frame
    (``"per_frame"``) and ``compression`` must be None."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unchecked: set[int] = set()
        compression = self._ds.compression
        if self.chunk_shape != (1, *self.frame_shape) or compression is not None:
            self._file.close()
            self.path.unlink(missing_ok=True)
            raise ValueError(f"{self.path}: frames written by other processes need one "
                             "uncompressed chunk per frame (layout='per_frame'), got "
                             f"chunks {self.chunk_shape}, compression {compression}")

    def _frames_options(self) -> dict[str, Any]:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # chunks exist once the frames do
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)   # and nothing is written into them
        return {"dcpl": dcpl}

    def reserve(self, n: int) -> list[int]:
        """Add ``n`` frames to the file, to be written by :func:`write_frames_at`; returns
        each one's byte offset in the file (its chunk's)."""
        self._check_open()
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{self.path}: frames to reserve {n!r}: expected an integer "
                             ">= 1")
        start = self._count
        self._ds.resize(start + n, axis=0)
        self._crc.resize(start + n, axis=0)
        self._count += n
        self._unchecked.update(range(start, start + n))
        return chunk_offsets(self._ds.id, start, start + n)

    def set_checksums(self, first: int, crcs: npt.ArrayLike) -> None:
        """The CRC-32s of reserved frames ``first, first + 1, …`` (from
        :func:`write_frames_at`) once their bytes are in the file."""
        self._check_open()
        values = np.asarray(crcs, dtype="<u4").reshape(-1)
        frames = range(first, first + len(values))
        if not set(frames) <= self._unchecked:
            raise ValueError(f"{self.path}: checksums for frames {first}..{frames.stop - 1}: "
                             "not all of them are reserved frames without one")
        self._crc[first:frames.stop] = values
        self._unchecked.difference_update(frames)
        self._last = time.time()  # (frames in the file: its NeXus end time, so far)

    def asset_docs(self) -> Any:
        """See :meth:`FrameWriter.asset_docs`; refused while a reserved frame has no
        checksum (its bytes may not be written yet)."""
        if self._unchecked:
            raise ValueError(f"{self.path}: {len(self._unchecked)} reserved frame(s) not "
                             f"written yet (first {min(self._unchecked)})")
        return super().asset_docs()


def chunk_offsets(dsid: Any, first: int, stop: int) -> list[int]:
    """The file offsets of the chunks of frames ``first..stop - 1`` of a dataset with one
    chunk per frame (``dsid``: its ``h5py`` low-level id): one walk of the chunk index
    (``H5Dchunk_iter``), where asking chunk by chunk searches the index once per frame
    (3.5 ms for 256 frames against 0.4); chunk by chunk with an HDF5 older than 1.12.3."""
    if not hasattr(dsid, "chunk_iter"):
        return [int(dsid.get_chunk_info_by_coord((i, 0, 0)).byte_offset)
                for i in range(first, stop)]
    found: dict[int, int] = {}

    def visit(info: Any) -> None:
        frame = int(info.chunk_offset[0])
        if first <= frame < stop:
            found[frame] = int(info.byte_offset)

    dsid.chunk_iter(visit)
    return [found[i] for i in range(first, stop)]


def write_frames_at(path: str | os.PathLike[str], offsets: Sequence[int],
                    frames: npt.ArrayLike, dtype: npt.DTypeLike) -> npt.NDArray[np.uint32]:
    """Write ``frames`` (``len(offsets)`` frames) into the file ``path`` at ``offsets``
    (:meth:`ReservedFrameWriter.reserve`), as ``dtype`` little-endian; returns their
    CRC-32s for :meth:`ReservedFrameWriter.set_checksums`. The file must exist (it is
    never created nor truncated here, nor followed through a symbolic link)."""
    stack = np.asarray(frames)
    if stack.ndim != 3 or len(stack) != len(offsets):
        raise ValueError(f"{path}: {len(offsets)} frame offsets for frames of shape "
                         f"{stack.shape}")
    if stack.dtype != np.dtype(dtype):
        raise ValueError(f"{path}: frames of dtype {stack.dtype}, the file holds "
                         f"{np.dtype(dtype)}")
    little = np.ascontiguousarray(stack, dtype=stack.dtype.newbyteorder("<"))
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        for frame, offset in zip(little, offsets, strict=True):
            if isinstance(offset, bool) or not isinstance(offset, int | np.integer) \
                    or offset < 0:
                raise ValueError(f"{path}: frame offset {offset!r}: expected an integer "
                                 ">= 0")
            data = memoryview(frame).cast("B")
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], int(offset) + done)
    finally:
        os.close(fd)
    return frame_crc32(little)
