"""Frame files of a rotating sample: each frame's angle beside it, the NeXus sample's
goniometer axis (``dataflow.hdf5_nxmx.SampleAxis``).

``AngleFrameWriter`` is a ``FrameWriter`` whose every append gives each frame's angle (deg,
the sample's at the frame's trigger). The angles are one of the datasets the writer keeps
per frame beside the frames, as the checksums: written before the frames' bytes, flushed
with them, cut back with them (a failed append, ``discard_unannounced``), so a reader never
finds a frame without its angle. A fly acquisition's file is one (``devices.detector``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .hdf5 import FrameMismatchError, FrameWriter
from .hdf5_nxmx import SampleAxis, write_sample_axis

__all__ = ["AngleFrameWriter"]


class AngleFrameWriter(FrameWriter):
    """A ``FrameWriter`` (same arguments) that records the sample's ``axis`` per frame."""

    def __init__(self, *args: Any, axis: SampleAxis, **kwargs: Any) -> None:
        self.axis = axis
        super().__init__(*args, **kwargs)

    def _before_swmr(self) -> None:
        if not self._nexus:
            raise ValueError(f"{self.path}: a sample axis needs the NeXus tree (the frames "
                             f"at /ENTRY/DATA/NAME, not {self.dataset_path})")
        entry = self.dataset_path.strip("/").split("/")[0]
        self._angles = write_sample_axis(self._file, entry, self.axis, self.chunk_shape[0])
        self._beside.append(self._angles)

    def append(self, frame: npt.ArrayLike, angle: float | None = None) -> int:
        """Append one frame taken at sample ``angle`` (deg); returns its index."""
        arr = np.asarray(frame)
        self._check(arr, "frame", stack=False)
        return self.append_many(arr[np.newaxis], None if angle is None else [angle]).start

    def append_many(self, frames: npt.ArrayLike,
                    angles: Sequence[float] | None = None) -> range:
        """Append a stack ``(n, rows, cols)`` of frames taken at sample ``angles`` (deg,
        one per frame); returns their indices."""
        self._check_open()
        arr = np.asarray(frames)
        n = arr.shape[0] if arr.ndim == 3 else -1
        if angles is None or len(angles) != n:
            raise FrameMismatchError(
                f"{self.path}: {max(n, 0)} frames with "
                f"{'no' if angles is None else len(angles)} sample angles: one per frame "
                f"({self.axis.name}, deg)")
        start = self._count
        try:
            self._angles.resize(start + n, axis=0)
            self._angles[start:start + n] = np.asarray(angles, dtype=np.float64)
            return super().append_many(arr)
        except BaseException:
            self._truncate(start)
            raise
