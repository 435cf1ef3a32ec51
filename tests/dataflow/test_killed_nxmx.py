"""An NXmx frame file whose writer never closed it (a killed scan), as its readers see it.

The writer (``AngleFrameWriter``) puts the sample's positions into the file 64 frames at a
time: killed after 70 frames, the file holds 70 frames and 64 positions per axis. Each
frame here is filled with its own index and its positions are made from that index, so a
frame paired with another frame's positions shows. References: h5py on the file, and
DIALS' ``nxmx`` with dxtbx's rule for a scan's images (as many as the scan axis has
values: ``dxtbx.nexus.get_dxtbx_scan``); NXmx's definition as nexusformat ships it for
``time_zone``.
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import nxmx
import pytest
from nexusformat.nexus import NeXusError, nxload, validate

from dataflow.hdf5_positions import read_sample_positions
from dataflow.hdf5_read import FrameReader

WRITE = textwrap.dedent("""
    import os, sys
    import numpy as np
    from dataflow.hdf5_angles import AngleFrameWriter
    from dataflow.hdf5_nexus import EntryNames
    from dataflow.hdf5_nxmx import SampleAxis
    from geometry import PoniGeometry

    folder, n, close, start = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "close", \\
        float(sys.argv[4])
    shape = (8, 6)
    g = PoniGeometry(0.12, 0.0004, 0.0006, 0, 0, 0, pixel1=1e-4, pixel2=2e-4, shape=shape,
                     wavelength=0.5e-10)
    w = AngleFrameWriter(folder, "scan.h5", shape, geometry=g, start_time=start,
                         detector_fields={"sensor_material": "Si",
                                          "sensor_thickness": (450e-6, "m")},
                         names=EntryNames("smeflow-sim", "ring", "CeO2"),
                         axes=[SampleAxis("omega"),
                               SampleAxis("sample_x", (1.0, 0.0, 0.0), "translation", "mm")])
    for i in range(n):
        w.append(np.full(shape, i, np.uint16), (i * 0.5, i * 0.01))
        list(w.asset_docs())  # (each frame flushed, as a step scan's event announces it)
    if close:
        w.close()
    os._exit(0)  # no HDF5 shutdown: what a killed process leaves
""")
JANUARY, JULY = 1_767_268_800.0, 1_782_907_200.0  # 2026-01-01 and 2026-07-01, 12:00 UTC


def written(folder: Path, frames: int, *, close: bool, start: float = JANUARY,
            tz: str = "UTC") -> Path:
    done = subprocess.run([sys.executable, "-c", WRITE, str(folder), str(frames),
                           "close" if close else "kill", str(start)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TZ": tz})
    assert done.returncode == 0, done.stderr
    return folder / "scan.h5"


def check_paired(frames: np.ndarray, values: np.ndarray) -> None:
    """Row ``i`` of ``values`` is frame ``i``'s position (each frame is its index)."""
    index = frames[:, 0, 0].astype(np.float64)
    np.testing.assert_array_equal(values[:, 0], index * 0.5)
    np.testing.assert_allclose(values[:, 1], index * 0.01, rtol=0, atol=1e-12)


def test_a_killed_scans_frames_come_with_the_positions_they_have(tmp_path: Path) -> None:
    path = written(tmp_path, 70, close=False)
    with FrameReader(path) as reader:
        positions = reader.sample_positions()
        assert positions is not None and len(reader) == 70
        assert positions.names == ("omega", "sample_x") and positions.units == ("deg", "mm")
        assert (len(positions), positions.frames) == (64, 70)
        check_paired(reader.read(np.s_[:len(positions)]), positions.values)
        np.testing.assert_array_equal(positions.axis("omega"), np.arange(64) * 0.5)
    with h5py.File(path, "r", swmr=True) as f:
        assert f["entry/end_time"][()] == b""  # (SWMR made it empty at the start)
        entry = nxmx.NXmx(f).entries[0]
        chain = nxmx.get_dependency_chain(entry.samples[0].depends_on)
        scan_axis = next(t for t in chain if t.transformation_type == "rotation")
        assert len(scan_axis) == len(positions)  # dxtbx's images: (1, len(scan_axis))
        np.testing.assert_array_equal(scan_axis[()].to("degree").magnitude,
                                      positions.axis("omega"))


def test_a_closed_scan_has_a_position_for_every_frame(tmp_path: Path) -> None:
    path = written(tmp_path, 70, close=True)
    with FrameReader(path) as reader:
        positions = reader.sample_positions()
        assert positions is not None and len(positions) == positions.frames == 70
        check_paired(reader.read(), positions.values)


def test_axes_of_unequal_lengths_and_positions_past_the_frames(tmp_path: Path) -> None:
    """A writer that died between two axes, or after the positions of frames not flushed:
    only the frames that have a position on every axis are paired."""
    path = written(tmp_path, 128, close=True)
    with h5py.File(path, "r+") as f:
        f["entry/sample/transformations/sample_x"].resize((100,))
        f["entry/data/data"].resize((90, 8, 6))
        positions = read_sample_positions(f, "/entry/data/data", 90, path)
        assert positions is not None and (len(positions), positions.frames) == (90, 90)
        check_paired(f["entry/data/data"][:90], positions.values)
        f["entry/sample/transformations/sample_x"].resize((20,))
        positions = read_sample_positions(f, "/entry/data/data", 90, path)
        assert positions is not None and len(positions) == 20


def test_a_file_without_positions_has_none(tmp_path: Path) -> None:
    from dataflow.hdf5 import FrameWriter

    with FrameWriter(tmp_path, "plain.h5", (4, 4)) as w:
        w.append(np.zeros((4, 4), np.uint16))
    with FrameReader(tmp_path / "plain.h5") as reader:
        assert reader.sample_positions() is None


def test_what_other_readers_see_of_a_killed_scan(tmp_path: Path) -> None:
    """As docs/reduction.md says: nexusformat cannot open a file still flagged open for
    writing, and DIALS' nxmx cannot parse the empty ``end_time`` SWMR leaves."""
    path = written(tmp_path, 5, close=False)
    with pytest.raises(NeXusError, match="already open for write"):
        nxload(str(path))
    with h5py.File(path, "r", swmr=True) as f, pytest.raises(ValueError, match="ISO string"):
        _ = nxmx.NXmx(f).entries[0].end_time


@pytest.mark.parametrize(("start", "offset"), [(JANUARY, "+01:00"), (JULY, "+02:00")])
def test_the_time_zone_is_the_writers_at_the_start(tmp_path: Path, start: float,
                                                   offset: str) -> None:
    """NXmx recommends ``/entry/instrument/time_zone``: Copenhagen's offset from UTC on
    the day the scan started (tz database), which nexusformat's validator no longer
    reports as missing."""
    path = written(tmp_path, 2, close=True, start=start, tz="Europe/Copenhagen")
    with h5py.File(path, "r") as f:
        assert nxmx.NXmx(f).entries[0].instruments[0].time_zone[()].decode() == offset
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep, level = Keep(), validate.logger.level
    validate.logger.addHandler(keep)
    validate.logger.setLevel(logging.DEBUG)
    try:
        validate.validate_application(str(path))
    finally:
        validate.logger.removeHandler(keep)
        validate.logger.setLevel(level)
    said = [(a.getMessage().strip(), b.getMessage().strip())
            for a, b in itertools.pairwise(records)
            if a.getMessage().strip() == "Field: /entry/instrument/time_zone"]
    assert said and all("not in the NeXus file" not in text for _, text in said), said
