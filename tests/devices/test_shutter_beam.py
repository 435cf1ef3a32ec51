"""Fast shutter and beam-current monitor, including bluesky suspenders on beam loss."""

from __future__ import annotations

import itertools
import threading
import time

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import pytest
from bluesky.suspenders import SuspendBoolLow, SuspendFloor
from ophyd.sim import det
from ophyd.status import DeviceStatus

from devices.beam import BeamMonitor
from devices.shutter import FastShutter

# -- shutter ---------------------------------------------------------------------------


def test_shutter_describe_read_configuration(shutter):
    desc = shutter.describe()
    assert set(desc) == {"shutter", "shutter_setpoint"}
    assert desc["shutter"]["dtype"] == "string"
    assert shutter.read()["shutter"]["value"] == "closed"
    assert shutter.read_configuration()["shutter_actuation_time"]["value"] == 0.01
    assert not shutter.is_open


def test_shutter_set_completes_after_actuation(shutter):
    t0 = time.monotonic()
    status = shutter.set("open")
    assert isinstance(status, DeviceStatus)
    assert not status.done
    assert shutter.state == "closed"  # blades still moving
    status.wait(timeout=1)
    assert time.monotonic() - t0 >= 0.0095
    assert shutter.state == "open" and shutter.is_open
    assert shutter.read()["shutter_setpoint"]["value"] == "open"
    again = shutter.set("open")  # already there: done at once
    assert again.done and again.success


def test_shutter_rejects_unknown_state(shutter):
    with pytest.raises(ValueError, match=r"shutter 'shutter': state must be one of "
                       r"\('open', 'closed'\), got 'opened'"):
        shutter.set("opened")
    assert shutter.state == "closed"


def test_shutter_second_request_supersedes_the_first():
    slow = FastShutter(name="slow", actuation_time=0.2, time_scale=1.0)
    try:
        first = slow.set("open")
        second = slow.set("closed")
        with pytest.raises(Exception):  # noqa: B017 - ophyd's status error types vary
            first.wait(timeout=1)
        assert second.done and slow.state == "closed"
    finally:
        slow.destroy()


def test_shutter_through_the_run_engine(RE, shutter):
    RE(bps.mv(shutter, "open"))
    assert shutter.is_open
    docs: list[tuple[str, dict]] = []
    RE(bp.count([shutter], num=1), lambda n, d: docs.append((n, d)))
    event = next(d for n, d in docs if n == "event")
    assert event["data"]["shutter"] == "open"
    RE(bps.mv(shutter, "closed"))
    assert shutter.state == "closed"


def test_shutter_state_at_a_past_time_is_what_its_readback_said_then(shutter):
    """What a fly frame computed after its trigger sees (``Scene.beam_factor(t)``)."""
    t_closed = time.time()
    shutter.set("open").wait(timeout=1)
    t_open = time.time()
    time.sleep(0.01)
    shutter.set("closed").wait(timeout=1)
    assert shutter.state == "closed"
    assert shutter.state_at(t_closed) == "closed"
    assert shutter.state_at(t_open) == "open"  # (closed now, open then)
    assert shutter.state_at(time.time()) == "closed"
    moving = shutter.set("open")
    assert shutter.state_at(time.time()) == "closed"  # blades still moving: as the readback
    moving.wait(timeout=1)
    assert shutter.state_at(time.time()) == "open"


def test_shutter_history_is_bounded_and_tells_when_a_time_is_forgotten():
    from devices.shutter import HISTORY
    from devices.state_history import StateHistoryError

    fast = FastShutter(name="fast", actuation_time=0.0, time_scale=1.0)
    try:
        t_start = time.time()
        for i in range(2 * HISTORY + 2):
            fast.set("open" if i % 2 == 0 else "closed").wait(timeout=1)
        assert len(fast._history) <= 2 * HISTORY
        with pytest.raises(StateHistoryError, match=r"shutter 'fast': state at wall time "
                                                    r".* before the oldest change still kept"):
            fast.state_at(t_start)
        assert fast.state_at(time.time()) == fast.state == "closed"
    finally:
        fast.destroy()


# -- beam monitor ----------------------------------------------------------------------


def test_beam_monitor_describe_read(beam):
    desc = beam.describe()
    assert set(desc) == {"ring_current", "ring_available"}
    reading = beam.read()
    assert reading["ring_current"]["value"] == pytest.approx(400.0, abs=1.0)
    assert reading["ring_available"]["value"] == 1
    assert beam.read_configuration()["ring_nominal_current"]["value"] == 400.0
    assert beam.beam_factor() == pytest.approx(1.0, abs=0.01)


def test_background_updates_run_subscriptions(beam):
    values: list[float] = []
    beam.current.subscribe(lambda value, **kw: values.append(value), run=False)
    time.sleep(0.15)
    assert len(values) >= 3
    assert len(set(values)) >= 3  # noisy, not constant
    assert all(abs(v - 400.0) < 1.0 for v in values)


def test_the_available_flag_is_reposted_while_the_beam_is_down():
    """So a suspender that missed the first post (RunEngine busy) trips on a later one."""
    monitor = BeamMonitor(name="ring", update_period=0.02)
    try:
        flags: list[int] = []
        monitor.available.subscribe(lambda value, **kw: flags.append(value), run=False)
        time.sleep(0.1)
        assert flags == []  # with beam: posted only on change
        monitor.drop_beam()
        time.sleep(0.15)
        assert len(flags) >= 4 and set(flags) == {0}
        monitor.restore_beam()
        count = len(flags)
        time.sleep(0.1)
        assert flags[count - 1:] == [1]  # back: one post, then quiet again
    finally:
        monitor.destroy()


def test_drop_and_restore_update_both_signals():
    monitor = BeamMonitor(name="ring", update_period=None)
    try:
        currents: list[float] = []
        flags: list[int] = []
        monitor.current.subscribe(lambda value, **kw: currents.append(value), run=False)
        monitor.available.subscribe(lambda value, **kw: flags.append(value), run=False)
        monitor.drop_beam()
        assert currents[-1] == 0.0 and flags == [0]
        assert not monitor.beam_up and monitor.beam_factor() == 0.0
        monitor.restore_beam()
        assert currents[-1] == pytest.approx(400.0, abs=1.0) and flags == [0, 1]
        monitor.drop_beam(duration=0.05)
        time.sleep(0.15)
        assert monitor.beam_up and flags == [0, 1, 0, 1]
        with pytest.raises(ValueError, match="drop duration must be > 0 s"):
            monitor.drop_beam(duration=-1.0)
    finally:
        monitor.destroy()


@pytest.mark.parametrize("which", ["floor", "bool"])
def test_suspender_trips_on_beam_loss_and_resumes(RE, beam, which):
    if which == "floor":
        suspender = SuspendFloor(beam.current, 100.0, resume_thresh=350.0, sleep=0.05)
    else:
        suspender = SuspendBoolLow(beam.available, sleep=0.05)
    RE.install_suspender(suspender)
    RE.record_interruptions = True
    docs: list[tuple[str, dict]] = []
    dropped = threading.Event()

    def lose_beam() -> None:
        beam.drop_beam(duration=0.4)
        dropped.set()

    timer = threading.Timer(0.15, lose_beam)
    timer.start()
    t0 = time.monotonic()
    RE(bp.count([det], num=5, delay=0.2), lambda n, d: docs.append((n, d)))
    elapsed = time.monotonic() - t0
    timer.join()
    assert dropped.is_set()
    stop = next(d for n, d in docs if n == "stop")
    assert stop["exit_status"] == "success"
    descriptors = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    primary = [d for n, d in docs if n == "event" and descriptors[d["descriptor"]] == "primary"]
    interruptions = [d["data"]["interruption"] for n, d in docs
                     if n == "event" and descriptors[d["descriptor"]] == "interruptions"]
    # the point interrupted is re-taken from its checkpoint, so one event may repeat
    assert len(primary) in (5, 6)
    # the RunEngine recorded exactly one suspension, justified by the beam signal
    assert len(interruptions) == 1
    assert ("ring_current = 0.0 fell below 100.0" if which == "floor"
            else "ring_available is low") in interruptions[0]
    assert elapsed >= 0.4  # waited for the beam to come back
    assert beam.beam_up


def test_beam_factor_at_a_past_time_is_the_current_published_then():
    """A beam loss lands on the frames triggered during it, whenever they are computed."""
    monitor = BeamMonitor(name="ring", update_period=None, nominal_current=400.0, noise=0.0)
    try:
        before = time.time()
        time.sleep(0.002)
        monitor.drop_beam()
        time.sleep(0.002)
        during = time.time()
        time.sleep(0.002)
        monitor.restore_beam()
        assert monitor.beam_factor() == 1.0  # now
        assert monitor.beam_factor(before) == 1.0
        assert monitor.beam_factor(during) == 0.0  # down then, back now
        assert monitor.beam_factor(time.time()) == 1.0
        monitor.nominal_current.put(800.0)  # the ring at half the new nominal, then too
        assert monitor.beam_factor(before) == 0.5
    finally:
        monitor.destroy()


def test_beam_factor_at_a_time_follows_the_noisy_current(beam):
    seen: list[tuple[float, float]] = []
    beam.current.subscribe(lambda value, timestamp, **kw: seen.append((timestamp, value)),
                           run=False)
    time.sleep(0.12)
    assert len(seen) >= 3
    for (t0, value), (t1, _) in itertools.pairwise(seen):
        mid = (t0 + t1) / 2  # (each value holds from its publication to the next)
        assert beam.beam_factor(mid) == pytest.approx(value / 400.0, rel=1e-12)
