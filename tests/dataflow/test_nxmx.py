"""A frame file written with a geometry is NXmx (``dataflow.hdf5_nxmx``): the NXmx reader of
DIALS (``nxmx``, what dxtbx reads NeXus files with) follows its chain of transformations
to every pixel where :class:`geometry.PoniGeometry` puts it, the beam centre and distance
are pyFAI's own (its Fit2D conversion), ``read_nxmx_geometry`` gives the geometry back,
and nexusformat's NXmx validator finds nothing missing once the writer is given the
sensor and the names; the end time is written when the file closes."""

from __future__ import annotations

import datetime
import itertools
import logging
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import nxmx
import pytest
from nexusformat.nexus import nxload, validate
from pyFAI.geometry import Geometry

from dataflow.hdf5 import FrameMismatchError, FrameWriter
from dataflow.hdf5_angles import POSITIONS_BLOCK, AngleFrameWriter
from dataflow.hdf5_nexus import EntryNames
from dataflow.hdf5_nxmx import (
    PONI_TO_MCSTAS,
    IncidentBeamSize,
    SampleAxis,
    read_nxmx_geometry,
)
from geometry import PoniGeometry

SHAPE = (30, 40)  # (rows, cols): not square, so rows and columns cannot be swapped unseen
START = 1_780_000_000.25

GEOMETRIES = {  # (rot1, rot2, rot3), pyFAI orientation
    "untilted": ((0.0, 0.0, 0.0), 3),
    "tilted": ((0.05, -0.03, 0.1), 3),
    "rot2 only": ((0.0, 0.1, 0.0), 3),
    "both axes flipped": ((0.05, -0.03, 0.1), 1),
    "rows flipped": ((0.02, 0.04, -0.3), 2),
    "columns flipped": ((-0.04, 0.0, 0.2), 4),
}


def geometry(rotations: tuple[float, float, float], orientation: int = 3) -> PoniGeometry:
    """Pixels 100 µm high and 200 µm wide, the PONI off-centre."""
    return PoniGeometry(0.12, 0.011, 0.023, *rotations, pixel1=1e-4, pixel2=2e-4,
                        shape=SHAPE, wavelength=0.5e-10, orientation=orientation)


SENSOR = {"sensor_material": "Si", "sensor_thickness": (450e-6, "m")}
NAMES = EntryNames("smeflow-sim", "smeflow-sim storage ring (simulated)", "CeO2 powder")


def write(path: Path, g: PoniGeometry | None, frames: int = 2, *, complete: bool = True
          ) -> Path:
    """Frames of ``g`` in a new file; ``complete``: with the sensor and the names."""
    with FrameWriter(path.parent, path.name, SHAPE, start_time=START, geometry=g,
                     detector_fields=SENSOR if complete else None,
                     names=NAMES if complete else None) as w:
        for _ in range(frames):
            w.append(np.zeros(SHAPE, np.uint16))
    return path


@pytest.mark.parametrize("name", GEOMETRIES)
def test_the_chain_places_every_pixel_where_the_geometry_does(tmp_path: Path,
                                                               name: str) -> None:
    rotations, orientation = GEOMETRIES[name]
    g = geometry(rotations, orientation)
    path = write(tmp_path / "f.h5", g)
    with h5py.File(path, "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        assert entry.definition == "NXmx"
        assert entry.start_time == datetime.datetime.fromtimestamp(START, tz=datetime.UTC)
        (instrument,) = entry.instruments
        (beam,) = instrument.beams
        assert beam.incident_wavelength.to("angstrom").magnitude == pytest.approx(0.5)
        (detector,) = instrument.detectors
        (module,) = detector.modules
        assert list(module.data_origin) == [0, 0] and list(module.data_size) == list(SHAPE)
        # dxtbx's way: the module's origin and pixel axes through the whole chain
        chain = nxmx.get_dependency_chain(module.fast_pixel_direction.depends_on)
        placed = nxmx.get_cumulative_transformation(chain)[0]
        origin = placed[:3, 3] * 1e-3  # (nxmx computes in mm)
        fast = placed[:3, :3] @ module.fast_pixel_direction.vector \
            * module.fast_pixel_direction[0].to("m").magnitude
        slow = placed[:3, :3] @ module.slow_pixel_direction.vector \
            * module.slow_pixel_direction[0].to("m").magnitude
        # the detector's own depends_on is the chain the module hangs from
        assert detector.depends_on is not None
        assert detector.depends_on.path == chain[1].path  # (chain[0]: the module offset)
        (sample,) = entry.samples
        assert sample.depends_on is None  # "." : the sample at the origin
    rows = np.arange(SHAPE[0])[:, None] + 0.5  # pixel centres
    cols = np.arange(SHAPE[1])[None, :] + 0.5
    nexus = origin[:, None, None] + slow[:, None, None] * rows + fast[:, None, None] * cols
    lab = np.einsum("ij,jkl->ikl", PONI_TO_MCSTAS, np.stack(g.lab_positions()))
    np.testing.assert_allclose(nexus, lab, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", GEOMETRIES)
def test_the_file_gives_the_geometry_back(tmp_path: Path, name: str) -> None:
    rotations, orientation = GEOMETRIES[name]
    g = geometry(rotations, orientation)
    with h5py.File(write(tmp_path / "f.h5", g), "r") as f:
        back = read_nxmx_geometry(f, orientation=orientation)
    for key, value in g.to_metadata().items():
        if isinstance(value, float):
            assert getattr(back, key) == pytest.approx(value, rel=1e-12, abs=1e-15), key
        else:
            assert back.to_metadata()[key] == value, key


@pytest.mark.parametrize("rotations", [(0.0, 0.0, 0.0), (0.05, -0.03, 0.1), (0.0, 0.2, 0.0)])
def test_beam_centre_and_distance_are_pyfai_fit2d(tmp_path: Path,
                                                  rotations: tuple[float, float, float]) -> None:
    """pyFAI's Fit2D conversion puts the direct beam at (centerX, centerY) pixels — X along
    the columns (poni2), Y along the rows (poni1) — at directDist mm from the sample."""
    g = geometry(rotations)
    with h5py.File(write(tmp_path / "f.h5", g), "r") as f:
        det = f["entry/instrument/detector"]
        x, y, distance = (float(det[k][()]) for k in ("beam_center_x", "beam_center_y",
                                                       "distance"))
        assert det["beam_center_x"].attrs["units"] == det["beam_center_y"].attrs["units"] \
            == "pixel"
        assert det["distance"].attrs["units"] == "m"
    fit2d = Geometry(g.dist, g.poni1, g.poni2, *rotations, pixel1=g.pixel1, pixel2=g.pixel2,
                     wavelength=g.wavelength).getFit2D()
    assert x == pytest.approx(fit2d["centerX"], rel=1e-12)
    assert y == pytest.approx(fit2d["centerY"], rel=1e-12)
    assert distance * 1e3 == pytest.approx(fit2d["directDist"], rel=1e-12)
    if not any(rotations):  # untilted: the beam centre is the PONI, in pixels
        assert (x, y, distance) == pytest.approx((g.poni2 / g.pixel2, g.poni1 / g.pixel1,
                                                  g.dist), rel=1e-15)
        again = PoniGeometry(distance, y * g.pixel1, x * g.pixel2, pixel1=g.pixel1,
                             pixel2=g.pixel2, shape=SHAPE, wavelength=g.wavelength)
        assert (again.dist, again.poni1, again.poni2) == pytest.approx(
            (g.dist, g.poni1, g.poni2), rel=1e-15)


def nxmx_missing(path: Path) -> set[str]:
    """What nexusformat's NXmx validator says ``path`` lacks (its only errors)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    level = validate.logger.level
    validate.logger.addHandler(keep)
    validate.logger.setLevel(logging.ERROR)
    try:
        result = validate.validate_application(str(path))
    finally:
        validate.logger.removeHandler(keep)
        validate.logger.setLevel(level)
    missing = set()
    for before, record in itertools.pairwise(records):
        if record.levelno == logging.ERROR:
            assert "is not in the NeXus file" in record.getMessage(), record.getMessage()
            missing.add(before.getMessage().strip())
    assert result is not None and result[1] == len(missing)
    return missing


def test_nexusformat_finds_nothing_missing(tmp_path: Path) -> None:
    """With the sensor's material and thickness and the names NXmx requires, nexusformat's
    validator finds nothing missing; without them, exactly those (the end times are
    always there)."""
    assert nxmx_missing(write(tmp_path / "f.h5", geometry((0.05, -0.03, 0.1)))) == set()
    assert nxmx_missing(write(tmp_path / "g.h5", geometry((0.05, -0.03, 0.1)),
                              complete=False)) == {
        "Field: /entry/sample/name", "Field: /entry/instrument/name",
        "Field: /entry/instrument/detector/sensor_material",
        "Field: /entry/instrument/detector/sensor_thickness", "Group: NXsource"}
    with h5py.File(tmp_path / "f.h5", "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        assert entry.instruments[0].name == NAMES.instrument
        assert entry.source.name == NAMES.source
        assert entry.samples[0].name == NAMES.sample
        (detector,) = entry.instruments[0].detectors
        assert detector.sensor_material == "Si"
        assert detector.sensor_thickness.to("um").magnitude == pytest.approx(450.0)


def test_the_beam_size_is_nxmx_incident_beam_size_and_profile(tmp_path: Path) -> None:
    """NXmx recommends the beam's size at the sample ([x, y], a length) and its profile
    (an enumeration); DIALS' reader gives them back, and a size or profile NXmx has no
    words for is refused before a file is made."""
    with FrameWriter(tmp_path, "f.h5", SHAPE, start_time=START,
                     geometry=geometry((0.0, 0.0, 0.0)),
                     beam_size=IncidentBeamSize(120e-6, 30e-6, "Gaussian")) as w:
        w.append(np.zeros(SHAPE, np.uint16))
    with h5py.File(w.path, "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        (beam,) = entry.instruments[0].beams
        assert beam.incident_beam_size.to("um").magnitude.tolist() == pytest.approx(
            [120.0, 30.0])
        assert beam.profile == "Gaussian"
        assert beam.incident_wavelength.to("angstrom").magnitude == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"IncidentBeamSize.profile 'flat': NXmx allows "
                                         r"Gaussian, Airy, top-hat, rectangular"):
        IncidentBeamSize(1e-4, 1e-4, "flat")  # type: ignore[arg-type]
    for bad in (0.0, -1e-4, float("nan"), float("inf"), True, np.timedelta64(1), "1e-4",
                np.float32("nan"), 1j):
        with pytest.raises(ValueError, match=r"IncidentBeamSize.y must be a length > 0 m"):
            IncidentBeamSize(1e-4, bad, "top-hat")
    assert IncidentBeamSize(np.float32(1e-4), np.int64(1), "top-hat").x == np.float32(1e-4)


def test_the_end_time_is_written_when_the_file_closes(tmp_path: Path) -> None:
    """Made with the file (SWMR adds no dataset later): while open, ``end_time`` is empty
    and ``end_time_estimated`` the start; at close both are when the last frame came —
    what DIALS' reader and nexusformat read back."""
    w = FrameWriter(tmp_path, "f.h5", SHAPE, start_time=START, geometry=geometry((0, 0, 0)))
    w.append(np.zeros(SHAPE, np.uint16))
    before = time.time()
    w.append(np.zeros(SHAPE, np.uint16))
    after = time.time()
    list(w.asset_docs())
    with h5py.File(w.path, "r", swmr=True) as f:
        assert f["entry/end_time"][()] == b""  # (what a writer that never closes leaves)
        assert f["entry/end_time_estimated"][()].decode() == "2026-05-28T20:26:40.250000Z"
    time.sleep(0.01)
    w.close()
    with h5py.File(w.path, "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        assert entry.end_time is not None
        assert before <= entry.end_time.timestamp() <= after
        assert entry.end_time_estimated == entry.end_time
    root = nxload(str(w.path))
    assert str(root["entry/end_time"].nxvalue) == entry.end_time.strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_start_time_told_later_is_made_empty_and_seen_once_told(tmp_path: Path) -> None:
    """A fly's file opens before its first trigger (``start_pending``): NXmx's required
    ``start_time`` is made with the file (SWMR adds no dataset later), empty, and a SWMR
    reader sees it with the first frames that land (their flush; told again before, the
    later time counts); once only. A file no frame came to gets the end time at its
    close (the file's, as its ``end_time``)."""
    w = FrameWriter(tmp_path, "f.h5", SHAPE, start_pending=True, geometry=geometry((0, 0, 0)))
    assert w.start_pending
    with h5py.File(w.path, "r", swmr=True) as f:
        node = f["entry/start_time"]
        assert node[()] == b""
        w.set_start_time(START - 1)
        w.set_start_time(START)
        node.refresh()
        assert node[()] == b""  # (no frame in the file yet)
        w.append(np.zeros(SHAPE, np.uint16))
        w.flush()
        node.refresh()
        assert node[()].decode() == "2026-05-28T20:26:40.250000Z"
    with pytest.raises(ValueError, match="no start_time is pending"):
        w.set_start_time(START + 1)
    w.close()
    with h5py.File(w.path, "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        assert entry.start_time.timestamp() == START
    empty = FrameWriter(tmp_path, "g.h5", SHAPE, start_pending=True,
                        geometry=geometry((0, 0, 0)))
    empty.close()
    with h5py.File(empty.path, "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        assert entry.start_time == entry.end_time is not None


def test_a_file_without_a_geometry_is_no_nxmx_file(tmp_path: Path) -> None:
    with FrameWriter(tmp_path, "f.h5", SHAPE) as w:
        w.append(np.zeros(SHAPE, np.uint16))
    with h5py.File(tmp_path / "f.h5", "r") as f:
        entry = f["entry"]
        assert "definition" not in entry and "start_time" not in entry
        assert "sample" not in entry and "beam" not in entry["instrument"]
        assert set(entry["instrument/detector"]) == {"data"}
        assert nxmx.NXmx(f).entries == []


def test_a_geometry_of_other_frames_is_refused(tmp_path: Path) -> None:
    g = geometry((0.0, 0.0, 0.0)).replace(shape=(SHAPE[1], SHAPE[0]))
    with pytest.raises(ValueError, match="the geometry is of 40×30 pixels, the frames 30×40"):
        FrameWriter(tmp_path, "f.h5", SHAPE, geometry=g)
    assert not (tmp_path / "f.h5").exists()


def test_a_chain_pyfai_cannot_describe_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "f.h5", geometry((0.0, 0.0, 0.0)))
    with h5py.File(path, "r+") as f:
        translation = f["entry/instrument/detector/transformations/translation"]
        translation[()] = -0.12  # behind the sample, facing away from it
        with pytest.raises(ValueError, match="does not face the sample"):
            read_nxmx_geometry(f)
        translation[()] = 0.12
        f["entry/instrument/detector/module/fast_pixel_direction"].attrs["vector"] = \
            np.array([0.0, 1.0, 1.0])
        with pytest.raises(ValueError, match="not perpendicular"):
            read_nxmx_geometry(f)


def test_a_sample_axis_keeps_one_angle_per_frame_as_the_frames_go(tmp_path: Path) -> None:
    """With the geometry too (a rotating diffraction scan): the sample hangs from the
    axis, whose angles follow the frames through appends, a dropped unannounced frame and
    close."""
    g = geometry((0.0, 0.0, 0.0))
    with AngleFrameWriter(tmp_path, "f.h5", SHAPE, geometry=g,
                          axes=[SampleAxis("omega")]) as w:
        w.append_many(np.zeros((3, *SHAPE), np.uint16), [0.0, 0.5, 1.0])
        list(w.asset_docs())
        w.append(np.zeros(SHAPE, np.uint16), 1.5)  # never announced: dropped
        with pytest.raises(FrameMismatchError, match=r"2 frames with 1x1 sample positions: "
                                                     r"one per frame and axis \(omega \(deg"):
            w.append_many(np.zeros((2, *SHAPE), np.uint16), [2.0])
        with pytest.raises(FrameMismatchError, match="1 frames with no sample positions"):
            w.append(np.zeros(SHAPE, np.uint16))
        with pytest.raises(FrameMismatchError, match=r"frame stack shape \(2, 4, 4\)"):
            w.append_many(np.zeros((2, 4, 4), np.uint16), [2.0, 3.0])  # (nothing kept)
        assert w.discard_unannounced() == 1
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert f["entry/data/data"].shape[0] == 3
        (entry,) = nxmx.NXmx(f).entries
        (sample,) = entry.samples
        assert sample.depends_on is not None
        assert list(sample.depends_on[()].to("deg").magnitude) == [0.0, 0.5, 1.0]
        assert sample.depends_on.transformation_type == "rotation"
        assert list(sample.depends_on.vector) == [0.0, 1.0, 0.0]


def test_a_sample_axis_without_the_nexus_tree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a sample axis needs the NeXus tree"):
        AngleFrameWriter(tmp_path, "g.h5", SHAPE, dataset="/frames", axes=[SampleAxis("phi")])
    assert not (tmp_path / "g.h5").exists()


def test_positions_go_to_the_file_a_block_at_a_time_and_at_close(tmp_path: Path) -> None:
    """A step scan's frames come one at a time, each flushed for its event: the positions
    are held and written a block of ``POSITIONS_BLOCK`` frames at a time and at close, and
    a frame dropped unannounced takes its held position with it — also one already in
    the file."""
    w = AngleFrameWriter(tmp_path, "f.h5", SHAPE, axes=[SampleAxis("rotation")])
    frame = np.zeros(SHAPE, np.uint16)
    axis = "entry/sample/transformations/rotation"
    for i in range(POSITIONS_BLOCK - 1):
        w.append(frame, float(i))
        list(w.asset_docs())
    with h5py.File(w.path, "r", swmr=True) as f:
        assert f[axis].shape == (0,) and f["entry/data/data"].shape[0] == POSITIONS_BLOCK - 1
    w.append(frame, 99.0)
    w.append(frame, 100.0)  # (held, never announced)
    with h5py.File(w.path, "r", swmr=True) as f:
        assert list(f[axis][()]) == [*range(POSITIONS_BLOCK - 1), 99.0]
    assert w.discard_unannounced() == 2  # (99 was in the file: cut back too)
    w.append(frame, 7.0)
    list(w.asset_docs())
    w.close()
    with h5py.File(w.path, "r") as f:
        assert list(f[axis][()]) == [*range(POSITIONS_BLOCK - 1), 7.0]
        assert f["entry/data/data"].shape[0] == POSITIONS_BLOCK


def test_a_chain_of_sample_axes_one_position_each_per_frame(tmp_path: Path) -> None:
    """A rotation on a translation: each frame's positions in order of the axes, the
    chain the first axis nearest the sample; a frame without one position per axis is
    refused."""
    axes = [SampleAxis("phi"), SampleAxis("tx", (1.0, 0.0, 0.0), "translation", "mm")]
    with AngleFrameWriter(tmp_path, "f.h5", SHAPE, axes=axes) as w:
        w.append_many(np.zeros((2, *SHAPE), np.uint16), [(90.0, 1.5), (180.0, 2.5)])
        with pytest.raises(FrameMismatchError, match=r"1 frames with 1 sample positions: "
                                                     r"one per frame and axis \(phi \(deg\), "
                                                     r"tx \(mm\)\)"):
            w.append(np.zeros(SHAPE, np.uint16), 1.0)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        sample = nxmx.NXsample(f["entry/sample"])
        assert sample.depends_on is not None
        chain = nxmx.get_dependency_chain(sample.depends_on)
        assert [t.path for t in chain] == ["/entry/sample/transformations/phi",
                                           "/entry/sample/transformations/tx"]
        placed = nxmx.get_cumulative_transformation(chain)  # (mm)
        # frame 0: a quarter turn about +y, then 1.5 mm along +x: x → -z, z → +x
        np.testing.assert_allclose(placed[0] @ [1.0, 0.0, 0.0, 1.0], [1.5, 0.0, -1.0, 1.0],
                                   atol=1e-12)
        np.testing.assert_allclose(placed[1][:3, 3], [2.5, 0.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="each its own name"):
        AngleFrameWriter(tmp_path, "g.h5", SHAPE, axes=[SampleAxis("a"), SampleAxis("a")])


MCSTAS_TO_IMGCIF = np.diag([-1.0, 1.0, -1.0])
"""dxtbx's frame from NeXus's (dxtbx/nexus/__init__.py)."""


@pytest.mark.parametrize("rotations", [(0.0, 0.0, 0.0), (0.05, -0.03, 0.1)])
def test_what_dxtbx_builds_is_pyfais_fit2d(tmp_path: Path,
                                          rotations: tuple[float, float, float]) -> None:
    """dxtbx (not installable here: cctbx is conda's) builds its flat detector model from
    a file as ``dxtbx.nexus.get_dxtbx_detector`` does: the pixel axes turned by the
    chain's rotations, the origin through the whole chain, the material from its known
    list. Done the same way through DIALS' ``nxmx``: the beam centre where dxtbx's beam
    (along +z, NeXus) meets that panel, the distances and the pixel size are pyFAI's
    Fit2D ones."""
    g = geometry(rotations)
    with h5py.File(write(tmp_path / "f.h5", g), "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        (detector,) = entry.instruments[0].detectors
        (module,) = detector.modules
        chain = nxmx.get_dependency_chain(module.fast_pixel_direction.depends_on)
        turns = [t for t in chain if t.transformation_type == "rotation"]
        r = nxmx.get_cumulative_transformation(turns)[0, :3, :3] if turns else np.eye(3)
        fast = MCSTAS_TO_IMGCIF @ r @ module.fast_pixel_direction.vector
        slow = MCSTAS_TO_IMGCIF @ r @ module.slow_pixel_direction.vector
        origin = MCSTAS_TO_IMGCIF @ nxmx.get_cumulative_transformation(chain)[0, :3, 3]
        pixel = (module.fast_pixel_direction[()].to("mm").magnitude.item(),
                 module.slow_pixel_direction[()].to("mm").magnitude.item())
        assert detector.sensor_material in {"Si", "Silicon", "CdTe", "GaAs"}
        assert detector.sensor_thickness.to("mm").magnitude == pytest.approx(0.45)
    normal = np.cross(fast, slow)
    beam = np.array([0.0, 0.0, -1.0])  # (dxtbx: from the sample, away from the source)
    along = float(origin @ normal) / float(beam @ normal)  # mm to where the beam meets it
    hit = along * beam - origin
    fit2d = Geometry(g.dist, g.poni1, g.poni2, *rotations, pixel1=g.pixel1, pixel2=g.pixel2,
                     wavelength=g.wavelength).getFit2D()
    assert (hit @ fast / pixel[0], hit @ slow / pixel[1]) == pytest.approx(
        (fit2d["centerX"], fit2d["centerY"]), rel=1e-12)
    assert along == pytest.approx(fit2d["directDist"], rel=1e-12)
    assert abs(float(origin @ normal)) == pytest.approx(g.dist * 1e3, rel=1e-12)
    assert (pixel[0] * 1e3, pixel[1] * 1e3) == pytest.approx((fit2d["pixelX"],
                                                              fit2d["pixelY"]))


KILLED_BEFORE_FIRST_FRAME = """
import os, sys
from dataflow.hdf5 import FrameWriter
from geometry import PoniGeometry
g = PoniGeometry(0.12, 0.0004, 0.0006, pixel1=1e-4, pixel2=2e-4, shape=(8, 6),
                 wavelength=0.5e-10)
FrameWriter(sys.argv[1], "fly.h5", (8, 6), start_pending=True, geometry=g)
os._exit(0)  # no HDF5 shutdown: what a killed process leaves
"""


def test_repair_removes_the_empty_start_time_of_a_fly_killed_before_its_first_frame(
        tmp_path: Path) -> None:
    """A fly acquisition killed before any frame came leaves ``start_time`` empty, as
    ``end_time``: DIALS' reader raises on both. ``smeflow catalog repair``'s closing
    removes both (no frame was collected: there is no start to record)."""
    from dataflow.killed_file import ClosedFile, close_killed_file

    done = subprocess.run([sys.executable, "-c", KILLED_BEFORE_FIRST_FRAME, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "fly.h5"
    with h5py.File(path, "r", swmr=True) as f:
        assert f["entry/start_time"][()] == b"" == f["entry/end_time"][()]
        with pytest.raises(ValueError, match="ISO string too short"):
            _ = nxmx.NXmx(f).entries[0].start_time
    closed = close_killed_file(path, {"/entry/data/data": 0})
    assert closed is not None and closed.start_time_removed and closed.end_time_removed
    assert ClosedFile.from_metadata(closed.as_metadata()) == closed
    with h5py.File(path, "r") as f:
        (entry,) = nxmx.NXmx(f).entries
        assert entry.start_time is None and entry.end_time is None
        assert "end_time_estimated" in f["entry"]
