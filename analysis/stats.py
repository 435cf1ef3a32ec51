"""Per-frame statistics and histograms on OpenCL, with a numpy reference.

For each frame of a ``uint16`` or ``float32`` frame or stack: pixel count, sum, mean,
population standard deviation, min, max, number of saturated pixels (``value >= level``)
and optionally a histogram with numpy's bins (``bins`` equal bins over ``hist_range``).

Precision: ``uint16`` sums and sums of squares are accumulated in 64-bit integers, so
sum, histogram and counts equal numpy exactly and the variance is computed from exact
integers. ``float32`` frames are accumulated in double with Welford's update per
work-item and Chan's pairwise merge across work-items and groups, so the variance does
not lose precision to a large mean. NaN pixels of float frames (e.g. masked pixels from
:mod:`analysis.correct`) are skipped, like ``numpy.nanmean``; a frame with no other pixel
gets NaN for mean, std, min and max. Needs a device with double precision (``cl_khr_fp64``;
every CPU device has it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.devarray import Array, ArrayArgumentError, check, kernel, runtime_for, to_device

FRAME_DTYPES: tuple[npt.DTypeLike, ...] = (np.uint16, np.float32)
_WG = 64
_MAX_GROUPS = 64
_PIXELS_PER_ITEM = 64
_LOCAL_BINS = 16384

F64 = np.ndarray[Any, np.dtype[np.float64]]
I64 = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class FrameStats:
    """Statistics per frame: arrays of shape ``(N,)`` for a stack, ``()`` for one frame.

    ``sum`` is int64 for ``uint16`` frames and float64 for ``float32`` frames;
    ``histogram`` has one more axis of ``bins`` counts and ``bin_edges`` the ``bins + 1``
    edges (numpy's), both None when no histogram was asked for.
    """

    count: I64
    sum: np.ndarray[Any, Any]
    mean: F64
    std: F64
    min: F64
    max: F64
    saturated: I64
    histogram: I64 | None = None
    bin_edges: F64 | None = None


def _check_args(frames: Array, bins: int | None, hist_range: tuple[float, float] | None,
                saturation: float | None) -> tuple[Array, float, F64 | None]:
    check(frames, "frames", dtypes=FRAME_DTYPES, ndims=(2, 3))
    dtype = np.dtype(frames.dtype)
    if saturation is None:
        level = 65535.0 if dtype == np.uint16 else float("inf")
    else:
        level = float(saturation)
        if dtype == np.float32:  # numpy compares float32 frames with a float32 level
            level = float(np.float32(level))
    edges: F64 | None = None
    if bins is not None or hist_range is not None:
        if bins is None or hist_range is None:
            raise ArrayArgumentError("arguments `bins` and `hist_range`: give both for a "
                                     f"histogram, or neither; got bins={bins!r}, "
                                     f"hist_range={hist_range!r}")
        if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
            raise ArrayArgumentError(f"argument `bins`: expected a positive int, got {bins!r}")
        lo, hi = (float(v) for v in hist_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ArrayArgumentError(f"argument `hist_range`: expected finite (low, high) "
                                     f"with low <= high, got {hist_range!r}")
        # numpy's own edges (their dtype follows the frame's), so the bins are numpy's
        try:
            edges = np.histogram_bin_edges(np.zeros(0, dtype), int(bins),
                                           (lo, hi)).astype(np.float64)
        except ValueError as exc:  # e.g. bins narrower than the dtype's resolution
            raise ArrayArgumentError(f"arguments `bins`, `hist_range`: {exc}") from None
    return frames, level, edges


def frame_stats(frames: Array, *, saturation: float | None = None, bins: int | None = None,
                hist_range: tuple[float, float] | None = None,
                device: str | None = None) -> FrameStats:
    """Statistics of one frame ``(H, W)`` or of every frame of a stack ``(N, H, W)``.

    Parameters
    ----------
    frames
        ``uint16`` or ``float32``, numpy or device array (device arrays are read in place).
    saturation
        Pixels ``>= saturation`` count as saturated; default 65535 for ``uint16`` and
        ``+inf`` for ``float32`` (the level is rounded to float32 for float frames, as
        numpy's comparison does).
    bins, hist_range
        A histogram of ``bins`` equal bins over ``hist_range`` (as
        ``numpy.histogram(frame, bins, hist_range)``), or none when both are None.
    device
        OpenCL device choice when ``frames`` is a numpy array.
    """
    frames, level, edges = _check_args(frames, bins, hist_range, saturation)
    rt = runtime_for(frames, device=device)
    dtype = np.dtype(frames.dtype)
    is_int = dtype == np.uint16
    shape = tuple(frames.shape)
    n_frames = 1 if len(shape) == 2 else shape[0]
    npix = int(shape[-1] * shape[-2])
    lead: tuple[int, ...] = () if len(shape) == 2 else (n_frames,)
    if n_frames == 0 or npix == 0:
        raise ArrayArgumentError(f"argument `frames`: expected at least one pixel in at "
                                 f"least one frame, got shape {shape}")
    import pyopencl
    import pyopencl.array as cla

    d_frames = to_device(rt, frames, "frames")
    groups = int(np.clip(npix // (_WG * _PIXELS_PER_ITEM), 1, _MAX_GROUPS))
    options = (f"-DPIX_T={'ushort' if is_int else 'float'}", f"-DIS_INT={int(is_int)}",
               f"-DWG={_WG}")
    parts = n_frames * groups
    q = rt.queue
    u64 = [cla.empty(q, parts if is_int else 1, np.uint64) for _ in range(2)]
    f64 = [cla.empty(q, 1 if is_int else parts, np.float64) for _ in range(2)]
    count, nsat = (cla.empty(q, parts, np.uint32) for _ in range(2))
    vmin, vmax = (cla.empty(q, parts, np.float32) for _ in range(2))
    kernel(rt, "stats.cl", "frame_moments", options)(
        q, (groups * _WG, n_frames), (_WG, 1), d_frames.data, np.uint32(npix),
        np.float64(level), u64[0].data, u64[1].data, f64[0].data, f64[1].data, count.data,
        vmin.data, vmax.data, nsat.data)
    hist: I64 | None = None
    if edges is not None:
        nbins = len(edges) - 1
        d_hist = cla.zeros(q, (n_frames, nbins), np.uint32)
        d_edges = cla.to_device(q, edges)
        use_local = nbins <= _LOCAL_BINS
        width = edges[-1] - edges[0]
        kernel(rt, "stats.cl", "frame_histogram", options)(
            q, (groups * _WG, n_frames), (_WG, 1), d_frames.data, np.uint32(npix),
            d_edges.data, np.uint32(nbins), np.float64(nbins / width if width > 0 else 0.0),
            np.int32(use_local), d_hist.data,
            pyopencl.LocalMemory(4 * (nbins if use_local else 1)))
        hist = d_hist.get().astype(np.int64).reshape((*lead, nbins))
    shape2 = (n_frames, groups)
    n_g = count.get().reshape(shape2).astype(np.int64)
    n = n_g.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if is_int:
            s_g, q_g = (a.get().reshape(shape2) for a in u64)
            sums = [sum(int(v) for v in row) for row in s_g]
            squares = [sum(int(v) for v in row) for row in q_g]
            total: np.ndarray[Any, Any] = np.array(sums, dtype=np.int64)
            mean = np.array([s / c for s, c in zip(sums, n.tolist(), strict=True)])
            var = np.array([(c * sq - s * s) / (c * c)
                            for s, sq, c in zip(sums, squares, n.tolist(), strict=True)])
        else:
            m_g, m2_g = (a.get().reshape(shape2) for a in f64)
            total = (n_g * m_g).sum(axis=1)
            mean = np.where(n > 0, total / n, np.nan)
            var = np.where(n > 0, (m2_g + n_g * (m_g - mean[:, None]) ** 2).sum(axis=1) / n,
                           np.nan)
    empty = n == 0
    mins = np.where(empty, np.nan, vmin.get().reshape(shape2).min(axis=1).astype(np.float64))
    maxs = np.where(empty, np.nan, vmax.get().reshape(shape2).max(axis=1).astype(np.float64))
    sat = nsat.get().reshape(shape2).astype(np.int64).sum(axis=1)

    def shaped(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return np.asarray(a).reshape(lead)

    return FrameStats(count=shaped(n), sum=shaped(total), mean=shaped(mean),
                      std=shaped(np.sqrt(np.maximum(var, 0.0))), min=shaped(mins),
                      max=shaped(maxs), saturated=shaped(sat), histogram=hist,
                      bin_edges=edges)


def frame_stats_reference(frames: npt.ArrayLike, *, saturation: float | None = None,
                          bins: int | None = None,
                          hist_range: tuple[float, float] | None = None) -> FrameStats:
    """The numpy definition that :func:`frame_stats` implements (float64 arithmetic)."""
    a = np.asarray(frames)
    a, level, edges = _check_args(a, bins, hist_range, saturation)
    lead = a.shape[:-2]
    flat = a.reshape((-1, a.shape[-2] * a.shape[-1]))
    is_int = a.dtype == np.uint16
    valid = np.ones(flat.shape, bool) if is_int else ~np.isnan(flat)
    x = flat.astype(np.float64)
    n = valid.sum(axis=1).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        total: np.ndarray[Any, Any] = (flat.astype(np.int64).sum(axis=1) if is_int
                                       else np.nansum(x, axis=1))
        mean = np.where(n > 0, total / n, np.nan)
        dev = np.where(valid, x - mean[:, None], 0.0)
        std = np.where(n > 0, np.sqrt((dev * dev).sum(axis=1) / n), np.nan)
        mins = np.where(n > 0, np.where(valid, x, np.inf).min(axis=1), np.nan)
        maxs = np.where(n > 0, np.where(valid, x, -np.inf).max(axis=1), np.nan)
    sat = (valid & (x >= level)).sum(axis=1).astype(np.int64)
    hist: I64 | None = None
    if edges is not None and bins is not None and hist_range is not None:
        hist = np.stack([np.histogram(row, int(bins), hist_range)[0] for row in flat]
                        ).astype(np.int64).reshape((*lead, int(bins)))
    return FrameStats(count=n.reshape(lead), sum=total.reshape(lead), mean=mean.reshape(lead),
                      std=std.reshape(lead), min=mins.reshape(lead), max=maxs.reshape(lead),
                      saturated=sat.reshape(lead), histogram=hist, bin_edges=edges)
