"""Position-compare triggers over a continuous rotation (``devices.fly_params``): the
trigger times are when the stage passes the trigger angles, whatever part of the rotation
they cover; a trigger range the rotation does not cross is refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from devices.fly import FlyParameters, PositionTrigger
from devices.rotation import ContinuousRotation, RotationStage


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
    stage.start_continuous(start, stop, 90.0).wait(10)
    pt = PositionTrigger(stage, *trigger)
    times = pt.times(6)
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
    stage.start_continuous(0.0, 180.0, 90.0).wait(10)
    lo, hi = trigger
    with pytest.raises(ValueError, match=rf"position-compare triggers over \[{lo:g}, "
                                         rf"{hi:g}\] deg: the rot rotation at constant "
                                         r"velocity runs from 0 to 180 deg; the trigger "
                                         "range must lie within it, in the same direction"):
        PositionTrigger(stage, *trigger).times(4)


def test_frames_over_part_of_the_rotation_are_taken_at_their_bin_centres(
        smeflow_beamline: Any) -> None:
    """The review's scenario end to end: the angles latched at the frames' triggers are
    the centres of 45-135's bins."""
    bl = smeflow_beamline
    det, rot = bl.det, bl.rotation
    rot.prepare(ContinuousRotation(0.0, 180.0, 90.0)).wait(5)
    det.stage()
    trigger = PositionTrigger(rot, 45.0, 135.0)
    det.prepare(FlyParameters(frames=6, exposure=0.01, trigger=trigger)).wait(5)
    rot.kickoff().wait(5)
    det.kickoff().wait(5)
    det.complete().wait(30)
    rot.complete().wait(10)
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
