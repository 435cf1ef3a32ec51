"""What a device's state was at a wall time in the recent past: its last changes, bounded.

A fly frame is computed after its trigger — the fly's workers may run seconds behind the
triggers when the simulation is slower than they come — so the scene asks the shutter
and the beam monitor for their state *at the trigger's time*, as it asks the motors for
their position (``SimMotor.position_at``). Each keeps a :class:`StateHistory`: the wall
time of each change and the value from then on, the last ``maxlen`` changes (memory stays
bounded however long the device lives). A time at or after the oldest change kept has an
exact answer; a time before it has one only while no change has been forgotten (the
initial value: what the device held from its creation, and is taken to have held before);
once changes have been forgotten it is a :class:`StateHistoryError`, never a guess.

A time later than the last change is answered with the last value: the history knows the
past, not changes scheduled for the future (a shutter still moving reads as it was).
"""

from __future__ import annotations

import bisect
import threading
from typing import Generic, TypeVar

__all__ = ["StateHistory", "StateHistoryError"]

T = TypeVar("T")


class StateHistoryError(LookupError):
    """A state was asked for at a time older than the changes a history still keeps."""


class StateHistory(Generic[T]):
    """The recent changes of one value, answering "what was it at wall time t".

    Parameters
    ----------
    name
        What the value is, for error messages (e.g. ``"shutter 'shutter'"``).
    initial
        The value from ``t0`` on (and before: the device's state from its creation).
    t0
        Wall time (seconds since the epoch) of ``initial``.
    maxlen
        Changes kept at least (at most twice as many: forgetting runs in blocks).
    """

    def __init__(self, name: str, initial: T, t0: float, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError(f"{name}: history maxlen must be >= 1, got {maxlen!r}")
        self.name = name
        self.maxlen = int(maxlen)
        self._lock = threading.Lock()
        self._times: list[float] = [float(t0)]
        self._values: list[T] = [initial]
        self._forgotten = False

    def record(self, value: T, t: float) -> None:
        """``value`` holds from wall time ``t`` on (kept only when it differs from the
        last value). A ``t`` earlier than the last change (the wall clock stepped back)
        counts as the last change's time: the order of the changes is what they were."""
        with self._lock:
            if value == self._values[-1]:
                return
            self._times.append(max(float(t), self._times[-1]))
            self._values.append(value)
            if len(self._times) > 2 * self.maxlen:
                del self._times[:-self.maxlen]
                del self._values[:-self.maxlen]
                self._forgotten = True

    def at(self, t: float) -> T:
        """The value at wall time ``t``: that of the last change at or before ``t``.

        Raises
        ------
        StateHistoryError
            ``t`` is before the oldest change kept and older changes were forgotten.
        """
        with self._lock:
            i = bisect.bisect_right(self._times, t) - 1
            if i >= 0:
                return self._values[i]
            if not self._forgotten:
                return self._values[0]
            oldest = self._times[0]
        raise StateHistoryError(
            f"{self.name}: state at wall time {t:.6f} asked, {oldest - t:.3f} s before the "
            f"oldest change still kept (the last {self.maxlen} changes are kept)")

    @property
    def latest(self) -> T:
        """The value now (the last change's)."""
        with self._lock:
            return self._values[-1]

    def __len__(self) -> int:
        """Changes kept (the initial value counts while it is kept)."""
        with self._lock:
            return len(self._times)
