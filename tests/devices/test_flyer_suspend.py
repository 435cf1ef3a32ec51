"""A suspender trips while bluesky's ``bp.fly`` flies the detector: bluesky's own
``SuspendFloor`` on a beam-current signal that a thread drives, as a beamline's monitor
would. A fly acquisition cannot wait for the beam (its triggers go on), so the run ends at
once with ``exit_status 'fail'`` and the suspender's reason, the acquisition stops, and no
frame taken after the beam was lost is in the run as a good one."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import numpy as np
import pytest
from bluesky.suspenders import SuspendFloor
from ophyd import Signal

from dataflow.hdf5_read import open_frames
from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer, SuspendedMidFly
from fpga.designs.params import ChainParams
from tests.devices.beam_loss import drop_beam_once_flying

FRAMES = 100


@pytest.fixture
def smeflow_chain_params() -> ChainParams:
    """32×32 frames for ``smeflow_beamline`` (what is tested does not depend on size)."""
    return ChainParams(32, 32, 16)


def test_a_suspender_tripped_mid_fly_fails_the_run_and_keeps_only_frames_with_beam(
        smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    bl.det.time_scale = 1.0  # (triggers in real time: 100 s of them, the
    # beam lost meanwhile however slowly a loaded machine computes the first frames)
    beam = Signal(name="beam_current", value=1.0)
    bl.RE.install_suspender(SuspendFloor(beam, 0.5))
    docs: list[tuple[str, dict[str, Any]]] = []
    bl.RE.subscribe(lambda name, doc: docs.append((name, doc)))
    flyer = DetectorFlyer(bl.det, FlyParameters(frames=FRAMES, exposure=0.05, period=1.0))
    dropped: list[float] = []
    driver = threading.Thread(target=drop_beam_once_flying, args=(bl, beam, dropped),
                              kwargs={"frames": 2, "low": 0.1, "down_s": 0.5})
    driver.start()
    try:
        with pytest.raises(SuspendedMidFly, match=r"det_flyer: the RunEngine suspended "
                           r"during a fly acquisition \(Signal beam_current = 0\.1 fell "
                           r"below 0\.5 .*\); a fly acquisition cannot wait for the beam"):
            bl.RE(bp.fly([flyer]))
    finally:
        driver.join()
        bl.RE.clear_suspenders()
    assert bl.RE.state == "idle"
    stop = next(doc for name, doc in docs if name == "stop")
    assert stop["exit_status"] == "fail"
    assert "fell below 0.5" in stop["reason"] and f"of {FRAMES} frames" in stop["reason"]
    fly = bl.det.fly
    assert fly.done.done and fly.stopped_early
    assert not bl.det.files.staged  # (the flyer staged it and unstaged it)
    assert not [t.name for t in threading.enumerate() if "-fly-" in t.name and t.is_alive()]
    # the run holds exactly the frames triggered before the beam was lost, whole
    kept = stop["num_events"].get("primary", 0)
    assert f"frames and the run fails; {kept} of them were triggered before" in stop["reason"]
    assert 2 <= kept < FRAMES
    run = bl.catalog.run(stop["run_start"])
    assert run.metadata["stop"]["exit_status"] == "fail"
    readings = run["primary"].read()
    numbers = np.asarray(readings["det_frame_number"])
    np.testing.assert_array_equal(numbers, numbers[0] + np.arange(kept))
    assert fly.frames[kept - 1].trigger_time < dropped[0]
    images = np.asarray(run["primary"]["det_image"][:]).astype(np.int64)
    assert images.shape[0] == kept
    np.testing.assert_array_equal(images.reshape(kept, -1).sum(axis=1),
                                  np.asarray(readings["det_roi_sum"]))
    fly_file = next(Path(p) for p in reversed(bl.det.digests) if "_fly" in Path(p).name)
    with open_frames(fly_file) as frames:  # (the file itself, not the catalog's first n)
        np.testing.assert_array_equal(frames.read().astype(np.int64), images)
