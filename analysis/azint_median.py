"""pyFAI's ``medfilt1d_ng``: a 1D pattern of each bin's weighted median, or the mean of
the pixels between two quantiles (a trimmed mean) — the background under sparse Bragg
peaks, robust to hot pixels.

Each bin's pixels are sorted by their corrected value ``(x − dark) / norm`` and their
weights (coefficient × norm) summed in that order; the pixels whose stretch of the
cumulative weight meets ``[q_min, q_max] × total`` are averaged as ``integrate1d`` would.
Every comparison and product is made in float32 where pyFAI's CSR engine makes it, so the
same pixels are chosen. Runs with numpy on the host from the integrator's cached plan, in
any pixel splitting.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis import azint_args as args
from analysis import azint_host
from analysis.azint_plan import Dummy, Plan, bin_sum
from analysis.azint_results import Integrate1dResult

if TYPE_CHECKING:
    from analysis.azint import AzimuthalIntegrator

__all__ = ["medfilt1d_ng"]


def medfilt1d_ng(ai: AzimuthalIntegrator, data: Any, npt: int = 1024, *,
                 correctSolidAngle: bool | float = True,
                 polarization_factor: float | None = None, variance: Any = None,
                 error_model: Any = None, radial_range: Any = None,
                 azimuth_range: Any = None, dark: Any = None, flat: Any = None,
                 absorption: Any = None, method: Any = ("full", "csr", "cython"),
                 unit: Any = "q_nm^-1", percentile: Any = 50, dummy: float | None = None,
                 delta_dummy: float | None = None, mask: Any = None,
                 normalization_factor: float = 1.0, metadata: Any = None,
                 safe: bool = True) -> Integrate1dResult:
    """pyFAI's ``medfilt1d_ng``: per radial bin, the weighted median (``percentile=50``,
    or any one percentile) or the mean between two percentiles (``percentile=(25, 75)``)
    of the pixels' corrected values, of one frame (a stack: each frame).

    ``error_model`` is None or ``"poisson"`` (``sigma`` = ``sem`` then); pyFAI's
    ``"azimuthal"`` is refused (its median filter computes no such variance and returns
    none). ``variance`` and ``absorption`` arrays are not offered. Other arguments as
    :meth:`~analysis.azint.AzimuthalIntegrator.integrate1d`, with pyFAI's defaults for
    this call (full pixel splitting). Bins no pixel reaches hold ``ai.empty``; ``count``
    is the number of pixel entries averaged."""
    del safe
    model = args.error_model(error_model)
    if model == "azimuthal":
        raise ValueError("medfilt1d_ng: error_model 'azimuthal' is not offered (pyFAI's "
                         "median filter computes no azimuthal variance); use None or "
                         "'poisson'")
    q_min, q_max = _quantiles(percentile)
    split = args.split_of(method)
    s = azint_host.setup(ai, "medfilt1d_ng", data, npt, split, unit, variance, absorption,
                         dummy, delta_dummy, radial_range=radial_range,
                         azimuth_range=azimuth_range, mask=mask, dark=dark, flat=flat,
                         correctSolidAngle=correctSolidAngle,
                         polarization_factor=polarization_factor,
                         normalization_factor=normalization_factor)
    stats = [_quantile_mean(s.plan, frame, s.dummy, model, q_min, q_max, ai.empty,
                            float(normalization_factor)) for frame in s.frames]
    return azint_host.one_result(s, stats, model, split, "numpy (median filter)", metadata)


def _quantiles(percentile: Any) -> tuple[float, float]:
    """pyFAI's ``percentile`` (one number, or two: the lower and upper) as fractions."""
    values = list(percentile) if isinstance(percentile, Iterable) \
        and not isinstance(percentile, str) else [percentile]
    if not 1 <= len(values) <= 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))
            or not math.isfinite(v) or not 0 <= v <= 100 for v in values):
        raise ValueError(f"percentile must be a number in [0, 100] or two of them, got "
                         f"{percentile!r}")
    return min(values) / 100.0, max(values) / 100.0


def _quantile_mean(plan: Plan, frame: npt.NDArray[Any], flag: Dummy | None,
                   model: str | None, q_min: float, q_max: float, empty: float,
                   factor: float) -> azint_host.Stats:
    """One frame's statistics (:data:`analysis.azint_host.Stats`)."""
    rows, n = plan.rows(), plan.nbins
    f32 = np.float32
    ok, x32 = azint_host.valid(plan, frame, flag)
    x32 = np.where(ok, x32, f32(0))
    sig = x32 - plan.dark[plan.indices] if plan.dark is not None else x32
    norm = np.where(ok, plan.norm[plan.indices] * f32(factor), f32(0))
    c = plan.coefs
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(ok, sig / norm, f32(np.nan))  # (entries that do not count last)
    weighted = norm * c  # what pyFAI's cumulative sum adds, float32
    order = np.lexsort((value, rows))
    rows_s, w_s = rows[order], weighted[order].astype(np.float64)
    ends = np.cumsum(np.bincount(rows, minlength=n))
    starts = ends - np.bincount(rows, minlength=n)
    running = np.cumsum(w_s)
    before = np.concatenate([[0.0], running])[starts]  # the cumulative sum before each bin
    cum = running - before[rows_s]  # float64, as pyFAI accumulates it ...
    cum32 = cum.astype(np.float32)  # ... and stores it
    prev = np.concatenate([[np.float32(0)], cum32[:-1]])
    first = np.zeros(cum.size, dtype=bool)
    first[starts[starts < ends]] = True
    prev[first] = 0
    total = np.zeros(n)
    has_any = ends > starts
    total[has_any] = cum[ends[has_any] - 1]
    lo = (q_min * total).astype(np.float32)[rows_s]
    hi = (q_max * total).astype(np.float32)[rows_s]
    pick = (w_s != 0) & (((lo <= prev) & (cum32 <= hi)) | ((lo >= prev) & (cum32 >= hi)))
    idx = order[pick]
    r = rows[idx]
    s1 = (sig[idx] * c[idx]).astype(np.float64)
    s3 = weighted[idx]
    sums = bin_sum(r, s1, n), bin_sum(r, s3.astype(np.float64), n)
    norm2 = bin_sum(r, (s3 * s3).astype(np.float64), n)
    count = bin_sum(r, np.ones(r.size), n)
    has = norm2 > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        intensity = np.where(has, sums[0] / sums[1], empty)
        if model is None:
            return intensity, sums[0], sums[1], norm2, count, None, None, None
        var = (np.maximum(f32(1), x32[idx]) * c[idx] * c[idx]).astype(np.float64)
        v = bin_sum(r, var, n)
        sem = np.where(has, np.sqrt(v) / sums[1], empty)
        std = np.where(has, np.sqrt(v / norm2), empty)
    return intensity, sums[0], sums[1], norm2, count, v, sem, std
