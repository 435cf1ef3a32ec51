"""Pixel masks published with a run: which pixels of a frame the reductions must ignore.

A detector knows pixels whose values mean nothing: the gaps between its sensor modules
(no sensor there), dead pixels (always 0) and hot ones (counting without photons), the
last two from its bad-pixel calibration, which its firmware also uses to zero them. A run
carries that knowledge as one frame of its own, the stream ``"mask"`` (:data:`MASK_STREAM`):
one event whose external data key (``<detector>_pixel_mask``, ``uint32``, the shape of the
detector's output frames) lives in a small HDF5 file at the NeXus ``NXdetector`` path
``/entry/instrument/detector/pixel_mask`` (:data:`PIXEL_MASK_DATASET`). The values are the
NeXus ``pixel_mask`` bit field, so a NeXus reader understands them as they are:

====  =======================================================
bit   meaning
====  =======================================================
0     gap (no sensor: between modules)
1     dead
2     under-responding
3     over-responding (hot)
4     noisy
8     masked for another reason (a calibration-table entry)
====  =======================================================

Every reducer (live, offline, on Dask) drops the pixels whose value is not 0
(:func:`as_bool`). Plans emit the stream before the first frame, so a live reducer has it
when frames come. A plan that does not (``bluesky.plans.count``) still records the mask:
the detector writes it into each of its frame files at the same NeXus path, as detectors
such as Dectris's do, and a run without a mask stream is reduced with the mask of its
frame files (:func:`read_file_mask`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DEAD", "GAP", "MASK_STREAM", "NOISY", "OTHER", "OVER_RESPONDING",
           "PIXEL_MASK_DATASET", "UNDER_RESPONDING", "PixelMaskError", "as_bool", "bin_mask",
           "describe_bits", "mask_key", "read_file_mask"]

MASK_STREAM = "mask"
"""Name of the stream that carries a run's pixel mask (one event)."""
PIXEL_MASK_DATASET = "/entry/instrument/detector/pixel_mask"
"""Where the mask lives in its HDF5 file (NeXus ``NXdetector/pixel_mask``)."""

GAP = 1 << 0
DEAD = 1 << 1
UNDER_RESPONDING = 1 << 2
OVER_RESPONDING = 1 << 3
NOISY = 1 << 4
OTHER = 1 << 8
_NAMES = {GAP: "gap", DEAD: "dead", UNDER_RESPONDING: "under-responding",
          OVER_RESPONDING: "hot", NOISY: "noisy", OTHER: "masked"}

U32 = npt.NDArray[np.uint32]
BoolImage = npt.NDArray[np.bool_]


def mask_key(detector: str) -> str:
    """The data key of ``detector``'s mask in the mask stream."""
    return f"{detector}_pixel_mask"


def bin_mask(mask: npt.ArrayLike, factor: int = 2) -> U32:
    """The mask of ``factor × factor``-binned frames: a binned pixel carries the bits of
    every pixel summed into it (one bad pixel spoils the sum)."""
    m = np.asarray(mask, dtype=np.uint32)
    if m.ndim != 2 or m.shape[0] % factor or m.shape[1] % factor:
        raise ValueError(f"bin_mask: a 2-D mask with sides divisible by {factor} is needed, "
                         f"got shape {m.shape}")
    h, w = m.shape[0] // factor, m.shape[1] // factor
    blocks = m.reshape(h, factor, w, factor)
    return np.asarray(np.bitwise_or.reduce(np.bitwise_or.reduce(blocks, axis=3), axis=1),
                      dtype=np.uint32)


def as_bool(mask: Any, shape: tuple[int, ...], where: str = "pixel mask") -> BoolImage:
    """True where a pixel must be ignored; ``ValueError`` naming ``where`` when ``mask``
    is not a 2-D integer array of ``shape`` (a mask of another detector or binning)."""
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.shape != tuple(shape):
        raise ValueError(f"{where}: shape {m.shape} does not match the frames {tuple(shape)}")
    if m.dtype.kind not in "biu":  # (not issubdtype, which counts timedelta64 in)
        raise ValueError(f"{where}: expected integer NeXus pixel_mask bits, got dtype "
                         f"{m.dtype}")
    out: BoolImage = m != 0
    return out


def describe_bits(mask: npt.ArrayLike) -> dict[str, int]:
    """How many pixels carry each bit (``{"gap": n, "dead": n, …}``), for people."""
    m = np.asarray(mask, dtype=np.uint32)
    return {name: int(np.count_nonzero(m & bit)) for bit, name in _NAMES.items()
            if np.any(m & bit)}


class PixelMaskError(ValueError):
    """A file's ``pixel_mask`` is not a NeXus bit field (names the file and dataset)."""


def read_file_mask(path: str | Path) -> U32 | None:
    """The ``pixel_mask`` bits an HDF5 file holds at :data:`PIXEL_MASK_DATASET` (a frame
    file of the detector, or a mask stream's file), ``None`` when it has none. The file
    may still be being written (SWMR; in this process too: read under h5py's lock, as
    ``analysis.live_runs.read_frame_stack`` does).

    The dataset is read as stored and its bits kept: NeXus declares ``pixel_mask``
    NX_INT, so a signed mask (int32 in most writers, bit 31 a virtual pixel) is the same
    bits unsigned, never a conversion that clips negative values to 0.

    Raises ``OSError`` (``NotRegularFileError`` among them) when it cannot be read, and
    :class:`PixelMaskError` when it holds no integer bits (text, floats) or bits beyond
    the 32 of a NeXus mask."""
    from h5py._objects import phil

    from .regular_file import h5_open

    with phil, h5_open(path, swmr=True) as f:
        node = f.get(PIXEL_MASK_DATASET)
        if node is None:
            return None
        where = f"{path}: {PIXEL_MASK_DATASET}"
        dtype = getattr(node, "dtype", None)
        if dtype is None or dtype.kind not in "biu":
            raise PixelMaskError(f"{where}: a pixel mask holds integer NeXus pixel_mask "
                                 f"bits, this dataset holds {dtype or 'no array'}")
        stored = np.asarray(node[()])
    if stored.dtype.kind == "b":
        return stored.astype(np.uint32)
    if stored.dtype.kind == "i":  # the same bits, unsigned
        stored = stored.view(stored.dtype.str.replace("i", "u"))
    if stored.dtype.itemsize > 4 and np.any(stored > 0xFFFFFFFF):
        raise PixelMaskError(f"{where}: values above 32 bits ({stored.dtype}); a NeXus "
                             "pixel_mask has 32")
    return stored.astype(np.uint32)
