"""The frame-independent part of one integration, and the numpy reference of the kernels.

A :class:`Plan` is an integration :class:`~analysis.azint_matrix.Matrix` plus the
per-pixel corrections — the normalisation ``norm = flat × polarization × solid angle``
(float32, as pyFAI computes it) and the ``dark`` — with the pixels that can never count
(``norm`` zero or not finite, a non-finite dark, a flat equal to the dummy value) taken
out, and the per-bin sums that do not depend on the frame: ``Σ c·norm``, ``Σ (c·norm)²``,
``Σ c`` and ``Σ c·dark`` (``c`` the matrix coefficient). Per frame, a pixel also drops out
when its value is not finite or equals the dummy value; the kernels then sum only the
frame: ``Σ c·x`` and, for Poisson errors, ``Σ c²·max(1, x)``.

:func:`reference` computes every per-bin sum directly with numpy for each frame — no
precomputed totals, no corrections — and is what the OpenCL kernels are tested against.
:func:`finish` turns sums into pyFAI's results: ``intensity = Σ c·(x − dark) / Σ c·norm``,
``sem = √(Σ variance) / Σ c·norm``, ``std = √(Σ variance / Σ (c·norm)²)``, and the
``empty`` value where no pixel counts (``Σ (c·norm)² = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.azint_matrix import Axis, Matrix
from geometry import PoniGeometry

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
ERROR_MODELS = (None, "poisson", "azimuthal")


def bin_sum(rows: npt.NDArray[np.int64], weights: F64, n: int) -> F64:
    """Per-bin sum of ``weights`` (``np.bincount`` as float64)."""
    return np.bincount(rows, weights, minlength=n).astype(np.float64)


@dataclass(frozen=True)
class Dummy:
    """Pixels whose value is ``value`` (within ``delta``; exactly when ``delta`` is 0) are
    invalid, compared in float32 like pyFAI. None: no dummy value."""

    value: float
    delta: float

    def flags(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.bool_]:
        """True where ``x`` (float32) is the dummy value."""
        v, d = np.float32(self.value), np.float32(self.delta)
        if d == 0:
            return np.asarray(x == v)
        return np.asarray(np.abs(x - v) <= d)

    def integers(self, dtype: np.dtype[Any]) -> tuple[int, int] | None:
        """For frames of the integer type ``dtype``: the values ``lo..hi`` that are the
        dummy value by :meth:`flags` (float32 conversion and compare), or None when no
        value of the type is. They are one range, the conversion being monotonic: integer
        compares then do the same on the device, without converting."""
        info = np.iinfo(dtype)

        def dummy(x: int) -> bool:
            return bool(self.flags(np.asarray([x], dtype=dtype).astype(np.float32))[0])

        near = min(max(round(self.value), info.min), info.max)
        inside = [x for x in (near - 1, near, near + 1)
                  if info.min <= x <= info.max and dummy(x)]
        if not inside:
            return None

        def edge(true: int, false: int) -> int:  # the last x from `true` towards `false`
            while abs(false - true) > 1:
                mid = (true + false) // 2
                true, false = (mid, false) if dummy(mid) else (true, mid)
            return true

        lo = info.min if dummy(info.min) else edge(inside[0], info.min)
        hi = info.max if dummy(info.max) else edge(inside[-1], info.max)
        return lo, hi


@dataclass(frozen=True)
class Plan:
    """Matrix restricted to the pixels that can count, with the static per-bin sums."""

    matrix: Matrix
    indptr: npt.NDArray[np.int64]
    indices: npt.NDArray[np.int64]
    coefs: F32
    norm: F32
    dark: F32 | None
    sum_norm: F64
    sum_norm2: F64
    count: F64
    sum_dark: F64 | None

    @property
    def nbins(self) -> int:
        """Number of output bins."""
        return self.matrix.nbins

    @property
    def radial(self) -> Axis:
        """The radial bins."""
        return self.matrix.radial

    @property
    def azimuthal(self) -> Axis | None:
        """The χ bins of a cake (None in 1D)."""
        return self.matrix.azimuthal

    def rows(self) -> npt.NDArray[np.int64]:
        """The bin of every entry."""
        return np.repeat(np.arange(self.nbins, dtype=np.int64), np.diff(self.indptr))

    def pixel_bins(self) -> npt.NDArray[np.int64]:
        """Without splitting: the bin of every pixel, ``nbins`` for pixels in none."""
        bins = np.full(self.matrix.npix, self.nbins, dtype=np.int64)
        bins[self.indices] = self.rows()
        return bins


def normalisation(geometry: PoniGeometry, flat: F32 | None, solid_angle: float | None,
                  polarization_factor: float | None) -> F32:
    """``flat × polarization × solid angle`` per pixel, float32 in pyFAI's order;
    ``solid_angle`` is the order of the solid-angle correction (None: none)."""
    norm = np.ones(geometry.shape, dtype=np.float32)
    if flat is not None:
        norm = norm * flat.astype(np.float32)
    if polarization_factor is not None:
        norm = norm * geometry.polarization(polarization_factor).astype(np.float32)
    if solid_angle is not None:
        norm = norm * geometry.solid_angle(solid_angle).astype(np.float32)
    return np.ascontiguousarray(norm.ravel(), dtype=np.float32)


def make_plan(matrix: Matrix, norm: F32, dark: F32 | None, flat: F32 | None,
              dummy: Dummy | None) -> Plan:
    """The :class:`Plan` of ``matrix`` with per-pixel ``norm`` and ``dark`` (flat, ravelled
    float32); ``flat``/``dummy`` only for pyFAI's rule that a flat equal to the dummy value
    (0 without one) invalidates the pixel."""
    valid = np.isfinite(norm) & (norm != 0)
    if dark is not None:
        valid &= np.isfinite(dark)
    if flat is not None:
        valid &= ~(Dummy(0.0, 0.0) if dummy is None else dummy).flags(flat.ravel())
    keep = valid[matrix.indices]
    rows = matrix.rows()[keep]
    counts = np.bincount(rows, minlength=matrix.nbins)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = matrix.indices[keep]
    coefs = matrix.coefs[keep]
    c = coefs.astype(np.float64)
    w = c * norm[indices].astype(np.float64)
    n = matrix.nbins
    sum_dark = None
    if dark is not None:
        sum_dark = bin_sum(rows, c * dark[indices].astype(np.float64), n)
    return Plan(matrix, indptr, indices, coefs, norm, dark,
                bin_sum(rows, w, n), bin_sum(rows, w * w, n),
                bin_sum(rows, c, n), sum_dark)


@dataclass(frozen=True)
class Sums:
    """Per-bin sums of a stack of frames, each ``(frames, nbins)`` float64."""

    signal: F64
    variance: F64 | None
    norm: F64
    norm2: F64
    count: F64


def reference(plan: Plan, frames: npt.NDArray[np.generic], error_model: str | None,
              dummy: Dummy | None) -> Sums:
    """Every per-bin sum of every frame of ``frames`` (``(n, npix)``), straight from the
    definition with numpy (the kernels' reference)."""
    rows = plan.rows()
    c = plan.coefs.astype(np.float64)
    n = plan.nbins
    norm = plan.norm[plan.indices].astype(np.float64)
    dark = None if plan.dark is None else plan.dark[plan.indices].astype(np.float64)
    out: dict[str, list[F64]] = {k: [] for k in ("signal", "variance", "norm", "norm2",
                                                 "count")}
    for frame in np.asarray(frames).reshape(len(frames), -1):
        x32 = frame[plan.indices].astype(np.float32)
        ok = np.isfinite(x32)
        if dummy is not None:
            ok &= ~dummy.flags(x32)
        x = np.where(ok, x32.astype(np.float64), 0.0)
        sig = x - dark if dark is not None else x
        w = np.where(ok, c * norm, 0.0)
        cv = np.where(ok, c, 0.0)
        out["signal"].append(bin_sum(rows, cv * sig, n))
        out["norm"].append(bin_sum(rows, w, n))
        out["norm2"].append(bin_sum(rows, w * w, n))
        out["count"].append(bin_sum(rows, cv, n))
        if error_model == "poisson":
            out["variance"].append(bin_sum(rows, cv * cv * np.maximum(1.0, x), n))
        elif error_model == "azimuthal":
            out["variance"].append(azimuthal_variance(plan, rows, cv * sig, w, ok))
    variance = np.stack(out["variance"]) if error_model is not None else None
    return Sums(np.stack(out["signal"]), variance, np.stack(out["norm"]),
                np.stack(out["norm2"]), np.stack(out["count"]))


def add_dark_variance(sums: Sums, plan: Plan, frames: Any, dummy: Dummy | None) -> Sums:
    """``sums`` with :func:`dark_variance` added to their variance (``frames``: numpy or
    a ``pyopencl.array.Array``, one frame or a stack)."""
    host = frames if isinstance(frames, np.ndarray) else frames.get()
    extra = dark_variance(plan, host.reshape(-1, plan.matrix.npix), dummy)
    assert sums.variance is not None
    return replace(sums, variance=sums.variance + extra)


def dark_variance(plan: Plan, frames: npt.NDArray[np.generic], dummy: Dummy | None) -> F64:
    """The dark's share of pyFAI's Poisson variance in a cake: ``Σ c² · max(dark, 0)``
    over the pixels that count in each frame of ``frames`` (``(n, npix)``), per bin,
    ``(n, nbins)``. pyFAI's ``integrate2d`` (whose CSR engines do not manage the variance)
    takes ``max(x, 1) + max(dark, 0)`` as a pixel's variance with no or bbox splitting,
    where its ``integrate1d`` and its full-splitting cakes take ``max(x, 1)``; the kernels
    sum the latter, this adds the rest."""
    assert plan.dark is not None
    rows = plan.rows()
    c = plan.coefs.astype(np.float64)
    share = c * c * np.maximum(plan.dark[plan.indices].astype(np.float64), 0.0)
    out = []
    for frame in np.asarray(frames).reshape(len(frames), -1):
        x32 = frame[plan.indices].astype(np.float32)
        ok = np.isfinite(x32)
        if dummy is not None:
            ok &= ~dummy.flags(x32)
        out.append(bin_sum(rows, np.where(ok, share, 0.0), plan.nbins))
    return np.stack(out)


def azimuthal_variance(plan: Plan, rows: npt.NDArray[np.int64], s: F64, w: F64,
                       ok: npt.NDArray[np.bool_]) -> F64:
    """pyFAI's running "azimuthal" variance of every bin, entries in CSR order:
    ``VV += ω² (S₋/Ω₋ − b)(S/Ω − b)`` with ``b = sig/norm`` of the new pixel, ``S``, ``Ω``
    the running sums of ``c·sig`` and ``ω = c·norm`` (invalid pixels skipped)."""
    ok = ok & (w != 0)  # pyFAI skips zero coefficients
    rows, s, w = rows[ok], s[ok], w[ok]
    counts = np.bincount(rows, minlength=plan.nbins)
    start = np.concatenate([[0], np.cumsum(counts)])[:-1]
    cs = np.concatenate([[0.0], np.cumsum(s)])
    cw = np.concatenate([[0.0], np.cumsum(w)])
    base_s = np.repeat(cs[start], counts)  # sums of the rows before
    base_w = np.repeat(cw[start], counts)
    cs, cw = cs[1:], cw[1:]
    big_s = cs - base_s  # S_k
    big_w = cw - base_w  # Ω_k
    prev_s, prev_w = big_s - s, big_w - w
    with np.errstate(divide="ignore", invalid="ignore"):
        b = s / w
        term = w * w * (prev_s / prev_w - b) * (big_s / big_w - b)
    later = np.arange(s.size) > np.repeat(start, counts)  # not the row's first entry
    term = np.where(later, term, 0.0)
    return bin_sum(rows, term, plan.nbins)


@dataclass(frozen=True)
class Finished:
    """Results of :func:`finish`, each ``(frames, nbins)``."""

    intensity: F64
    sem: F64 | None
    std: F64 | None


@dataclass(frozen=True)
class Divisors:
    """What :func:`finish` divides by: the bins with a normalisation (``has``; ``full``
    when all have one), and there ``Σ c·norm`` and ``√Σ (c·norm)²`` (1 elsewhere)."""

    has: npt.NDArray[np.bool_]
    full: bool
    norm: F64
    root_norm2: F64


def divisors(norm: F64, norm2: F64, normalization_factor: float = 1.0) -> Divisors:
    """The :class:`Divisors` of the sums ``norm`` and ``norm2``, scaled as pyFAI scales
    them by ``normalization_factor``."""
    if normalization_factor != 1.0:
        norm = norm * normalization_factor
        norm2 = norm2 * (normalization_factor * normalization_factor)
    has = norm2 > 0
    return Divisors(has, bool(has.all()), np.where(has, norm, 1.0),
                    np.sqrt(np.where(has, norm2, 1.0)))


def finish(sums: Sums, empty: float, normalization_factor: float = 1.0,
           div: Divisors | None = None) -> Finished:
    """Intensities and errors from the sums (pyFAI's formulas, ``empty`` where no pixel
    counts); ``normalization_factor`` scales the normalisation as pyFAI's does. ``div``:
    the sums' :func:`divisors` when known (they are static when no pixel dropped out)."""
    d = divisors(sums.norm, sums.norm2, normalization_factor) if div is None else div
    intensity = sums.signal / d.norm
    if not d.full:
        intensity[~d.has] = empty
    sem = std = None
    if sums.variance is not None:
        root = np.sqrt(np.maximum(sums.variance, 0.0))
        sem = root / d.norm
        std = root / d.root_norm2
        if not d.full:
            sem[~d.has] = empty
            std[~d.has] = empty
    return Finished(intensity, sem, std)
