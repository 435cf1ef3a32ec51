"""Radial and azimuthal units of azimuthal integration, named and scaled as pyFAI does.

Every unit has an *internal* scale in which positions are computed and bins are laid out
(2θ in rad, q in nm⁻¹, r in m, d*² in nm⁻², χ in rad) and a ``scale`` from internal to
output values (``2th_deg``: 180/π, ``q_A^-1``: 0.1, ``r_mm``: 1000, ``d*2_A^-2``: 0.01).
Units of q and d*² need the wavelength; asking for one without it raises ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["AZIMUTHAL_UNITS", "HC_KEV_ANGSTROM", "RADIAL_UNITS", "Unit", "UnitName",
           "azimuthal_unit", "photon_energy", "radial_unit"]

F64 = npt.NDArray[np.float64]
HC_KEV_ANGSTROM = 12.398419843320026
"""Planck's constant × the speed of light in keV·Å (pyFAI's ``CONST_hc``): a photon of
λ Å has this ÷ λ keV."""
_Formula = Callable[[F64, F64, F64, float], F64]


def photon_energy(wavelength: float) -> float:
    """The energy (keV) of a photon of ``wavelength`` metres (its own inverse: the
    wavelength in metres of a photon of that many keV)."""
    return HC_KEV_ANGSTROM / (wavelength * 1e10)


def _r(t1: F64, t2: F64, t3: F64, wavelength: float) -> F64:
    return np.hypot(t1, t2)


def _tth(t1: F64, t2: F64, t3: F64, wavelength: float) -> F64:
    return np.arctan2(np.hypot(t1, t2), t3)


def _q(t1: F64, t2: F64, t3: F64, wavelength: float) -> F64:
    return (4.0e-9 * math.pi / wavelength) * np.sin(_tth(t1, t2, t3, wavelength) / 2.0)


def _d2(t1: F64, t2: F64, t3: F64, wavelength: float) -> F64:
    q = _q(t1, t2, t3, wavelength) / (2.0 * math.pi)
    return q * q


def _chi(t1: F64, t2: F64, t3: F64, wavelength: float) -> F64:
    return np.arctan2(t1, t2)


@dataclass(frozen=True)
class Unit:
    """A unit of position on the detector.

    ``scale`` converts internal values to the unit (output = internal × scale);
    ``needs_wavelength`` is true for q and d*²; ``space`` groups units computed alike
    (``"2th"``, ``"q"``, ``"r"``, ``"d*2"``, ``"chi"``)."""

    name: str
    space: str
    scale: float
    formula: _Formula
    needs_wavelength: bool = False

    @property
    def label(self) -> str:
        """What the values are, for an axis label: ``"Scattering angle 2θ (°)"``."""
        return _LABELS[self.name]

    def values(self, t1: F64, t2: F64, t3: F64, wavelength: float | None,
               source: str | None = None) -> F64:
        """Internal values at lab positions ``(t1, t2, t3)`` (m, t3 along the beam);
        ``source``: the ``.poni`` file the geometry was read from, named when the
        wavelength is missing."""
        if self.needs_wavelength:
            if wavelength is None:
                why = ("the .poni file has no Wavelength line" if source is None else
                       f"{source} has no Wavelength line: pyFAI writes it after Rot3 when "
                       "known, so a file cut short after that line reads so too")
                raise ValueError(f"unit {self.name!r} needs the wavelength, and the geometry "
                                 f"has none ({why}); set it or use a 2th_* or r_* unit")
            return self.formula(t1, t2, t3, wavelength)
        return self.formula(t1, t2, t3, 0.0)


RADIAL_UNITS: dict[str, Unit] = {u.name: u for u in (
    Unit("2th_deg", "2th", 180.0 / math.pi, _tth),
    Unit("2th_rad", "2th", 1.0, _tth),
    Unit("q_nm^-1", "q", 1.0, _q, True),
    Unit("q_A^-1", "q", 0.1, _q, True),
    Unit("r_mm", "r", 1000.0, _r),
    Unit("r_m", "r", 1.0, _r),
    Unit("d*2_A^-2", "d*2", 0.01, _d2, True),
    Unit("d*2_nm^-2", "d*2", 1.0, _d2, True),
)}
AZIMUTHAL_UNITS: dict[str, Unit] = {u.name: u for u in (
    Unit("chi_deg", "chi", 180.0 / math.pi, _chi),
    Unit("chi_rad", "chi", 1.0, _chi),
)}

_LABELS = {"2th_deg": "Scattering angle 2θ (°)", "2th_rad": "Scattering angle 2θ (rad)",
           "q_nm^-1": "Scattering vector q (nm⁻¹)", "q_A^-1": "Scattering vector q (Å⁻¹)",
           "r_mm": "Radius r (mm)", "r_m": "Radius r (m)",
           "d*2_A^-2": "Reciprocal spacing squared d*² (Å⁻²)",
           "d*2_nm^-2": "Reciprocal spacing squared d*² (nm⁻²)",
           "chi_deg": "Azimuthal angle χ (°)", "chi_rad": "Azimuthal angle χ (rad)"}


class UnitName(str):
    """A unit's name — a str, compared and printed as the name — that also has the
    attributes of pyFAI's ``Unit`` a result's reader uses: ``name``, ``label`` and
    ``scale`` (pyFAI's ``jupyter.plot1d(result)`` labels its axis with
    ``result.unit.label``)."""

    label: str
    scale: float

    def __new__(cls, unit: Unit) -> UnitName:
        out = super().__new__(cls, unit.name)
        out.label, out.scale = unit.label, unit.scale
        return out

    @property
    def name(self) -> str:
        """The unit's name, as pyFAI's ``Unit.name``."""
        return str(self)

    def __reduce__(self) -> tuple[Callable[[str], UnitName], tuple[str]]:
        # (copy, deepcopy and pickle would rebuild a str subclass from its text alone)
        return _unit_name, (str(self),)


def _unit_name(name: str) -> UnitName:
    """The :class:`UnitName` of the radial or azimuthal unit ``name`` (unpickling)."""
    for table in (RADIAL_UNITS, AZIMUTHAL_UNITS):
        if name in table:
            return UnitName(table[name])
    raise ValueError(f"no unit named {name!r}")


def _lookup(table: dict[str, Unit], kind: str, unit: object) -> Unit:
    if isinstance(unit, Unit):
        if unit.name in table:
            return unit
        unit = unit.name
    elif not isinstance(unit, str):
        name = getattr(unit, "name", None)  # another library's unit object (pyFAI's)
        unit = name if isinstance(name, str) else unit
    if isinstance(unit, str):
        found = table.get(unit) or next((u for name, u in table.items()
                                         if name.lower() == unit.lower()), None)
        if found is not None:
            return found
    raise ValueError(f"unknown {kind} unit {unit!r}; valid: {', '.join(table)}")


def radial_unit(unit: object) -> Unit:
    """The radial :class:`Unit` named ``unit`` (case-insensitive, pyFAI's names; a pyFAI
    ``Unit`` object stands for its name)."""
    return _lookup(RADIAL_UNITS, "radial", unit)


def azimuthal_unit(unit: object) -> Unit:
    """The azimuthal :class:`Unit` named ``unit`` (``chi_deg`` or ``chi_rad``)."""
    return _lookup(AZIMUTHAL_UNITS, "azimuthal", unit)
