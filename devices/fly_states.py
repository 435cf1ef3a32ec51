"""The scene's state at each trigger of a fly acquisition, taken when the trigger passes.

A fly frame's flux image is drawn when the pipeline has room for it, which may be long
after its trigger when the pipeline is slower than the triggers (a P6M at 19 frames/s on
100 Hz triggers runs minutes behind). The devices answer "what was your state at time t"
from bounded histories (``devices.state_history``: the beam monitor keeps its last 4096
changes, 6.8 minutes of updates), so the fly's workers take each trigger's state — pose,
beam factor and latched angle, a few numbers — as soon as the trigger has passed
(:meth:`OnTimeStates.catch_up`, whenever a worker chooses its next job: between frames
and at least every 0.1 s while it waits), and draw the costly image from that record
later.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from .fly_params import FlyDetector
from .samples import SceneState

__all__ = ["CATCH_UP", "OnTimeStates"]

CATCH_UP = 256
"""Trigger states taken at most per ``catch_up`` call: a thread far behind (all triggers
at once, ``time_scale=0``) takes them over a few frames instead of stalling on all."""


class OnTimeStates:
    """The states of ``det``'s scene at the triggers ``times`` (``(wall, clock)`` pairs),
    for one thread at a time (the fly's workers take turns under their lock):
    :meth:`catch_up` takes those whose time has passed, :meth:`take` hands them over in
    trigger order. Memory: one small record per trigger passed but not yet handed over."""

    def __init__(self, det: FlyDetector, times: Sequence[tuple[float, float]]) -> None:
        self._det = det
        self._times = times
        self._next = 0
        """The first trigger whose state is not taken yet."""
        self._taken: deque[tuple[SceneState, float]] = deque()
        """States (and latched angles) taken, not yet handed over, in trigger order."""
        self._last: tuple[float, tuple[SceneState, float]] | None = None
        """The last wall time asked and its answer (triggers at one moment share it)."""

    def catch_up(self, now: float | None = None) -> None:
        """Take the states of the triggers that have passed by ``now`` (default: the
        current time), up to ``CATCH_UP`` of them."""
        now = time.time() if now is None else now
        end = min(len(self._times), self._next + CATCH_UP)
        while self._next < end:
            wall = self._times[self._next][0]
            if wall > now:
                return
            self._taken.append(self._state(wall))
            self._next += 1

    def take(self, i: int) -> tuple[SceneState, float]:
        """The state and latched angle at trigger ``i``, the next one in order (taken now
        if it was not yet: the caller asks once the trigger has passed)."""
        if self._taken:
            return self._taken.popleft()
        if i != self._next:
            raise RuntimeError(f"trigger {i}'s state asked for out of order (next: "
                               f"{self._next})")
        self._next += 1
        return self._state(self._times[i][0])

    def _state(self, wall: float) -> tuple[SceneState, float]:
        last = self._last
        if last is not None and last[0] == wall:
            return last[1]
        state = (self._det.scene_state(wall), self._det.angle_at(wall))
        self._last = (wall, state)
        return state
