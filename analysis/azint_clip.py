"""pyFAI's ``sigma_clip_ng``: a 1D pattern of each bin's mean after iterative sigma
clipping — the background under Bragg peaks, hot pixels and zingers left out.

Each radial bin is integrated, then the pixels whose corrected value ``(x − dark) / norm``
is further than ``k · std`` from the bin's mean are dropped and the bin integrated again,
at most ``max_iter`` times or until none is dropped. ``k`` is the larger of ``thres`` and
Chauvenet's criterion √(2 ln(n / √(2π))) for the bin's ``n`` pixels (at least 3), and
``std`` comes from the error model: Poisson (√Σ max(1, x) / √Σ norm²) or the spread of the
bin's pixels (pyFAI's running "azimuthal" variance), as pyFAI's CSR engine computes them.
Without pixel splitting only: a pixel belongs to one bin (pyFAI warns that with splitting
"your results are likely to be wrong"). Runs on the host with numpy from the integrator's
cached :class:`~analysis.azint_plan.Plan`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis import azint_args as args
from analysis import azint_host
from analysis.azint_plan import Dummy, Plan, azimuthal_variance, bin_sum
from analysis.azint_results import Integrate1dResult

if TYPE_CHECKING:
    from analysis.azint import AzimuthalIntegrator

__all__ = ["sigma_clip_ng"]

F64 = npt.NDArray[np.float64]


def sigma_clip_ng(ai: AzimuthalIntegrator, data: Any, npt: int = 1024, *,
                  correctSolidAngle: bool | float = True,
                  polarization_factor: float | None = None, variance: Any = None,
                  error_model: Any = None, radial_range: Any = None,
                  azimuth_range: Any = None, dark: Any = None, flat: Any = None,
                  absorption: Any = None, method: Any = ("no", "csr", "cython"),
                  unit: Any = "q_nm^-1", thres: float = 5.0, max_iter: int = 5,
                  dummy: float | None = None, delta_dummy: float | None = None,
                  mask: Any = None, normalization_factor: float = 1.0, metadata: Any = None,
                  safe: bool = True) -> Integrate1dResult:
    """pyFAI's ``sigma_clip_ng`` (its ``sigma_clip`` now): the sigma-clipped
    mean of each of ``npt`` radial bins of one frame (a stack: each frame).

    ``thres`` is the clipping distance in standard deviations (raised to Chauvenet's
    criterion for large bins), ``max_iter`` the most clipping rounds. ``error_model`` must
    be ``"poisson"`` or ``"azimuthal"``: pyFAI's default, None, is refused — its docstring
    falls back on Poisson, its Python engine on "azimuthal", and its Cython engine (its
    default method) clips every pixel and returns zeros. ``method`` must name no pixel
    splitting; ``variance`` and ``absorption`` arrays are not offered (refused when given).
    Other arguments as :meth:`~analysis.azint.AzimuthalIntegrator.integrate1d`. Bins no
    pixel is left in hold ``ai.empty``. The result
    has ``std`` (the clipped pixels' deviation), ``sem`` (= ``sigma``) and the sums of the
    kept pixels; ``count`` is their number (pyFAI reports at least 3 when clipping stopped
    early)."""
    del safe
    model = args.error_model(error_model)
    if model is None:
        raise ValueError("sigma_clip_ng needs error_model='poisson' or 'azimuthal' (pyFAI's "
                         "default None clips with a zero deviation in its Cython engine)")
    if args.split_of(method) != "no":
        raise ValueError(f"sigma_clip_ng runs without pixel splitting: method {method!r} "
                         f"splits pixels; use method='no'")
    for name, value in (("thres", thres), ("max_iter", max_iter)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if max_iter != int(max_iter):
        raise ValueError(f"max_iter must be a whole number, got {max_iter!r}")
    s = azint_host.setup(ai, "sigma_clip_ng", data, npt, "no", unit, variance, absorption,
                         dummy, delta_dummy, radial_range=radial_range,
                         azimuth_range=azimuth_range, mask=mask, dark=dark, flat=flat,
                         correctSolidAngle=correctSolidAngle,
                         polarization_factor=polarization_factor,
                         normalization_factor=normalization_factor)
    stats = [_clip(s.plan, frame, s.dummy, model, float(thres), int(max_iter), ai.empty,
                   float(normalization_factor)) for frame in s.frames]
    return azint_host.one_result(s, stats, model, "no", "numpy (sigma clipping)", metadata)


def _clip(plan: Plan, frame: npt.NDArray[Any], flag: Dummy | None, model: str,
          thres: float, max_iter: int, empty: float, factor: float) -> azint_host.Stats:
    """One frame's statistics (:data:`analysis.azint_host.Stats`)."""
    rows, n = plan.rows(), plan.nbins
    c = plan.coefs.astype(np.float64)
    norm = plan.norm[plan.indices].astype(np.float64)
    ok, x32 = azint_host.valid(plan, frame, flag)
    x = np.where(ok, x32.astype(np.float64), 0.0)
    sig = x - plan.dark[plan.indices].astype(np.float64) if plan.dark is not None else x
    value = sig / norm  # what is compared with the bin's mean (norm is never 0 here)
    poisson = c * c * np.maximum(1.0, x)

    def sums(keep: npt.NDArray[np.bool_]) -> tuple[F64, F64, F64, F64, F64]:
        cv = np.where(keep, c, 0.0)
        w = cv * norm
        if model == "poisson":
            v = bin_sum(rows, np.where(keep, poisson, 0.0), n)
        else:
            v = azimuthal_variance(plan, rows, cv * sig, w, keep)
        return bin_sum(rows, cv * sig, n), bin_sum(rows, w, n), bin_sum(rows, w * w, n), \
            bin_sum(rows, cv, n), v

    s, w, w2, count, v = sums(ok)
    going = np.ones(n, dtype=bool)
    for _ in range(max_iter):
        going &= (w != 0) & (count != 0)
        if not going.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            mean, std = s / w, np.sqrt(v / w2)
            k = np.maximum(thres, np.sqrt(2.0 * np.log(np.maximum(3.0, count)
                                                       / math.sqrt(2.0 * math.pi))))
        bad = ok & going[rows] & (np.abs(value - mean[rows]) > (k * std)[rows])
        going &= np.bincount(rows[bad], minlength=n) > 0
        if not going.any():
            break
        ok &= ~bad
        new = sums(ok)
        s, w, w2, count, v = (np.where(going, a, b) for a, b in zip(new, (s, w, w2, count, v),
                                                                      strict=True))
    has = (count > 0) & (w != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.sqrt(np.maximum(v, 0.0))
        intensity = np.where(has, s / (w * factor), empty)
        std = np.where(has, root / (np.sqrt(w2) * factor), empty)
        sem = np.where(has, root / (w * factor), empty)
    return intensity, s, w * factor, w2 * factor * factor, count, v, sem, std
