"""The sample's positions a frame file records frame by frame, paired with its frames.

``dataflow.hdf5_angles.AngleFrameWriter`` writes each frame's position on each of the
sample's axes (``/ENTRY/sample/transformations/<axis>``, the chain ``/ENTRY/sample/
depends_on`` starts) a block of 64 frames at a time and when the file closes. A file still
being written, or one its writer never closed (a killed scan), holds up to 63 fewer
positions than frames, and, had the writer died between two axes, not as many on every
axis. ``read_sample_positions`` pairs by index, as NXmx does: position ``i`` of every
axis is frame ``i``'s, so the frames that have positions are the first ``n`` — ``n`` the
fewest values any axis holds, and no more than the frames the file holds. DIALS' dxtbx
reads such a file the same way: its scan has as many images as the scan axis has values
(``dxtbx.nexus.get_dxtbx_scan``: ``image_range = (1, len(scan_axis))``). The frames past
``n`` have their positions in the run's events only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from .integrity import HDF5ReadError

__all__ = ["SamplePositions", "read_sample_positions"]


@dataclass(frozen=True)
class SamplePositions:
    """The positions of the sample's axes for the first ``len(values)`` frames."""

    names: tuple[str, ...]
    """The axes, nearest the sample first (NXmx's dependency chain)."""
    units: tuple[str, ...]
    values: npt.NDArray[np.float64]
    """``(n, len(names))``: row ``i`` is frame ``i``'s position on every axis."""
    frames: int
    """Frames in the file; those from ``len(values)`` on have no position here."""

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def axis(self, name: str) -> npt.NDArray[np.float64]:
        """The positions on axis ``name``, one per frame that has them."""
        return self.values[:, self.names.index(name)]


def read_sample_positions(f: h5py.File, dataset: str, frames: int,
                          path: Path) -> SamplePositions | None:
    """The sample positions of file ``f`` (at ``path``) whose frames (``frames`` of them)
    are at ``dataset``; None when the file records none (no axis holds one per frame).
    ``HDF5ReadError`` naming the file and the axis when the chain is broken."""
    entry = dataset.strip("/").split("/")[0]
    sample = f.get(f"{entry}/sample")
    start = _text(sample.get("depends_on")) if isinstance(sample, h5py.Group) and \
        isinstance(sample.get("depends_on"), h5py.Dataset) else "."
    axes: list[h5py.Dataset] = []
    where = f"{entry}/sample"
    seen: set[str] = set()
    while start not in ("", "."):
        node_path = start if start.startswith("/") else f"{where}/{start}"
        if node_path in seen:
            raise HDF5ReadError(f"{path}: the sample's depends_on chain loops at {node_path}")
        seen.add(node_path)
        node = f.get(node_path)
        if not isinstance(node, h5py.Dataset):
            raise HDF5ReadError(f"{path}: the sample's depends_on chain names {node_path}, "
                                "which is no dataset")
        axes.append(node)
        where = node.parent.name
        start = _text(node.attrs.get("depends_on", "."))
    stepped = [node for node in axes if node.ndim == 1 and node.maxshape[0] is None]
    if not stepped:
        return None
    columns = []
    for node in stepped:
        if f.swmr_mode:
            node.refresh()  # (what the writer flushed since the file was opened)
        columns.append(np.asarray(node[()], dtype=np.float64))
    n = min([frames, *(len(c) for c in columns)])
    return SamplePositions(
        names=tuple(node.name.rsplit("/", 1)[-1] for node in stepped),
        units=tuple(_text(node.attrs.get("units", "")) for node in stepped),
        values=np.stack([c[:n] for c in columns], axis=1), frames=frames)


def _text(value: Any) -> str:
    if isinstance(value, h5py.Dataset):
        value = value[()]
    return value.decode() if isinstance(value, bytes) else str(value)
