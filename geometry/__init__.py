"""Detector geometry shared by the beamline devices and the analysis: pyFAI's PONI
convention (:class:`PoniGeometry`), ``.poni`` files, named detectors with their module
gaps, radial/azimuthal units, and the rotating-arm 2θ.

It lives apart from ``devices`` and ``analysis`` because both need it (the simulated
powder sample draws its rings with it; the integrator bins with it) and devices must not
import analysis. It imports only numpy.
"""

from geometry.arm import arm_two_theta
from geometry.detectors import Detector, DetectorError, detector, detector_names
from geometry.poni import PoniError, PoniGeometry
from geometry.ponifile import read_poni, write_poni
from geometry.units import (
    AZIMUTHAL_UNITS,
    RADIAL_UNITS,
    Unit,
    UnitName,
    azimuthal_unit,
    photon_energy,
    radial_unit,
)

__all__ = ["AZIMUTHAL_UNITS", "RADIAL_UNITS", "Detector", "DetectorError", "PoniError",
           "PoniGeometry", "Unit", "UnitName", "arm_two_theta", "azimuthal_unit", "detector",
           "detector_names", "photon_energy", "radial_unit", "read_poni", "write_poni"]
