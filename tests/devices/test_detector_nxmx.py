"""A diffraction run's frame files carry the geometry its reduction integrates with, as
NXmx (``devices.frame_nexus``): read back from the file (``read_nxmx_geometry``, and DIALS'
``nxmx`` reader for the beam centre), it is the start document's ``geometry`` — binned or
not — and the files' ``start_time`` is their first frame's trigger; with the sensor
model's material and thickness and the beamline's, source's and sample's names,
nexusformat's NXmx validator finds nothing missing; a fly file keeps each frame's sample
angle as the sample's goniometer axis."""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import h5py
import numpy as np
import nxmx
import pytest
from bluesky import RunEngine
from nexusformat.nexus import validate

from dataflow.hdf5_nxmx import read_nxmx_geometry
from devices.beamline import BEAMLINE_NAME, SOURCE_NAME, Beamline
from devices.detector import FirmwareDetector
from devices.rotation import ContinuousRotation
from devices.sensor import SensorModel
from fpga.designs.layout import DetectorLayout, SensorLayer
from fpga.designs.params import ChainParams
from geometry import PoniGeometry
from plans import diffraction_scan, tomo_scan
from plans.beamline_md import beamline_metadata

from . import fly_steps

P = ChainParams(64, 64, 16)


@pytest.fixture
def beamline(tmp_path: Path) -> Iterator[tuple[RunEngine, Beamline, list[tuple[str, Any]]]]:
    RE = RunEngine({})
    bl = Beamline.create(tmp_path, params=P, backend="interp", time_scale=0.001)
    RE.preprocessors.append(beamline_metadata(bl))
    docs: list[tuple[str, Any]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))  # type: ignore[no-untyped-call]
    RE(bps.mv(bl.shutter, "open"))
    yield RE, bl, docs
    bl.close()


def primary_file(bl: Beamline) -> str:
    (path,) = [p for p in bl.det.digests if p.endswith("_primary.h5")]
    return path


@pytest.mark.parametrize("binning", [False, True])
def test_a_diffraction_runs_files_hold_its_geometry(beamline: Any, binning: bool) -> None:
    RE, bl, docs = beamline
    bl.use_powder()
    bl.det.binning.put(binning)
    RE(diffraction_scan(bl.det, bl.sample_x, bl.sample_y, [(0.0, 0.0), (0.5, 0.0)],
                        exposure=0.01, shutter=bl.shutter))
    start = next(doc for name, doc in docs if name == "start")
    primary = next(doc["uid"] for name, doc in docs
                   if name == "descriptor" and doc["name"] == "primary")
    first_event = next(doc for name, doc in docs
                       if name == "event" and doc["descriptor"] == primary)
    run = PoniGeometry.from_metadata(start["geometry"])
    assert run.shape == ((32, 32) if binning else (64, 64))
    with h5py.File(primary_file(bl), "r") as f:
        back = read_nxmx_geometry(f)
        for key, value in run.to_metadata().items():
            assert back.to_metadata()[key] == (pytest.approx(value, rel=1e-12)
                                               if isinstance(value, float) else value), key
        (entry,) = nxmx.NXmx(f).entries
        (detector,) = entry.instruments[0].detectors
        # the pyFAI geometry the reduction uses, from the beam centre in pixels
        assert detector.beam_center_x.magnitude * run.pixel2 == pytest.approx(run.poni2)
        assert detector.beam_center_y.magnitude * run.pixel1 == pytest.approx(run.poni1)
        assert detector.distance.to("m").magnitude == pytest.approx(run.dist)
        assert detector.saturation_value == 65534 and detector.bit_depth_readout == 20
        # the first frame's trigger: after the run opened, before its event
        started = entry.start_time.timestamp()
        assert start["time"] <= started <= first_event["time"]
        assert entry.start_time.utcoffset() == datetime.timedelta(0)
        # what NXmx requires besides the geometry: the sensor model's layer, the names
        assert (detector.sensor_material, detector.sensor_thickness.to("m").magnitude) == \
            (bl.det.sensor.layer.material, pytest.approx(bl.det.sensor.layer.thickness))
        assert bl.det.sensor.layer == SensorLayer("Si", 450e-6)
        assert entry.instruments[0].name == BEAMLINE_NAME
        assert entry.source.name == SOURCE_NAME
        assert entry.samples[0].name == "CeO2 powder"
        # NXmx's recommended beam size at the sample ([x, y]) and profile: the powder
        # model's slit, lit evenly across its width (DIALS' reader gives them back)
        (beam,) = entry.instruments[0].beams
        assert beam.incident_beam_size.to("mm").magnitude.tolist() == pytest.approx(
            [bl.powder.beam_width, bl.powder.beam_height])
        assert beam.profile == "rectangular"
        assert entry.end_time is not None and entry.end_time >= entry.start_time
    level = validate.logger.level
    validate.logger.setLevel(logging.CRITICAL)
    try:
        result = validate.validate_application(primary_file(bl))
    finally:
        validate.logger.setLevel(level)
    assert result is not None and result[1] == 0  # (no error: nothing required missing)


def test_the_files_record_the_sensor_models_layer(tmp_path: Path) -> None:
    """The layout's sensor is the model's; a model of another sensor is refused, so what
    the files say cannot differ from what the model is."""
    bl = Beamline.create(tmp_path, params=P, backend="interp", time_scale=0.001)
    try:
        thick = SensorLayer("Si", 1000e-6)
        det = FirmwareDetector(name="d2", scene=bl.scene, folder=tmp_path, params=P,
                               backend="interp", sensor=SensorModel(P, layer=thick))
        assert det.layout.sensor == det.sensor.layer == thick
        det.firmware.close()
        with pytest.raises(ValueError, match=r"the sensor model's layer is .*thickness=0.001\), the "
                                             "layout's .*0.00045"):
            FirmwareDetector(name="d3", scene=bl.scene, folder=tmp_path,
                             layout=DetectorLayout.single(P), backend="interp",
                             sensor=SensorModel(P, layer=thick))
    finally:
        bl.close()


def test_the_threshold_range_is_the_sensor_materials(tmp_path: Path) -> None:
    """A PILATUS3 X's comparator is set within 2.7 – 18 keV with a silicon sensor and
    8 – 40 keV with CdTe (Dectris's specifications); a detector of another material has
    no known range, and a threshold put to it is refused rather than trusted. A detector
    starts at 6 keV, or at its range's nearer end when 6 keV is outside it."""
    from devices.detector_config import DetectorConfigError

    bl = Beamline.create(tmp_path, params=P, backend="interp", time_scale=0.001)
    made = []
    try:
        for material, good, bad, words in (
                ("CdTe", 40.0, 6.0, "a finite number in 8 … 40 keV (the threshold range of "
                                    "a PILATUS3 X with a CdTe sensor)"),
                ("GaAs", None, 10.0, "set in a threshold range known for its sensor: none "
                                     "is for 'GaAs' (known: CdTe, Si)")):
            layer = SensorLayer(material, 1e-3)
            det = FirmwareDetector(name="d2", scene=bl.scene, folder=tmp_path, params=P,
                                   backend="interp", sensor=SensorModel(P, layer=layer))
            made.append(det)
            before = det.energy_threshold.get()
            # it starts inside its range (6 keV, the Si default, is below CdTe's)
            assert before == {"CdTe": 8.0, "GaAs": 6.0}[material]
            with pytest.raises(DetectorConfigError, match="^d2.energy_threshold: must be " +
                               re.escape(f"{words}, got {bad!r}") + "$"):
                RunEngine({})(bps.mv(det.energy_threshold, bad))
            assert det.energy_threshold.get() == before
            if good is not None:
                RunEngine({})(bps.mv(det.energy_threshold, good))
                assert det.energy_threshold.get() == good
    finally:
        for det in made:
            det.firmware.close()
        bl.close()


def test_a_tomography_runs_files_have_no_diffraction_geometry(beamline: Any) -> None:
    RE, bl, _ = beamline
    bl.use_powder()
    bl.use_phantom()  # back to radiography: the geometry goes with the powder
    RE(bp.count([bl.det], 2))
    with h5py.File(primary_file(bl), "r") as f:
        entry = f["entry"]
        assert "definition" not in entry and "beam" not in entry["instrument"]
        assert entry["sample/name"].asstr()[()] == "3D Shepp-Logan phantom"
        assert "transformations" not in entry["instrument/detector"]
        assert "start_time" in entry  # (every file that knows its first frame has one)
        assert entry["instrument/detector/saturation_value"][()] == 65534


def test_a_geometry_of_other_pixels_is_refused_at_stage(beamline: Any) -> None:
    _, bl, _ = beamline
    bl.use_powder()
    bl.det.pixel_size = 2 * bl.det.pixel_size  # the geometry's pixels are now half as big
    with pytest.raises(ValueError, match=r"det: the geometry is of 64×64 pixels of .* set "
                                         r"geometry and pixel_size together"):
        bl.det.stage()
    assert not bl.det.files.staged


def test_a_fly_file_holds_the_sample_rotation_of_each_frame(beamline: Any) -> None:
    """The angle the position capture latched at each trigger is the frame's value of
    the sample's goniometer axis, named after the rotation stage, about +y (the stage
    turns the sample counter-clockwise seen from above)."""
    _, bl, _ = beamline
    det, rot = bl.det, bl.rotation
    fly_steps.fly_on_rotation(det, rot, ContinuousRotation(10.0, 100.0, 90.0), 10.0, 100.0,
                              frames=6)
    assert det.fly is not None
    latched = [frame.angle for frame in det.fly.frames]
    first_trigger = det.fly.frames[0].trigger_time
    list(det.collect_asset_docs())
    path = str(det.files.fly.path)  # type: ignore[union-attr]
    det.unstage()
    with h5py.File(path, "r") as f:
        # opened at prepare, before the triggers: start_time is written with the first
        # frame, its trigger (ISO 8601, UTC)
        started = datetime.datetime.fromisoformat(f["entry/start_time"].asstr()[()])
        assert started.utcoffset() == datetime.timedelta(0)
        assert started.timestamp() == pytest.approx(first_trigger, abs=1e-6)
        sample = f["entry/sample"]
        assert sample["depends_on"].asstr()[()] == "/entry/sample/transformations/rotation"
        omega = sample["transformations/rotation"]
        assert omega.attrs["units"] == "deg"
        assert omega.attrs["transformation_type"] == "rotation"
        assert list(omega.attrs["vector"]) == [0.0, 1.0, 0.0]
        assert list(omega[()]) == latched and len(latched) == f["entry/data/data"].shape[0]
        # DIALS' reader finds the one rotation axis and its scan
        axes = nxmx.get_rotation_axes(nxmx.get_dependency_chain(
            nxmx.NXsample(sample).depends_on))  # type: ignore[arg-type]
        assert list(axes.names) == ["rotation"] and list(axes.is_scan_axis) == [True]
        assert axes.angles[0] == pytest.approx(latched[0])
        # the translations the rotation stage sits on, where they stood
        assert omega.attrs["depends_on"] == "/entry/sample/transformations/sample_x"
        assert list(sample["transformations/sample_x"][()]) == [bl.sample_x.position] * 6
        assert list(sample["transformations/sample_y"][()]) == [bl.sample_y.position] * 6


def test_the_sensor_counts_photons_of_the_wavelength_the_files_record(beamline: Any) -> None:
    """One beam: with the powder in, the sensor counts photons of the geometry's
    wavelength (0.5 Å: 24.8 keV), which the frame files record as NXmx's
    ``incident_wavelength``; it counted 12 keV photons before, so a comparator set at
    15 keV — above 12, below 24.8 — lost every diffracted photon (the frame's sum fell
    to its hot pixels'). The phantom brings the imaging energy back."""
    RE, bl, _ = beamline
    imaging = bl.det.sensor.photon_energy
    bl.use_powder()
    assert bl.det.sensor.photon_energy == pytest.approx(24.797, abs=1e-3)
    sums = []
    for threshold in (6.0, 15.0):
        RE(bps.mv(bl.det.energy_threshold, threshold))
        RE(diffraction_scan(bl.det, bl.sample_x, bl.sample_y, [(0.0, 0.0)], exposure=0.01,
                            shutter=bl.shutter))
        path = [p for p in bl.det.digests if p.endswith("_primary.h5")][-1]
        with h5py.File(path, "r") as f:
            wavelength = float(f["entry/instrument/beam/incident_wavelength"][()])
            sums.append(int(f["entry/data/data"][0].astype("int64").sum()))
        assert 12.398419843320026 / (wavelength * 1e10) == pytest.approx(
            bl.det.sensor.photon_energy, rel=1e-12)
    assert sums[1] == pytest.approx(sums[0], rel=0.02), sums
    bl.use_phantom()
    assert bl.det.sensor.photon_energy == imaging == 12.0


def test_a_step_tomography_file_holds_each_frames_rotation(beamline: Any) -> None:
    """A step scan's files keep the rotation stage's readback at each frame, as a fly
    file keeps its latched angles: the primary stream's are the events' ``rotation``
    readings, in order, and DIALS' reader finds the scan axis; the darks' and flats' are
    where the stage stood."""
    RE, bl, docs = beamline
    RE(tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter, out_position=20.0,
                          start=0.0, stop=90.0, num_projections=4, n_darks=1, n_flats=2,
                          exposure=0.01))
    streams = {doc["uid"]: doc["name"] for name, doc in docs if name == "descriptor"}
    read = {}
    for name, doc in docs:
        if name == "event" and "rotation" in doc["data"]:  # (not the mask stream's)
            read.setdefault(streams[doc["descriptor"]], []).append(doc["data"]["rotation"])
    assert read["primary"] == [0.0, 30.0, 60.0, 90.0]
    for stream in ("primary", "dark", "flat"):
        (path,) = [p for p in bl.det.digests if p.endswith(f"_{stream}.h5")]
        with h5py.File(path, "r") as f:
            sample = nxmx.NXsample(f["entry/sample"])
            assert sample.depends_on is not None
            assert sample.depends_on.path == "/entry/sample/transformations/rotation"
            angles = sample.depends_on[()].to("deg").magnitude
            assert list(angles) == pytest.approx(read[stream], abs=1e-9), stream
            assert len(angles) == f["entry/data/data"].shape[0]
            if stream == "primary":
                axes = nxmx.get_rotation_axes(nxmx.get_dependency_chain(sample.depends_on))
                assert list(axes.names) == ["rotation"] and list(axes.is_scan_axis) == [True]
                assert list(axes.axes[0]) == [0.0, 1.0, 0.0]
            # the flats' sample out of the beam, the others in it (sample_x, mm)
            x = f["entry/sample/transformations/sample_x"][()]
            assert list(x) == pytest.approx([20.0 if stream == "flat" else 0.0] * len(x))


def test_the_sample_chain_holds_its_translations(beamline: Any) -> None:
    """The sample hangs from the rotation stage, which sits on ``sample_x`` and
    ``sample_y``: the chain is rotation → sample_x → sample_y → origin, and the sample's
    place at each frame (DIALS' reader through the whole chain) is the events' stage
    readings, in mm along +x and +y."""
    RE, bl, docs = beamline
    bl.use_powder()
    points = [(0.0, 0.0), (0.5, -0.25), (-1.0, 2.0)]
    RE(diffraction_scan(bl.det, bl.sample_x, bl.sample_y, points, exposure=0.01,
                        shutter=bl.shutter))
    primary = next(doc["uid"] for name, doc in docs
                   if name == "descriptor" and doc["name"] == "primary")
    read = [(doc["data"]["sample_x"], doc["data"]["sample_y"]) for name, doc in docs
            if name == "event" and doc["descriptor"] == primary]
    np.testing.assert_allclose(read, points, atol=1e-9)
    with h5py.File(primary_file(bl), "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        (sample,) = entry.samples
        assert sample.depends_on is not None
        chain = nxmx.get_dependency_chain(sample.depends_on)
        assert [t.path.split("/")[-1] for t in chain] == ["rotation", "sample_x", "sample_y"]
        assert [t.transformation_type for t in chain] == ["rotation", "translation",
                                                          "translation"]
        assert [list(t.vector) for t in chain[1:]] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
        placed = nxmx.get_cumulative_transformation(chain)  # (frames, 4, 4), mm
        assert placed.shape == (len(points), 4, 4)
        np.testing.assert_allclose(placed[:, :3, 3],
                                   [(x, y, 0.0) for x, y in points], atol=1e-9)
        np.testing.assert_allclose(placed[:, :3, :3], np.broadcast_to(np.eye(3),
                                                                      (len(points), 3, 3)))
