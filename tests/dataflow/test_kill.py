"""The acquisition process is killed (SIGKILL) in the middle of a scan: every frame
written before the kill is readable from its HDF5 file, the catalog shows the run as
``incomplete`` with what was taken, ``show`` works on it, and ``repair`` recovers it —
with the default (batching) writer too, whose events were still in memory."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from dataflow.catalog import Catalog
from dataflow.cli import main as catalog_main
from dataflow.hdf5 import open_frames

SCAN = textwrap.dedent("""
    import sys
    from bluesky import RunEngine, plans as bp
    from dataflow.catalog import Catalog
    from devices.beamline import Beamline
    from fpga.designs.params import ChainParams

    catalog = Catalog(sys.argv[1])
    RE = RunEngine({})
    catalog.subscribe(RE, batch_size=int(sys.argv[2]) or None)  # 0: the default batching
    bl = Beamline.create(catalog.raw_dir, params=ChainParams(64, 64, 16), backend="interp",
                         time_scale=0.001, exposure_time_scale=1.0)
    bl.shutter.set("open").wait(5)
    bl.det.exposure.put(0.05)
    RE.subscribe(lambda name, doc: print(name, flush=True) if name == "event" else None)
    RE(bp.count([bl.det], 1000))
""")


def killed_scan(data: Path, batch_size: int, events_before: int = 6) -> int:
    """Run SCAN in a process and SIGKILL it after ``events_before`` events."""
    proc = subprocess.Popen([sys.executable, "-c", SCAN, str(data), str(batch_size)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    events = 0
    deadline = time.monotonic() + 120
    while events < events_before and time.monotonic() < deadline:
        if proc.stdout.readline().strip() == "event":
            events += 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert events == events_before, "the scan did not get going"
    return events


def test_sigkill_mid_scan_keeps_every_written_frame(tmp_path: Path) -> None:
    data = tmp_path / "data"
    killed_scan(data, batch_size=1)  # every event reaches the catalog as it happens
    with Catalog(data) as catalog:
        (summary,) = catalog.runs()
        assert summary.exit_status == "incomplete"
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


def test_a_killed_batching_run_is_shown_and_repaired_whole(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's writer batches events until the stop document: a kill left the start
    and descriptor in the catalog and nothing else (``show`` crashed with KeyError
    'det_image'). Now ``show`` says what is there, and ``repair`` rewrites the run from
    its journal, checks the frames on disk and closes it (abort, recovered)."""
    data = tmp_path / "data"
    killed_scan(data, batch_size=0)
    with Catalog(data) as catalog:
        (summary,) = catalog.runs()
        assert summary.exit_status == "incomplete"  # visible at once, whatever the batching
        uid = summary.uid
    assert catalog_main(["show", uid, "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "exit_status  incomplete (no stop document" in out
    assert "det_image" in out and "no frames registered yet" in out
    assert catalog_main(["verify", uid, "--data", str(data)]) == 1
    assert re.search(r"MISSING\s+stop\s+\S+  no stop document: the run is incomplete",
                     capsys.readouterr().out)

    assert catalog_main(["repair", uid[:8], "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"run {uid}: recovered from the journal" in out
    frames = int(re.search(r"primary/det_image: (\d+) frames complete on disk", out)[1])
    assert frames >= 6 and "problem" not in out
    assert not list((data / "journal").iterdir())
    with Catalog(data) as catalog:
        run = catalog.run(uid)
        stop = run.metadata["stop"]
        assert (stop["exit_status"], stop["reason"]) == ("abort", "recovered")
        seen = np.asarray(run["primary"]["det_roi_sum"].read())
        images = run["primary"]["det_image"]
        assert images.shape[0] == frames and len(seen) >= 6
        served = np.asarray(images.read())
        (path,) = catalog.raw_dir.glob("det_*.h5")
        # (repair closed the file: one process opens a closed file one way, and the
        # catalog's handle is released before this one opens it without SWMR)
        with open_frames(path) as on_disk:
            for i in range(min(len(seen), frames)):
                np.testing.assert_array_equal(served[i], on_disk.frame(i))
                assert int(on_disk.frame(i).astype(np.int64).sum()) == int(seen[i])
    assert catalog_main(["show", uid, "--data", str(data)]) == 0
    assert "exit_status  abort (recovered)" in capsys.readouterr().out
    # verify finds every frame on disk and the events the stop document counts, and no
    # provenance record (none was recorded in this scan): unverifiable, exit 3
    assert catalog_main(["verify", uid, "--data", str(data)]) == 3
    out = capsys.readouterr().out
    assert f"OK            frames    primary/det_image  {frames} frames intact on disk" in out
    assert "events, as the stop document says" in out and "NO RECORD" in out
    assert f"run {uid}: UNVERIFIABLE: no provenance record" in out
    assert catalog_main(["repair", uid, "--data", str(data)]) == 1
    assert "has a stop document (exit_status 'abort'): nothing to repair" in \
        capsys.readouterr().err
