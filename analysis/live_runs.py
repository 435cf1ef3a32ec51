"""What the live reducer (:mod:`analysis.live`) keeps per raw run, and how it reads
announced frames from files that may still be being written."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.reduce import (
    DerivedRun,
    ReductionError,
    TomoAccumulator,
    file_inputs,
    tomo_streams,
    uri_path,
)
from dataflow.hdf5 import DEFAULT_DATASET, HDF5ReadError, open_frames, open_in_process
from dataflow.pixel_mask import MASK_STREAM

__all__ = ["Frame", "LiveRunResult", "RunState", "consecutive_runs", "read_frame_stack",
           "read_frames"]

log = logging.getLogger("analysis.live")  # (the live reducer's messages, one logger)


@dataclass
class LiveRunResult:
    """What the live reduction of one raw run gave (``finished`` after its stop)."""

    raw_uid: str
    reduction: str | None
    derived_uid: str | None = None
    exit_status: str = "running"
    reason: str = ""
    frames: int = 0
    dropped_frames: int = 0
    lags: list[float] = field(default_factory=list)
    finished: bool = False

    @property
    def lag_max(self) -> float:
        """Largest per-frame lag, s (NaN before the first frame)."""
        return max(self.lags) if self.lags else math.nan

    @property
    def lag_mean(self) -> float:
        """Mean per-frame lag, s (NaN before the first frame)."""
        return float(np.mean(self.lags)) if self.lags else math.nan


def read_frames(path: Path, dataset: str, indices: Sequence[int]) -> list[np.ndarray[Any, Any]]:
    """Frames ``indices`` of a frame file that may still be being written (see
    :func:`read_frame_stack`, whose frames these are)."""
    return [frame for block in _read_blocks(path, dataset, indices) for frame in block]


def read_frame_stack(path: Path, dataset: str, indices: Sequence[int],
                     into: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
    """Frames ``indices`` of a frame file that may still be being written, as one array
    ``(n, rows, cols)``: consecutive frames are the array HDF5 reads them into (no copy
    into a stack of their own). ``into``: an earlier stack whose memory may be read
    into again (its first ``n`` frames are returned) when the file is open in this
    process and the stack has the frames' shape, type and room for them; the pages of a
    fresh megapixel stack are each a page fault, and the live reducer reads one every
    few frames.

    The file is opened, read and closed at once, holding h5py's global lock: HDF5 shares
    one open file per process, and a handle still open when the detector's writer closes
    the file would keep its last bytes unwritten (``FrameWriter.close``); with the lock
    held, the writer's close and its check for other handles cannot fall in between.
    A file the writer has open in this process is read through that shared file's
    in-memory state with plain h5py (``FrameReader``'s truncation check compares the
    chunk index with the bytes on disk, and chunks still in the writer's cache are not
    on disk yet); any other file through :func:`dataflow.hdf5.open_frames` (SWMR).

    Raises
    ------
    HDF5ReadError
        The file or a frame cannot be read.
    """
    if len(indices) == 0:
        raise ValueError(f"read_frame_stack: no frames asked for from {path}")
    blocks = _read_blocks(path, dataset, indices, into)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _read_blocks(path: Path, dataset: str, indices: Sequence[int],
                 into: np.ndarray[Any, Any] | None = None) -> list[np.ndarray[Any, Any]]:
    """The frames ``indices`` as ``(k, rows, cols)`` blocks, one per run of consecutive
    frames, in order (``read_frame_stack``); all of them one block of ``into`` when it
    fits (see there)."""
    from h5py._objects import phil

    from dataflow.regular_file import NotRegularFileError, h5_open

    runs = consecutive_runs(indices)
    with phil:
        if not open_in_process(path):
            with open_frames(path, dataset) as reader:
                n = len(reader)
                if any(not 0 <= i < n for i in indices):  # (as reader.frame would say)
                    return [reader.frame(i)[None] for i in indices]
                return [np.asarray(reader.read(slice(a, b))) for a, b in runs]
        try:
            with h5_open(path, swmr=True) as f:
                ds = f[dataset]
                n = int(ds.shape[0])
                bad = [i for i in indices if not 0 <= i < n]
                if bad:
                    raise HDF5ReadError(f"{path}: frames {bad} announced but the file has "
                                        f"{n} frames")
                if into is not None and into.dtype == ds.dtype and \
                        into.shape[1:] == ds.shape[1:] and len(into) >= len(indices):
                    at = 0
                    for a, b in runs:
                        ds.read_direct(into, np.s_[a:b], np.s_[at:at + b - a])
                        at += b - a
                    return [into[:at]]
                return [np.asarray(ds[a:b]) for a, b in runs]
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            if isinstance(exc, HDF5ReadError):
                raise
            why = exc.strerror if isinstance(exc, NotRegularFileError) else exc
            raise HDF5ReadError(f"{path}: cannot read frames {list(indices)} of "
                                f"{dataset!r}: {why}") from None


def consecutive_runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """``indices`` as runs ``[a, b)`` of consecutive frames, in order: a run is read as one
    slice, each HDF5 chunk once (the default chunks hold 8 frames; frame by frame, every
    chunk a frame touches would be read once per frame in it)."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        i = int(i)
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


@dataclass
class Frame:
    """One announced frame: where it is and the event that goes with it."""

    desc: str
    seq: int
    resource: str
    index: int
    announced: float
    event: dict[str, Any] | None = None


class RunState:
    """Everything the worker knows about one raw run."""

    def __init__(self, start: dict[str, Any], reduction: str | None,
                 result: LiveRunResult) -> None:
        self.start = start
        self.reduction = reduction
        self.result = result
        self.streams = tomo_streams(start) if reduction == "tomo_fbp" else \
            {"projection": "primary"}
        self.streams["mask"] = MASK_STREAM
        self.mask: np.ndarray[Any, np.dtype[np.bool_]] | None = None
        self.file_mask_read = False
        """Whether the frame files were asked for a mask (a run without a mask stream)."""
        self.descriptors: dict[str, dict[str, Any]] = {}
        self.image_keys: dict[str, str] = {}
        self.resources: dict[str, dict[str, Any]] = {}
        self.uris: list[str] = []
        self.pending: dict[tuple[str, int], Frame] = {}
        self.early_events: dict[tuple[str, int], dict[str, Any]] = {}
        self.ready: list[Frame] = []
        self.derived: DerivedRun | None = None
        self.failed = False
        # tomography
        self.darks: list[np.ndarray[Any, Any]] = []
        self.flats: list[np.ndarray[Any, Any]] = []
        self.acc: TomoAccumulator | None = None
        self.rows: list[int] = []
        self.angles_from = "start"
        # diffraction
        self.integrator: Any = None
        self._spare: np.ndarray[Any, Any] | None = None
        """The memory the next ``read(…, reuse=True)`` reads into."""

    def role(self, desc_uid: str) -> str | None:
        """``"dark"``, ``"flat"``, ``"projection"`` (tomography) or ``"projection"`` for
        the diffraction frames, ``"mask"`` for the pixel mask, None for streams that are
        not reduced."""
        name = self.descriptors.get(desc_uid, {}).get("name")
        for role, stream in self.streams.items():
            if stream == name:
                return role
        return None

    def read(self, frames: Sequence[Frame], reuse: bool = False) -> np.ndarray[Any, Any]:
        """The frames ``(n, rows, cols)``, read file by file (see :func:`read_frames`).
        ``reuse``: into the memory of the last stack read with ``reuse`` (which the
        caller no longer uses; ``read_frame_stack``'s ``into``)."""
        by_resource: dict[str, list[Frame]] = {}
        for f in frames:
            by_resource.setdefault(f.resource, []).append(f)
        if len(by_resource) == 1:  # one file: its frames as HDF5 reads them
            res = self.resources[next(iter(by_resource))]
            dataset = (res.get("parameters") or {}).get("dataset") or DEFAULT_DATASET
            stack = read_frame_stack(uri_path(str(res["uri"])), str(dataset),
                                     [f.index for f in frames],
                                     self._spare if reuse else None)
            if reuse and (self._spare is None or len(stack) > len(self._spare)):
                self._spare = stack
            return stack
        got: dict[int, np.ndarray[Any, Any]] = {}
        for resource_uid, group in by_resource.items():
            res = self.resources[resource_uid]
            dataset = (res.get("parameters") or {}).get("dataset") or DEFAULT_DATASET
            images = read_frames(uri_path(str(res["uri"])), str(dataset),
                                 [f.index for f in group])
            got.update((id(f), image) for f, image in zip(group, images, strict=True))
        return np.stack([got[id(f)] for f in frames])

    def lag(self, frame: Frame, now: float) -> float:
        """Record ``frame`` as reduced at ``now``; its lag behind its event (or its
        announcement when no event came), s."""
        origin = float(frame.event["time"]) if frame.event else frame.announced
        lag = now - origin
        self.result.lags.append(lag)
        self.result.frames += 1
        return lag

    def angle(self, frame: Frame) -> float:
        """The rotation angle of projection ``frame``: its event's reading of the rotation
        axis, else the start document's ``"angles"`` entry."""
        axis = self.start.get("rotation_axis")
        if frame.event is not None and axis in frame.event.get("data", {}):
            return float(frame.event["data"][axis])
        angles = self.start.get("angles")
        if isinstance(angles, list) and 1 <= frame.seq <= len(angles):
            return float(angles[frame.seq - 1])
        raise ReductionError(f"run {self.start['uid']}: no angle for projection {frame.seq} "
                             f"(no {axis!r} reading in its event, no start 'angles' entry)")

    def stats(self, digest: bool) -> dict[str, Any]:
        """The derived stop document's figures: frames, drops, lags and the inputs (with
        SHA-256 when ``digest``: only once the raw run has ended and its files are closed)."""
        r = self.result
        inputs = file_inputs(self.uris, digest=False)
        if digest:  # the raw run has ended: its files are closed
            try:
                inputs = file_inputs(self.uris, digest=True)
            except (ReductionError, OSError) as exc:
                log.warning("live reducer: cannot digest inputs: %s", exc)
        return {"frames": r.frames, "dropped_frames": r.dropped_frames,
                "lag_max_s": r.lag_max if r.lags else None,
                "lag_mean_s": r.lag_mean if r.lags else None, "inputs": inputs}
