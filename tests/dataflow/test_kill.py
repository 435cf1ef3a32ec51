"""The acquisition process is killed (SIGKILL) in the middle of a scan: every frame
written before the kill is readable from its HDF5 file, and the catalog shows the run with
what was taken and no stop document (``exit_status`` "(no stop)")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from dataflow.catalog import Catalog
from dataflow.hdf5 import open_frames

SCAN = textwrap.dedent("""
    import sys
    from bluesky import RunEngine, plans as bp
    from dataflow.catalog import Catalog
    from devices.beamline import Beamline
    from fpga.designs.params import ChainParams

    catalog = Catalog(sys.argv[1])
    RE = RunEngine({})
    catalog.subscribe(RE, batch_size=1)  # every event reaches the catalog as it happens
    bl = Beamline.create(catalog.raw_dir, params=ChainParams(64, 64, 16), backend="interp",
                         time_scale=0.001, exposure_time_scale=1.0)
    bl.shutter.set("open").wait(5)
    bl.det.exposure.put(0.05)
    RE.subscribe(lambda name, doc: print(name, flush=True) if name == "event" else None)
    RE(bp.count([bl.det], 1000))
""")


def test_sigkill_mid_scan_keeps_every_written_frame(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", SCAN, str(data)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    events = 0
    deadline = time.monotonic() + 120
    while events < 6 and time.monotonic() < deadline:
        if proc.stdout.readline().strip() == "event":
            events += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert events == 6, "the scan did not get going"

    with Catalog(data) as catalog:
        (summary,) = catalog.runs()
        assert summary.exit_status == "(no stop)"
        run = catalog.run(summary.uid)
        assert run.metadata.get("stop") is None
        seen = np.asarray(run["primary"]["det_roi_sum"].read())
        assert len(seen) >= 6
        images = run["primary"]["det_image"]
        assert images.shape[0] >= len(seen) - 1  # a frame announced before its event
        (path,) = catalog.raw_dir.glob("det_*.h5")
        with open_frames(path) as frames:
            assert len(frames) >= len(seen)
            for i, roi_sum in enumerate(seen):  # the firmware's sum of each frame's ROI
                assert int(frames.frame(i).astype(np.int64).sum()) == int(roi_sum)
                np.testing.assert_array_equal(np.asarray(images[i]), frames.frame(i))
