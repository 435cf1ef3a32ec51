"""ophyd devices of the simulated beamline (the detector whose firmware is an SME network,
motors, shutter, beam monitor) — built on ``sme`` and ``fpga``.

``devices.Beamline.create(folder)`` builds a whole simulated beamline in one call (also
importable as ``devices.beamline.Beamline``).

The sample environment the detector looks at is :class:`devices.samples.Scene`; see
:mod:`devices.samples` for the frames and units shared by all sample models.
"""

from devices.beam import BeamMonitor
from devices.beamline import Beamline, SampleChanger
from devices.fly import FlyParameters, PositionTrigger
from devices.motion import MotorLimitError, SimMotor
from devices.phantom import Ellipsoid, EllipsoidPhantom, PhantomSample, shepp_logan_3d
from devices.powder import CEO2, SILICON, CubicCrystal, PowderSample, reflections
from devices.rotation import ContinuousRotation, RotationStage
from devices.samples import EmptyBeam, IncidentBeam, Pose, Sample, Scene
from devices.shutter import FastShutter

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
