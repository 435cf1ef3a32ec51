"""The plans under a real RunEngine: standard bluesky plans on our devices, suspenders on beam
loss, pause/resume, abort and failure (each run recorded with its exit status)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky import plans as bp
from bluesky.suspenders import SuspendFloor
from bluesky.utils import FailedStatus, RunEngineInterrupted

from devices.motion import MotorLimitError
from plans import tomo_scan

OUT = 20.0


# -- standard bluesky plans run unchanged against the devices ----------------------------


def test_count_reads_camera_and_beam_monitor(RE: RunEngine, docs: Any, cam: Any, beam: Any) -> None:
    RE(bp.count([cam, beam], num=3))
    events = docs.events()
    assert len(events) == 3
    for event in events:
        assert event["data"]["ring_current"] == pytest.approx(400.0, abs=1.0)
        assert event["data"]["ring_available"] == 1
        assert event["data"]["cam_total"] == 0.0  # shutter closed: nothing on the camera
    assert docs.stop["exit_status"] == "success"


def test_scan_moves_sample_x(RE: RunEngine, docs: Any, cam: Any, sample_x: Any, shutter: Any) -> None:
    shutter.set("open").wait(timeout=5)
    RE(bp.scan([cam], sample_x, -20.0, 20.0, 5))
    events = docs.events()
    assert [e["data"]["sample_x"] for e in events] == pytest.approx([-20, -10, 0, 10, 20])
    totals = [e["data"]["cam_total"] for e in events]
    assert totals[2] < totals[0] == pytest.approx(totals[4], rel=1e-3)  # phantom only at 0
    assert docs.start["plan_name"] == "scan" and list(docs.start["motors"]) == ["sample_x"]


def test_rel_scan_on_the_rotation_stage_returns_home(
    RE: RunEngine, docs: Any, cam: Any, rotation: Any
) -> None:
    rotation.set(30.0).wait(timeout=5)
    RE(bp.rel_scan([cam], rotation, -10.0, 10.0, 3))
    assert [e["data"]["rotation"] for e in docs.events()] == pytest.approx([20.0, 30.0, 40.0])
    assert rotation.position == pytest.approx(30.0)


def test_list_scan_two_motors(
    RE: RunEngine, docs: Any, cam: Any, sample_x: Any, sample_y: Any
) -> None:
    RE(bp.list_scan([cam], sample_x, [0.0, 5.0, -5.0], sample_y, [1.0, 2.0, 3.0]))
    seen = [(e["data"]["sample_x"], e["data"]["sample_y"]) for e in docs.events()]
    assert seen == [pytest.approx(p) for p in [(0, 1), (5, 2), (-5, 3)]]


def test_list_scan_over_the_shutter_states(RE: RunEngine, docs: Any, cam: Any, shutter: Any) -> None:
    RE(bp.list_scan([cam], shutter, ["closed", "open", "closed"]))
    data = [(e["data"]["shutter"], e["data"]["cam_total"] > 0) for e in docs.events()]
    assert data == [("closed", False), ("open", True), ("closed", False)]


def test_grid_scan_snakes(RE: RunEngine, docs: Any, cam: Any, sample_x: Any, sample_y: Any) -> None:
    RE(bp.grid_scan([cam], sample_y, -1.0, 1.0, 2, sample_x, -2.0, 2.0, 3, snake_axes=True))
    seen = [(e["data"]["sample_y"], e["data"]["sample_x"]) for e in docs.events()]
    expected = [(-1, -2), (-1, 0), (-1, 2), (1, 2), (1, 0), (1, -2)]
    assert seen == [pytest.approx(p) for p in expected]
    assert list(docs.start["shape"]) == [2, 3]


# -- run control during tomo_scan -------------------------------------------------------


def _after_projections(docs: Any, n: int, action: Callable[[], None]) -> Callable[[str, Any], None]:
    """A callback that calls ``action`` once, right after the n-th projection event."""
    done = [False]

    def callback(name: str, doc: Any) -> None:
        if name == "event" and not done[0] and len(docs.events("primary")) == n:
            done[0] = True
            action()

    return callback


def _pause_from_a_thread(RE: RunEngine) -> Callable[[], None]:
    """An action that asks for a pause from another thread, as a user's Ctrl-C would.

    ``request_pause`` waits for the RunEngine's event loop, so it cannot be called from a
    document callback (which runs on that loop). The action starts the request in a
    thread and gives it a moment to be queued; the RunEngine then pauses at its next wait.
    """

    def action() -> None:
        started = threading.Event()

        def request() -> None:
            started.set()
            RE.request_pause()

        threading.Thread(target=request, daemon=True).start()
        assert started.wait(timeout=5)
        time.sleep(0.05)

    return action


def _tomo(cam: Any, rotation: Any, sample_x: Any, shutter: Any, n: int) -> Any:
    return tomo_scan(cam, rotation, sample_x, shutter, out_position=OUT, start=0.0, stop=180.0,
                     num_projections=n, n_darks=2, n_flats=2, exposure=0.01, endpoint=False)


def test_suspender_on_beam_loss_retakes_the_interrupted_projection(
    RE: RunEngine, docs: Any, cam: Any, rotation: Any, sample_x: Any, shutter: Any, beam: Any
) -> None:
    RE.install_suspender(SuspendFloor(beam.current, 100.0, resume_thresh=350.0))
    states: list[str] = []
    RE.state_hook = lambda new, old: states.append(new)
    RE.subscribe(_after_projections(docs, 3, lambda: beam.drop_beam(duration=0.3)))

    began = time.monotonic()
    RE(_tomo(cam, rotation, sample_x, shutter, 8))
    elapsed = time.monotonic() - began

    assert "suspending" in states  # the suspender did trip ...
    assert elapsed >= 0.3  # ... and the RunEngine waited for the beam to come back
    assert beam.beam_up
    assert docs.stop["exit_status"] == "success"
    assert docs.counts() == {"dark": 2, "flat": 2, "primary": 8}
    projections = docs.events("primary")
    assert [e["data"]["rotation"] for e in projections] == pytest.approx(docs.start["angles"])
    # no projection was taken without beam: the interrupted one was re-taken after it returned
    assert all(e["data"]["cam_total"] > 0 for e in projections)
    assert shutter.state == "closed"


def test_pause_and_resume_completes_the_run(
    RE: RunEngine, docs: Any, cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    RE.subscribe(_after_projections(docs, 2, _pause_from_a_thread(RE)))
    with pytest.raises(RunEngineInterrupted):
        RE(_tomo(cam, rotation, sample_x, shutter, 6))
    assert RE.state == "paused"
    assert not any(name == "stop" for name in docs.names())
    RE.resume()
    assert RE.state == "idle"
    assert docs.stop["exit_status"] == "success"
    assert docs.counts() == {"dark": 2, "flat": 2, "primary": 6}
    assert [e["data"]["rotation"] for e in docs.events("primary")] == pytest.approx(
        docs.start["angles"]
    )
    assert shutter.state == "closed"


@pytest.mark.parametrize(
    ("verb", "exit_status", "reason"),
    [("abort", "abort", "sample drifted"), ("stop", "success", "")],
)
def test_abort_or_stop_after_pause_records_the_exit_and_closes_the_shutter(
    RE: RunEngine, docs: Any, cam: Any, rotation: Any, sample_x: Any, shutter: Any,
    verb: str, exit_status: str, reason: str,
) -> None:
    RE.subscribe(_after_projections(docs, 2, _pause_from_a_thread(RE)))
    with pytest.raises(RunEngineInterrupted):
        RE(_tomo(cam, rotation, sample_x, shutter, 6))
    assert shutter.state == "open"  # paused mid-projections with the beam on the sample
    if verb == "abort":
        RE.abort(reason)
    else:
        RE.stop()
    assert RE.state == "idle"
    stop = docs.stop
    assert (stop["exit_status"], stop["reason"]) == (exit_status, reason)
    assert 2 <= docs.counts()["primary"] < 6
    assert shutter.state == "closed"
    assert cam.stage_count == cam.unstage_count == 3  # darks, flats, projections: a file each


def test_detector_failure_records_fail_and_closes_the_shutter(
    RE: RunEngine, docs: Any, cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    cam.fail_at = 2 + 2 + 3  # the third projection
    with pytest.raises(FailedStatus):
        RE(_tomo(cam, rotation, sample_x, shutter, 6))
    stop = docs.stop
    assert stop["exit_status"] == "fail"
    assert docs.counts() == {"dark": 2, "flat": 2, "primary": 2}
    assert shutter.state == "closed" and cam.stage_count == cam.unstage_count == 3


def test_limits_tightened_after_the_call_fail_the_run_at_the_move(
    RE: RunEngine, docs: Any, cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    """Validation sees the limits at call time; the device still guards the move itself."""
    plan = _tomo(cam, rotation, sample_x, shutter, 6)
    rotation.high_limit_travel.put(100.0)
    with pytest.raises(MotorLimitError, match="outside the limits"):
        RE(plan)
    assert docs.stop["exit_status"] == "fail"
    assert "outside the limits" in docs.stop["reason"]
    assert docs.counts()["primary"] == 4  # 0, 30, 60, 90 deg; 120 is out of reach
    assert shutter.state == "closed"
