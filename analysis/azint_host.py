"""What pyFAI's per-bin statistics beyond the mean — ``sigma_clip_ng``
(:mod:`analysis.azint_clip`) and ``medfilt1d_ng`` (:mod:`analysis.azint_median`) — share:
their arguments checked, the integrator's cached 1D plan, and the frames on the host (they
run with numpy), and one result per frame or stack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis import azint_args as args
from analysis.azint_plan import Dummy, Plan
from analysis.azint_results import Integrate1dResult
from geometry import Unit, UnitName, radial_unit

if TYPE_CHECKING:
    from analysis.azint import AzimuthalIntegrator

__all__ = ["Setup", "one_result", "setup"]

F64 = npt.NDArray[np.float64]
#: one frame's intensity, Σ signal, Σ norm, Σ norm², count, Σ variance, sem, std
Stats = tuple[F64, F64, F64, F64, F64, F64 | None, F64 | None, F64 | None]


class Setup:
    """A call's plan (``method``'s splitting), frames ``(n, npix)``, dummy and unit."""

    def __init__(self, plan: Plan, frames: npt.NDArray[Any], stacked: bool,
                 dummy: Dummy | None, unit: Unit) -> None:
        self.plan, self.frames, self.stacked = plan, frames, stacked
        self.dummy, self.unit = dummy, unit


def setup(ai: AzimuthalIntegrator, call: str, data: Any, npt: int, split: str, unit: Any,
          variance: Any, absorption: Any, dummy: Any, delta_dummy: Any,
          **plan_kwargs: Any) -> Setup:
    """Check ``call``'s arguments pyFAI has and smeflow does not offer (``variance``,
    ``absorption`` arrays), the frames, and get the cached plan of ``plan_kwargs``
    (:meth:`~analysis.azint.AzimuthalIntegrator.plan1d`'s)."""
    for name, value in (("variance", variance), ("absorption", absorption)):
        if value is not None:
            raise ValueError(f"{call}: a {name} array is not offered (pass None)")
    frames = args.check_frames(data, ai.geometry.shape, ai.rt.context)
    host = np.asarray(frames if isinstance(frames, np.ndarray) else frames.get())
    r_unit = radial_unit(unit)
    plan = ai.plan1d(npt, unit=r_unit, method=split, data_dtype=host.dtype, **plan_kwargs)
    flag = args.dummy_of(dummy, delta_dummy, ai.geometry.detector, host.dtype)
    return Setup(plan, host.reshape(-1, host.shape[-2] * host.shape[-1]), host.ndim == 3,
                 flag, r_unit)


def one_result(s: Setup, stats: list[Stats], model: str | None, split: str, engine: str,
               metadata: Any) -> Integrate1dResult:
    """The result of every frame's ``stats``: arrays with a frame axis for a stack."""
    def pick(k: int) -> Any:
        arrays = [o[k] for o in stats]
        if arrays[0] is None or not s.stacked:
            return arrays[0]
        return np.stack([a for a in arrays if a is not None])

    return Integrate1dResult(
        pick(0), pick(6), pick(4), pick(1), pick(5), pick(2), pick(3), pick(7), pick(6),
        model, (split, "csr", "numpy"), engine, metadata,
        s.plan.radial.centres(s.unit.scale), UnitName(s.unit))


def valid(plan: Plan, frame: npt.NDArray[Any], dummy: Dummy | None
          ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """Which of the plan's entries count in ``frame`` (finite, not the dummy, a non-zero
    coefficient), and the frame's values at them as float32 (pyFAI's preprocessing)."""
    x32 = frame[plan.indices].astype(np.float32)
    ok = np.isfinite(x32) & (plan.coefs != 0)
    if dummy is not None:
        ok &= ~dummy.flags(x32)
    return ok, x32
