"""Every kind of frame file the simulated beamline writes, written as users write them
(bluesky plans through the detector), checked with NeXus's own validator (nexusformat's
``validate_file`` against the base classes, ``validate_application`` against the file's
application definition, NXmx in a diffraction run's files): no error but the one NXmx
itself asks for, and exactly the warnings ``docs/reduction.md`` lists as accepted — a new
error or warning fails here.

Accepted, and why (``docs/reduction.md``, "What NeXus's validator says"):

* NXmx: ``instrument/time_zone`` is an offset (``+01:00``) as NXmx's text and DECTRIS's
  NXmx files have it, which the validator's ``NX_DATE_TIME`` check (a whole date and time)
  refuses; no ``NXdetector_group`` (one detector: nothing to group; and NXmx names the
  dimension of its ``group_index`` ``i``, as the frames' rows, so one makes the validator
  warn on every image field); no polarization (the powder model's, whose Stokes sign NXbeam and DIALS' NXmx export
  read opposite ways).
* Base classes: NXmx's own fields (``end_time_estimated``, ``instrument/time_zone``,
  ``detector/distance_derived``, ``beam/incident_beam_size``, ``beam/profile``) are in no
  base class; ``detector/counters`` is smeflow's
  (the readout's link counters); NXmx has the ``NXsource`` in the entry, where the
  ``NXentry`` base class has none (the one error; files without NXmx have it in the
  instrument).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.preprocessors import monitor_during_wrapper
from nexusformat.nexus import nxload, validate

from analysis.derived_run import volume_file
from dataflow import fly_streams
from devices.beamline import Beamline
from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer
from fpga.designs.layout import PILATUS_6M, DetectorLayout
from fpga.designs.params import ChainParams
from plans import fly_tomo_scan, tomo_scan
from plans.beamline_md import beamline_metadata

P = ChainParams(64, 64, 16)

Finding = tuple[str, str, str]
"""(level, the item the validator was at, its message)."""

MISSING = "This recommended field is not in the NeXus file"
NXMX_ACCEPTED: set[Finding] = {
    ("WARNING", "Field: /entry/instrument/time_zone",
     "The field value is not a valid NX_DATE_TIME"),
    ("WARNING", "Group: NXdetector_group", "This recommended group is not in the NeXus file"),
    ("WARNING", "Field: /entry/instrument/beam/incident_polarization_stokes", MISSING),
}
"""What ``validate_application`` says of an NXmx frame file."""
BASE_ACCEPTED: set[Finding] = {
    ("WARNING", "Field: /entry/end_time_estimated", "This field is not defined in NXentry"),
    ("WARNING", "Field: /entry/instrument/time_zone", "This field is not defined in NXinstrument"),
    ("WARNING", "Field: /entry/instrument/detector/counters",
     "This field is not defined in NXdetector"),
}
"""What ``validate_file`` says of every frame file."""
NXMX_BASE_ACCEPTED: set[Finding] = BASE_ACCEPTED | {
    ("WARNING", "Field: /entry/instrument/detector/distance_derived",
     "This field is not defined in NXdetector"),
    ("WARNING", "Field: /entry/instrument/beam/incident_beam_size",
     "This field is not defined in NXbeam"),
    ("WARNING", "Field: /entry/instrument/beam/profile", "This field is not defined in NXbeam"),
    ("ERROR", "NXsource: /entry/source", "NXsource is an invalid class in NXentry"),
}
"""What ``validate_file`` says of an NXmx frame file."""

ITEM = re.compile(r"(Field|Group|Link|NX\w+): ")


def findings(check: Callable[..., Any], path: Path, **kwargs: Any) -> set[Finding]:
    """The warnings and errors nexusformat's ``check`` logs for ``path``, each with the
    item it was checking; its own totals must agree with them."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    level = validate.logger.level
    validate.logger.addHandler(keep)
    validate.logger.setLevel(logging.INFO)  # (below it, groups without findings are not told)
    try:
        totals = check(str(path), **kwargs)
    finally:
        validate.logger.removeHandler(keep)
        validate.logger.setLevel(level)
    found: list[Finding] = []
    item = ""
    for record in records:
        message = record.getMessage().strip()
        if ITEM.match(message):
            item = message
        elif record.levelno in (logging.WARNING, logging.ERROR):
            found.append((record.levelname, item, message))
    assert totals == (sum(f[0] == "WARNING" for f in found),
                      sum(f[0] == "ERROR" for f in found)), found
    return set(found)


@pytest.fixture(scope="module")
def frame_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One beamline's files of every kind: diffraction (the powder: NXmx) by ``count``,
    ``scan``, a monitor stream and ``bp.fly``; tomography (the phantom: no NXmx) by
    ``tomo_scan`` and ``fly_tomo_scan``. Named ``<plan>/<stream>``."""
    folder = tmp_path_factory.mktemp("frames")
    RE = RunEngine({})
    bl = Beamline.create(folder, params=P, backend="compiled", time_scale=0.001)
    RE.preprocessors.append(beamline_metadata(bl))
    fly_streams.install(RE)  # (bp.fly's flyer needs its stream declared; no catalog here)
    files: dict[str, Path] = {}

    def run(kind: str, plan: Any) -> None:
        before = set(folder.glob("det_2*.h5"))
        RE(plan)
        for path in sorted(set(folder.glob("det_2*.h5")) - before):
            files[f"{kind}/{path.stem.rsplit('_', 1)[-1]}"] = path

    try:
        RE(bps.mv(bl.shutter, "open"))
        bl.use_powder()
        run("count", bp.count([bl.det], num=2))
        run("scan", bp.scan([bl.det], bl.rotation, 0.0, 10.0, 2))
        run("monitor", monitor_during_wrapper(bp.count([bl.det], num=2), [bl.det]))
        run("fly", bp.fly([DetectorFlyer(bl.det, FlyParameters(frames=3, exposure=0.01))]))
        bl.use_phantom()
        run("tomo", tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter,
                              out_position=20.0, num_projections=3, n_darks=1, n_flats=1))
        run("fly_tomo", fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter,
                                      out_position=20.0, exposure=0.2, num_projections=3,
                                      n_darks=1, n_flats=1))
    finally:
        bl.close()
    return files


NXMX_FILES = ["count/primary", "scan/primary", "monitor/primary", "monitor/monitor",
              "fly/fly1"]
OTHER_FILES = ["tomo/dark", "tomo/flat", "tomo/primary", "fly_tomo/dark", "fly_tomo/flat",
               "fly_tomo/fly1"]


def test_every_kind_of_file_was_written(frame_files: dict[str, Path]) -> None:
    assert sorted(frame_files) == sorted(NXMX_FILES + OTHER_FILES)


@pytest.mark.parametrize("kind", NXMX_FILES)
def test_a_diffraction_file_is_nxmx_as_its_validator_reads_it(
        frame_files: dict[str, Path], kind: str) -> None:
    path = frame_files[kind]
    with h5py.File(path, "r") as f:
        assert f["entry/definition"].asstr()[()] == "NXmx"
        assert f["entry/start_time"].asstr()[()]  # (a fly's too: its first trigger)
    assert findings(validate.validate_application, path) == NXMX_ACCEPTED
    assert findings(validate.validate_file, path) == NXMX_BASE_ACCEPTED


@pytest.mark.parametrize("kind", OTHER_FILES)
def test_a_tomography_file_follows_the_base_classes(frame_files: dict[str, Path],
                                                   kind: str) -> None:
    """No application definition fits one stream's file (NXtomo wants the darks, flats
    and projections in one entry, each frame's ``image_key``): none is declared, and the
    base classes find nothing but the accepted warnings — the source in the instrument."""
    path = frame_files[kind]
    with h5py.File(path, "r") as f:
        assert "definition" not in f["entry"]
        assert f["entry/instrument/source/name"].asstr()[()]
    assert findings(validate.validate_file, path) == BASE_ACCEPTED


def test_a_reconstruction_file_is_no_detectors(tmp_path: Path) -> None:
    """A reconstruction's slices (``analysis.derived_run.volume_file``, the file of every
    FBP reduction, live or on Dask) are the entry's default plot, not an ``NXdetector``'s
    data: no instrument, and the base classes find nothing but NXmx's estimated end."""
    writer = volume_file(tmp_path, "derived/fbp.h5", (16, 16), "raw", "derived")
    slices = np.arange(3 * 16 * 16, dtype=np.float32).reshape(3, 16, 16)
    writer.append_many(slices)
    writer.close()
    path = tmp_path / "derived/fbp.h5"
    with h5py.File(path, "r") as f:
        assert set(f["entry"]) == {"data", "end_time", "end_time_estimated"}
    assert findings(validate.validate_file, path) == {
        ("WARNING", "Field: /entry/end_time_estimated", "This field is not defined in NXentry")}
    np.testing.assert_array_equal(nxload(str(path)).plottable_data.nxsignal.nxdata, slices)


def test_a_modular_detectors_file_is_nxmx_as_a_single_ones(tmp_path: Path) -> None:
    """Six PILATUS modules in a 2 × 3 grid with the P6M's gaps (``bp.count`` with the
    powder): one NXdetector, one NXdetector_module spanning the frame with its gaps
    (masked, NeXus's bit 0), as DECTRIS's files describe a PILATUS 6M — what the
    validator says is what it says of a one-module detector's file."""
    layout = DetectorLayout(PILATUS_6M.module, grid=(2, 3), gap=(17, 7))
    RE = RunEngine({})
    bl = Beamline.create(tmp_path, layout=layout, backend="compiled", time_scale=0.001)
    RE.preprocessors.append(beamline_metadata(bl))
    try:
        RE(bps.mv(bl.shutter, "open"))
        bl.use_powder()
        RE(bp.count([bl.det], num=1))
    finally:
        bl.close()
    (path,) = tmp_path.glob("det_2*_primary.h5")
    with h5py.File(path, "r") as f:
        assert f["entry/data/data"].shape == (1, *layout.shape)
        assert list(f["entry/instrument/detector/module/data_size"][()]) == list(layout.shape)
        gaps = (f["entry/instrument/detector/pixel_mask"][()] & 1).astype(bool)
        np.testing.assert_array_equal(gaps, layout.gap_mask())
    assert findings(validate.validate_application, path) == NXMX_ACCEPTED
    assert findings(validate.validate_file, path) == NXMX_BASE_ACCEPTED
