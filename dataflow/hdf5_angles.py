"""Frame files that record the sample's stages frame by frame: each frame's positions
beside it, the NeXus sample's chain of axes (``dataflow.hdf5_nxmx.SampleAxis``).

``AngleFrameWriter`` is a ``FrameWriter`` whose every append gives each frame's position
on each of its ``axes`` (the sample's at the frame's trigger: a rotation stage's angle in
deg, a translation stage's position in mm…). A detector's files are all of them: a step
scan's, one frame at a time, and a fly acquisition's, a batch at a time
(``devices.detector``).

The positions go into the file a block of ``POSITIONS_BLOCK`` frames at a time (one
HDF5 chunk of each axis, written once) and when the file closes, not with every frame: a
step scan flushes each frame as its event announces it, and writing a value into each
axis there would cost more than the frame's other bookkeeping (about 50 µs an axis a
frame, against about 1 µs to keep it). So while the file is open, or in a file its writer
never closed, the axes may hold fewer values than there are frames (the positions of the
last block are in the run's events); a closed file holds one per frame. A frame dropped
before its event (``discard_unannounced``, a failed append) takes its positions with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .hdf5 import FrameMismatchError, FrameWriter
from .hdf5_nxmx import SampleAxis, write_sample_axes
from .hdf5_records import write_values

__all__ = ["POSITIONS_BLOCK", "AngleFrameWriter"]

POSITIONS_BLOCK = 64
"""Frames whose positions are written together (the axes' HDF5 chunk)."""


class AngleFrameWriter(FrameWriter):
    """A ``FrameWriter`` (same arguments) that records the sample's ``axes`` per frame
    (the first nearest the sample: ``write_sample_axes``)."""

    def __init__(self, *args: Any, axes: Sequence[SampleAxis], **kwargs: Any) -> None:
        self.axes = tuple(axes)
        self._held: list[npt.NDArray[np.float64]] = []
        """Positions ``(n, len(axes))`` not in the file yet, oldest first."""
        self._held_n = 0
        self._stored = 0  # (positions in the file, per axis)
        super().__init__(*args, **kwargs)

    def _before_swmr(self) -> None:
        if not self._nexus:
            raise ValueError(f"{self.path}: a sample axis needs the NeXus tree (the frames "
                             f"at /ENTRY/DATA/NAME, not {self.dataset_path})")
        entry = self.dataset_path.strip("/").split("/")[0]
        self._positions = write_sample_axes(self._file, entry, self.axes, POSITIONS_BLOCK)

    def append(self, frame: npt.ArrayLike,
               position: float | Sequence[float] | None = None) -> int:
        """Append one frame taken at ``position`` (one value per axis; a number for one
        axis); returns its index."""
        arr = np.asarray(frame)
        self._check(arr, "frame", stack=False)
        return self.append_many(arr[np.newaxis],
                                None if position is None else [position]).start

    def append_many(self, frames: npt.ArrayLike,
                    positions: npt.ArrayLike | None = None) -> range:
        """Append a stack ``(n, rows, cols)`` of frames taken at ``positions`` (``n``
        values per axis: ``(n,)`` for one axis, ``(n, len(axes))``); returns their
        indices."""
        self._check_open()
        arr = np.asarray(frames)
        n = arr.shape[0] if arr.ndim == 3 else -1
        k = len(self.axes)
        values = None if positions is None else np.asarray(positions, dtype=np.float64)
        if values is not None and values.ndim == 1 and k == 1:
            values = values[:, np.newaxis]
        if values is None or values.shape != (n, k):
            names = ", ".join(f"{a.name} ({a.units})" for a in self.axes)
            given = "no" if values is None else "x".join(map(str, values.shape))
            raise FrameMismatchError(f"{self.path}: {max(n, 0)} frames with {given} sample "
                                     f"positions: one per frame and axis ({names})")
        done = super().append_many(arr)
        if n:
            self._held.append(values)
            self._held_n += n
            if self._held_n >= POSITIONS_BLOCK:
                self._store()
        return done

    def _store(self) -> None:
        """Write the held positions into the file."""
        if not self._held_n:
            return
        values = np.concatenate(self._held)
        for i, node in enumerate(self._positions):
            write_values(node, self._stored, values[:, i])
            node.id.flush()
        self._held, self._held_n, self._stored = [], 0, self._stored + len(values)

    def _truncate(self, n: int) -> None:
        super()._truncate(n)
        if self._stored > n:  # (a frame the file had stored positions for is gone)
            for node in self._positions:
                node.resize(n, axis=0)
            self._held, self._held_n, self._stored = [], 0, n
        elif self._stored + self._held_n > n:
            values = np.concatenate(self._held)[:n - self._stored]
            self._held, self._held_n = [values], len(values)

    def _before_close(self) -> None:
        self._store()
        super()._before_close()
