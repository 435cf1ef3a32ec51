"""The fly scan's public values: its parameters (:class:`FlyParameters`, with
:class:`PositionTrigger`), what it reports per frame (:class:`FlyFrame`) and what it needs
from its detector (:class:`FlyDetector`). ``devices.fly`` runs the acquisition and
re-exports these names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from dataflow.packets import ReadoutFrame

from .firmware import Firmware
from .rotation import RotationStage


@dataclass(frozen=True)
class PositionTrigger:
    """Triggers at the middle of ``frames`` equal bins of ``[start, stop]`` (degrees) while
    ``stage`` rotates at constant velocity (see ``RotationStage.start_continuous``)."""

    stage: RotationStage
    start: float
    stop: float

    def angles(self, frames: int) -> list[float]:
        """The trigger angles: bin centres ``start + (i + ½)·(stop − start)/frames``."""
        step = (self.stop - self.start) / frames
        return [self.start + (i + 0.5) * step for i in range(frames)]

    def times(self, frames: int) -> list[float]:
        """Wall times at which the stage passes the trigger angles (its continuous
        rotation across ``[start, stop]`` must have been started)."""
        t0, t1 = self.stage.constant_velocity_window()
        span = self.stop - self.start
        return [t0 + (angle - self.start) / span * (t1 - t0) for angle in self.angles(frames)]


@dataclass(frozen=True)
class FlyParameters:
    """What the detector's ``prepare`` takes for a fly scan.

    Parameters
    ----------
    frames
        Number of frames (>= 1).
    exposure
        Exposure per frame in seconds; ``None`` keeps the detector's ``exposure`` signal.
    period
        Internal triggers: seconds between frames (>= exposure; default: the exposure).
    trigger
        Position-compare triggers from a rotation stage instead of internal ones.
    """

    frames: int
    exposure: float | None = None
    period: float | None = None
    trigger: PositionTrigger | None = None

    def __post_init__(self) -> None:
        if isinstance(self.frames, bool) or not isinstance(self.frames, int | np.integer) \
                or self.frames < 1:
            raise ValueError(f"FlyParameters.frames must be an int >= 1, got {self.frames!r}")
        for name in ("exposure", "period"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and not
                                          isinstance(value, bool) and math.isfinite(value)
                                          and value > 0):
                raise ValueError(f"FlyParameters.{name} must be a number > 0 s or None, "
                                 f"got {value!r}")
        if self.period is not None and self.trigger is not None:
            raise ValueError("FlyParameters: give a period (internal triggers) or a trigger "
                             "(position compare), not both")
        if self.period is not None and self.exposure is not None \
                and self.period < self.exposure:
            raise ValueError(f"FlyParameters.period {self.period} s is shorter than the "
                             f"exposure {self.exposure} s")
        if self.trigger is not None and self.trigger.start == self.trigger.stop:
            raise ValueError("FlyParameters.trigger: start and stop angles must differ")


@dataclass(frozen=True)
class FlyFrame:
    """What the detector reports for one frame of a fly scan (besides the image).

    ``time`` is the frame's time stamp (its trigger on the acquisition clock, see the
    module docstring); ``trigger_time`` and ``done_time`` are the wall-clock moments the
    simulation triggered it and wrote it (their difference is the frame's lag)."""

    index: int
    time: float
    trigger_time: float
    done_time: float
    angle: float
    roi_sum: int
    saturated: int
    frame_number: int
    histogram: tuple[int, ...]
    lost_before: int = 0
    """Frames lost on the link since the previous good one (``ReadoutFrame.lost_before``)."""


Counts = npt.NDArray[np.uint32 | np.int64]
"""A frame of sensor counts: ``uint32``, or ``int64`` when drawn straight into the words of
the link (``devices.sensor_link.frame_link``)."""


class FlyDetector(Protocol):
    """What a fly acquisition needs from its detector (``FirmwareDetector`` is one)."""

    name: str
    time_scale: float
    firmware: Firmware

    def expose(self, t: float, exposure: float, out: Counts | None = None) -> Counts:
        """The sensor counts of an exposure of ``exposure`` s of the scene at time ``t``
        (drawn into ``out`` when given, ``SensorModel.expose``)."""

    def angle_at(self, t: float) -> float:
        """The rotation stage's angle at wall-clock time ``t`` (position capture)."""

    def store_fly_frames(self, images: npt.NDArray[np.uint16],
                         frames: Sequence[FlyFrame], last: ReadoutFrame,
                         counts: Counts) -> None:
        """Write ``images`` (the frames' images, in order); ``last`` and ``counts`` are
        the batch's last readout frame and sensor counts (for the readback signals)."""


__all__ = ["Counts", "FlyDetector", "FlyFrame", "FlyParameters", "PositionTrigger"]
