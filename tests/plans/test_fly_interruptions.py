"""A fly tomography scan ended early — the operator aborts or stops it, or the plan
fails mid-scan: the run records that outcome (not the detector's unstage), and the file,
the documents and the catalog agree frame for frame."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.preprocessors import msg_mutator
from bluesky.utils import RunEngineInterrupted

from dataflow.catalog import Catalog
from devices.fly import FlyParameters
from fpga.designs.params import ChainParams
from plans import fly_tomo_scan

PROJECTIONS = 60


@pytest.fixture(scope="module")
def smeflow_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """``smeflow_beamline`` writes into one catalog per module instead of a new one per
    test (opening one costs about a second): every test looks its own runs up by uid."""
    with Catalog(tmp_path_factory.mktemp("smeflow-data")) as catalog:
        yield catalog


@pytest.fixture
def smeflow_chain_params() -> ChainParams:
    """32×32 frames instead of 64×64: the interpreter's firmware, most of a fly's time
    here, runs a quarter of the ticks per frame (what these tests check is how a scan ends
    or goes on, which no frame size changes)."""
    return ChainParams(32, 32, 16)


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


def _every_projection_once(bl: Any, uid: str) -> None:
    """The run ended successfully with each projection once, at its bin's angle."""
    run = bl.catalog.run(uid)
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["stop"]["num_events"]["primary"] == PROJECTIONS
    assert _frames_agree(bl, uid) == PROJECTIONS
    angles = np.asarray(run["primary"].read()["rotation"])
    np.testing.assert_allclose(angles, (np.arange(PROJECTIONS) + 0.5) * 180.0 / PROJECTIONS,
                               atol=0.05)


def _bluesky_fly(det: Any, params: FlyParameters, stream: str,
                 collect_while_completing: bool = False) -> Any:
    """A fly written with bluesky's own stubs, as its documentation shows one: prepare,
    declare the stream, kick off, then ``collect_while_completing`` or
    ``complete(wait=True)`` and one ``collect``."""
    yield from bps.prepare(det, params, wait=True)
    yield from bps.declare_stream(det, name=stream, collect=True)
    yield from bps.kickoff(det, wait=True)
    if collect_while_completing:
        yield from bps.collect_while_completing([det], [det], flush_period=0.1,
                                                stream_name=stream)
    else:
        yield from bps.complete(det, wait=True)
        yield from bps.collect(det, name=stream)


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


def _pause_mid_rotation(bl: Any, seen: list[tuple[float, str, dict[str, Any]]] | None = None
                        ) -> None:
    """Run the fly scan and pause it immediately (bluesky's second Ctrl+C) at its sixth
    stream datum, mid-rotation; the documents go to ``seen`` with their arrival times."""
    datums = {"n": 0}

    def pause_at_sixth_datum(name: str, doc: dict[str, Any]) -> None:
        if seen is not None:
            seen.append((time.monotonic(), name, doc))
        if name == "stream_datum":
            datums["n"] += 1
            if datums["n"] == 6:  # (from another thread: this one is the RunEngine's)
                threading.Thread(target=bl.RE.request_pause, kwargs={"defer": False}).start()

    bl.RE.subscribe(pause_at_sixth_datum)
    with pytest.raises(RunEngineInterrupted):
        bl.RE(_fly(bl))
    assert bl.RE.state == "paused"
    assert not bl.det.fly.done.done  # (really mid-rotation)


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
    _every_projection_once(bl, uids[-1])
    assert _fly_threads() == []


def _primary_datums(seen: list[tuple[float, str, dict[str, Any]]]) -> list[Any]:
    desc = next(d["uid"] for _, n, d in seen if n == "descriptor" and d["name"] == "primary")
    return [(t, d) for t, n, d in seen if n == "stream_datum" and d["descriptor"] == desc]


def test_after_a_resume_frames_are_still_collected_every_flush_period(
        smeflow_beamline: Any) -> None:
    """The live reduction is fed by the plan's collections: after a resume they go on
    every flush_period (bluesky's collect_while_completing stops collecting once a pause
    made the RunEngine forget its status group, and the rest came in one collect)."""
    bl = smeflow_beamline
    seen: list[tuple[float, str, dict[str, Any]]] = []
    _pause_mid_rotation(bl, seen)
    before = len(_primary_datums(seen))
    bl.RE.resume()
    after = _primary_datums(seen)[before:]
    assert len(after) > 1, [d["indices"] for _, d in after]
    assert sum(d["indices"]["stop"] - d["indices"]["start"] for _, d in after) \
        == PROJECTIONS - sum(d["indices"]["stop"] - d["indices"]["start"]
                             for _, d in _primary_datums(seen)[:before])


def test_a_second_pause_after_the_resume_keeps_every_projection(smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    uids = _run_uids(bl)
    _pause_mid_rotation(bl)
    threading.Timer(0.5, bl.RE.request_pause, kwargs={"defer": False}).start()
    with pytest.raises(RunEngineInterrupted):
        bl.RE.resume()
    assert bl.RE.state == "paused"
    bl.RE.resume()
    _every_projection_once(bl, uids[-1])


def test_a_pause_during_a_step_after_a_finished_fly_retakes_that_frame(
        smeflow_beamline: Any) -> None:
    """Once the fly is done and collected, a pause rewinds as for any step: in one
    staging, a 5-frame fly then three (checkpoint, trigger_and_read) steps; a pause during
    the second step's exposure re-takes it, and each step event's image is its own."""
    bl, exposure, steps = smeflow_beamline, 0.3, 3
    det = bl.det
    det.time_scale = 1.0
    det.exposure.put(exposure)
    seen: list[tuple[str, dict[str, Any]]] = []
    bl.RE.subscribe(lambda name, doc: seen.append((name, doc)))
    primary: dict[str, str] = {}

    def pause_in_second_step(name: str, doc: dict[str, Any]) -> None:
        if name == "descriptor" and doc["name"] == "primary":
            primary["uid"] = doc["uid"]
        if name == "event" and doc["descriptor"] == primary.get("uid") \
                and doc["seq_num"] == 1:
            threading.Timer(exposure / 3, bl.RE.request_pause).start()

    def body() -> Any:
        yield from _bluesky_fly(det, FlyParameters(frames=5, exposure=0.01), "fly")
        for _ in range(steps):
            yield from bps.checkpoint()
            yield from bps.trigger_and_read([det], name="primary")

    bl.RE.subscribe(pause_in_second_step)
    with pytest.raises(RunEngineInterrupted):
        bl.RE(bpp.run_wrapper(bpp.stage_wrapper(body(), [det])))
    assert bl.RE.state == "paused"
    bl.RE.resume()
    stop = next(doc for name, doc in seen if name == "stop")
    assert stop["exit_status"] == "success"
    run = bl.catalog.run(stop["run_start"])
    primary_stream = run["primary"]
    readings = primary_stream.read()
    images = np.asarray(primary_stream["det_image"][:]).astype(np.int64)
    assert images.shape[0] == steps == len(readings["det_roi_sum"])
    np.testing.assert_array_equal(images.reshape(steps, -1).sum(axis=1),
                                  np.asarray(readings["det_roi_sum"]))
    assert len(set(np.asarray(readings["det_frame_number"]).tolist())) == steps


def test_a_suspender_tripped_mid_rotation_suspends_at_once_and_keeps_every_projection(
        smeflow_beamline: Any) -> None:
    """A suspender (beam lost) trips while the detector still computes frames whose
    triggers have all passed (the rotation runs 1000× faster than real time): the
    RunEngine suspends at once (its pre-plan runs while the fly is still going), the
    acquisition goes on — every frame had beam — and once the beam is back the plan
    collects every frame, each projection once (no replay). A loss before the last
    trigger fails the run instead: ``tests/plans/test_fly_suspend.py``."""
    from bluesky.suspenders import SuspendBoolHigh
    from ophyd import Signal

    bl = smeflow_beamline
    uids = _run_uids(bl)
    beam_lost = Signal(name="beam_lost", value=0)
    suspended: list[bool] = []

    def note_fly_running() -> Any:
        suspended.append(bool(bl.det.fly.done.done))
        yield from bps.null()

    bl.RE.install_suspender(SuspendBoolHigh(beam_lost, pre_plan=note_fly_running))
    datums = {"n": 0}

    def trip_at_sixth_datum(name: str, doc: dict[str, Any]) -> None:
        if name == "stream_datum":
            datums["n"] += 1
            if datums["n"] == 6:  # (from another thread: this one is the RunEngine's)
                threading.Thread(target=beam_lost.put, args=(1,)).start()
                threading.Timer(0.4, beam_lost.put, args=(0,)).start()

    bl.RE.subscribe(trip_at_sixth_datum)
    try:
        bl.RE(_fly(bl))
    finally:
        bl.RE.clear_suspenders()
    assert suspended == [False]  # (suspended once, while the fly was running)
    _every_projection_once(bl, uids[-1])
    assert _fly_threads() == []


def test_a_pause_during_the_move_to_the_run_up_angle_then_resume_completes(
        smeflow_beamline: Any) -> None:
    """Paused while ``prepare`` moves the stage to its run-up angle (before the fly is
    kicked off): on resume the RunEngine rewinds to the last flat's checkpoint and
    replays ``prepare``; the stage stopped that move on the pause, so the replay is a new
    move, not the cancelling of one whose failure would end the run."""
    bl = smeflow_beamline
    bl.beamline.use_phantom()
    uids = _run_uids(bl)
    paused: list[bool] = []

    def pause_during_run_up_move(msg: Any) -> None:
        if not paused and msg.command == "prepare" and msg.obj is bl.rotation:
            paused.append(True)
            bl.rotation.time_scale = 0.05  # (a move long enough for the pause to land in)
            threading.Thread(target=bl.RE.request_pause, kwargs={"defer": False}).start()

    bl.RE.msg_hook = pause_during_run_up_move
    try:
        with pytest.raises(RunEngineInterrupted):
            bl.RE(_fly(bl))
        assert bl.RE.state == "paused"
        assert bl.det.fly is None or bl.det.fly.started is None  # (not kicked off yet)
        bl.rotation.time_scale = 0.001
        bl.RE.resume()
    finally:
        bl.RE.msg_hook = None
    stop = bl.catalog.run(uids[-1]).metadata["stop"]
    assert (stop["exit_status"], stop["reason"]) == ("success", "")
    assert stop["num_events"]["primary"] == PROJECTIONS
    assert _frames_agree(bl, uids[-1]) == PROJECTIONS
    assert _fly_threads() == []


@pytest.mark.parametrize("plan", ["collect_while_completing", "complete_then_collect"])
def test_a_fly_paused_under_bluesky_s_own_stubs_records_every_frame(
        smeflow_beamline: Any, plan: str) -> None:
    """A fly written as bluesky documents it — ``collect_while_completing``, or
    ``complete(wait=True)`` then ``collect`` — paused mid-acquisition and resumed: the
    RunEngine drops the wait the pause interrupted (it popped the status group), so the
    detector's next collect waits for the acquisition's end instead of the run ending
    early with part of the frames and exit_status "success" (review R6)."""
    bl = smeflow_beamline
    det = bl.det
    frames = 40
    det.time_scale = 1.0  # (internal triggers in real time: 40 x 50 ms)
    uids = _run_uids(bl)

    body = _bluesky_fly(det, FlyParameters(frames=frames, exposure=0.05), "primary",
                        collect_while_completing=plan == "collect_while_completing")
    threading.Timer(0.6, bl.RE.request_pause, kwargs={"defer": False}).start()
    with pytest.raises(RunEngineInterrupted):
        bl.RE(bpp.run_wrapper(bpp.stage_wrapper(body, [det])))  # type: ignore[no-untyped-call]
    assert bl.RE.state == "paused"
    assert not det.fly.done.done  # (paused mid-acquisition)
    bl.RE.resume()
    stop = bl.catalog.run(uids[-1]).metadata["stop"]
    assert stop["exit_status"] == "success"
    assert stop["num_events"]["primary"] == frames
    assert _frames_agree(bl, uids[-1]) == frames
    assert not det.fly.stopped_early


def test_a_fly_aborted_from_a_pause_under_bluesky_s_stubs_ends_at_once(
        smeflow_beamline: Any) -> None:
    """The wait after a resume (above) is for resumes only: aborted from the pause, the
    RunEngine's clean-up collect does not wait for the acquisition's 2000 frames."""
    bl = smeflow_beamline
    det = bl.det
    det.time_scale = 1.0
    uids = _run_uids(bl)

    body = _bluesky_fly(det, FlyParameters(frames=2000, exposure=0.01), "primary")
    threading.Timer(0.5, bl.RE.request_pause, kwargs={"defer": False}).start()
    with pytest.raises(RunEngineInterrupted):
        bl.RE(bpp.run_wrapper(bpp.stage_wrapper(body, [det])))  # type: ignore[no-untyped-call]
    t0 = time.monotonic()
    bl.RE.abort("operator abort")
    assert time.monotonic() - t0 < 10
    assert det.fly.stopped_early
    assert bl.catalog.run(uids[-1]).metadata["stop"]["exit_status"] == "abort"
