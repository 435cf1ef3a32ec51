"""A fly acquisition whose triggers come closer together than the exposure it takes is
refused before it starts, whichever way the exposure was given (review R5: a period
shorter than the detector's exposure signal was accepted and recorded overlapping
exposures as a successful run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import pytest

from devices.beamline import Beamline
from devices.fly import FlyParameters, PositionTrigger
from devices.flyer import DetectorFlyer
from devices.rotation import ContinuousRotation
from fpga.designs.params import ChainParams


@pytest.fixture
def beamline(tmp_path: Path) -> Iterator[Beamline]:
    bl = Beamline.create(tmp_path, params=ChainParams(64, 64, 16), backend="interp",
                         time_scale=0.001)
    bl.shutter.set("open").wait(5)
    yield bl
    bl.det.unstage()
    bl.close()


def test_a_period_shorter_than_the_exposure_signal_is_refused_at_prepare(
        beamline: Beamline) -> None:
    det = beamline.det
    det.exposure.put(0.1)
    det.stage()
    with pytest.raises(ValueError, match=r"det\.prepare: .*period 0\.01 s is shorter than "
                                         r"its exposure 0\.1 s"):
        det.prepare(FlyParameters(frames=5, period=0.01))
    assert det.fly is None
    det.prepare(FlyParameters(frames=5, period=0.1)).wait(5)  # (equal: back to back)
    det.prepare(FlyParameters(frames=5, period=0.01, exposure=0.005)).wait(5)
    assert det.exposure.get() == pytest.approx(0.005)


def test_bp_fly_with_overlapping_exposures_fails_before_any_frame(
        smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    bl.det.exposure.put(0.1)
    docs: list[tuple[str, dict[str, Any]]] = []
    bl.RE.subscribe(lambda name, doc: docs.append((name, doc)))
    with pytest.raises(ValueError, match="shorter than its exposure"):
        bl.RE(bp.fly([DetectorFlyer(bl.det, FlyParameters(frames=5, period=0.01))]))
    stop = next(doc for name, doc in docs if name == "stop")
    assert stop["exit_status"] == "fail"
    # (the stream declared before the kickoff, dataflow.fly_streams: no event in it)
    assert stop["num_events"] == {"primary": 0}


@pytest.mark.parametrize("stage_first", [True, False], ids=["stage-first", "detector-first"])
def test_position_triggers_closer_than_the_exposure_are_refused_at_kickoff(
        beamline: Beamline, stage_first: bool) -> None:
    """Checked at ``kickoff``, against the rotation the stage is prepared for then
    (whichever of the two was prepared first)."""
    det, rot = beamline.det, beamline.rotation
    rotation = ContinuousRotation(0.0, 90.0, 90.0)  # 10 bins of 9° at 90°/s: 0.1 s apart
    params = FlyParameters(frames=10, exposure=0.5, trigger=PositionTrigger(rot, 0.0, 90.0))
    det.stage()
    if stage_first:
        rot.prepare(rotation).wait(5)
    det.prepare(params).wait(5)
    if not stage_first:
        rot.prepare(rotation).wait(5)
    with pytest.raises(ValueError, match=r"det\.kickoff: .*position-compare trigger spacing "
                                         r"0\.1 s is shorter than its exposure 0\.5 s"):
        det.kickoff()
    assert det.fly is not None and det.fly.started is None


def test_the_last_scans_rotation_does_not_refuse_the_next_one(beamline: Beamline) -> None:
    """The detector prepared before the stage (review R13): the stage still holds the
    last, faster rotation, which must not refuse a slower scan's triggers."""
    det, rot = beamline.det, beamline.rotation
    rot.prepare(ContinuousRotation(0.0, 90.0, 360.0)).wait(5)  # (the last scan's: fast)
    det.stage()
    trigger = PositionTrigger(rot, 0.0, 90.0)
    det.prepare(FlyParameters(frames=3, exposure=0.1, trigger=trigger)).wait(5)
    rot.prepare(ContinuousRotation(0.0, 90.0, 90.0)).wait(5)  # 30° bins: 0.33 s apart
    rot.kickoff().wait(5)
    det.kickoff().wait(5)
    det.complete().wait(30)
    assert det.fly is not None and len(det.fly.frames) == 3
