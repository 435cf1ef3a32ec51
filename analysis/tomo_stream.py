"""Streaming tomography: each projection is filtered and back-projected into a running sum
as it arrives, so the reconstruction is always current.

Filtered back-projection is a sum over projections: ``f = π / (2N) · Σ_a BP(ramp * p_a)``.
:class:`StreamingFBP` keeps ``Σ_a`` of a stack of slices on the OpenCL device (with
``circle``, only the pixels inside the circle: the others are zero, and a 256³ sum is
50 MB instead of 64) and adds projections (one or a few at a time) with one kernel call
each (``kernels/fbp_stack.cl``: the slices share the geometry, so one detector position
of all of them is one memory load); nothing is read back until
:meth:`StreamingFBP.result`, which may be called at any time. The live lag is one
projection's work, not a batch's.

:func:`line_integrals` is the host side of each projection (numpy, a few ms for a
256×256 frame): flat-field normalisation ``(p − dark) / (flat − dark)``, ``−log`` with a
``floor``, and the pixels the run's mask excludes (or whose flat is not above the dark)
filled by linear interpolation along their detector row from the nearest good pixels
(:class:`RowFill`) — a pixel that stayed at transmission 1 would be a ring in every slice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.devarray import ArrayArgumentError
from analysis.fbp import FilteredBackProjection, circle_pixels, deinterleave

F32 = npt.NDArray[np.float32]
BoolImage = npt.NDArray[np.bool_]

__all__ = ["RowFill", "StreamingFBP", "line_integrals"]


def _joined(parts: list[npt.NDArray[Any]], dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


class RowFill:
    """Linear interpolation along rows over the ``bad`` pixels of ``(rows, cols)`` frames.

    Each bad pixel takes the value between the nearest good pixels left and right of it
    in its row (the nearest one when it has good pixels on one side only, 0 in a row
    without any), computed once for the mask and applied to any stack of frames."""

    def __init__(self, bad: BoolImage) -> None:
        b = np.asarray(bad, dtype=bool)
        if b.ndim != 2:
            raise ArrayArgumentError(f"argument `bad`: expected (rows, cols), got shape {b.shape}")
        self.shape = b.shape
        cols = b.shape[1]
        col = np.arange(cols)
        targets, left, right, weight = [], [], [], []
        for r in np.flatnonzero(b.any(axis=1)):
            good = np.flatnonzero(~b[r])
            holes = np.flatnonzero(b[r])
            base = r * cols
            if good.size == 0:  # nothing to interpolate from: zero attenuation
                targets.append(base + holes)
                left.append(np.full(holes.size, -1))
                right.append(np.full(holes.size, -1))
                weight.append(np.zeros(holes.size))
                continue
            pos = np.searchsorted(good, holes)
            lo = good[np.clip(pos - 1, 0, good.size - 1)]
            hi = good[np.clip(pos, 0, good.size - 1)]
            lo = np.where(pos == 0, hi, lo)
            hi = np.where(pos == good.size, lo, hi)
            span = np.maximum(hi - lo, 1)
            targets.append(base + holes)
            left.append(base + lo)
            right.append(base + hi)
            weight.append(np.where(hi == lo, 0.0, (col[holes] - lo) / span))
        self._target = _joined(targets, np.intp)
        self._left = _joined(left, np.intp)
        self._right = _joined(right, np.intp)
        self._weight = _joined(weight, np.float32)
        self._none = self._left < 0

    @property
    def count(self) -> int:
        """Number of pixels filled."""
        return int(self._target.size)

    def __call__(self, frames: F32) -> F32:
        """The frames ``(..., rows, cols)`` with their bad pixels filled: ``frames`` itself,
        filled in place, when it is C-contiguous, else a filled copy."""
        if not self.count:
            return frames
        frames = np.ascontiguousarray(frames)
        flat = frames.reshape(-1, self.shape[0] * self.shape[1])
        left = flat[:, np.maximum(self._left, 0)]
        right = flat[:, np.maximum(self._right, 0)]
        values = left + self._weight * (right - left)
        values[:, self._none] = 0.0
        flat[:, self._target] = values
        return frames


def line_integrals(projections: npt.ArrayLike, dark: F32, flat: F32, fill: RowFill | None,
                   floor: float = 1e-6) -> F32:
    """``−log(max((p − dark) / (flat − dark), floor))`` of projections ``(k, rows, cols)``
    in float32, the ``fill`` pixels interpolated along their rows (module docstring).
    ``dark``/``flat`` are the mean references of the same rows."""
    p = np.ascontiguousarray(projections)
    if p.ndim != 3 or p.shape[1:] != dark.shape:
        raise ArrayArgumentError(f"argument `projections`: expected (k, {dark.shape[0]}, "
                                 f"{dark.shape[1]}), got shape {p.shape}")
    den = flat - dark
    good = den > 0
    safe = np.where(good, den, np.float32(1))
    t = (p.astype(np.float32) - dark) / safe
    np.maximum(t, np.float32(floor), out=t)
    mu: F32 = np.negative(np.log(t, out=t), out=t)
    mu[:, ~good] = 0.0  # replaced by the fill when it covers them (see RowFill)
    return fill(mu) if fill is not None else mu


def fill_for(mask: BoolImage | None, dark: F32, flat: F32) -> RowFill:
    """The :class:`RowFill` of the masked pixels and of those whose flat is not above the
    dark (dead or unlit)."""
    bad = ~(flat - dark > 0)
    if mask is not None:
        bad |= np.asarray(mask, dtype=bool)
    return RowFill(bad)


class StreamingFBP:
    """The running filtered back-projection of ``slices`` sinograms of ``width`` samples.

    Parameters
    ----------
    width
        Detector width; each slice is ``width × width``.
    slices
        Number of slices (detector rows) summed side by side.
    centre, circle, device
        As for :class:`analysis.fbp.FilteredBackProjection`.
    """

    def __init__(self, width: int, slices: int, *, centre: float | None = None,
                 circle: bool = True, device: str | None = None) -> None:
        if isinstance(slices, bool) or not isinstance(slices, int | np.integer) or slices < 1:
            raise ArrayArgumentError(f"argument `slices`: expected an int >= 1, got {slices!r}")
        self.slices = int(slices)
        # the angles are given per add; the plan is the geometry and the device
        self._plan = FilteredBackProjection([0.0], width, centre=centre, circle=circle,
                                            device=device)
        self.width = self._plan.width
        self.n = 0
        self._sum: Any = None

    def add(self, projections: npt.ArrayLike, angles: Sequence[float] | npt.ArrayLike, *,
            degrees: bool = True) -> None:
        """Add line-integral projections ``(k, slices, width)`` (float) at ``angles``."""
        p = np.asarray(projections, dtype=np.float32)
        a = np.atleast_1d(np.asarray(angles, dtype=np.float64))
        if p.ndim != 3 or p.shape[1:] != (self.slices, self.width):
            raise ArrayArgumentError(f"argument `projections`: expected (k, {self.slices}, "
                                     f"{self.width}), got shape {p.shape}")
        if a.shape != (p.shape[0],) or not np.all(np.isfinite(a)):
            raise ArrayArgumentError(f"argument `angles`: expected {p.shape[0]} finite "
                                     f"angles, got {a.tolist()}")
        if p.shape[0] == 0:
            return
        sino = np.swapaxes(p, 0, 1)  # (slices, k, width): filtered along the last axis
        self._sum = self._plan.backproject(sino, np.deg2rad(a) if degrees else a,
                                           into=self._sum, scale=1.0, interleaved=True,
                                           packed=self._plan.circle)
        self._sum.finish()  # the sum is current when add returns (the lag is honest)
        self.n += int(p.shape[0])

    def slabs(self) -> Iterator[F32]:
        """The reconstruction so far, a few slices at a time: ``(k, width, width)`` slabs
        in slice order, ``π / (2n) · Σ``. Only one slab is on the host at once, so a
        caller that writes them out never holds the whole volume next to the device sum."""
        if self._sum is None or self.n == 0:
            raise ArrayArgumentError("no projections added yet: nothing to reconstruct")
        groups, spi = self._sum.shape[0], self._sum.shape[-1]
        scale = np.float32(np.pi / (2 * self.n))
        for g in range(groups):
            lo, hi = g * spi, min((g + 1) * spi, self.slices)
            if self._plan.circle:
                slab = self._unpacked(g, hi - lo)
            else:
                host = self._sum[g:g + 1].get()
                # the view shares the sum's event list, and each copy's event holds its
                # host array: without this, up to 12 slabs (48 MB at 256³) stayed alive
                self._sum.finish()
                slab = deinterleave(host, hi - lo)
                del host
            slab *= scale
            yield slab
            del slab  # the caller's to keep, not the next slab's company

    def _unpacked(self, g: int, slices: int) -> F32:
        """Group ``g`` of the packed sum as ``(slices, W, W)``: read from the device an
        eighth of the group at a time, straight into its places (zeros outside the
        circle), so the host holds the slab and a small piece, not a second copy."""
        size = self.width
        slab = np.zeros((slices, size * size), np.float32)
        pixels = circle_pixels(size)
        step = -(-len(pixels) // 8)
        for a in range(0, len(pixels), step):
            piece = self._sum[g, a:a + step].get()
            self._sum.finish()  # (the copy's event holds the piece: see slabs)
            slab[:, pixels[a:a + step]] = piece[:, :slices].T
            del piece
        return slab.reshape(slices, size, size)

    def result(self) -> F32:
        """The reconstruction so far ``(slices, width, width)``: ``π / (2n) · Σ``."""
        out = np.empty((self.slices, self.width, self.width), np.float32)
        lo = 0
        for slab in self.slabs():  # one group at a time: no second full copy on the host
            out[lo:lo + len(slab)] = slab
            lo += len(slab)
        return out
