"""The sample changer and the preprocessor that records the beamline's set-up in runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import bluesky.plans as bp
import pytest
from bluesky.utils import Msg

from devices.beamline import IMAGING_PIXEL, Beamline
from fpga.designs.params import ChainParams
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
