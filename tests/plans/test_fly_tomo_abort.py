"""A fly tomography scan ended from a pause mid-rotation stops the rotation stage."""

from __future__ import annotations

import threading
import time
from typing import Any

import bluesky.plan_stubs as bps
import pytest
from bluesky.utils import RunEngineInterrupted

from plans import fly_tomo_scan


def _pause_once_flying(bl: Any) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        fly = bl.det.fly
        if fly is not None and fly.started and len(fly.frames) >= 3:
            bl.RE.request_pause(defer=False)
            return
        time.sleep(0.01)


@pytest.mark.parametrize("end", ["abort", "stop"])
def test_ending_a_paused_fly_stops_the_rotation_where_it_is(smeflow_beamline: Any,
                                                             end: str) -> None:
    """bluesky stops only what it moved with ``set``; the rotation was prepared and
    kicked off, so the plan stops it: after ``RE.abort()`` / ``RE.stop()`` from a pause
    with most of the rotation left, the stage is at rest and answers the next move."""
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
    here = bl.rotation.position
    time.sleep(0.2)
    assert bl.rotation.position == here
    assert 0.0 < here < 180.0
    stop = bl.catalog.run(uids[-1]).metadata["stop"]
    assert stop["exit_status"] == ("abort" if end == "abort" else "success")
    bl.rotation.time_scale = 0.001
    bl.RE(bps.mv(bl.rotation, 0.0))
    assert abs(bl.rotation.position) < 0.01
