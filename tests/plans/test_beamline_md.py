"""The sample changer and the preprocessor that records the beamline's set-up in runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import numpy as np
import pytest
from bluesky import plan_stubs as bps
from bluesky.utils import Msg

from devices.beamline import IMAGING_PIXEL, Beamline
from fpga.designs.params import ChainParams
from geometry import PoniGeometry
from plans.beamline_md import beamline_metadata


@pytest.fixture
def beamline(tmp_path: Path) -> Iterator[Beamline]:
    bl = Beamline.create(tmp_path, params=ChainParams(64, 64, 16), backend="interp")
    yield bl
    bl.close()


def open_run_of(plan: Iterator[Msg]) -> Msg:
    for msg in plan:
        if msg.command == "open_run":
            return msg
    raise AssertionError("the plan opened no run")


def test_sample_changer_swaps_the_sample_and_refuses_unknown_names(beamline: Beamline) -> None:
    assert beamline.sample.get() == "phantom"
    assert beamline.scene.sample is beamline.phantom
    beamline.sample.set("powder").wait(5)
    assert beamline.scene.sample is beamline.powder
    assert beamline.sample.read()["sample"]["value"] == "powder"
    with pytest.raises(ValueError, match="no sample 'glass'; choose one of 'phantom', 'powder'"):
        beamline.sample.put("glass")
    assert beamline.scene.sample is beamline.powder  # nothing changed
    beamline.use_phantom()
    assert beamline.sample.get() == "phantom" and beamline.det.pixel_size == IMAGING_PIXEL


def test_runs_record_the_sample_and_the_powder_geometry(beamline: Beamline) -> None:
    add = beamline_metadata(beamline)
    tomo = open_run_of(add(bp.count([beamline.det], md={"purpose": "test"})))
    assert tomo.kwargs["purpose"] == "test"
    assert tomo.kwargs["sample_in_beam"] == "phantom" and "geometry" not in tomo.kwargs
    beamline.use_powder()
    diff = open_run_of(add(bp.count([beamline.det])))
    assert diff.kwargs["sample_in_beam"] == "powder"
    assert diff.kwargs["geometry"] == beamline.geometry.to_metadata()
    # the plan's own keys win over the beamline's
    mine = open_run_of(add(bp.count([beamline.det], md={"sample_in_beam": "told"})))
    assert mine.kwargs["sample_in_beam"] == "told"


def test_a_binned_diffraction_run_records_the_binned_geometry(smeflow_beamline: Any) -> None:
    """User report U7: with ``det.binning`` on, the run's geometry is that of its (32, 32)
    frames of 344 µm — as the frame file's NeXus pixel size says — and the run reduces."""
    from analysis.reduce import reduce_run
    from plans.diffraction import diffraction_scan

    RE, catalog, bl = smeflow_beamline.RE, smeflow_beamline.catalog, smeflow_beamline.beamline
    RE.preprocessors.append(beamline_metadata(bl))
    bl.use_powder()
    RE(bps.mv(bl.shutter, "open"))
    bl.det.binning.put(True)
    (uid,) = RE(diffraction_scan(bl.det, bl.sample_x, bl.sample_y, [(0.0, 0.0)], num=1))
    run = catalog.run(uid)
    frame = np.asarray(run["primary"]["det_image"][0])
    recorded = PoniGeometry.from_metadata(run.metadata["start"]["geometry"])
    assert recorded.shape == frame.shape == (32, 32)
    assert recorded == bl.geometry.binned(2) == bl.detector_geometry()
    assert recorded.pixel1 == 2 * bl.geometry.pixel1
    assert (recorded.poni1, recorded.poni2) == (bl.geometry.poni1, bl.geometry.poni2)
    assert reduce_run(catalog, uid).exit_status == "success"
    bl.det.binning.put(False)
    assert bl.detector_geometry() is bl.geometry
