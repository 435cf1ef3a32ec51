"""The records a frame file keeps beside its frames (``dataflow.hdf5.FrameWriter``): the
readout's counters (``COUNTERS_DATASET``) and the acquisition indices of frames lost
before they reached the file (``<dataset>_lost``, named by the frame dataset's
``lost_frames`` attribute). ``dataflow.hdf5_read`` reads both back (``read_counters``,
``read_lost``).

Both datasets are made when the file is created: SWMR forbids new datasets and
attributes once it is on, not writes to existing datasets.

``write_values`` puts values into a 1-D dataset with HDF5's own calls: what the frame
writer keeps per frame (checksums, sample positions) at a third of the CPU of h5py's
``resize`` and slice assignment, paid at every append.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
from h5py import h5s

from .hdf5_read import COUNTERS_DATASET, LOST_ATTR

__all__ = ["SideRecords", "write_values"]


def write_values(ds: h5py.Dataset, start: int, values: npt.NDArray[np.generic]) -> None:
    """Write ``values`` (1-D, the dataset's dtype) at ``start`` of the 1-D resizable
    dataset ``ds``, whose extent becomes ``start + len(values)`` (h5py's ``resize`` and
    slice assignment, through HDF5's calls: not flushed)."""
    n = len(values)
    ds.id.set_extent((start + n,))
    space = ds.id.get_space()
    space.select_hyperslab((start,), (n,))
    ds.id.write(h5s.create_simple((n,)), space, np.ascontiguousarray(values))


class SideRecords:
    """The counters and lost-frame records of the file ``f`` (at ``path``, for messages)
    around its frame dataset ``frames`` (at ``dataset``): ``counters`` names the counters
    (none: no counters dataset), ``lost_frames`` asks for the lost-frame dataset."""

    def __init__(self, f: h5py.File, path: Path, frames: h5py.Dataset, dataset: str,
                 counters: Sequence[str], lost_frames: bool) -> None:
        self.path = path
        self.counter_names = tuple(counters)
        self._lost: h5py.Dataset | None = None
        if lost_frames:
            self._lost = f.create_dataset(
                f"{dataset}_lost", shape=(0,), maxshape=(None,), dtype="<i8", chunks=(64,))
            frames.attrs[LOST_ATTR] = self._lost.name
        self._counters: h5py.Dataset | None = None
        if counters:
            self._counters = f.create_dataset(
                COUNTERS_DATASET, data=np.zeros(len(counters), np.int64))
            self._counters.attrs["names"] = list(counters)

    def set_counters(self, values: Mapping[str, int]) -> None:
        """Write the declared counters ``values``; undeclared names are refused."""
        if self._counters is None:
            raise KeyError(f"{self.path}: no counters were declared for this file")
        names = list(self.counter_names)
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise KeyError(f"{self.path}: undeclared counter(s) {', '.join(unknown)}; "
                           f"declared: {', '.join(names)}")
        row = self._counters[...]
        for name, value in values.items():
            row[names.index(name)] = int(value)
        self._counters[...] = row
        self._counters.flush()

    def add_lost(self, indices: Sequence[int]) -> None:
        """Append the acquisition ``indices`` of frames lost before reaching the file."""
        if self._lost is None:
            raise KeyError(f"{self.path}: opened without lost_frames=True")
        start = self._lost.shape[0]
        self._lost.resize(start + len(indices), axis=0)
        self._lost[start:] = np.asarray(indices, np.int64)
        self._lost.flush()
