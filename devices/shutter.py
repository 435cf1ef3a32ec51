"""A simulated fast shutter: ``set("open")`` / ``set("closed")`` with an actuation time.

The readback (read under the device's name) changes only when the blades have finished
moving, ``actuation_time * time_scale`` wall seconds after the request; the returned
status completes at that moment (timer thread, ``set`` never blocks). The sample models
treat the beam as blocked unless the readback says ``"open"``.

The shutter remembers when its readback changed (the last :data:`HISTORY` changes,
``devices.state_history``): :meth:`FastShutter.state_at` answers what it read at a wall
time in the past, which is what a frame computed after its trigger must see
(``Scene.beam_factor(t)``).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from ophyd import Component as Cpt
from ophyd import Device, Kind, Signal
from ophyd.signal import InternalSignal
from ophyd.status import DeviceStatus

from .checked_signal import CheckedSignal, finite_number
from .state_history import StateHistory

__all__ = ["HISTORY", "SHUTTER_STATES", "FastShutter"]

SHUTTER_STATES = ("open", "closed")
"""The values :meth:`FastShutter.set` accepts and the readback reports."""
HISTORY = 256
"""Readback changes a shutter keeps for :meth:`FastShutter.state_at` (at least)."""


class FastShutter(Device):  # type: ignore[misc]
    """A fast shutter with a short actuation time.

    Parameters
    ----------
    name
        Device name; the readback is read under this name.
    actuation_time
        Physical seconds the blades take to open or close (default 10 ms).
    time_scale
        Wall seconds per physical second, as for the motors.
    initial
        Starting state, ``"open"`` or ``"closed"``.
    """

    readback = Cpt(InternalSignal, value="closed", kind=Kind.hinted)
    setpoint = Cpt(Signal, value="closed", kind=Kind.normal)
    actuation_time = Cpt(CheckedSignal, value=0.01, kind=Kind.config,
                         check=finite_number("s", 0.0))

    def __init__(
        self,
        *,
        name: str,
        actuation_time: float = 0.01,
        time_scale: float = 1.0,
        initial: str = "closed",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        if not (math.isfinite(actuation_time) and actuation_time >= 0):
            raise ValueError(
                f"shutter {name!r}: actuation_time must be >= 0 s, got {actuation_time!r}"
            )
        if not (math.isfinite(time_scale) and time_scale > 0):
            raise ValueError(f"shutter {name!r}: time_scale must be > 0, got {time_scale!r}")
        self._check_state(initial)
        self.readback.name = self.name
        self.time_scale = float(time_scale)
        self.actuation_time.put(float(actuation_time))
        self.readback.put(initial, internal=True)
        self.setpoint.put(initial)
        self._lock = threading.Lock()
        self._pending: tuple[threading.Timer, DeviceStatus] | None = None
        self._history = StateHistory(f"shutter {name!r}", initial, time.time(), HISTORY)

    def _check_state(self, value: Any) -> str:
        if value not in SHUTTER_STATES:
            raise ValueError(
                f"shutter {self.name!r}: state must be one of {SHUTTER_STATES}, got {value!r}"
            )
        return str(value)

    @property
    def state(self) -> str:
        """The current (read back) state, ``"open"`` or ``"closed"``."""
        return str(self.readback.get())

    @property
    def is_open(self) -> bool:
        """True when the blades are fully open."""
        return self.state == "open"

    def state_at(self, t: float) -> str:
        """The state the readback had at wall time ``t`` (seconds since the epoch): the
        exposure of a frame triggered at ``t`` but computed later sees this one.

        Raises ``devices.state_history.StateHistoryError`` for a time older than the
        last :data:`HISTORY` changes (forgotten)."""
        return self._history.at(t)

    def set(self, value: Any, **kwargs: Any) -> DeviceStatus:
        """Request ``"open"`` or ``"closed"``; the status completes after actuation.

        A request made while the blades are still moving replaces the earlier one, whose
        status then fails.
        """
        target = self._check_state(value)
        status = DeviceStatus(self)
        with self._lock:
            if self._pending is not None:
                timer, old = self._pending
                timer.cancel()
                old.set_exception(
                    RuntimeError(f"shutter {self.name!r}: superseded by set({target!r})")
                )
                self._pending = None
            self.setpoint.put(target)
            if self.readback.get() == target:
                status.set_finished()
                return status
            delay = float(self.actuation_time.get()) * self.time_scale
            timer = threading.Timer(delay, self._arrive, args=(target, status))
            timer.daemon = True
            self._pending = (timer, status)
            timer.start()
        return status

    def _arrive(self, target: str, status: DeviceStatus) -> None:
        with self._lock:
            if self._pending is None or self._pending[1] is not status:
                return
            self._pending = None
            self._history.record(target, time.time())
            self.readback.put(target, internal=True)
        status.set_finished()

    def stop(self, *, success: bool = False) -> None:
        """Shutters do not stop half-way: a pending actuation completes normally."""

    def destroy(self) -> None:
        """Cancel a pending actuation and release the device."""
        with self._lock:
            if self._pending is not None:
                self._pending[0].cancel()
                self._pending = None
        super().destroy()
