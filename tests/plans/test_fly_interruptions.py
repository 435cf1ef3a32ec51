"""A fly tomography scan ended early — the operator aborts or stops it, or the plan
fails mid-scan: the run records that outcome (not the detector's unstage), and the file,
the documents and the catalog agree frame for frame."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from bluesky.preprocessors import msg_mutator
from bluesky.utils import RunEngineInterrupted

from plans import fly_tomo_scan

PROJECTIONS = 60


def _fly(bl: Any) -> Any:
    bl.beamline.use_phantom()
    return fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter, out_position=20.0,
                         exposure=0.05, start=0.0, stop=180.0,
                         num_projections=PROJECTIONS, n_darks=1, n_flats=1,
                         flush_period=0.02)


def _frames_agree(bl: Any, uid: str) -> int:
    """The run's frames in the catalog are its readings' frames, numbered without gaps;
    returns how many."""
    primary = bl.catalog.run(uid)["primary"]
    readings = primary.read()
    n = len(readings["det_roi_sum"])
    images = np.asarray(primary["det_image"][:]).astype(np.int64)
    assert images.shape[0] == n
    np.testing.assert_array_equal(images.reshape(n, -1).sum(axis=1),
                                  np.asarray(readings["det_roi_sum"]))
    assert np.all(np.diff(np.asarray(readings["det_frame_number"])) == 1)
    return n


def _fly_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "-fly-" in t.name and t.is_alive()]


def _run_uids(bl: Any) -> list[str]:
    uids: list[str] = []
    bl.RE.subscribe(lambda name, doc: uids.append(doc["uid"]) if name == "start" else None)
    return uids


def test_a_plan_failing_mid_scan_keeps_its_own_error(smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    uids = _run_uids(bl)
    seen: dict[str, Any] = {"datums": 0}

    def count_projection_datums(name: str, doc: dict[str, Any]) -> None:
        if name == "descriptor" and doc["name"] == "primary":
            seen["primary"] = doc["uid"]
        if name == "stream_datum" and doc["descriptor"] == seen.get("primary"):
            seen["datums"] += 1

    def fail_mid_projections(msg: Any) -> Any:
        if msg.command == "collect" and seen["datums"] >= 2:  # projections are in
            raise RuntimeError("plan failed mid-scan")
        return msg

    bl.RE.subscribe(count_projection_datums)
    with pytest.raises(RuntimeError, match="plan failed mid-scan"):
        bl.RE(msg_mutator(_fly(bl), fail_mid_projections))
    stop = bl.catalog.run(uids[-1]).metadata["stop"]
    assert (stop["exit_status"], stop["reason"]) == ("fail", "plan failed mid-scan")
    assert 0 < _frames_agree(bl, uids[-1]) < PROJECTIONS
    assert bl.det.fly.stopped_early
    assert _fly_threads() == []


def _pause_mid_rotation(bl: Any) -> None:
    """Run the fly scan and pause it immediately (bluesky's second Ctrl+C) at its sixth
    stream datum, mid-rotation."""
    datums = {"n": 0}

    def pause_at_sixth_datum(name: str, doc: dict[str, Any]) -> None:
        if name == "stream_datum":
            datums["n"] += 1
            if datums["n"] == 6:  # (from another thread: this one is the RunEngine's)
                threading.Thread(target=bl.RE.request_pause, kwargs={"defer": False}).start()

    token = bl.RE.subscribe(pause_at_sixth_datum)
    try:
        with pytest.raises(RunEngineInterrupted):
            bl.RE(_fly(bl))
    finally:
        bl.RE.unsubscribe(token)
    assert bl.RE.state == "paused"


@pytest.mark.parametrize("how, status, reason", [("abort", "abort", "operator abort"),
                                                 ("stop", "success", "")])
def test_an_operator_abort_or_stop_mid_scan_is_recorded_as_such(
        smeflow_beamline: Any, how: str, status: str, reason: str) -> None:
    bl = smeflow_beamline
    uids = _run_uids(bl)
    _pause_mid_rotation(bl)
    if how == "abort":
        bl.RE.abort(reason)
    else:
        bl.RE.stop()
    stop = bl.catalog.run(uids[-1]).metadata["stop"]
    assert (stop["exit_status"], stop["reason"]) == (status, reason)
    assert 0 < _frames_agree(bl, uids[-1]) < PROJECTIONS
    assert _fly_threads() == []


def test_a_scan_paused_mid_rotation_then_resumed_records_every_projection_once(
        smeflow_beamline: Any) -> None:
    """Resume after a pause in the rotation: the rotation and the acquisition went on
    meanwhile (nothing is replayed: replaying prepare/kickoff would record the first
    frames twice), and the plan collects every frame — each bin once, at its angle."""
    bl = smeflow_beamline
    uids = _run_uids(bl)
    _pause_mid_rotation(bl)
    bl.RE.resume()
    run = bl.catalog.run(uids[-1])
    assert run.metadata["stop"]["exit_status"] == "success"
    assert _frames_agree(bl, uids[-1]) == PROJECTIONS
    angles = np.asarray(run["primary"].read()["rotation"])
    np.testing.assert_allclose(angles, (np.arange(PROJECTIONS) + 0.5) * 180.0 / PROJECTIONS,
                               atol=0.05)
    assert run.metadata["stop"]["num_events"]["primary"] == PROJECTIONS
    assert _fly_threads() == []
