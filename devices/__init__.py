"""ophyd devices of the simulated beamline (the detector whose firmware is an SME network,
motors, shutter, beam monitor) — built on ``sme`` and ``fpga``.

``devices.Beamline.create(folder)`` builds a whole simulated beamline in one call (also
importable as ``devices.beamline.Beamline``).

The sample environment the detector looks at is :class:`devices.samples.Scene`; see
:mod:`devices.samples` for the frames and units shared by all sample models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devices.beam import BeamMonitor
    from devices.beamline import Beamline, SampleChanger
    from devices.fly import FlyParameters, PositionTrigger
    from devices.motion import MotorLimitError, SimMotor
    from devices.phantom import Ellipsoid, EllipsoidPhantom, PhantomSample, shepp_logan_3d
    from devices.powder import CEO2, SILICON, CubicCrystal, PowderSample, reflections
    from devices.rotation import ContinuousRotation, RotationStage
    from devices.samples import EmptyBeam, IncidentBeam, Pose, Sample, Scene
    from devices.shutter import FastShutter

# Each name's module, imported on first use (PEP 562): smeflow's pytest plugin imports
# this package in every pytest process (cocotb's inside GHDL too), and the beamline's
# modules (ophyd, numba, the HDF5 writer) cost 4-8 s of CPU to import.
_HOMES = {
    "BeamMonitor": "beam",
    "Beamline": "beamline", "SampleChanger": "beamline",
    "FlyParameters": "fly", "PositionTrigger": "fly",
    "MotorLimitError": "motion", "SimMotor": "motion",
    "Ellipsoid": "phantom", "EllipsoidPhantom": "phantom", "PhantomSample": "phantom",
    "shepp_logan_3d": "phantom",
    "CEO2": "powder", "SILICON": "powder", "CubicCrystal": "powder",
    "PowderSample": "powder", "reflections": "powder",
    "ContinuousRotation": "rotation", "RotationStage": "rotation",
    "EmptyBeam": "samples", "IncidentBeam": "samples", "Pose": "samples",
    "Sample": "samples", "Scene": "samples",
    "FastShutter": "shutter",
}

__all__ = [
    "CEO2",
    "SILICON",
    "BeamMonitor",
    "Beamline",
    "ContinuousRotation",
    "CubicCrystal",
    "Ellipsoid",
    "EllipsoidPhantom",
    "EmptyBeam",
    "FastShutter",
    "FlyParameters",
    "IncidentBeam",
    "MotorLimitError",
    "PhantomSample",
    "Pose",
    "PositionTrigger",
    "PowderSample",
    "RotationStage",
    "Sample",
    "SampleChanger",
    "Scene",
    "SimMotor",
    "reflections",
    "shepp_logan_3d",
]


def __getattr__(name: str) -> Any:
    """``devices.NAME``: the exported name from its module, or the submodule ``NAME``
    (both imported on first use)."""
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(f"devices.{home}"), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"devices.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"devices.{name}":
                raise
    raise AttributeError(f"module 'devices' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
