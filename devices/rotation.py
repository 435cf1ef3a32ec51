"""The rotation stage of fly tomography: a :class:`devices.motion.SimMotor` in degrees
that also rotates continuously.

:meth:`RotationStage.start_continuous` runs up, crosses ``[start, stop]`` at a constant
angular velocity and runs out, and :meth:`RotationStage.constant_velocity_window` gives the
wall times at which the stage passes ``start`` and ``stop``. ``prepare`` / ``kickoff`` /
``complete`` are the same motion as bluesky's fly protocol (``ContinuousRotation`` is what
``prepare`` takes).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ophyd.status import MoveStatus

from .motion import MotorLimitError, SimMotor
from .streams import RunEndWatch
from .trajectory import Segment, Trajectory, trapezoid

__all__ = ["ContinuousRotation", "RotationStage", "RunUpOutError", "StartedRotation"]


class RunUpOutError(MotorLimitError):
    """A continuous rotation's run-up or run-out angle lies outside the limits.

    ``end`` is ``"run-up"`` (before ``start``) or ``"run-out"`` (after ``stop``),
    ``angle`` that angle and ``ramp`` the degrees the stage needs to reach or leave the
    velocity, so callers can say which end is too close to a limit without redoing the
    kinematics.
    """

    def __init__(self, message: str, *, end: str, angle: float, ramp: float) -> None:
        super().__init__(message)
        self.end = end
        self.angle = angle
        self.ramp = ramp


@dataclass(frozen=True)
class ContinuousRotation:
    """A rotation across ``[start, stop]`` degrees at constant ``velocity`` deg/s, what
    ``RotationStage.prepare`` takes for a fly scan (see ``start_continuous``)."""

    start: float
    stop: float
    velocity: float


@dataclass(frozen=True)
class StartedRotation:
    """A continuous rotation the stage started: its ``rotation`` and the wall times
    ``t_start`` and ``t_stop`` at which it passes ``rotation.start`` and ``.stop``."""

    rotation: ContinuousRotation
    t_start: float
    t_stop: float


class RotationStage(SimMotor):
    """A rotation stage (degrees) with continuous rotation for fly scans.

    Parameters
    ----------
    name
        Device name.
    limits
        Soft limits in degrees (continuous rotations must keep their run-up and run-out
        inside them).
    velocity, acceleration
        Point-to-point move speed (deg/s) and acceleration (deg/s²).
    max_velocity
        Highest angular velocity accepted by :meth:`start_continuous`.
    **kwargs
        As for :class:`SimMotor`.
    """

    def __init__(
        self,
        *,
        name: str,
        limits: tuple[float, float] = (-720.0, 720.0),
        velocity: float = 90.0,
        acceleration: float = 360.0,
        max_velocity: float = 360.0,
        egu: str = "deg",
        precision: int = 3,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            name=name,
            limits=limits,
            velocity=velocity,
            acceleration=acceleration,
            egu=egu,
            precision=precision,
            **kwargs,
        )
        if not (math.isfinite(max_velocity) and max_velocity > 0):
            raise ValueError(
                f"rotation stage {name!r}: max_velocity must be > 0, got {max_velocity!r}"
            )
        self.max_velocity = float(max_velocity)
        self._started: StartedRotation | None = None
        self._starts = threading.Condition(threading.Lock())
        """Notified whenever a continuous rotation starts (``wait_for_rotation``)."""
        self._prepared: ContinuousRotation | None = None
        self._fly_status: MoveStatus | None = None
        self._run_end = RunEndWatch(name, self._stop_turning)  # the kickoff's run

    def run_up_out(self, start: float, stop: float, velocity: float) -> tuple[float, float]:
        """Run-up and run-out angles of a continuous rotation; checks velocity, angles
        and limits (the errors ``start_continuous`` documents)."""
        if not (math.isfinite(velocity) and 0 < velocity <= self.max_velocity):
            raise ValueError(
                f"rotation stage {self.name!r}: continuous velocity must be in "
                f"(0, {self.max_velocity:g}] deg/s, got {velocity!r}"
            )
        if not (math.isfinite(start) and math.isfinite(stop)) or start == stop:
            raise ValueError(
                f"rotation stage {self.name!r}: continuous rotation needs finite start != "
                f"stop, got start={start!r}, stop={stop!r}"
            )
        accel = float(self.acceleration.get())
        sign = 1.0 if stop > start else -1.0
        ramp = velocity * velocity / (2.0 * accel)
        run_up, run_out = start - sign * ramp, stop + sign * ramp
        for angle, what in ((run_up, "run-up"), (run_out, "run-out")):
            try:
                self.check_value(angle)
            except MotorLimitError as err:
                raise RunUpOutError(
                    f"rotation stage {self.name!r}: continuous rotation {start:g}→{stop:g} "
                    f"deg at {velocity:g} deg/s needs a {what} angle of {angle:g} deg, "
                    f"outside the limits {self.limits}; nothing was moved",
                    end=what, angle=angle, ramp=ramp) from err
        return run_up, run_out

    def start_continuous(self, start: float, stop: float, velocity: float) -> MoveStatus:
        """Rotate across ``[start, stop]`` at constant angular ``velocity`` (deg/s).

        The stage first moves (at its normal velocity) to a run-up angle before ``start``,
        accelerates so that it passes ``start`` at full ``velocity``, holds it until
        ``stop``, then decelerates to rest past ``stop``. The returned status completes
        when the stage is at rest again; :meth:`constant_velocity_window` gives the wall
        times of passing ``start`` and ``stop``, and :meth:`position_at` the angle at any
        time.

        Raises
        ------
        ValueError
            ``velocity`` not in ``(0, max_velocity]`` or ``start == stop``.
        MotorLimitError
            The run-up or run-out angle lies outside the limits.
        """
        start, stop = float(start), float(stop)
        run_up, run_out = self.run_up_out(start, stop, velocity)
        accel = float(self.acceleration.get())
        sign = 1.0 if stop > start else -1.0
        t_ramp = velocity / accel
        t_const = abs(stop - start) / velocity
        fly = Trajectory(
            (
                Segment(0.0, run_up, 0.0, sign * accel),
                Segment(t_ramp, start, sign * velocity, 0.0),
                Segment(t_ramp + t_const, stop, sign * velocity, -sign * accel),
            ),
            2.0 * t_ramp + t_const,
            run_out,
        )
        with self._lock:
            approach = trapezoid(
                self.position,
                run_up,
                float(self.velocity.get()),
                accel,
            )
            status = self._run(approach.then(fly), run_out)
            t_start = self._t0_wall + (approach.duration + t_ramp) * self.time_scale
            self._started = StartedRotation(ContinuousRotation(start, stop, float(velocity)),
                                             t_start, t_start + t_const * self.time_scale)
        with self._starts:
            self._starts.notify_all()
        return status

    # -- bluesky fly protocol (prepare / kickoff / complete) ---------------------------

    def prepare(self, value: ContinuousRotation) -> MoveStatus:
        """Move to the run-up angle of the continuous rotation ``value`` (checked
        against the limits and ``max_velocity`` now); ``kickoff`` then starts it. The
        last rotation's window is forgotten: until the kickoff there is none (a
        position-compare trigger armed now must not fire on the last scan's)."""
        if not isinstance(value, ContinuousRotation):
            raise TypeError(f"{self.name}.prepare: expected ContinuousRotation, got {value!r}")
        run_up, _ = self.run_up_out(value.start, value.stop, value.velocity)
        self._prepared = value
        self._fly_status = None
        with self._lock:  # (the last rotation's window is not this scan's)
            self._started = None
        status: MoveStatus = self.set(run_up)
        return status

    def pause(self) -> None:
        """The RunEngine pauses (bluesky's ``Pausable``). A move to the run-up angle that
        ``prepare`` started stops where it is, successfully, as the RunEngine stops the
        moves it started with ``set``: the ``prepare`` replayed on resume then starts it
        afresh, instead of cancelling a move whose failed status would end the run. A
        rotation that was kicked off goes on (part of a continuous rotation cannot be
        taken again; the detector's ``pause`` stops the replay)."""
        if self._prepared is not None and self._fly_status is None:
            self.stop(success=True)

    def resume(self) -> None:
        """The RunEngine resumes (``Pausable``): nothing to restart (see :meth:`pause`)."""

    @property
    def prepared(self) -> ContinuousRotation | None:
        """The continuous rotation ``prepare`` set up (``None`` before one)."""
        return self._prepared

    @property
    def pending(self) -> ContinuousRotation | None:
        """The continuous rotation ``prepare`` set up when no rotation has started
        since (the next one ``kickoff`` starts), else ``None``."""
        return self._prepared if self._started is None else None

    def kickoff(self) -> MoveStatus:
        """Start the prepared rotation; the returned status is already finished (the
        stage is moving; ``complete`` follows the motion). Kicked off in a run, the
        rotation stops where it is if the run ends first (``_stop_turning``)."""
        value = self._prepared
        if value is None:
            raise RuntimeError(f"{self.name}: kickoff() needs prepare(ContinuousRotation) first")
        self._fly_status = self.start_continuous(value.start, value.stop, value.velocity)
        self._run_end.arm()
        done = MoveStatus(self, value.start)
        done.set_finished()
        return done

    def _stop_turning(self) -> None:
        """The run this rotation was kicked off in ended (aborted, stopped, halted or
        failed: bluesky stops only what it ``set``, and ``bp.fly`` or a user's plan may
        have no clean-up of its own): a rotation still turning stops where it is,
        successfully, as the RunEngine stops what it moved. At rest, nothing."""
        status = self._fly_status
        if status is not None and not status.done:
            self.stop(success=True)

    def complete(self) -> MoveStatus:
        """Finishes when the stage is at rest after the run-out."""
        if self._fly_status is None:
            raise RuntimeError(f"{self.name}: complete() before kickoff()")
        return self._fly_status

    # -- bluesky's Collectable: ``bp.fly([detector flyer, stage])`` --------------------

    def describe_collect(self) -> dict[str, dict[str, Any]]:
        """No stream: the stage records nothing of its own in a fly scan (the angle at
        each frame is in the detector's stream, latched at its trigger). With it the stage
        is a flyer bluesky's ``bp.fly`` takes after the detector it triggers: kicked off
        once the detector is armed, completed, and collected as nothing."""
        return {}

    def collect(self) -> Iterator[dict[str, Any]]:
        """Nothing to collect (see :meth:`describe_collect`)."""
        return iter(())

    def started_rotation(self) -> StartedRotation:
        """The last continuous rotation started (since the last ``prepare``), its
        angles, velocity and window in one record."""
        started = self._started
        if started is None:
            raise RuntimeError(
                f"rotation stage {self.name!r}: no continuous rotation was started"
            )
        return started

    def constant_velocity_window(self) -> tuple[float, float]:
        """Wall times at which the last continuous rotation passed ``start`` and ``stop``."""
        started = self.started_rotation()
        return started.t_start, started.t_stop

    def constant_velocity_range(self) -> tuple[float, float]:
        """``(start, stop)`` angles of the last continuous rotation: where it passes at
        the times of :meth:`constant_velocity_window`."""
        rotation = self.started_rotation().rotation
        return rotation.start, rotation.stop

    def rotating_after(self, t: float) -> StartedRotation | None:
        """The continuous rotation on record if it passes ``stop`` at or after wall time
        ``t`` (running, about to run, or started since ``t``), else ``None``: what a
        position-compare trigger armed at ``t`` may fire on — a rotation over before
        ``t`` is the last scan's."""
        started = self._started
        return started if started is not None and started.t_stop >= t else None

    def wait_for_rotation(self, after: float, timeout: float,
                          cancel: threading.Event | None = None) -> StartedRotation | None:
        """Wait until :meth:`rotating_after` ``after`` has a rotation (one starts:
        ``kickoff``) and return it; ``None`` after ``timeout`` seconds or once ``cancel``
        is set. A position-compare trigger armed before its rotation (a detector kicked
        off first: plans arm detectors, then start the motion) waits here."""
        deadline = time.monotonic() + timeout
        with self._starts:
            while (started := self.rotating_after(after)) is None:
                left = deadline - time.monotonic()
                if left <= 0 or (cancel is not None and cancel.is_set()):
                    return None
                self._starts.wait(min(left, 0.1))  # (0.1 s: to see ``cancel``)
        return started
