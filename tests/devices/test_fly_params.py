"""Position-compare triggers over a continuous rotation (``devices.fly_params``): the
trigger times are when the stage passes the trigger angles, whatever part of the rotation
they cover; a trigger range the rotation does not cross is refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import devices.fly_params as fly_params
from devices.fly import FlyParameters, PositionTrigger
from devices.rotation import ContinuousRotation, RotationStage

from . import fly_steps


@pytest.fixture
def stage() -> Iterator[RotationStage]:
    rot = RotationStage(name="rot", time_scale=0.01)
    yield rot
    rot.stop()
    rot.destroy()


@pytest.mark.parametrize(("rotation", "trigger"), [
    ((0.0, 180.0), (45.0, 135.0)),    # part of the rotation (the review's case)
    ((0.0, 180.0), (0.0, 180.0)),     # all of it
    ((180.0, 0.0), (135.0, 45.0)),    # rotating backwards
    ((-30.0, 90.0), (-30.0, 10.0)),   # from the rotation's start
])
def test_triggers_fire_where_the_stage_passes_their_angles(
        stage: RotationStage, rotation: tuple[float, float],
        trigger: tuple[float, float]) -> None:
    start, stop = rotation
    moving = stage.start_continuous(start, stop, 90.0)
    pt = PositionTrigger(stage, *trigger)
    times = pt.times(6)
    moving.wait(10)
    passed = [stage.position_at(wall) for wall, _ in times]
    # (the stage's recorded motion: to within a thousandth of a degree)
    np.testing.assert_allclose(passed, pt.angles(6), atol=0.01)
    assert [clock for _, clock in times] == [wall for wall, _ in times]


@pytest.mark.parametrize(("trigger", "why"), [
    ((-10.0, 90.0), "outside"),
    ((90.0, 190.0), "outside"),
    ((135.0, 45.0), "the opposite direction"),
])
def test_a_trigger_range_the_rotation_does_not_cross_is_refused(
        stage: RotationStage, trigger: tuple[float, float], why: str) -> None:
    moving = stage.start_continuous(0.0, 180.0, 90.0)
    lo, hi = trigger
    with pytest.raises(ValueError, match=rf"position-compare triggers over \[{lo:g}, "
                                         rf"{hi:g}\] deg: the rot rotation at constant "
                                         r"velocity runs from 0 to 180 deg; the trigger "
                                         "range must lie within it, in the same direction"):
        PositionTrigger(stage, *trigger).times(4)
    moving.wait(10)


def test_triggers_on_a_rotation_not_started_or_already_over_are_refused(
        stage: RotationStage) -> None:
    """The review's D14: triggers taken from the last rotation's record would fire at
    once, replaying its moments and angles. Asked for directly, the times are refused;
    an acquisition waits for its rotation instead (``wait_times``, below)."""
    pt = PositionTrigger(stage, 0.0, 90.0)
    with pytest.raises(RuntimeError, match="position-compare triggers on rot: its "
                                           "continuous rotation has not started"):
        pt.times(4)
    stage.start_continuous(0.0, 90.0, 90.0).wait(10)
    armed = time.time()
    with pytest.raises(RuntimeError, match=r"its last continuous rotation \(0 to 90 deg\) "
                                           r"passed its stop [\d.]+ s before the "
                                           r"acquisition was armed \(the last scan's\)"):
        pt.times(4, armed)
    assert pt.ready(armed) is None
    stage.prepare(ContinuousRotation(0.0, 90.0, 90.0)).wait(10)  # (forgets the last one)
    with pytest.raises(RuntimeError, match="has not started"):
        pt.times(4)


def test_triggers_on_angles_the_rotation_passed_before_the_arming_are_refused(
        stage: RotationStage) -> None:
    """The review's E8: a position-compare unit fires only as the stage passes an angle;
    armed with the stage half-way through its rotation, the triggers behind it would
    have been 'fired' before the arming (a replay of the past). Ahead of it they pass."""
    moving = stage.start_continuous(0.0, 360.0, 180.0)
    t0, t1 = stage.constant_velocity_window()
    half = (t0 + t1) / 2  # (the stage at 180 deg)
    with pytest.raises(RuntimeError, match=r"position-compare triggers on rot: the rotation "
                                           r"passed trigger angles 11\.25 to 78\.75 deg \(4 "
                                           r"of 4 triggers\) up to [\d.]+ s before the "
                                           "acquisition was armed; a position-compare unit "
                                           "fires only as the stage passes"):
        PositionTrigger(stage, 0.0, 90.0).times(4, half)
    with pytest.raises(RuntimeError, match=r"trigger angles 157\.5 to 172\.5 deg \(2 of 4 "
                                           r"triggers\)"):
        PositionTrigger(stage, 150.0, 210.0).times(4, half)
    ahead = PositionTrigger(stage, 190.0, 350.0).times(4, half)
    assert min(wall for wall, _ in ahead) > half
    moving.wait(10)


def test_a_detector_armed_after_its_rotation_passed_the_trigger_range_is_refused(
        smeflow_beamline: Any) -> None:
    """The review's E8 end to end, in real time: the detector is armed for 0-90 deg
    while its rotation is past 180 deg; the kickoff is refused, nothing runs."""
    bl = smeflow_beamline
    det, rot = bl.det, bl.rotation
    rot.time_scale = 1.0
    rot.prepare(ContinuousRotation(0.0, 360.0, 180.0)).wait(10)  # 2 s at constant velocity
    rot.kickoff().wait(10)
    t0, _ = rot.constant_velocity_window()
    time.sleep(max(0.0, t0 + 1.1 - time.time()))  # (past 180 deg)
    det.stage()
    try:
        det.prepare(FlyParameters(frames=4, exposure=0.01,
                                  trigger=PositionTrigger(rot, 0.0, 90.0))).wait(5)
        with pytest.raises(RuntimeError, match=r"passed trigger angles 11\.25 to 78\.75 deg"):
            det.kickoff()
        assert det.fly is not None and det.fly.started is None
    finally:
        det.unstage()
        rot.complete().wait(30)


def test_triggers_armed_before_their_rotation_wait_for_it(stage: RotationStage) -> None:
    """``wait_times`` returns the times on the rotation that starts after the arming,
    never on the one before; ``None`` when cancelled; an error naming the wait when no
    rotation starts in time."""
    stage.start_continuous(0.0, 90.0, 90.0).wait(10)  # (the last scan's)
    armed = time.time()
    pt = PositionTrigger(stage, 0.0, 90.0)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(
        pt.wait_times(4, armed, threading.Event())))
    waiter.start()
    time.sleep(0.3)
    assert got == []  # (still waiting: the last rotation is over)
    moving = stage.start_continuous(0.0, 90.0, 45.0)
    waiter.join(10)
    (result,) = got
    assert result is not None
    times, started = result
    assert started.rotation == ContinuousRotation(0.0, 90.0, 45.0)
    assert min(wall for wall, _ in times) > armed
    moving.wait(10)
    passed = [stage.position_at(wall) for wall, _ in times]
    np.testing.assert_allclose(passed, pt.angles(4), atol=0.01)

    cancel = threading.Event()
    cancel.set()
    assert pt.wait_times(4, time.time() + 1, cancel) is None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fly_params, "ROTATION_WAIT_S", 0.2)
        with pytest.raises(RuntimeError, match="position-compare triggers on rot: no "
                                               r"continuous rotation started within 0\.2 s "
                                               "of the detector's kickoff"):
            pt.wait_times(4, time.time() + 1, threading.Event())


def test_frames_over_part_of_the_rotation_are_taken_at_their_bin_centres(
        smeflow_beamline: Any) -> None:
    """The review's scenario end to end: the angles latched at the frames' triggers are
    the centres of 45-135's bins."""
    bl = smeflow_beamline
    det, rot = bl.det, bl.rotation
    fly_steps.fly_on_rotation(det, rot, ContinuousRotation(0.0, 180.0, 90.0), 45.0, 135.0,
                              frames=6)
    angles = [f.angle for f in det.fly.frames]
    # (motion 1000x real time: the latched angle is off by the stage's sampling under
    # load, far less than the 7.5 deg of triggers mapped over the wrong range)
    np.testing.assert_allclose(angles, [52.5, 67.5, 82.5, 97.5, 112.5, 127.5], atol=0.5)
    det.unstage()


def test_a_refused_trigger_range_starts_no_acquisition(smeflow_beamline: Any) -> None:
    """The kickoff fails with the reason and leaves nothing running: the detector can be
    prepared again."""
    bl = smeflow_beamline
    det, rot = bl.det, bl.rotation
    rot.prepare(ContinuousRotation(0.0, 90.0, 90.0)).wait(5)
    det.stage()
    try:
        det.prepare(FlyParameters(frames=4, exposure=0.01,
                                  trigger=PositionTrigger(rot, 0.0, 180.0))).wait(5)
        rot.kickoff().wait(5)
        with pytest.raises(ValueError, match="the trigger range must lie within it"):
            det.kickoff()
        rot.complete().wait(10)
        assert det.fly.started is None
        det.prepare(FlyParameters(frames=2, exposure=0.01)).wait(5)
        det.kickoff().wait(5)
        det.complete().wait(30)
        assert len(det.fly.frames) == 2
    finally:
        det.unstage()


def test_a_detector_kicked_off_before_its_rotation_waits_for_it(
        smeflow_beamline: Any) -> None:
    """The review's D14 scenario: a second scan arms the detector before it starts the
    rotation (as plans arm detectors, then start the motion). The kickoff finishes at
    once, no frame comes before the rotation does, and the frames are taken at this
    rotation's angles, after the scan began — never on the first scan's record."""
    bl = smeflow_beamline
    det, rot = bl.det, bl.rotation
    for scan in range(2):
        rot.prepare(ContinuousRotation(0.0, 180.0, 90.0)).wait(10)
        det.stage()
        try:
            trigger = PositionTrigger(rot, 0.0, 180.0)
            det.prepare(FlyParameters(frames=6, exposure=0.01, trigger=trigger)).wait(5)
            began = time.time()
            if scan == 1:
                assert det.kickoff().done
                time.sleep(0.2)
                assert det.fly.frames == [] and det.fly.times is None
            rot.kickoff().wait(5)
            if scan == 0:
                det.kickoff().wait(5)
            det.complete().wait(30)
            rot.complete().wait(30)
            assert min(f.trigger_time for f in det.fly.frames) >= began
            np.testing.assert_allclose([f.angle for f in det.fly.frames],
                                       trigger.angles(6), atol=0.5)
        finally:
            det.unstage()


def test_a_detector_armed_for_a_rotation_that_never_starts_fails_saying_so(
        smeflow_beamline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    bl = smeflow_beamline
    det, rot = bl.det, bl.rotation
    monkeypatch.setattr(fly_params, "ROTATION_WAIT_S", 0.5)
    fly_steps.arm_before_rotation(det, rot, ContinuousRotation(0.0, 90.0, 90.0), 0.0, 90.0,
                                  frames=3)
    try:
        with pytest.raises(RuntimeError, match="no continuous rotation started within "
                                               r"0\.5 s of the detector's kickoff; prepare "
                                               "and kick off the rotation"):
            det.complete().wait(10)
        assert det.fly.frames == []
    finally:
        det.unstage()


def test_a_detector_waiting_for_its_rotation_is_unstaged_cleanly(
        smeflow_beamline: Any) -> None:
    """Unstaged while it waits (a plan that fails before it starts the rotation): the
    wait ends at once, nothing is written, and the detector flies again."""
    bl = smeflow_beamline
    det, rot = bl.det, bl.rotation
    fly_steps.arm_before_rotation(det, rot, ContinuousRotation(0.0, 90.0, 90.0), 0.0, 90.0,
                                  frames=3)
    waiting = det.fly
    began = time.monotonic()
    det.unstage()
    assert time.monotonic() - began < 5
    assert waiting.stopped_early and not waiting.workers_alive and waiting.frames == []
    try:
        fly_steps.arm(det, FlyParameters(frames=3, exposure=0.01,
                                         trigger=PositionTrigger(rot, 0.0, 90.0)))
        rot.kickoff().wait(5)
        det.complete().wait(30)
        rot.complete().wait(30)
        assert len(det.fly.frames) == 3
    finally:
        det.unstage()


def test_a_trigger_range_outside_the_rotation_that_starts_later_fails_the_acquisition(
        smeflow_beamline: Any) -> None:
    """Armed first, the range is checked when the rotation starts: the acquisition
    fails with the reason (the kickoff had nothing to check it against)."""
    bl = smeflow_beamline
    det, rot = bl.det, bl.rotation
    fly_steps.arm_before_rotation(det, rot, ContinuousRotation(0.0, 90.0, 90.0), 0.0, 180.0,
                                  frames=4)
    try:
        rot.kickoff().wait(5)
        with pytest.raises(ValueError, match="the trigger range must lie within it"):
            det.complete().wait(10)
        rot.complete().wait(10)
        assert det.fly.frames == []
    finally:
        det.unstage()


def test_triggers_closer_than_the_exposure_on_a_rotation_that_starts_later_fail(
        smeflow_beamline: Any) -> None:
    """The spacing is checked against the rotation that runs (its velocity), not the
    one prepared at the kickoff: 6 bins of 15 deg at 300 deg/s are 50 ms apart."""
    bl = smeflow_beamline
    det, rot = bl.det, bl.rotation
    fly_steps.arm_before_rotation(det, rot, ContinuousRotation(0.0, 90.0, 9.0), 0.0, 90.0,
                                  frames=6, exposure=0.1)  # (slow: would pass)
    try:
        rot.prepare(ContinuousRotation(0.0, 90.0, 300.0)).wait(10)
        rot.kickoff().wait(5)
        with pytest.raises(ValueError, match=r"position-compare trigger spacing 0\.05 s "
                                             r"is shorter than its exposure 0\.1 s"):
            det.complete().wait(10)
        rot.complete().wait(10)
    finally:
        det.unstage()


@pytest.mark.parametrize(("start", "stop", "message"), [
    (0.0, float("nan"), r"PositionTrigger\.stop must be a finite angle in deg, got nan"),
    (0.0, float("inf"), r"PositionTrigger\.stop must be a finite angle in deg, got inf"),
    (float("-inf"), 90.0, r"PositionTrigger\.start must be a finite angle in deg, got -inf"),
    (True, 90.0, r"PositionTrigger\.start must be a finite angle in deg, got True"),
    ("0", 90.0, r"PositionTrigger\.start must be a finite angle in deg, got '0'"),
    (45.0, 45, r"PositionTrigger: start and stop angles must differ, got 45 twice"),
])
def test_a_bad_trigger_range_is_refused_where_it_is_given(
        stage: RotationStage, start: Any, stop: Any, message: str) -> None:
    """The review's D15: a NaN stop ran a fly with NaN trigger times and angles."""
    with pytest.raises(ValueError, match=message):
        PositionTrigger(stage, start, stop)


def test_a_trigger_that_is_not_one_is_refused_naming_it(stage: RotationStage) -> None:
    with pytest.raises(TypeError, match=r"FlyParameters\.trigger must be a PositionTrigger "
                                        "or None, got 'x'"):
        FlyParameters(frames=3, trigger="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"PositionTrigger\.stage must be a RotationStage, "
                                        "got 'rot'"):
        PositionTrigger("rot", 0.0, 90.0)  # type: ignore[arg-type]
    assert PositionTrigger(stage, 0, 90).stop == 90.0  # (integers are angles too)
