"""The fly scan's public values: its parameters (:class:`FlyParameters`, with
:class:`PositionTrigger`), what it reports per frame (:class:`FlyFrame`) and what it needs
from its detector (:class:`FlyDetector`). ``devices.fly`` runs the acquisition and
re-exports these names.
"""

from __future__ import annotations

import bisect
import math
import numbers
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, overload

import numpy as np
import numpy.typing as npt

from dataflow.packets import ReadoutFrame
from dataflow.readout import FRAME_MOD

from .firmware import Firmware
from .rotation import ContinuousRotation, RotationStage, StartedRotation
from .samples import FluxBuffer, SceneState

ROTATION_WAIT_S = 60.0
"""How long a detector armed with position-compare triggers waits for its rotation to
start (``PositionTrigger.wait_times``) before its acquisition fails saying so."""


@dataclass(frozen=True)
class PositionTrigger:
    """Triggers at the middle of ``frames`` equal bins of ``[start, stop]`` (degrees) while
    ``stage`` rotates at constant velocity (see ``RotationStage.start_continuous``)."""

    stage: RotationStage
    start: float
    stop: float

    def __post_init__(self) -> None:
        if not isinstance(self.stage, RotationStage):
            raise TypeError(f"PositionTrigger.stage must be a RotationStage, got "
                            f"{self.stage!r}")
        for name in ("start", "stop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value):
                raise ValueError(f"PositionTrigger.{name} must be a finite angle in deg, "
                                 f"got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.start == self.stop:
            raise ValueError("PositionTrigger: start and stop angles must differ, got "
                             f"{self.start:g} twice")

    def angle(self, i: int, frames: int) -> float:
        """Trigger angle ``i`` of ``frames``: the bin centre
        ``start + (i + ½)·(stop − start)/frames``."""
        return self.start + (i + 0.5) * ((self.stop - self.start) / frames)

    def angles(self, frames: int) -> list[float]:
        """The trigger angles (:meth:`angle` of each frame)."""
        return [self.angle(i, frames) for i in range(frames)]

    def spacing(self, frames: int, rotation: ContinuousRotation | None = None
                ) -> float | None:
        """Seconds between triggers at the velocity of ``rotation`` (default: the stage's
        prepared continuous rotation; ``None`` before one is prepared): the bin width
        over the velocity."""
        rotation = rotation if rotation is not None else self.stage.prepared
        if rotation is None:
            return None
        return abs(self.stop - self.start) / frames / rotation.velocity

    def ready(self, armed: float) -> StartedRotation | None:
        """The stage's rotation these triggers fire on for an acquisition armed at wall
        time ``armed`` (``RotationStage.rotating_after``): ``None`` while it has not
        started — the last scan's rotation, over before ``armed``, is never taken."""
        return self.stage.rotating_after(armed)

    def wait_times(self, frames: int, armed: float, cancel: threading.Event
                   ) -> tuple[TriggerTimes, StartedRotation] | None:
        """:meth:`times` once the stage's rotation for an acquisition armed at ``armed``
        has started (a detector armed before its rotation waits, as a detector armed for
        position-compare triggers waits for the motion controller's pulses), with that
        rotation; ``None`` if ``cancel`` is set first. ``RuntimeError`` if no rotation
        starts within ``ROTATION_WAIT_S``."""
        started = self.stage.wait_for_rotation(armed, ROTATION_WAIT_S, cancel)
        if started is None:
            if cancel.is_set():
                return None
            raise RuntimeError(f"position-compare triggers on {self.stage.name}: no "
                               f"continuous rotation started within {ROTATION_WAIT_S:g} s "
                               "of the detector's kickoff; prepare and kick off the "
                               "rotation (bps.kickoff) after arming the detector")
        return self.times(frames, armed, started), started

    def times(self, frames: int, armed: float | None = None,
              started: StartedRotation | None = None) -> TriggerTimes:
        """Wall times at which the stage passes the trigger angles, as ``(wall, clock)``
        pairs (the same time twice: the stage's motion is the acquisition clock), on
        ``started`` (default: the stage's last continuous rotation). That rotation must
        cross ``[start, stop]`` or a wider range in the same direction (``ValueError``
        otherwise: the triggers would come at other angles, or never), must have started
        and, for an acquisition armed at ``armed``, not have ended before (``RuntimeError``:
        it is the last scan's; :meth:`wait_times` waits for this scan's) nor have passed
        any trigger angle before ``armed`` (``RuntimeError``: no pulse comes for an angle
        behind the stage)."""
        name = self.stage.name
        if started is None:
            try:
                started = self.stage.started_rotation()
            except RuntimeError:
                raise RuntimeError(f"position-compare triggers on {name}: its continuous "
                                   "rotation has not started") from None
        t0, t1 = started.t_start, started.t_stop
        a0, a1 = started.rotation.start, started.rotation.stop
        if armed is not None and t1 < armed:
            raise RuntimeError(f"position-compare triggers on {name}: its last continuous "
                               f"rotation ({a0:g} to {a1:g} deg) passed its stop "
                               f"{armed - t1:.2f} s before the acquisition was armed "
                               "(the last scan's)")
        low, high = min(a0, a1), max(a0, a1)
        slack = 1e-9 * max(1.0, abs(low), abs(high))
        if (self.stop - self.start) * (a1 - a0) <= 0 or not (
                low - slack <= min(self.start, self.stop)
                and max(self.start, self.stop) <= high + slack):
            raise ValueError(
                f"position-compare triggers over [{self.start:g}, {self.stop:g}] deg: the "
                f"{self.stage.name} rotation at constant velocity runs from {a0:g} to "
                f"{a1:g} deg; the trigger range must lie within it, in the same direction")

        def at(i: int) -> tuple[float, float]:
            t = t0 + (self.angle(i, frames) - a0) / (a1 - a0) * (t1 - t0)
            return t, t

        times = TriggerTimes(frames, at)
        if armed is not None and times[0][0] < armed:  # (times grow with the index)
            passed = bisect.bisect_left(range(frames), armed, key=lambda i: times[i][0])
            last = self.angle(passed - 1, frames)
            raise RuntimeError(
                f"position-compare triggers on {name}: the rotation passed trigger angles "
                f"{self.angle(0, frames):g} to {last:g} deg ({passed} of {frames} triggers) "
                f"up to {armed - times[0][0]:.2f} s before the acquisition was armed; a "
                "position-compare unit fires only as the stage passes: arm the detector "
                "before the rotation reaches the trigger range")
        return times


class TriggerTimes(Sequence[tuple[float, float]]):
    """``(wall, clock)`` of each of ``n`` triggers, each computed when it is asked for: an
    acquisition of many frames does not hold a pair per frame before its first one."""

    def __init__(self, n: int, at: Callable[[int], tuple[float, float]]) -> None:
        self._n, self._at = n, at

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> tuple[float, float]: ...

    @overload
    def __getitem__(self, i: slice) -> list[tuple[float, float]]: ...

    def __getitem__(self, i: int | slice) -> tuple[float, float] | list[tuple[float, float]]:
        try:  # (a range's indexing: negative indexes, slices, bounds)
            picked = range(self._n)[i]
        except IndexError:
            raise IndexError(f"trigger {i} of {self._n}") from None
        if isinstance(picked, range):
            return [self._at(j) for j in picked]
        return self._at(picked)

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return (self._at(j) for j in range(self._n))


_SAME = 1e-6
"""Relative difference below which a period equals its exposure (far above a float32
value's rounding, ~6e-8: an exposure of ``np.float32(0.1)`` is 0.10000000149 s)."""


@dataclass(frozen=True)
class FlyParameters:
    """What the detector's ``prepare`` takes for a fly scan.

    Parameters
    ----------
    frames
        Number of frames (from 1 to ``FRAME_MOD``, 2**32: the firmware's frame counter
        must tell them apart).
    exposure
        Exposure per frame in seconds; ``None`` keeps the detector's ``exposure`` signal.
    period
        Internal triggers: seconds between frames (>= exposure; default: the exposure).
    trigger
        Position-compare triggers from a rotation stage instead of internal ones.
    polled
        The plan collects again and again until the acquisition completes, whatever
        pauses happen (``plans.fly_tomo.collect_until_complete``): a collect after a
        resume returns the frames there are. False (default, for any other plan): the
        first collect after a resume waits for the acquisition's end — the RunEngine
        drops a wait that a pause interrupted, so the plan's ``complete`` wait (or
        ``collect_while_completing``'s) would otherwise end the run early. That collect
        waits in the RunEngine's loop: a second pause (or a suspender) during it acts
        once the acquisition has ended — a polled plan has no such wait.
    """

    frames: int
    exposure: float | None = None
    period: float | None = None
    trigger: PositionTrigger | None = None
    polled: bool = False

    def __post_init__(self) -> None:
        frames = self.frames
        if isinstance(frames, bool) or not isinstance(frames, numbers.Integral) \
                or not 1 <= frames <= FRAME_MOD:
            raise ValueError(f"FlyParameters.frames must be an int >= 1 and <= {FRAME_MOD} "
                             "(the frames the firmware's 32-bit frame counter tells apart), "
                             f"got {frames!r}")
        object.__setattr__(self, "frames", int(frames))
        for name in ("exposure", "period"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not (math.isfinite(value) and value > 0):
                raise ValueError(f"FlyParameters.{name} must be a number > 0 s or None, "
                                 f"got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.period is not None and self.trigger is not None:
            raise ValueError("FlyParameters: give a period (internal triggers) or a trigger "
                             "(position compare), not both")
        if self.period is not None and self.exposure is not None \
                and self.period < self.exposure * (1.0 - _SAME):
            raise ValueError(f"FlyParameters.period {self.period} s is shorter than the "
                             f"exposure {self.exposure} s")
        if self.trigger is not None and not isinstance(self.trigger, PositionTrigger):
            raise TypeError(f"FlyParameters.trigger must be a PositionTrigger or None, got "
                            f"{self.trigger!r}")

    def check_exposure(self, exposure: float, who: str,
                       rotation: ContinuousRotation | None = None) -> None:
        """Raise ``ValueError`` if triggers come closer together than ``exposure`` s (the
        one the acquisition takes: these parameters' or the detector's signal), which
        would make exposures overlap — no detector takes those. Position-compare triggers
        are checked against ``rotation``, the one they fire on (the acquisition asks once
        it knows it: the rotation started, or prepared and not started yet; the stage's
        prepared one may otherwise be the last scan's)."""
        period = self.period
        what = "period"
        if self.trigger is not None:
            period = self.trigger.spacing(self.frames, rotation)
            what = "position-compare trigger spacing"
        if period is not None and period < exposure * (1.0 - _SAME):
            raise ValueError(f"{who}: the fly acquisition's {what} {period:g} s is shorter "
                             f"than its exposure {exposure:g} s (exposures would overlap); "
                             "lengthen the period, slow the rotation or shorten the exposure")


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

    def flux_at(self, t: float, into: FluxBuffer | None = None,
                state: SceneState | None = None) -> tuple[npt.NDArray[np.float64], float]:
        """The scene's flux on the sensor at time ``t``: an image and the factor to
        scale it by (``count`` takes both); the image may be ``into``'s (a buffer the
        caller does not pass again while it still reads that image). ``state``: the
        scene's state at ``t`` taken then (``scene_state``), instead of asking the
        devices' bounded histories now."""

    def scene_state(self, t: float) -> SceneState:
        """The scene's state at wall time ``t`` (pose, beam factor): a few numbers."""

    def prepare_scene(self) -> None:
        """Fill the sample's caches now, before the first trigger (``Scene.prepare``)."""

    def count(self, flux: npt.NDArray[np.float64], factor: float, exposure: float,
              out: Counts | None = None, frame: int | None = None) -> Counts:
        """The sensor counts of an exposure of ``exposure`` s to ``factor × flux``
        (drawn into ``out`` when given, with the noise of ``frame`` when given: one of
        ``reserve_frames``'; ``SensorModel.expose``)."""

    def reserve_frames(self, n: int) -> int:
        """The sensor's noise numbers of its next ``n`` exposures (the first; the others
        follow it), for ``count(frame=…)`` in any order (``SensorModel.reserve_frames``)."""

    def angle_at(self, t: float) -> float:
        """The rotation stage's angle at wall-clock time ``t`` (position capture)."""

    def fly_block(self) -> int:
        """Frames per block of the armed fly acquisition's file (what one of its chunks
        holds): the acquisition's batches for the writer end on its blocks, so the file
        writes each block once (``devices.fly_limits.batch_end``)."""

    def store_fly_frames(self, images: npt.NDArray[np.uint16],
                         frames: Sequence[FlyFrame], last: ReadoutFrame,
                         counts: Counts) -> None:
        """Write ``images`` (the frames' images, in order); ``last`` and ``counts`` are
        the batch's last readout frame and sensor counts (for the readback signals)."""

    def store_fly_lost(self, triggers: Sequence[int]) -> None:
        """Record in the file that the frames of ``triggers`` were lost on the link."""


__all__ = ["ROTATION_WAIT_S", "Counts", "FlyDetector", "FlyFrame", "FlyParameters",
           "PositionTrigger", "TriggerTimes"]
