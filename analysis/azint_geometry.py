"""pyFAI's geometry attributes on an integrator: ``ai.wavelength = 1.54e-10``,
``ai.dist = 0.2``, ``ai.rot1 = 0.01``, ``ai.energy = 12.4`` (keV) or a whole new
``ai.geometry`` change the geometry the next integration uses, as in pyFAI, where a
``.poni`` file without a wavelength is commonly loaded and given one that way.

Every change makes a new :class:`geometry.PoniGeometry` (which checks the value) and
forgets what was cached for the old one. Setting a public attribute the integrator does
not have (pyFAI's ``mask``, ``detector``, ``chiDiscAtPi``, ...) is refused: it would be
a new attribute that no integration reads, the old geometry's pattern without an error.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from geometry import PoniGeometry, photon_energy

__all__ = ["GEOMETRY_ATTRIBUTES", "GeometryAttributes"]

GEOMETRY_ATTRIBUTES = ("dist", "poni1", "poni2", "rot1", "rot2", "rot3", "wavelength",
                       "energy")
"""The pyFAI geometry attributes an integrator reads and sets (metres, radians, keV)."""


def _poni_attribute(name: str) -> property:
    def get(self: GeometryAttributes) -> Any:
        return getattr(self.geometry, name)

    def put(self: GeometryAttributes, value: Any) -> None:
        self.geometry = self.geometry.replace(**{name: value})

    return property(get, put, doc=f"pyFAI's ``{name}``: the geometry's, settable.")


class GeometryAttributes:
    """The geometry of an integrator, read and set as pyFAI's (module docstring).

    A subclass lists in ``_PLAIN_ATTRIBUTES`` the other public attributes it sets and
    implements ``reset()``, which forgets what was cached for a geometry."""

    _PLAIN_ATTRIBUTES: frozenset[str] = frozenset()
    _geometry: PoniGeometry

    dist = _poni_attribute("dist")
    poni1 = _poni_attribute("poni1")
    poni2 = _poni_attribute("poni2")
    rot1 = _poni_attribute("rot1")
    rot2 = _poni_attribute("rot2")
    rot3 = _poni_attribute("rot3")
    wavelength = _poni_attribute("wavelength")

    @property
    def geometry(self) -> PoniGeometry:
        """The detector geometry integrations use; setting one forgets the caches."""
        return self._geometry

    @geometry.setter
    def geometry(self, value: PoniGeometry) -> None:
        if not isinstance(value, PoniGeometry):
            raise TypeError(f"geometry must be a PoniGeometry, got {type(value).__name__}")
        self._geometry = value
        self.reset()

    @property
    def energy(self) -> float | None:
        """The photon energy in keV (pyFAI's ``energy``), None without a wavelength."""
        wavelength = self.geometry.wavelength
        return None if wavelength is None else photon_energy(wavelength)

    @energy.setter
    def energy(self, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"energy must be a positive finite number of keV, got "
                             f"{value!r}")
        self.wavelength = photon_energy(float(value))  # (its own inverse)

    def reset(self) -> None:
        """Forget everything cached for the geometry (the subclass's caches)."""
        raise NotImplementedError

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and name not in self._PLAIN_ATTRIBUTES \
                and not hasattr(type(self), name):
            raise AttributeError(
                f"{type(self).__name__} has no setting {name!r}: it would be an attribute "
                f"no integration reads. Set the geometry as pyFAI's: "
                f"{', '.join(GEOMETRY_ATTRIBUTES)} (or geometry, a PoniGeometry); mask, "
                f"dark, flat and the other corrections are arguments of integrate1d and "
                f"integrate2d")
        super().__setattr__(name, value)
