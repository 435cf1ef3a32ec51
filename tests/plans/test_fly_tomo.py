"""Fly tomography through the firmware detector: one continuous rotation, position-compare
triggers, frames streamed into HDF5 and collected into the catalog while the stage turns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dataflow.hdf5 import read_counters
from devices.samples import Pose, detector_coordinates_mm
from fpga.designs.params import ChainParams
from plans import PlanArgumentError, fly_tomo_scan

SHAPE = (32, 32)


@pytest.fixture
def smeflow_chain_params() -> ChainParams:
    """32×32 frames for ``smeflow_beamline``: a quarter of the interpreter firmware's ticks
    per frame (most of the scan's time), still the phantom's middle on every frame."""
    return ChainParams(*SHAPE, 16)


def run_fly(bl: Any, **kwargs: Any) -> str:
    args: dict[str, Any] = dict(out_position=20.0, exposure=0.05, start=0.0, stop=180.0,
                                num_projections=24, n_darks=2, n_flats=3, flush_period=0.05)
    args.update(kwargs)
    bl.beamline.use_phantom()
    (uid,) = bl.RE(fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter, **args))
    return str(uid)


def test_fly_tomo_records_frames_angles_and_the_tomography_layout(smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    uid = run_fly(bl)
    run = bl.catalog.run(uid)
    start = run.metadata["start"]
    assert start["plan_name"] == "fly_tomo_scan" and start["fly"] is True
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["stop"]["num_events"] == {"mask": 1, "dark": 2, "flat": 3, "primary": 24}
    nominal = np.asarray(start["angles"])
    np.testing.assert_allclose(nominal, 7.5 * np.arange(24) + 3.75)
    assert start["rotation_velocity"] == pytest.approx(180 / (24 * 0.05))

    primary = run["primary"].read()
    measured = np.asarray(primary["rotation"])
    # the encoder latched at each trigger: the bin centre (constant-velocity window), to
    # the resolution of epoch wall times (2.4e-7 s) at 1000× time scale and 150 deg/s
    np.testing.assert_allclose(measured, nominal, atol=0.05)
    assert list(primary["det_frame_number"]) == sorted(primary["det_frame_number"])
    triggers = np.asarray(primary["det_trigger_time"])
    assert np.all(np.diff(triggers) > 0)

    images = np.asarray(run["primary"]["det_image"][:]).astype(float)
    darks = np.asarray(run["dark"]["det_image"][:]).astype(float)
    flats = np.asarray(run["flat"]["det_image"][:]).astype(float)
    det = bl.det
    good = ~(det.sensor.dead_mask | det.sensor.hot_mask)
    assert images.shape == (24, *SHAPE) and darks[:, good].max() == 0
    np.testing.assert_array_equal(np.asarray(primary["det_roi_sum"]),
                                  images.reshape(24, -1).sum(axis=1))
    # -log(projection / flat) is the phantom's line integral at the latched angle
    flat = flats.mean(axis=0)
    x, y = detector_coordinates_mm(SHAPE, det.pixel_size)
    for i in (0, 7, 16):
        truth = bl.phantom.phantom.line_integrals_at(x, y, Pose(0.0, 0.0, measured[i]))
        got = -np.log(np.maximum(images[i][good], 1) / flat[good])
        assert np.abs(got - truth[good]).mean() < 0.05

    # the projection file knows what the link lost: nothing
    files = {p.name for p in bl.catalog.raw_dir.glob("det_*.h5")
             if not p.name.startswith("det_pixel_mask_")}
    assert len(files) == 3
    for name in files:
        counters = read_counters(bl.catalog.raw_dir / name)
        assert counters["corrupt"] == 0 and counters["dropped"] == 0
        assert counters["good"] in (2, 3, 24)


def test_fly_tomo_refuses_a_rotation_the_stage_cannot_do(smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    seen: list[str] = []
    bl.RE.subscribe(lambda name, doc: seen.append(name))
    with pytest.raises(PlanArgumentError, match=r"fly_tomo_scan: exposure must be long enough"):
        fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter, out_position=20.0,
                      exposure=1e-5, num_projections=10)
    with pytest.raises(PlanArgumentError, match="fly-capable detector"):
        fly_tomo_scan(bl.sample_y, bl.rotation, bl.sample_x, bl.shutter, out_position=20.0,
                      exposure=0.01)
    with pytest.raises(PlanArgumentError, match="rotation must be a RotationStage"):
        fly_tomo_scan(bl.det, bl.sample_y, bl.sample_x, bl.shutter, out_position=20.0,
                      exposure=0.01)
    with pytest.raises(PlanArgumentError, match="flush_period"):
        fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter, out_position=20.0,
                      exposure=0.01, flush_period=0)
    assert seen == []
