"""The integration matrix of one geometry and binning: which pixel goes into which bin,
and with what fraction — without pixel splitting, or split like pyFAI's ``bbox`` and
``full`` methods.

A :class:`Matrix` is sparse, rows = output bins, columns = pixels, in CSR form (pixels in
ascending order within a row, as pyFAI's CSR engines hold them); it depends only on the
geometry, the unit, the bins, the ranges and the static mask, so the integrator builds it
once per such configuration and applies it to every frame.

Semantics follow pyFAI's ``splitBBox``/``splitPixel`` CSR builders, so results agree bin by
bin:

* positions are computed in the unit's internal scale (2θ in rad, q in nm⁻¹, r in m,
  χ in rad); pixel corners are rounded to float32 as pyFAI stores them;
* the range is, over the unmasked pixels, [min, max] of the centres (``no``), of
  centre ± the largest centre–corner distance (``bbox``) or of the corners (``full``),
  with the radial minimum and maximum clamped at 0 and χ clipped to [−π, π] (π as a
  float32); a given range
  replaces it; the upper edge is ``max · (1 + ε₃₂)``;
* a position ``x`` falls at fractional bin ``f = (x − min) / δ``; without splitting a
  pixel goes to bin ``trunc(f)`` unless that is negative or ``≥ npt``;
* ``bbox`` spreads a pixel uniformly over ``[f(c − d), f(c + d)]`` (truncated to the bins
  and clipped at the first and last bin, the clipped part going to the edge bin as pyFAI
  does); in 2D the weights are the product of the two axes';
* ``full`` (1D) gives each bin the fraction of the pixel's quadrilateral — corners in
  (radial bin, χ) — that lies over it, normalised over the bins in range; a pixel crossing
  the χ discontinuity is re-centred first;
* with an azimuth range in 1D, a pixel whose χ extent misses the range is left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from geometry import PoniGeometry, Unit

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_EPS32 = 1.0 + float(np.finfo(np.float32).eps)
_PI32 = float(np.float32(math.pi))  # pyFAI clips χ at π rounded to float32
SPLITS = ("no", "bbox", "full")


@dataclass(frozen=True)
class Axis:
    """``npt`` bins of width ``delta`` from ``lo`` to ``hi`` (internal units); ``scale``
    converts to the output unit."""

    npt: int
    lo: float
    hi: float
    scale: float

    @property
    def delta(self) -> float:
        """Bin width in internal units."""
        return (self.hi - self.lo) / self.npt

    @cached_property
    def _internal_centres(self) -> F64:
        d = self.delta
        return np.linspace(self.lo + 0.5 * d, self.hi - 0.5 * d, self.npt)

    def centres(self, scale: float | None = None) -> F64:
        """Bin centres in output units (pyFAI's ``linspace`` of centres), or scaled by
        ``scale`` (another unit of the same quantity); a new array every call."""
        out: F64 = self._internal_centres * (self.scale if scale is None else scale)
        return out


@dataclass(frozen=True)
class Matrix:
    """Sparse integration matrix (see the module docstring)."""

    split: str
    radial: Axis
    azimuthal: Axis | None
    npix: int
    indptr: npt.NDArray[np.int64]
    indices: npt.NDArray[np.int64]
    coefs: npt.NDArray[np.float32]

    @property
    def nbins(self) -> int:
        """Number of output bins (npt, or npt_rad × npt_azim, radial-major)."""
        return self.radial.npt * (self.azimuthal.npt if self.azimuthal else 1)

    @property
    def nnz(self) -> int:
        """Number of stored (bin, pixel) entries."""
        return int(self.indices.size)

    def rows(self) -> I64:
        """The bin of every stored entry (CSR rows expanded)."""
        return np.repeat(np.arange(self.nbins, dtype=np.int64), np.diff(self.indptr))


@dataclass(frozen=True)
class Request:
    """What a matrix depends on, besides the geometry and the mask.

    ``radial_range`` is in internal units; ``azimuth_range`` in rad, already folded into
    [−π, π] (``hi`` may not exceed π)."""

    split: str
    unit: Unit
    npt_rad: int
    radial_range: tuple[float, float] | None = None
    npt_azim: int | None = None
    azimuth_range: tuple[float, float] | None = None


def build(geometry: PoniGeometry, req: Request, mask: npt.NDArray[np.bool_]) -> Matrix:
    """The matrix of ``req`` for ``geometry`` with ``mask`` (True = pixel left out)."""
    keep = ~mask.ravel()
    if not keep.any():
        raise ValueError("every pixel is masked: nothing to integrate")
    if req.split == "full":
        return _full(geometry, req, keep)
    centre = geometry.array(req.unit).ravel()
    chi = geometry.array("chi_rad").ravel()
    if req.split == "bbox":
        d0 = _delta(geometry, req.unit, centre, chi=False)
        d1 = _delta(geometry, geometry_unit_chi(), chi, chi=True)
    else:
        d0 = d1 = np.zeros_like(centre)
    radial = _axis(req.npt_rad, centre - d0, centre + d0, keep, req.radial_range,
                   req.unit.scale, clamp=True)
    if req.npt_azim is None:
        ok = keep.copy()
        if req.azimuth_range is not None:
            lo, hi = req.azimuth_range
            ok &= ~((chi + d1 < lo) | (chi - d1 > hi))
        pix, bins, w = _spread(_fbin(centre - d0, radial), _fbin(centre + d0, radial),
                               radial.npt, ok, split=req.split == "bbox")
        return _csr(req.split, radial, None, centre.size, pix, bins, w)
    azim = _axis(req.npt_azim, chi - d1, chi + d1, keep, req.azimuth_range,
                 180.0 / math.pi, clamp=False)
    split = req.split == "bbox"
    p0, b0, w0 = _spread(_fbin(centre - d0, radial), _fbin(centre + d0, radial), radial.npt,
                         keep, split)
    p1, b1, w1 = _spread(_fbin(chi - d1, azim), _fbin(chi + d1, azim), azim.npt, keep, split)
    pix, bins, w = _outer(p0, b0, w0, p1, b1, w1, azim.npt, centre.size)
    return _csr(req.split, radial, azim, centre.size, pix, bins, w)


def geometry_unit_chi() -> Unit:
    """χ in rad (the azimuthal position the matrices use)."""
    from geometry import azimuthal_unit

    return azimuthal_unit("chi_rad")


def _corners(geometry: PoniGeometry, unit: Unit | str) -> F64:
    """Corner positions ``(rows + 1, cols + 1)``, rounded to float32 as pyFAI keeps them."""
    return geometry.array(unit, corners=True).astype(np.float32).astype(np.float64)


def _four(c: F64) -> tuple[F64, F64, F64, F64]:
    """The four corners of every pixel, flat, in pyFAI's order A(i, j), B(i+1, j),
    C(i+1, j+1), D(i, j+1)."""
    return (c[:-1, :-1].ravel(), c[1:, :-1].ravel(), c[1:, 1:].ravel(), c[:-1, 1:].ravel())


def _delta(geometry: PoniGeometry, unit: Unit, centre: F64, chi: bool) -> F64:
    """Largest centre–corner distance of every pixel (χ across the discontinuity)."""
    out = np.zeros_like(centre)
    for corner in _four(_corners(geometry, unit)):
        d = np.abs(corner - centre)
        if chi:
            d = np.minimum(d, 2.0 * math.pi - d)
        np.maximum(out, d, out=out)
    return out


def _axis(npt_: int, lows: F64, highs: F64, keep: npt.NDArray[np.bool_],
          rng: tuple[float, float] | None, scale: float, clamp: bool) -> Axis:
    if rng is None:
        lo, hi = float(lows[keep].min()), float(highs[keep].max())
        if clamp:
            lo, hi = max(0.0, lo), max(0.0, hi)
        else:
            lo, hi = max(lo, -_PI32), min(hi, _PI32)
    else:
        lo, hi = min(rng), max(rng)
    upper = hi * _EPS32 if hi > 0 else hi / _EPS32
    return Axis(npt_, lo, upper, scale)


MAX_ENTRIES = 2**28
"""Most (pixel, bin) coefficients a splitting matrix may hold: the device indexes them with
32-bit integers, and building one takes ~50 bytes per coefficient of host memory (13 GiB here)."""


def _fbin(x: F64, axis: Axis) -> F64:
    return (x - axis.lo) / axis.delta


def _spread(fmin: F64, fmax: F64, nbins: int, ok: npt.NDArray[np.bool_], split: bool
            ) -> tuple[I64, I64, F64]:
    """Entries (pixel, bin, weight) of each pixel spread uniformly over [fmin, fmax]
    (fractional bins), pyFAI's bounding-box rule; without ``split`` fmin == fmax."""
    with np.errstate(invalid="ignore"):
        b0 = np.trunc(fmin)
        b1 = np.trunc(fmax)
        inside = ok & ~((b1 < 0) | (b0 >= nbins)) & np.isfinite(fmin) & np.isfinite(fmax)
    pix = np.flatnonzero(inside)
    lo = np.maximum(b0[pix], 0).astype(np.int64)
    hi = np.minimum(b1[pix], nbins - 1).astype(np.int64)
    if not split:
        return pix, lo, np.ones(pix.size)
    span = hi - lo + 1
    total = int(span.sum())
    if total > MAX_ENTRIES:
        raise ValueError(
            f"{nbins} bins: pixel splitting would spread {pix.size} pixels over "
            f"{total} (pixel, bin) coefficients, {total / max(pix.size, 1):.0f} per pixel; at "
            f"most {MAX_ENTRIES} are supported — use fewer bins or method='no'")
    start = np.cumsum(span) - span
    entry_pix = np.repeat(np.arange(pix.size), span)
    k = np.arange(total) - np.repeat(start, span)
    bins = lo[entry_pix] + k
    f0, f1 = fmin[pix][entry_pix], fmax[pix][entry_pix]
    with np.errstate(divide="ignore"):
        inv = 1.0 / (f1 - f0)
    w = np.where(k == 0, inv * ((lo[entry_pix] + 1) - f0),
                 np.where(bins == hi[entry_pix], inv * (f1 - hi[entry_pix]), inv))
    w = np.where(span[entry_pix] == 1, 1.0, w)
    return pix[entry_pix], bins, w


def _outer(p0: I64, b0: I64, w0: F64, p1: I64, b1: I64, w1: F64, npt_azim: int,
           npix: int) -> tuple[I64, I64, F64]:
    """2D entries: every radial entry of a pixel times every azimuthal entry of it."""
    n1 = np.bincount(p1, minlength=npix)
    start1 = np.concatenate([[0], np.cumsum(n1)])
    reps = n1[p0]
    e0 = np.repeat(np.arange(p0.size), reps)
    k = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
    e1 = start1[p0[e0]] + k
    return p0[e0], b0[e0] * npt_azim + b1[e1], w0[e0] * w1[e1]


def _csr(split: str, radial: Axis, azim: Axis | None, npix: int, pix: I64, bins: I64,
         w: F64) -> Matrix:
    """CSR from entries listed pixel by pixel (kept in pixel order within each bin)."""
    nbins = radial.npt * (azim.npt if azim else 1)
    order = np.argsort(bins, kind="stable")
    counts = np.bincount(bins, minlength=nbins)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Matrix(split, radial, azim, npix, indptr, pix[order].astype(np.int64),
                  w[order].astype(np.float32))


# -- full pixel splitting (1D) ------------------------------------------------------------


def _full(geometry: PoniGeometry, req: Request, keep: npt.NDArray[np.bool_]) -> Matrix:
    if req.npt_azim is not None:
        return _full2d(geometry, req, keep)
    r = _four(_corners(geometry, req.unit))
    c = list(_four(_corners(geometry, "chi_rad")))
    rmin = np.minimum.reduce(r)
    rmax = np.maximum.reduce(r)
    radial = _axis(req.npt_rad, rmin, rmax, keep, req.radial_range, req.unit.scale,
                   clamp=True)
    _recentre(r, c, geometry.detector.orientation)
    f = [(x - radial.lo) / radial.delta for x in r]
    fmin, fmax = np.minimum.reduce(f), np.maximum.reduce(f)
    ok = keep & ~((fmax < 0) | (fmin >= radial.npt))
    if req.azimuth_range is not None:
        lo, hi = req.azimuth_range
        ok &= ~((np.maximum.reduce(c) < lo) | (np.minimum.reduce(c) > hi))
    b0 = np.floor(fmin)
    b1 = np.floor(fmax)
    single = ok & (b0 == b1)
    multi = np.flatnonzero(ok & (b0 != b1))
    lo_bin = np.maximum(b0[multi], 0).astype(np.int64)
    hi_bin = np.minimum(b1[multi] + 1, radial.npt).astype(np.int64)  # exclusive
    span = hi_bin - lo_bin
    entry = np.repeat(np.arange(multi.size), span)
    k = np.arange(int(span.sum())) - np.repeat(np.cumsum(span) - span, span)
    strip = (lo_bin[entry] + k).astype(np.float64)
    area = np.zeros(strip.size)
    p = multi[entry]
    for a, b in ((0, 1), (1, 2), (2, 3), (3, 0)):
        area += _strip_area(f[a][p], c[a][p], f[b][p], c[b][p], strip)
    area = area.astype(np.float32).astype(np.float64)
    total = np.bincount(entry, weights=area, minlength=multi.size)
    good = total[entry] != 0
    w = np.where(good, area / np.where(good, total[entry], 1.0), 0.0)
    pix = np.concatenate([np.flatnonzero(single), p[good]])
    bins = np.concatenate([b0[single].astype(np.int64), (lo_bin[entry] + k)[good]])
    weights = np.concatenate([np.ones(int(single.sum())), w[good]])
    order = np.argsort(pix, kind="stable")
    return _csr("full", radial, None, keep.size, pix[order], bins[order], weights[order])


def _recentre(r: tuple[F64, ...], c: list[F64], orientation: int) -> None:
    """Move the χ of pixels that straddle the discontinuity at ±π to one side (in place),
    detected like pyFAI by the sign of the pixel's (approximate) signed area."""
    a0, b0, c0, d0 = r
    sign = -1.0 if orientation in (2, 4) else 1.0

    def area(ch: list[F64]) -> F64:
        a1, b1, c1, d1 = ch
        return sign * (0.5 * ((c0 - a0) * (d1 - b1)) - ((c1 - a1) * (d0 - b0)))

    crossing = area(c) > 0
    if not crossing.any():
        return
    moved = [np.where(crossing & (x < 0), x + 2.0 * math.pi, x) for x in c]
    centre = 0.25 * (moved[0] + moved[1] + moved[2] + moved[3])
    back = crossing & (centre > math.pi)
    for i in range(4):
        c[i] = np.where(back, moved[i] - 2.0 * math.pi, moved[i])


def _strip_area(x0: F64, y0: F64, x1: F64, y1: F64, strip: F64) -> F64:
    """Signed area under the segment (x0, y0)–(x1, y1) within ``strip ≤ x < strip + 1``."""
    lo = np.clip(x0, strip, strip + 1.0)
    hi = np.clip(x1, strip, strip + 1.0)
    dx = x1 - x0
    with np.errstate(divide="ignore", invalid="ignore"):
        y_mid = y0 + (y1 - y0) * ((0.5 * (lo + hi) - x0) / dx)
        return np.where(dx != 0, (hi - lo) * y_mid, 0.0)


def _full2d(geometry: PoniGeometry, req: Request, keep: npt.NDArray[np.bool_]) -> Matrix:
    from analysis.azint_full2d import full2d

    return full2d(geometry, req, keep)
