"""A short scan with the Pilatus 6M: 60 modules, each its own firmware board, simulated
on every core; the frames in the catalog are the modules' firmware output put together,
the gaps are published in the run's pixel mask, and the run reduces."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps

from analysis.reduce import reduce_run
from dataflow.catalog import Catalog
from dataflow.pixel_mask import DEAD, GAP, OVER_RESPONDING
from devices.beamline import Beamline
from fpga.designs.layout import PILATUS_6M
from fpga.designs.reference import ChainTables, reference_frame
from plans import diffraction_scan


@pytest.mark.slow
def test_pilatus_6m_short_scan(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "data")
    RE = RunEngine({})
    catalog.subscribe(RE)
    bl = Beamline.create(catalog.raw_dir, layout=PILATUS_6M, time_scale=0.001)
    counts: list[np.ndarray] = []

    def on_event(name: str, doc: dict[str, Any]) -> None:
        if name == "event" and doc.get("seq_num") and bl.det.last_counts is not None \
                and "det_roi_sum" in doc["data"]:
            counts.append(bl.det.last_counts.copy())

    RE.subscribe(on_event)
    try:
        bl.use_powder()
        RE(bps.mv(bl.shutter, "open"))
        (uid,) = RE(diffraction_scan(bl.det, bl.sample_x, bl.sample_y, [(0.0, 0.0)], num=2,
                                     md={"geometry": bl.geometry.to_metadata()}))
        run = catalog.run(uid)
        assert run.metadata["stop"]["exit_status"] == "success"
        images = run["primary"]["det_image"]
        assert images.shape == (2, 2527, 2463)
        mask = np.asarray(run["mask"]["det_pixel_mask"][0])
        assert np.array_equal(mask & GAP != 0, PILATUS_6M.gap_mask())
        assert np.array_equal(mask & DEAD != 0, bl.det.sensor.dead_mask)
        assert np.array_equal(mask & OVER_RESPONDING != 0, bl.det.sensor.hot_mask)
        assert bl.det.sensor.dead_mask.sum() == 240   # 4 per module
        tables = bl.det.tables
        parts = [PILATUS_6M.split(t) for t in (tables.dark, tables.gain, tables.mask)]
        assert len(counts) == 2
        for i, raw in enumerate(counts):
            frame = np.asarray(images[i])
            assert not frame[PILATUS_6M.gap_mask()].any()
            for m in (0, 7, 59):   # modules at a corner, inside, at the other corner
                want = reference_frame(PILATUS_6M.split(raw)[m], PILATUS_6M.module,
                                       tables=ChainTables(*(p[m] for p in parts)))
                assert np.array_equal(PILATUS_6M.split(frame)[m], want.image), m
        assert bl.det.firmware.report()["good"] == 2
        patterns = catalog.run(reduce_run(catalog, uid, bins=200).uid)
        intensity = np.asarray(patterns["primary"]["intensity"][:])
        assert intensity.shape == (2, 200) and np.isfinite(intensity).all()
    finally:
        bl.close()
        catalog.close()
