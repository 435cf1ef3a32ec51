"""A fly tomography collects its last frames as soon as the rotation and the detector
complete, not up to ``flush_period`` later (review R10: with a 30 s flush period the last
frame waited 26 s for its collect)."""

from __future__ import annotations

import time
from typing import Any

from plans import fly_tomo_scan


def test_the_last_frames_are_collected_when_the_fly_completes(smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    bl.beamline.use_phantom()
    datums: list[float] = []
    bl.RE.subscribe(lambda name, doc: datums.append(time.time())
                    if name == "stream_datum" else None)
    t0 = time.time()
    (uid,) = bl.RE(fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter,
                                 out_position=20.0, exposure=0.1, num_projections=6,
                                 n_darks=0, n_flats=0, flush_period=30.0))
    fly = bl.det.fly
    assert len(fly.frames) == 6
    assert bl.catalog.run(uid).metadata["stop"]["num_events"]["primary"] == 6
    assert datums[-1] - fly.frames[-1].done_time < 5.0
    assert time.time() - t0 < 20.0
