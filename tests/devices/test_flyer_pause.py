"""bluesky's own ``bp.fly`` with the detector's flyer, paused (Ctrl+C twice) during the
acquisition and resumed: the RunEngine replays ``kickoff``/``complete`` from the last
checkpoint, the flyer takes up the acquisition that went on meanwhile, and the run records
every frame once."""

from __future__ import annotations

import threading
import time
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import numpy as np
import pytest
from bluesky.utils import RunEngineInterrupted

from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer
from devices.motion import SimMotor
from fpga.designs.params import ChainParams

FRAMES = 20


@pytest.fixture
def smeflow_chain_params() -> ChainParams:
    """32×32 frames for ``smeflow_beamline``: a quarter of the interpreter firmware's ticks
    per frame (most of a fly's time here); its frames still take far longer than a
    trigger period, and what is tested does not depend on the frame size."""
    return ChainParams(32, 32, 16)


def _paused_bp_fly(bl: Any, flyer: DetectorFlyer, staged_by_plan: bool
                   ) -> list[tuple[str, dict[str, Any]]]:
    docs: list[tuple[str, dict[str, Any]]] = []
    bl.RE.subscribe(lambda name, doc: docs.append((name, doc)))
    fired: list[bool] = []

    def pause_at_complete(msg: Any) -> None:
        if not fired and msg.command == "complete":
            fired.append(True)
            threading.Thread(target=bl.RE.request_pause, kwargs={"defer": False}).start()

    bl.RE.msg_hook = pause_at_complete
    plan = bp.fly([flyer])
    try:
        with pytest.raises(RunEngineInterrupted):
            bl.RE(bpp.stage_wrapper(plan, [bl.det]) if staged_by_plan else plan)
    finally:
        bl.RE.msg_hook = None
    assert bl.RE.state == "paused"
    return docs


def _every_frame_once(bl: Any, docs: list[tuple[str, dict[str, Any]]]) -> None:
    stop = next(doc for name, doc in docs if name == "stop")
    assert (stop["exit_status"], stop["reason"]) == ("success", "")
    assert stop["num_events"]["primary"] == FRAMES
    primary = bl.catalog.run(stop["run_start"])["primary"]
    readings = primary.read()
    numbers = np.asarray(readings["det_frame_number"])
    assert len(numbers) == FRAMES and np.all(np.diff(numbers) == 1)
    images = np.asarray(primary["det_image"][:]).astype(np.int64)
    np.testing.assert_array_equal(images.reshape(FRAMES, -1).sum(axis=1),
                                  np.asarray(readings["det_roi_sum"]))
    assert not bl.det.files.staged


@pytest.mark.parametrize("staged_by_plan", [False, True], ids=["flyer-stages", "plan-stages"])
def test_bp_fly_paused_mid_acquisition_then_resumed_records_every_frame_once(
        smeflow_beamline: Any, staged_by_plan: bool) -> None:
    bl = smeflow_beamline
    flyer = DetectorFlyer(bl.det, FlyParameters(frames=FRAMES, exposure=0.05))
    docs = _paused_bp_fly(bl, flyer, staged_by_plan)
    assert not bl.det.fly.done.done  # (paused while the acquisition runs)
    bl.RE.resume()
    _every_frame_once(bl, docs)


def test_bp_fly_resumed_after_the_acquisition_ended_starts_no_second_one(
        smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    flyer = DetectorFlyer(bl.det, FlyParameters(frames=FRAMES, exposure=0.01))
    docs = _paused_bp_fly(bl, flyer, staged_by_plan=False)
    fly = bl.det.fly
    fly.done.wait(30)
    time.sleep(0.05)
    bl.RE.resume()
    assert bl.det.fly is fly
    _every_frame_once(bl, docs)


@pytest.mark.parametrize("end", ["abort", "stop"])
def test_bp_fly_ended_from_its_pause_stops_the_acquisition_and_frees_the_detector(
        smeflow_beamline: Any, end: str) -> None:
    """Ctrl+C, then ``RE.abort()`` (or ``RE.stop()``): the run ends with the frames taken
    so far (as many events as frames), the acquisition stops at once — not after its
    2000 frames — and the detector the flyer staged is free for the next plan."""
    bl = smeflow_beamline
    bl.det.time_scale = 1.0  # (internal triggers in real time: 20 s)
    flyer = DetectorFlyer(bl.det, FlyParameters(frames=2000, exposure=0.01))
    docs = _paused_bp_fly(bl, flyer, staged_by_plan=False)
    t0 = time.monotonic()
    if end == "abort":
        bl.RE.abort("operator abort")
    else:
        bl.RE.stop()
    assert time.monotonic() - t0 < 10
    fly = bl.det.fly
    assert fly.done.done and fly.stopped_early
    assert not bl.det.files.staged
    stop = next(doc for name, doc in docs if name == "stop")
    assert stop["exit_status"] == ("abort" if end == "abort" else "success")
    assert stop["num_events"].get("primary", 0) == len(fly.frames) < 2000
    (uid,) = bl.RE(bp.count([bl.det], 1))
    assert bl.catalog.run(uid).metadata["stop"]["exit_status"] == "success"


def test_a_pause_after_a_collected_fly_and_a_checkpoint_rewinds_to_it(
        smeflow_beamline: Any) -> None:
    """bluesky's pause stops every motor the plan set and its resume replays the plan from
    the last checkpoint, so a stopped move is made again. The flyer said
    ``NoReplayAllowed`` at every pause once it had flown in the run, also long after its
    acquisition ended and was collected before that checkpoint: the RunEngine then went on
    without rewinding and the plan read a motor stopped short (at ~0.1 of 20 mm) as if it
    had arrived. Its frames are not in the replay, so the pause now rewinds."""
    bl = smeflow_beamline
    slow = SimMotor(name="slow", limits=(-100, 100), velocity=10.0, acceleration=100.0,
                    time_scale=0.25, update_period=0.005)  # (a move of ~0.5 s wall time)
    flyer = DetectorFlyer(bl.det, FlyParameters(frames=5, exposure=0.01))
    docs: list[tuple[str, dict[str, Any]]] = []
    bl.RE.subscribe(lambda name, doc: docs.append((name, doc)))
    fired: list[bool] = []

    def pause_at_the_move(msg: Any) -> None:
        if not fired and msg.command == "set" and msg.obj is slow:
            fired.append(True)
            threading.Thread(target=bl.RE.request_pause, kwargs={"defer": False}).start()

    @bpp.run_decorator()
    def plan() -> Any:
        yield from bps.kickoff(flyer, wait=True)
        yield from bps.complete(flyer, wait=True)
        yield from bps.collect(flyer)
        yield from bps.checkpoint()
        yield from bps.mv(slow, 20.0)
        yield from bps.trigger_and_read([slow], name="after")

    bl.RE.msg_hook = pause_at_the_move
    try:
        with pytest.raises(RunEngineInterrupted):
            bl.RE(plan())
        assert slow.position < 19  # (the pause stopped the move)
        bl.RE.resume()
    finally:
        bl.RE.msg_hook = None
        slow.destroy()
    stop = next(doc for name, doc in docs if name == "stop")
    assert stop["exit_status"] == "success"
    assert stop["num_events"] == {"primary": 5, "after": 1}  # (the frames once)
    after = bl.catalog.run(stop["run_start"])["after"].read()
    assert float(np.asarray(after["slow"])[0]) == pytest.approx(20.0)
