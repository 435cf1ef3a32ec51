"""Simulated motors: sample X/Y stages and a rotation stage, as ophyd v1 positioners.

A :class:`SimMotor` behaves like an ``EpicsMotor`` seen from bluesky: ``set`` returns a
:class:`ophyd.status.MoveStatus` that completes after the time a real stage needs for the
move (trapezoidal velocity profile from ``velocity`` and ``acceleration``), the readback
evolves during the move (a ``read()`` mid-move gives an intermediate position), ``stop()``
halts it where it is, and a move outside the soft limits raises
:class:`MotorLimitError` before anything moves (bluesky sees the ``set`` fail).

Time runs in two clocks. *Physical* time is what the velocity and acceleration are
expressed in; *wall* time is what the caller waits. ``time_scale`` converts one into the
other: a move that takes ``T`` physical seconds completes after ``T * time_scale`` wall
seconds. ``time_scale=1`` is real time; tests and the demo use e.g. ``0.01`` (100 times
faster than real). Positions are always consistent with wall time, so
:meth:`SimMotor.position_at` answers "where was (or will be) the stage at wall time t".

Completion is driven by a per-move timer thread that also publishes the readback at
``update_period`` wall seconds so progress bars and subscriptions see the motion; ``set``
itself never blocks.

:class:`RotationStage` adds continuous rotation for fly tomography:
:meth:`RotationStage.start_continuous` runs up, crosses ``[start, stop]`` at a constant
angular velocity and runs out, and :meth:`RotationStage.constant_velocity_window` gives the
wall times at which the stage passes ``start`` and ``stop``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Kind, PositionerBase, Signal
from ophyd.signal import InternalSignal
from ophyd.status import MoveStatus
from ophyd.utils.errors import LimitError

from .trajectory import Segment, Trajectory, trapezoid

__all__ = [
    "MotorLimitError",
    "RotationStage",
    "RunUpOutError",
    "SimMotor",
    "Trajectory",
    "trapezoid",
]


HISTORY = 64
"""Trajectories a motor remembers for ``position_at`` in the past."""


class MotorLimitError(LimitError):  # type: ignore[misc]
    """A requested position lies outside a motor's soft limits (raised before moving)."""


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


class _PositiveSignal(Signal):  # type: ignore[misc]
    """A configuration signal that only accepts finite numbers > 0."""

    def check_value(self, value: Any) -> None:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number > 0, got {value!r}") from None
        if not (math.isfinite(number) and number > 0):
            raise ValueError(f"{self.name} must be a finite number > 0, got {value!r}")


class _Readback(InternalSignal):  # type: ignore[misc]
    """Readback computed from the parent motor's trajectory at the moment of reading."""

    def get(self, **kwargs: Any) -> float:
        now = time.time()
        value = self.parent.position_at(now)
        self._readback = value
        self._metadata["timestamp"] = now
        return float(value)


@dataclass
class _Move:
    """Book-keeping of one running motion."""

    cancel: threading.Event
    thread: threading.Thread


class SimMotor(Device, PositionerBase):  # type: ignore[misc]
    """A simulated linear (or rotary) stage with limits, velocity and acceleration.

    Parameters
    ----------
    name
        Device name; the readback is read under this name (like ``EpicsMotor``).
    limits
        ``(low, high)`` soft limits in ``egu``; a target outside raises
        :class:`MotorLimitError` naming the motor, the target and the limits.
    velocity
        Cruise speed in ``egu``/s (physical time).
    acceleration
        Acceleration in ``egu``/s² (physical time). Note: EPICS motors express this as a
        time (ACCL); here it is an acceleration.
    egu
        Engineering units.
    precision
        Number of decimals for display (progress bars, tables).
    init_pos
        Starting position (must lie within the limits).
    time_scale
        Wall seconds per physical second (``1`` = real time, ``0.01`` = 100× faster).
    update_period
        Wall seconds between readback publications during a move.
    settle_time, timeout
        As for any ophyd positioner.
    """

    user_readback = Cpt(_Readback, value=0.0, kind=Kind.hinted)
    user_setpoint = Cpt(Signal, value=0.0, kind=Kind.normal)
    velocity = Cpt(_PositiveSignal, value=1.0, kind=Kind.config)
    acceleration = Cpt(_PositiveSignal, value=10.0, kind=Kind.config)
    low_limit_travel = Cpt(Signal, value=0.0, kind=Kind.config)
    high_limit_travel = Cpt(Signal, value=0.0, kind=Kind.config)

    def __init__(
        self,
        *,
        name: str,
        limits: tuple[float, float],
        velocity: float = 5.0,
        acceleration: float = 50.0,
        egu: str = "mm",
        precision: int = 4,
        init_pos: float = 0.0,
        time_scale: float = 1.0,
        update_period: float = 0.02,
        settle_time: float = 0.0,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, settle_time=settle_time, timeout=timeout, **kwargs)
        low, high = (float(limits[0]), float(limits[1]))
        if not low < high:
            raise ValueError(f"motor {name!r}: limits must satisfy low < high, got {limits!r}")
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(f"motor {name!r}: time_scale must be > 0, got {time_scale!r}")
        if not update_period > 0:
            raise ValueError(
                f"motor {name!r}: update_period must be > 0, got {update_period!r}"
            )
        self.user_readback.name = self.name
        self._egu = egu
        self._precision = int(precision)
        self.time_scale = float(time_scale)
        self.update_period = float(update_period)
        self._lock = threading.RLock()
        self._trajectory = Trajectory.at_rest(float(init_pos))
        self._t0_wall = time.time()
        self._history: list[tuple[float, Trajectory]] = [(self._t0_wall, self._trajectory)]
        self._move: _Move | None = None
        self.low_limit_travel.put(low)
        self.high_limit_travel.put(high)
        self.velocity.put(float(velocity))
        self.acceleration.put(float(acceleration))
        self.check_value(init_pos)
        self.user_setpoint.put(float(init_pos))
        self._position = float(init_pos)

    # -- descriptive properties -----------------------------------------------------
    @property
    def egu(self) -> str:
        """Engineering units of positions."""
        return self._egu

    @property
    def precision(self) -> int:
        """Display precision (decimals)."""
        return self._precision

    @property
    def limits(self) -> tuple[float, float]:
        """Soft limits ``(low, high)`` in ``egu``."""
        return (float(self.low_limit_travel.get()), float(self.high_limit_travel.get()))

    @property
    def position(self) -> float:
        """Current position (evaluated now, also during a move)."""
        return self.position_at(time.time())

    @property
    def moving(self) -> bool:
        """Whether a motion is in progress."""
        with self._lock:
            return self._move is not None

    def describe(self) -> dict[str, dict[str, Any]]:
        """Data keys, with units, precision and limits on the readback and setpoint."""
        desc: dict[str, dict[str, Any]] = super().describe()
        low, high = self.limits
        for key in (self.user_readback.name, self.user_setpoint.name):
            if key in desc:
                desc[key].update(
                    units=self.egu,
                    precision=self.precision,
                    lower_ctrl_limit=low,
                    upper_ctrl_limit=high,
                )
        return desc

    # -- kinematics -------------------------------------------------------------------
    def position_at(self, t_wall: float) -> float:
        """Position at wall-clock time ``t_wall`` (seconds since the epoch).

        Exact for the current trajectory, past or future, and for the last
        ``HISTORY`` trajectories before it (what an encoder latched at a trigger in
        the past read); before the oldest kept one it returns that one's start.
        """
        with self._lock:
            t0, trajectory = self._history[0]
            for start, candidate in reversed(self._history):
                if start <= t_wall:
                    t0, trajectory = start, candidate
                    break
        return trajectory.position((t_wall - t0) / self.time_scale)

    def _set_trajectory(self, trajectory: Trajectory, t0: float) -> None:
        """Follow ``trajectory`` from wall time ``t0`` on (kept in the history)."""
        with self._lock:
            self._trajectory, self._t0_wall = trajectory, t0
            self._history.append((t0, trajectory))
            del self._history[:-HISTORY]

    def move_time(self, target: float) -> float:
        """Physical seconds a move from the current position to ``target`` would take."""
        trajectory = trapezoid(
            self.position,
            float(target),
            float(self.velocity.get()),
            float(self.acceleration.get()),
        )
        return trajectory.duration

    def check_value(self, value: Any) -> None:
        """Raise :class:`MotorLimitError` (or ``ValueError``) for a target we cannot reach."""
        try:
            target = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"motor {self.name!r}: target must be a number, got {value!r}"
            ) from None
        if not math.isfinite(target):
            raise ValueError(f"motor {self.name!r}: target must be finite, got {value!r}")
        low, high = self.limits
        if not low <= target <= high:
            raise MotorLimitError(
                f"motor {self.name!r}: target {target:g} {self.egu} is outside the limits "
                f"[{low:g}, {high:g}] {self.egu}; nothing was moved"
            )

    # -- motion -----------------------------------------------------------------------
    def move(
        self,
        position: Any,
        wait: bool = False,
        moved_cb: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> MoveStatus:
        """Start a move to ``position`` and return its status (non-blocking by default).

        A move requested while another runs stops that one where it is (its status
        fails) and starts from there at rest.
        """
        self.check_value(position)
        target = float(position)
        with self._lock:
            start = self.position
            trajectory = trapezoid(
                start, target, float(self.velocity.get()), float(self.acceleration.get())
            )
        return self._run(trajectory, target, wait=wait, moved_cb=moved_cb, timeout=timeout)

    def _run(
        self,
        trajectory: Trajectory,
        target: float,
        *,
        wait: bool = False,
        moved_cb: Callable[..., Any] | None = None,
        timeout: float | None = None,
    ) -> MoveStatus:
        """Follow ``trajectory`` from now on; the returned status ends with it."""
        with self._lock:
            self._cancel_running()
            status: MoveStatus = PositionerBase.move(
                self, target, moved_cb=moved_cb, timeout=timeout
            )
            self.user_setpoint.put(target)
            self._set_trajectory(trajectory, time.time())
            cancel = threading.Event()
            thread = threading.Thread(
                target=self._follow,
                args=(cancel, self._t0_wall + trajectory.duration * self.time_scale),
                name=f"{self.name}-move",
                daemon=True,
            )
            self._move = _Move(cancel, thread)
            self._moving = True
            self._started_moving = True
        self._run_subs(sub_type=self.SUB_START, timestamp=time.time())
        thread.start()
        if wait:
            status.wait()
        return status

    def _follow(self, cancel: threading.Event, t_end: float) -> None:
        """Timer thread: publish the readback until ``t_end``, then finish the move."""
        while True:
            now = time.time()
            if now >= t_end:
                break
            if cancel.wait(min(self.update_period, t_end - now)):
                return
            self._publish(time.time())
        with self._lock:
            if cancel.is_set():
                return
            self._move = None
            self._moving = False
            final = self._trajectory.end
            self._set_trajectory(Trajectory.at_rest(final), t_end)
            self._publish(time.time())
            # Under the lock: ophyd's _done_moving runs the done subscriptions and then
            # clears them; a new move (from the thread this one just released) must not
            # subscribe its status in between, or the clearing drops it and it never ends.
            self._done_moving(success=True, value=final)

    def _publish(self, now: float) -> None:
        """Run readback subscriptions with the position at ``now``."""
        value = self.position_at(now)
        self._set_position(value, timestamp=now)
        self.user_readback.put(value, timestamp=now, internal=True)

    def _cancel_running(self) -> float | None:
        """Freeze a running move at the current position; return it (None when idle)."""
        with self._lock:
            if self._move is None:
                return None
            self._move.cancel.set()
            self._move = None
            now = time.time()
            here = self.position_at(now)
            self._set_trajectory(Trajectory.at_rest(here), now)
            self._moving = False
            return here

    def stop(self, *, success: bool = False) -> None:
        """Halt a running move where it is; its status finishes with ``success``."""
        with self._lock:  # see _follow: no new move may subscribe in between
            here = self._cancel_running()
            if here is None:
                return
            self._publish(time.time())
            self._done_moving(success=success)


@dataclass(frozen=True)
class ContinuousRotation:
    """A rotation across ``[start, stop]`` degrees at constant ``velocity`` deg/s, what
    ``RotationStage.prepare`` takes for a fly scan (see ``start_continuous``)."""

    start: float
    stop: float
    velocity: float


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
        self._window: tuple[float, float] | None = None
        self._prepared: ContinuousRotation | None = None
        self._fly_status: MoveStatus | None = None

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
            self._window = (t_start, t_start + t_const * self.time_scale)
        return status

    # -- bluesky fly protocol (prepare / kickoff / complete) ---------------------------

    def prepare(self, value: ContinuousRotation) -> MoveStatus:
        """Move to the run-up angle of the continuous rotation ``value`` (checked
        against the limits and ``max_velocity`` now); ``kickoff`` then starts it."""
        if not isinstance(value, ContinuousRotation):
            raise TypeError(f"{self.name}.prepare: expected ContinuousRotation, got {value!r}")
        run_up, _ = self.run_up_out(value.start, value.stop, value.velocity)
        self._prepared = value
        self._fly_status = None
        status: MoveStatus = self.set(run_up)
        return status

    def kickoff(self) -> MoveStatus:
        """Start the prepared rotation; the returned status is already finished (the
        stage is moving; ``complete`` follows the motion)."""
        value = self._prepared
        if value is None:
            raise RuntimeError(f"{self.name}: kickoff() needs prepare(ContinuousRotation) first")
        self._fly_status = self.start_continuous(value.start, value.stop, value.velocity)
        done = MoveStatus(self, value.start)
        done.set_finished()
        return done

    def complete(self) -> MoveStatus:
        """Finishes when the stage is at rest after the run-out."""
        if self._fly_status is None:
            raise RuntimeError(f"{self.name}: complete() before kickoff()")
        return self._fly_status

    def constant_velocity_window(self) -> tuple[float, float]:
        """Wall times at which the last continuous rotation passed ``start`` and ``stop``."""
        if self._window is None:
            raise RuntimeError(
                f"rotation stage {self.name!r}: no continuous rotation was started"
            )
        return self._window
