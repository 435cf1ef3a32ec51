"""The detector's flyer when its plan fails or collects early: the acquisition stops and a
detector the flyer staged is freed (``devices.flyer``: bluesky stops only what it set,
and collects a failed run's flyers as its clean-up)."""

from __future__ import annotations

import logging
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import pytest

from devices.fly import FlyParameters
from devices.flyer import CollectBeforeComplete, DetectorFlyer

# 200 frames at 50 Hz in real time: 4 s, far longer than any of these tests waits
LONG = FlyParameters(frames=200, exposure=0.02, period=0.02)


def _long_flyer(bl: Any) -> DetectorFlyer:
    bl.det.time_scale = 1.0
    return DetectorFlyer(bl.det, LONG)


def _kickoff_then_fail(flyer: DetectorFlyer) -> Any:
    """A plan's part that kicks the flyer off and fails 0.1 s later."""
    yield from bps.kickoff(flyer, wait=True)
    yield from bps.sleep(0.1)
    raise ValueError("the user's plan failed")


def _stopped_and_free(bl: Any) -> None:
    """The acquisition ended early, the detector is unstaged and the next plan runs."""
    fly = bl.det.fly
    assert fly is not None and fly.done.done and fly.stopped_early
    assert len(fly.frames) < LONG.frames
    assert not bl.det.files.staged
    (uid,) = bl.RE(bp.count([bl.det], 1))
    assert bl.catalog.run(uid).metadata["stop"]["exit_status"] == "success"


def test_a_plan_failing_after_kickoff_stops_the_acquisition(
        smeflow_beamline: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The review's case: the run decorator closes the run with the plan's failure; at
    its stop document the acquisition stops at once (not after its 4 s) and the detector
    the flyer staged is unstaged. The run reports the plan's own failure."""
    bl = smeflow_beamline
    flyer = _long_flyer(bl)
    docs: list[tuple[str, dict[str, Any]]] = []
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError,
                                                         match="the user's plan failed"):
        bl.RE(bpp.run_wrapper(_kickoff_then_fail(flyer)),
              lambda name, doc: docs.append((name, doc)))
    stop = next(doc for name, doc in docs if name == "stop")
    assert (stop["exit_status"], stop["reason"]) == ("fail", "the user's plan failed")
    assert "det_flyer: the run ended while its fly acquisition ran" in caplog.text
    _stopped_and_free(bl)


def test_a_failing_plan_that_left_its_run_open_stops_the_acquisition(
        smeflow_beamline: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A run left open (``bps.open_run`` without a close) is closed by the RunEngine
    after its clean-up collect of the flyer: that collect, before any ``complete()``,
    stops the acquisition and says why in the RunEngine's log."""
    bl = smeflow_beamline
    flyer = _long_flyer(bl)

    def plan() -> Any:
        yield from bps.open_run()
        yield from _kickoff_then_fail(flyer)

    with caplog.at_level(logging.ERROR), pytest.raises(ValueError,
                                                       match="the user's plan failed"):
        bl.RE(plan())
    assert "det_flyer: collect() before complete() of a running fly acquisition" \
        in caplog.text
    _stopped_and_free(bl)


def test_a_collect_before_complete_fails_loudly(smeflow_beamline: Any) -> None:
    """A partial collect is refused (not a partial result): the run fails with the
    reason, the acquisition stops and the detector is free."""
    bl = smeflow_beamline
    flyer = _long_flyer(bl)
    docs: list[tuple[str, dict[str, Any]]] = []

    @bpp.run_decorator()
    def plan() -> Any:
        yield from bps.kickoff(flyer, wait=True)
        yield from bps.sleep(0.1)
        yield from bps.collect(flyer)

    with pytest.raises(CollectBeforeComplete,
                       match=r"det_flyer: collect\(\) before complete\(\) .* call "
                             r"complete\(\) first"):
        bl.RE(plan(), lambda name, doc: docs.append((name, doc)))
    stop = next(doc for name, doc in docs if name == "stop")
    assert stop["exit_status"] == "fail"
    assert "collect() before complete()" in stop["reason"]
    _stopped_and_free(bl)


def test_a_failing_plan_staging_the_flyer_frees_the_detector(
        smeflow_beamline: Any) -> None:
    """``bpp.stage_decorator([flyer])`` around the run (ophyd-async's fly plans): the
    run's end stops the acquisition, the flyer's unstage then frees the detector (the
    unstage alone: ``test_unstaging_the_flyer_...``)."""
    bl = smeflow_beamline
    flyer = _long_flyer(bl)

    plan = bpp.stage_wrapper(bpp.run_wrapper(_kickoff_then_fail(flyer)), [flyer])
    with pytest.raises(ValueError, match="the user's plan failed"):
        bl.RE(plan)
    _stopped_and_free(bl)


def test_a_staged_flyer_completing_normally_records_every_frame(
        smeflow_beamline: Any) -> None:
    """Staging the flyer changes nothing for a plan that completes: bp.fly inside
    ``stage_decorator([flyer])`` records every frame and frees the detector."""
    bl = smeflow_beamline
    flyer = DetectorFlyer(bl.det, FlyParameters(frames=6, exposure=0.01))
    (uid,) = bl.RE(bpp.stage_wrapper(bp.fly([flyer]), [flyer]))
    run = bl.catalog.run(uid)
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["stop"]["num_events"]["primary"] == 6
    fly = bl.det.fly
    assert fly is not None and not fly.stopped_early
    assert not bl.det.files.staged


def test_unstaging_the_flyer_leaves_a_detector_the_plan_staged(
        smeflow_beamline: Any) -> None:
    """Unstaging the flyer (outside a run: nothing else cleans up) stops its acquisition
    but unstages only a detector it staged itself."""
    bl = smeflow_beamline
    bl.det.time_scale = 1.0
    bl.det.stage()
    try:
        flyer = DetectorFlyer(bl.det, LONG)
        flyer.stage()
        flyer.kickoff().wait(10)
        flyer.unstage()
        fly = bl.det.fly
        assert fly is not None and fly.done.done and fly.stopped_early
        assert bl.det.files.staged
    finally:
        bl.det.unstage()


def test_unstaging_the_flyer_unstages_the_detector_it_staged(smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    flyer = _long_flyer(bl)
    flyer.stage()
    flyer.kickoff().wait(10)  # (stages the detector: nothing had)
    assert bl.det.files.staged
    flyer.unstage()
    fly = bl.det.fly
    assert fly is not None and fly.done.done and fly.stopped_early
    assert not bl.det.files.staged
