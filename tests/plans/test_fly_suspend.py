"""A fly tomography scan whose beam is lost mid-rotation (bluesky's ``SuspendFloor`` on a
beam-current signal a thread drives): the rotation's triggers go on without beam, so the
run fails at once, saying so, with every projection triggered before the loss (also those
taken since the plan's last collect) and no other: events and file agree."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky.suspenders import SuspendFloor
from ophyd import Signal

from dataflow.hdf5_read import open_frames
from devices.suspension import SuspendedMidFly
from fpga.designs.params import ChainParams
from plans import fly_tomo_scan
from tests.devices.beam_loss import drop_beam_once_flying

PROJECTIONS = 60


@pytest.fixture
def smeflow_chain_params() -> ChainParams:
    """32×32 frames for ``smeflow_beamline`` (what is tested does not depend on size)."""
    return ChainParams(32, 32, 16)


def test_beam_lost_mid_rotation_fails_the_run_with_the_projections_taken_before(
        smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    bl.beamline.use_phantom()
    bl.rotation.time_scale = 10.0  # 30 s of constant velocity: the loss lands mid-rotation
    beam = Signal(name="beam_current", value=1.0)
    bl.RE.install_suspender(SuspendFloor(beam, 0.5))
    stops: list[dict[str, Any]] = []
    bl.RE.subscribe(lambda name, doc: stops.append(doc), "stop")
    dropped: list[float] = []
    driver = threading.Thread(target=drop_beam_once_flying, args=(bl, beam, dropped),
                              kwargs={"frames": 3, "low": 0.2, "down_s": 0.3})
    driver.start()
    plan = fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter, out_position=20.0,
                         exposure=0.05, start=0.0, stop=180.0,
                         num_projections=PROJECTIONS, n_darks=1, n_flats=1,
                         flush_period=0.02)
    try:
        with pytest.raises(SuspendedMidFly, match=r"^det: the RunEngine suspended during a "
                           r"fly acquisition \(Signal beam_current = 0\.2 fell below 0\.5"):
            bl.RE(plan)
    finally:
        driver.join()
        bl.RE.clear_suspenders()
    (stop,) = stops
    assert stop["exit_status"] == "fail" and "run the scan again" in stop["reason"]
    assert not bl.rotation.moving, "the rotation still turns after the run ended"
    assert bl.det.fly.done.done
    n = stop["num_events"]["primary"]
    before = re.search(r"after (\d+) of 60 frames and the run fails; (\d+) of them were "
                       r"triggered before", stop["reason"])
    assert before is not None and 0 < int(before[2]) <= int(before[1]) < PROJECTIONS
    assert n == int(before[2]), f"{n} events, but the reason says {before[2]} had beam"
    primary = bl.catalog.run(stop["run_start"])["primary"]
    readings = primary.read()
    triggers = np.asarray(readings["det_trigger_time"])  # (wall clock: position compare)
    late = int(np.count_nonzero(triggers >= dropped[0]))
    assert late == 0 or "may have no beam" in stop["reason"]
    images = np.asarray(primary["det_image"][:]).astype(np.int64)
    assert images.shape[0] == n == len(triggers)
    fly_file = next(Path(p) for p in reversed(bl.det.digests) if "_fly" in Path(p).name)
    with open_frames(fly_file) as frames:  # (the file itself, not the catalog's first n)
        assert len(frames) == n
        np.testing.assert_array_equal(frames.read().astype(np.int64), images)
    np.testing.assert_array_equal(images.reshape(n, -1).sum(axis=1),
                                  np.asarray(readings["det_roi_sum"]))
    assert np.all(np.diff(np.asarray(readings["det_frame_number"])) == 1)
