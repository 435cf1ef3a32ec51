"""pyFAI's ``integrate_radial``: the intensity as a function of χ over a radial range.

A cake (``npt`` χ bins × ``npt_rad`` radial bins) is summed over its radial bins, sums
first: each χ bin's intensity is its summed signal over its summed normalisation, as
pyFAI forms it (not a mean of the cake's cell intensities, which would weigh a cell that a
few pixels reach as much as a full one). Called through
:meth:`analysis.azint.AzimuthalIntegrator.integrate_radial`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.azint_results import Integrate1dResult, Integrate2dResult
from geometry import Unit, UnitName, azimuthal_unit

__all__ = ["profile_unit", "radial_profile"]


def profile_unit(unit: Any) -> Unit:
    """The χ unit of an ``integrate_radial`` profile (``chi_deg`` or ``chi_rad``); a radial
    unit given there is refused naming both arguments (pyFAI fails on it with an
    ``AttributeError`` about ``None``)."""
    try:
        return azimuthal_unit(unit)
    except ValueError as err:
        raise ValueError(f"integrate_radial: unit is the profile's azimuthal unit: {err} "
                         f"(the radial unit summed over is radial_unit)") from None


def radial_profile(cake: Integrate2dResult, unit: Unit, empty: float) -> Integrate1dResult:
    """``cake`` (χ in degrees) summed over its radial bins into a profile in ``unit``;
    χ bins no pixel reaches hold ``empty``. ``sigma`` is √(Σ variance) / Σ normalisation
    when the cake has an error model; ``std`` and ``sem`` are not defined (None), as in
    pyFAI's profile. A stack of cakes gives a stack of profiles."""
    signal, count = cake.sum_signal.sum(axis=-1), cake.count.sum(axis=-1)
    norm = cake.sum_normalization.sum(axis=-1)
    none = count == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        intensity = np.where(none, empty, signal / norm)
        variance: npt.NDArray[np.float64] | None = None
        sigma: npt.NDArray[np.float64] | None = None
        if cake.sigma is not None and cake.sum_variance is not None:
            variance = cake.sum_variance.sum(axis=-1)
            sigma = np.where(none, empty, np.sqrt(variance) / norm)
    chi = cake.azimuthal * (unit.scale / _CHI_DEG.scale)
    return Integrate1dResult(
        intensity, sigma, count, signal, variance, norm,
        cake.sum_normalization2.sum(axis=-1), None, None, cake.error_model, cake.method,
        cake.compute_engine, cake.metadata, chi, UnitName(unit))


_CHI_DEG = azimuthal_unit("chi_deg")
