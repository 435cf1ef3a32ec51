"""Arming the detector before starting its rotation gives the same acquisition as
starting the rotation first.

"Arm the detector, then start the motion" is how fly scans run at beamlines: an area
detector armed for external triggers waits for the motion controller's position-compare
pulses, and ophyd-async's ``StandardDetector.prepare`` arms externally triggered
detectors before the plan kicks off the trigger source. smeflow's own fly tomography
starts the rotation first. Both orders must record the same frames and documents.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import h5py
import numpy as np
from bluesky import RunEngine

from devices.beamline import Beamline
from devices.fly import FlyParameters, PositionTrigger
from devices.rotation import ContinuousRotation
from fpga.designs.params import ChainParams

FRAMES = 8
VARYING = {"uid", "time", "run_start", "descriptor", "stream_resource", "datum_id",
           "resource", "scan_id", "timestamps"}
"""Document fields that differ between any two runs (ids, clocks)."""


def _fly(folder: Path, det_first: bool) -> tuple[list[tuple[str, Any]], np.ndarray, float]:
    """One fly over the phantom with the beam held at its nominal current: the run's
    documents, the frames in the file and the wall time the rotation passed 0 deg."""
    bl = Beamline.create(folder, params=ChainParams(64, 64, 16), backend="compiled",
                         time_scale=0.1)
    try:
        bl.beam.noise.put(0.0)  # (the beam's noise follows the wall clock)
        deadline = time.time() + 10
        while bl.beam.beam_factor() != 1.0 and time.time() < deadline:
            time.sleep(0.01)
        bl.shutter.set("open").wait(5)
        bl.use_phantom()
        det, rot = bl.det, bl.rotation
        docs: list[tuple[str, Any]] = []
        RE = RunEngine({})
        RE.subscribe(lambda name, doc: docs.append((name, doc)))
        trigger = PositionTrigger(rot, 0.0, 180.0)

        def plan() -> Any:
            yield from bps.open_run()
            yield from bps.stage(det)
            yield from bps.prepare(rot, ContinuousRotation(0.0, 180.0, 90.0), wait=True)
            yield from bps.prepare(det, FlyParameters(frames=FRAMES, exposure=0.01,
                                                      trigger=trigger), wait=True)
            yield from bps.declare_stream(det, name="primary", collect=True)
            for flyer in ((det, rot) if det_first else (rot, det)):
                yield from bps.kickoff(flyer, wait=True)
            yield from bps.complete(det, wait=True)
            yield from bps.complete(rot, wait=True)
            yield from bps.collect(det, name="primary")
            yield from bps.unstage(det)
            yield from bps.close_run()

        RE(plan())
        t0 = rot.started_rotation().t_start
        (path,) = folder.rglob("*.h5")
        with h5py.File(path, "r") as f:
            images = np.asarray(f["/entry/data/data"])
        return docs, images, t0
    finally:
        bl.close()


def _plain(value: Any, folder: Path) -> Any:
    """``value`` without what differs between any two runs (ids, clocks, file names)."""
    if isinstance(value, dict):
        return {k: _plain(v, folder) for k, v in value.items() if k not in VARYING}
    if isinstance(value, list | tuple):
        return [_plain(v, folder) for v in value]
    if isinstance(value, str):  # (a file's name has the time it was opened and a tag)
        return re.sub(r"det_\d{8}-\d{6}_[0-9a-f]{8}", "det_<stem>",
                      value.replace(str(folder), "<folder>"))
    return value


def test_arming_the_detector_first_records_the_same_frames_and_documents(
        tmp_path: Path) -> None:
    runs = {order: _fly(tmp_path / order, det_first=order == "det-first")
            for order in ("rotation-first", "det-first")}
    (docs_a, images_a, t0_a), (docs_b, images_b, t0_b) = runs.values()
    assert images_a.shape == (FRAMES, 64, 64) and images_a.any()
    np.testing.assert_array_equal(images_b, images_a)

    assert [name for name, _ in docs_b] == [name for name, _ in docs_a]
    pages = {order: [doc for name, doc in docs if name in ("event", "event_page")]
             for order, (docs, _, _) in runs.items()}
    for order, t0 in (("rotation-first", t0_a), ("det-first", t0_b)):
        (page,) = pages[order]
        data = page["data"]
        # the triggers on each run's own rotation: the same moments after it passed 0 deg
        data["det_trigger_time"] = np.round(np.asarray(data["det_trigger_time"]) - t0, 6)
        data["rotation"] = np.round(np.asarray(data["rotation"]), 3)
    for (name, a), (_, b) in zip(docs_a, docs_b, strict=True):
        plain_a = _plain(a, tmp_path / "rotation-first")
        plain_b = _plain(b, tmp_path / "det-first")
        if name in ("event", "event_page"):
            for key in plain_a["data"]:
                np.testing.assert_array_equal(plain_b["data"][key], plain_a["data"][key],
                                              err_msg=key)
            plain_a.pop("data"), plain_b.pop("data")
        assert plain_b == plain_a, name
    (page,) = pages["det-first"]  # (the bin centres of 0-180 deg)
    np.testing.assert_allclose(page["data"]["rotation"],
                               [(i + 0.5) * 180.0 / FRAMES for i in range(FRAMES)],
                               atol=0.01)


def test_bp_fly_arms_the_detector_then_starts_the_rotation(smeflow_beamline: Any) -> None:
    """The review's E9, the plan docs/catalog.md describes: ``bp.fly`` kicks its flyers
    off in order, so the detector's flyer is armed before the rotation starts; the run
    succeeds with every frame at its bin's centre, triggered on this rotation, and the
    rotation adds no stream."""
    from bluesky import plans as bp

    from devices.flyer import DetectorFlyer

    bl = smeflow_beamline
    rot = bl.rotation
    trigger = PositionTrigger(rot, 0.0, 180.0)
    flyer = DetectorFlyer(bl.det, FlyParameters(frames=6, exposure=0.01, trigger=trigger))

    def arm_then_rotate() -> Any:
        yield from bps.prepare(rot, ContinuousRotation(0.0, 180.0, 90.0), wait=True)
        return (yield from bp.fly([flyer, rot]))

    began = time.time()
    (uid,) = bl.RE(arm_then_rotate())
    run = bl.catalog.run(uid)
    assert run.metadata["stop"]["exit_status"] == "success"
    assert list(run) == ["primary"]
    data = run["primary"].read()
    np.testing.assert_allclose(np.asarray(data["rotation"]), trigger.angles(6), atol=0.5)
    t_start, t_stop = rot.constant_velocity_window()
    times = np.asarray(data["det_trigger_time"])
    assert began < t_start <= times.min() and times.max() <= t_stop
    assert np.asarray(data["det_image"]).shape == (6, 64, 64)
