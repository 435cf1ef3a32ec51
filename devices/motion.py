"""Simulated motors (sample X/Y stages, the base of the rotation stage) as ophyd v1
positioners.

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

:class:`devices.rotation.RotationStage` adds continuous rotation for fly tomography.
"""

from __future__ import annotations

import math
import numbers
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

from .checked_signal import CheckedSignal, finite_number
from .trajectory import Trajectory, trapezoid

__all__ = [
    "MotorLimitError",
    "SimMotor",
    "Trajectory",
    "trapezoid",
]


HISTORY = 64
"""Trajectories a motor remembers for ``position_at`` in the past."""


class MotorLimitError(LimitError):  # type: ignore[misc]
    """A requested position lies outside a motor's soft limits (raised before moving)."""


def _egu(signal: Signal) -> str:
    return str(signal.parent.egu)


def _egu_per(power: str) -> Callable[[Signal], str]:
    return lambda signal: f"{signal.parent.egu}/s{power}"


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
    velocity = Cpt(CheckedSignal, value=1.0, kind=Kind.config,
                   check=finite_number(_egu_per(""), 0.0, inclusive=False))
    acceleration = Cpt(CheckedSignal, value=10.0, kind=Kind.config,
                       check=finite_number(_egu_per("²"), 0.0, inclusive=False))
    low_limit_travel = Cpt(CheckedSignal, value=0.0, kind=Kind.config,
                           check=finite_number(_egu))
    high_limit_travel = Cpt(CheckedSignal, value=0.0, kind=Kind.config,
                            check=finite_number(_egu))

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
        # (text is refused, not read as a number: a queue item's JSON "1" or a typed
        # string; ophyd's SoftPositioner stores such a str as its position, SynAxis fails
        # on it with a TypeError, and neither documents a conversion)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"motor {self.name!r}: target must be a number (not text or a "
                             f"bool), got {value!r}")
        target = float(value)
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
