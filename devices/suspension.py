"""A fly acquisition under a bluesky suspender: the run ends, the frames say what they are.

A suspender (``RE.install_suspender(SuspendFloor(beam_current, 0.5))``) suspends the
RunEngine when the beam is lost and resumes it when the beam is back. For a step scan
that is safe: bluesky rewinds to the last checkpoint and takes the point again. A fly
acquisition cannot wait: its triggers go on (a clock, a rotating stage), so every frame
it takes while suspended has no beam, and frames already announced cannot be taken back.
bluesky calls ``pause()`` on every device of the run when it suspends (flyers kicked off
included) and tells them nothing else; a plan it cannot rewind it ends instead ("No
checkpoint; cannot suspend"). The fly devices do the same: their ``pause()`` during a
suspension stops the acquisition and raises :class:`SuspendedMidFly`, which bluesky
raises into the plan, so the run ends at once with ``exit_status 'fail'`` and this
error's message as its ``reason``: why the RunEngine suspended (the suspender's
justification), how many frames were taken, and how many of them may have no beam.

Which frames may have no beam: those triggered from the reading that tripped the
suspender (:func:`watch_trips`, which the fly's kickoff calls, dates it; a suspender it
did not watch is dated by its signal's latest reading), or else from the pause, which
comes a few milliseconds after the trip (the RunEngine's loop acts on it). A plan that
collected frames while flying (a polled fly scan) may have announced some of those
already; the reason names them. An acquisition that ended with every frame triggered
before the loss is not stopped: its run goes on as from an operator's pause. An
operator's pause (no suspender) is not a suspension: the acquisition goes on (the beam
is there).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any

from bluesky.run_engine import RunEngine

__all__ = ["SuspendedMidFly", "Suspension", "frames_before", "must_stop", "suspended_fly_error",
           "suspension", "watch_trips"]


class SuspendedMidFly(RuntimeError):
    """A RunEngine suspended during a fly acquisition, which was stopped (module
    docstring)."""


@dataclass(frozen=True)
class Suspension:
    """A suspension of the RunEngine: why (the suspender's justification) and since when
    frames may have no beam (wall time, see the module docstring)."""

    justification: str
    since: float


class _TripClock:
    """Subscribed to one suspender's signal: the time of the reading that first tripped it
    since it last allowed a resume (``None`` while it does not trip). The signal's own
    timestamp is its latest reading, which a monitor posting again below the floor before
    the RunEngine pauses moves later than the loss."""

    def __init__(self, suspender: Any) -> None:
        self.suspender = suspender
        self.first: float | None = None

    def __call__(self, value: Any = None, timestamp: float | None = None,
                 **_: Any) -> None:
        if self.suspender._should_suspend(value):
            if self.first is None:
                self.first = time.time() if timestamp is None else float(timestamp)
        elif self.suspender._should_resume(value):
            self.first = None


def watch_trips(engine: RunEngine | None = None) -> None:
    """Date every suspender installed on ``engine`` (default: the RunEngine on the calling
    thread's stack, as in a device's ``kickoff()``) by the reading that tripped it: a fly
    device calls this when its acquisition starts, so that a later suspension dates the
    loss right (:func:`suspension`). Each suspender is watched once, for its life."""
    engine = engine if engine is not None else _engine_on_stack()
    for suspender in list(getattr(engine, "_suspenders", ())):
        signal = getattr(suspender, "_sig", None)
        if signal is None or isinstance(getattr(suspender, "_smeflow_trips", None), _TripClock):
            continue
        clock = _TripClock(suspender)
        suspender._smeflow_trips = clock
        signal.subscribe(clock, run=True)


def _engine_frames() -> Iterator[tuple[FrameType, RunEngine]]:
    """The calling thread's stack frames that run a RunEngine's method, innermost first."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        engine = frame.f_locals.get("self")
        if isinstance(engine, RunEngine):
            yield frame, engine
        frame = frame.f_back


def _engine_on_stack() -> RunEngine | None:
    return next((engine for _, engine in _engine_frames()), None)


def suspension() -> Suspension | None:
    """The suspension the RunEngine on the calling thread's stack is starting (a device's
    ``pause()`` called from bluesky's ``_start_suspender``), or ``None`` (an operator's
    pause, no RunEngine, or bluesky suspending elsewhere than it does)."""
    for frame, engine in _engine_frames():
        if frame.f_code.co_name == "_start_suspender":
            args: tuple[Any, ...] = tuple(getattr(frame.f_locals.get("msg"), "args", ()))
            why = args[2] if len(args) > 2 and args[2] else "suspended"
            return Suspension(str(why), _tripped_since(engine, time.time()))
    return None


def _tripped_since(engine: RunEngine, now: float) -> float:
    """The earliest time a tripped suspender tripped (its :func:`watch_trips` clock), else
    its signal last changed, at the latest ``now``."""
    since = now
    for suspender in list(getattr(engine, "_suspenders", ())):
        if not getattr(suspender, "tripped", False):
            continue
        clock = getattr(suspender, "_smeflow_trips", None)
        stamp = clock.first if isinstance(clock, _TripClock) else None
        if stamp is None:
            stamp = getattr(getattr(suspender, "_sig", None), "timestamp", None)
        if isinstance(stamp, int | float) and not isinstance(stamp, bool) and stamp < since:
            since = float(stamp)
    return since


def suspended_fly_error(name: str, suspended: Suspension, taken: int, planned: int,
                        before: int, announced: int) -> SuspendedMidFly:
    """The error of ``name``'s fly acquisition stopped by ``suspended`` after ``taken`` of
    ``planned`` frames, the first ``before`` of them triggered before the beam was lost and
    the first ``announced`` already in the run."""
    at = datetime.fromtimestamp(suspended.since).isoformat(sep=" ", timespec="milliseconds")
    late = max(0, announced - before)
    dropped = taken - before - late
    parts = [f"{name}: the RunEngine suspended during a fly acquisition "
             f"({suspended.justification.rstrip('.')})",
             "a fly acquisition cannot wait for the beam (its triggers go on), so it was "
             f"stopped after {taken} of {planned} frames and the run fails",
             f"{before} of them were triggered before {at}, when the suspender's signal "
             "changed"]
    if dropped:
        parts.append(f"the {dropped} frame(s) triggered since may have no beam and were "
                     "dropped")
    if late:
        parts.append(f"frames {before} to {announced - 1}, triggered since, were in the run "
                     "before the suspension and may have no beam")
    parts.append("run the scan again once the beam is back")
    return SuspendedMidFly("; ".join(parts))


def must_stop(suspended: Suspension, fly: Any) -> bool:
    """Whether the fly acquisition ``fly`` (``devices.fly.FlyAcquisition``) must stop for
    ``suspended``: it runs and its triggers are not all before the beam was lost (or not
    known yet: armed for a rotation not started), or it took frames after."""
    times = fly.times
    if not fly.done.done and (times is None or not len(times)
                              or times[len(times) - 1][0] >= suspended.since):
        return True
    return frames_before(fly.frames, suspended.since) < len(fly.frames)


def frames_before(frames: Sequence[Any], since: float) -> int:
    """How many of ``frames`` (in trigger order, each with a wall ``trigger_time``) were
    triggered before ``since``."""
    kept = 0
    while kept < len(frames) and frames[kept].trigger_time < since:
        kept += 1
    return kept
