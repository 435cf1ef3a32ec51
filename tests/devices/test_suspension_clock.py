"""A suspension dates the beam's loss by the reading that tripped the suspender, not by
the signal's latest reading: a monitor posting again below the floor before the RunEngine
pauses must not move the loss later (frames between would be kept as taken with beam)."""

from __future__ import annotations

import time

from bluesky import RunEngine
from bluesky.suspenders import SuspendFloor
from ophyd import Signal

from devices.suspension import _tripped_since, watch_trips


def test_the_loss_is_dated_by_the_reading_that_tripped_the_suspender() -> None:
    RE = RunEngine({}, call_returns_result=False)
    beam = Signal(name="beam_current", value=1.0)
    RE.install_suspender(SuspendFloor(beam, 0.5))
    watch_trips(RE)
    watch_trips(RE)  # (watched once: a second fly's kickoff adds no second clock)
    beam.put(0.3)
    tripped = beam.timestamp
    time.sleep(0.05)
    beam.put(0.1)  # the monitor's next reading, still below the floor
    assert beam.timestamp > tripped
    assert _tripped_since(RE, time.time()) == tripped
    beam.put(1.0)  # the beam is back: the next loss is dated afresh
    beam.put(0.2)
    again = beam.timestamp
    beam.put(0.1)
    assert _tripped_since(RE, time.time()) == again
    RE.clear_suspenders()


def test_an_unwatched_suspender_falls_back_to_its_signals_reading() -> None:
    RE = RunEngine({}, call_returns_result=False)
    beam = Signal(name="beam_current", value=1.0)
    RE.install_suspender(SuspendFloor(beam, 0.5))
    beam.put(0.3)
    assert _tripped_since(RE, time.time()) == beam.timestamp
    RE.clear_suspenders()
