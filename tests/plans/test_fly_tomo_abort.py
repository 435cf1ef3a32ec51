"""A fly tomography scan ended from a pause mid-rotation stops the rotation stage."""

from __future__ import annotations

import threading
import time
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import pytest
from bluesky.utils import RunEngineInterrupted

from devices.fly import FlyParameters, PositionTrigger
from devices.flyer import DetectorFlyer
from devices.rotation import ContinuousRotation
from fpga.designs.params import ChainParams
from plans import fly_tomo_scan


@pytest.fixture
def smeflow_chain_params() -> ChainParams:
    """32×32 frames for ``smeflow_beamline``: a quarter of the interpreter firmware's ticks
    per frame (most of a fly's time here); its frames still take far longer than a
    trigger period, and what is tested does not depend on the frame size."""
    return ChainParams(32, 32, 16)


def _pause_once_flying(bl: Any) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        fly = bl.det.fly
        if fly is not None and fly.started and len(fly.frames) >= 3:
            bl.RE.request_pause(defer=False)
            return
        time.sleep(0.01)


@pytest.mark.parametrize("end", ["abort", "stop", "halt"])
def test_ending_a_paused_fly_stops_the_rotation_where_it_is(smeflow_beamline: Any,
                                                             end: str) -> None:
    """bluesky stops only what it moved with ``set``; the rotation was prepared and
    kicked off, and stops when its run ends: after ``RE.abort()`` / ``RE.stop()`` /
    ``RE.halt()`` (the emergency stop: no plan clean-up) from a pause with most of the
    rotation left, the stage is at rest, the fly acquisition ended, and the stage answers
    the next move."""
    bl = smeflow_beamline
    bl.beamline.use_phantom()
    bl.rotation.time_scale = 10.0  # 30 s of constant velocity: the pause lands mid-rotation
    plan = fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter, out_position=20.0,
                         exposure=0.05, start=0.0, stop=180.0, num_projections=60,
                         n_darks=1, n_flats=1, flush_period=0.02)
    threading.Thread(target=_pause_once_flying, args=(bl,), daemon=True).start()
    with pytest.raises(RunEngineInterrupted):
        bl.RE(plan)
    assert bl.RE.state == "paused"
    assert bl.rotation.constant_velocity_window()[1] > time.time() + 5
    uids = getattr(bl.RE, end)()
    assert not bl.rotation.moving, "the rotation still turns after the plan ended"
    assert bl.det.fly is None or bl.det.fly.done.done, "the fly acquisition still runs"
    here = bl.rotation.position
    time.sleep(0.2)
    assert bl.rotation.position == here
    assert 0.0 < here < 180.0
    stop = bl.catalog.run(uids[-1]).metadata["stop"]
    assert stop["exit_status"] == ("success" if end == "stop" else "abort")
    bl.rotation.time_scale = 0.001
    bl.RE(bps.mv(bl.rotation, 0.0))
    assert abs(bl.rotation.position) < 0.01


@pytest.mark.parametrize("end", ["abort", "halt"])
def test_ending_bp_fly_stops_the_rotation_it_kicked_off(smeflow_beamline: Any,
                                                        end: str) -> None:
    """bluesky's ``bp.fly([detector flyer, rotation])`` has no clean-up of its own: ended
    from a pause mid-rotation, the rotation it kicked off stops with the run (review E6)."""
    bl = smeflow_beamline
    bl.beamline.use_phantom()
    rot = bl.rotation
    rot.time_scale = 10.0  # 20 s at constant velocity
    flyer = DetectorFlyer(bl.det, FlyParameters(frames=40, exposure=0.01,
                                                trigger=PositionTrigger(rot, 0.0, 180.0)))

    def plan() -> Any:
        yield from bps.prepare(rot, ContinuousRotation(0.0, 180.0, 90.0), wait=True)
        yield from bps.checkpoint()
        return (yield from bp.fly([flyer, rot]))

    threading.Thread(target=_pause_once_flying, args=(bl,), daemon=True).start()
    with pytest.raises(RunEngineInterrupted):
        bl.RE(plan())
    assert bl.RE.state == "paused"
    assert rot.moving
    getattr(bl.RE, end)()
    moving = rot.moving
    rot.time_scale = 0.001
    assert not moving, f"the rotation bp.fly kicked off still turns after RE.{end}()"
    assert bl.det.fly is None or bl.det.fly.done.done


def test_a_failing_plan_stops_the_rotation_it_kicked_off(smeflow_beamline: Any) -> None:
    """A plan that fails after kicking off the rotation (no pause, no clean-up of its
    own): the run ends with the failure and the rotation stops where it is."""
    bl = smeflow_beamline
    rot = bl.rotation
    rot.time_scale = 10.0

    @bpp.run_decorator()
    def plan() -> Any:
        yield from bps.prepare(rot, ContinuousRotation(0.0, 180.0, 90.0), wait=True)
        yield from bps.kickoff(rot, wait=True)
        yield from bps.sleep(0.2)
        raise RuntimeError("the plan failed mid-rotation")

    with pytest.raises(RuntimeError, match="the plan failed mid-rotation"):
        bl.RE(plan())
    moving, here = rot.moving, rot.position
    time.sleep(0.2)
    still = rot.position == here
    rot.time_scale = 0.001
    assert not moving and still, "the rotation still turns after its run failed"
