"""Binning plan of the azimuthal integrator, and its numpy reference.

A :class:`Plan` holds everything that depends on the geometry and the configuration but
not on the frame: the output bin of every pixel (or "none"), the normalisation of every
pixel (flat × polarization × solid angle, float32 as pyFAI computes it) and, per bin, the
sums of normalisation, squared normalisation, dark and the pixel count. Integrating a
frame then needs only the per-bin sum of the frame (and of the Poisson variance).

Bin semantics follow pyFAI's ``("no", "csr", "cython")`` integrator (``splitBBoxCSR``
without splitting): positions in the unit's internal scale (2θ in rad, q in nm⁻¹, r in m,
χ in rad); the range is the valid pixels' [min, max] (radial minimum clamped at 0, χ
clipped to [−π, π]) unless given; the upper edge is ``max · (1 + ε₃₂)``; a pixel at
fractional bin ``f = (x − min) / δ`` lands in bin ``trunc(f)`` and is dropped when that
is negative or ``≥ npt``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geometry import PoniGeometry

_EPS32 = 1.0 + float(np.finfo(np.float32).eps)
F64 = npt.NDArray[np.float64]


def _bincount(bins: npt.NDArray[np.int64], weights: npt.NDArray[np.float64],
              n: int) -> F64:
    """``np.bincount`` over ``n`` bins plus the dump bin ``n`` (dropped), as float64."""
    return np.bincount(bins, weights=weights, minlength=n + 1)[:n].astype(np.float64)


@dataclass(frozen=True)
class Unit:
    """A radial unit: its name, scale from internal to output values, and per-pixel values."""

    name: str
    scale: float
    positions: Callable[[PoniGeometry], npt.NDArray[np.float64]]


def _r_m(g: PoniGeometry) -> npt.NDArray[np.float64]:
    t1, t2, _ = g.lab_positions()
    return np.hypot(t1, t2)


UNITS: dict[str, Unit] = {
    "2th_deg": Unit("2th_deg", 180.0 / math.pi, PoniGeometry.tth),
    "q_nm^-1": Unit("q_nm^-1", 1.0, PoniGeometry.q),
    "r_mm": Unit("r_mm", 1000.0, _r_m),
}
CHI_DEG = Unit("chi_deg", 180.0 / math.pi, PoniGeometry.chi)
ERROR_MODELS = ("poisson", None)


def to_unit(unit: str) -> Unit:
    """The :class:`Unit` named ``unit``; unknown names get the list of valid ones."""
    try:
        return UNITS[unit]
    except (KeyError, TypeError):
        raise ValueError(f"unknown unit {unit!r}; valid units: "
                         + ", ".join(UNITS)) from None


@dataclass(frozen=True)
class Axis:
    """Bin layout along one axis: ``npt`` bins of width ``delta`` from ``lo`` (internal
    units) and the output scale."""

    npt: int
    lo: float
    hi: float
    scale: float

    @property
    def delta(self) -> float:
        """Bin width in internal units."""
        return (self.hi - self.lo) / self.npt

    def centres(self) -> F64:
        """Bin centres in output units (as pyFAI's ``linspace`` of centres)."""
        d = self.delta
        return np.linspace(self.lo + 0.5 * d, self.hi - 0.5 * d, self.npt) * self.scale


def _axis(pos: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_], npt_: int,
          rng: tuple[float, float] | None, scale: float, clamp_zero: bool,
          clip: tuple[float, float] | None) -> tuple[Axis, npt.NDArray[np.int64]]:
    """The axis and every pixel's bin (−1 when dropped), pyFAI's no-split semantics."""
    if rng is None:
        if not valid.any():
            raise ValueError("no valid pixel left (everything masked): cannot choose a "
                             "range; pass radial_range/azimuth_range")
        lo = float(pos[valid].min())
        hi_in = float(pos[valid].max())
        if clamp_zero:
            lo, hi_in = max(0.0, lo), max(0.0, hi_in)
        if clip is not None:
            lo, hi_in = max(lo, clip[0]), min(hi_in, clip[1])
    else:
        lo, hi_in = min(rng) / scale, max(rng) / scale
    hi = hi_in * _EPS32 if hi_in > 0 else hi_in / _EPS32
    axis = Axis(npt_, lo, hi, scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.trunc((pos - lo) / axis.delta)
    ok = valid & (f >= 0) & (f < npt_)
    bins = np.where(ok, f, -1).astype(np.int64)
    return axis, bins


@dataclass(frozen=True)
class Plan:
    """Frame-independent part of one integration configuration (see module docstring).

    ``bins`` holds the flat output bin of each pixel, ``nbins`` (the "dump" bin) for
    pixels that contribute nowhere; 2D bins are ``radial_bin * npt_azim + azim_bin``.
    """

    radial: Axis
    azimuthal: Axis | None
    bins: npt.NDArray[np.int64]
    norm: npt.NDArray[np.float32]
    sum_normalization: npt.NDArray[np.float64]
    sum_normalization2: npt.NDArray[np.float64]
    count: npt.NDArray[np.float64]
    sum_dark: npt.NDArray[np.float64] | None

    @property
    def nbins(self) -> int:
        """Number of output bins (npt, or npt_rad × npt_azim)."""
        return self.radial.npt * (self.azimuthal.npt if self.azimuthal else 1)


def make_plan(geometry: PoniGeometry, unit: Unit, npt_rad: int,
              radial_range: tuple[float, float] | None = None,
              npt_azim: int | None = None,
              azimuth_range: tuple[float, float] | None = None,
              mask: npt.NDArray[np.bool_] | None = None,
              dark: npt.NDArray[np.float32] | None = None,
              flat: npt.NDArray[np.float32] | None = None,
              correct_solid_angle: bool = True,
              polarization_factor: float | None = None) -> Plan:
    """Compute the :class:`Plan` for one configuration (arguments already validated)."""
    shape = geometry.shape
    norm: npt.NDArray[np.float32] = np.ones(shape, dtype=np.float32)
    if flat is not None:
        norm = norm * flat.astype(np.float32)
    if polarization_factor is not None:
        norm = norm * geometry.polarization(polarization_factor).astype(np.float32)
    if correct_solid_angle:
        norm = norm * geometry.solid_angle().astype(np.float32)
    norm = norm.ravel()
    valid = np.isfinite(norm) & (norm != 0)
    if mask is not None:
        valid &= ~mask.ravel()
    pos = unit.positions(geometry).ravel()
    radial, rbins = _axis(pos, valid, npt_rad, radial_range, unit.scale, True, None)
    azim: Axis | None = None
    if npt_azim is None:
        bins = rbins
        nbins = npt_rad
    else:
        chi = geometry.chi().ravel()
        azim, abins = _axis(chi, valid, npt_azim, azimuth_range, CHI_DEG.scale, False,
                            (-math.pi, math.pi))
        bins = np.where((rbins >= 0) & (abins >= 0), rbins * npt_azim + abins, -1)
        nbins = npt_rad * npt_azim
    bins = np.where(bins >= 0, bins, nbins)
    w = norm.astype(np.float64)
    sum_norm = _bincount(bins, w, nbins)
    sum_norm2 = _bincount(bins, w * w, nbins)
    count = _bincount(bins, np.ones(bins.size), nbins)
    sum_dark = None
    if dark is not None:
        sum_dark = _bincount(bins, dark.astype(np.float32).ravel().astype(np.float64), nbins)
    return Plan(radial, azim, bins, norm, sum_norm, sum_norm2, count, sum_dark)


@dataclass(frozen=True)
class Sums:
    """Per-bin results of one frame (flat over all bins, float64)."""

    intensity: npt.NDArray[np.float64]
    sigma: npt.NDArray[np.float64] | None
    sum_signal: npt.NDArray[np.float64]
    sum_variance: npt.NDArray[np.float64] | None


def finish(plan: Plan, raw_sum: npt.NDArray[np.float64],
           var_correction: npt.NDArray[np.float64] | None) -> Sums:
    """Turn the per-bin frame sums into intensities and errors.

    ``raw_sum`` is Σx per bin and ``var_correction`` Σ(1 − x) over pixels with x < 1, so
    the Poisson variance Σmax(1, x) is their sum (pyFAI's Poisson model uses the raw
    counts, dark not subtracted, at least 1)."""
    signal = raw_sum - plan.sum_dark if plan.sum_dark is not None else raw_sum.copy()
    has = plan.sum_normalization2 > 0
    den = np.where(has, plan.sum_normalization, 1.0)
    intensity = np.where(has, signal / den, 0.0)
    variance = sigma = None
    if var_correction is not None:
        variance = raw_sum + var_correction
        sigma = np.where(has, np.sqrt(np.maximum(variance, 0.0)) / den, 0.0)
    return Sums(intensity, sigma, signal, variance)


def reference_sums(plan: Plan, frame: npt.NDArray[np.generic],
                   variance: bool) -> Sums:
    """The numpy reference of the OpenCL kernels: ``np.bincount`` over the plan's bins."""
    x = np.asarray(frame).ravel().astype(np.float64)
    n = plan.nbins
    raw = _bincount(plan.bins, x, n)
    corr = _bincount(plan.bins, np.maximum(1.0, x) - x, n) if variance else None
    return finish(plan, raw, corr)
