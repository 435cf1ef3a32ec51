"""PONI geometry against pyFAI: per-pixel arrays, orientation, metadata, the rotating-arm 2θ."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from geometry import PoniError, PoniGeometry, arm_two_theta, read_poni, write_poni

pyFAI = pytest.importorskip("pyFAI")
from pyFAI.detectors import Detector  # noqa: E402
from pyFAI.integrator.azimuthal import AzimuthalIntegrator  # noqa: E402

logging.getLogger("pyFAI").setLevel(logging.ERROR)

TILTED = [
    PoniGeometry(dist=0.12, poni1=0.011, poni2=0.017, rot1=0.13, rot2=-0.07, rot3=0.21,
                 pixel1=75e-6, pixel2=80e-6, shape=(300, 400), wavelength=0.9e-10),
    PoniGeometry(dist=0.35, poni1=-0.004, poni2=0.031, rot1=-0.4, rot2=0.25, rot3=-1.3,
                 pixel1=172e-6, pixel2=172e-6, shape=(195, 487), wavelength=1.5e-10),
]


def pyfai_of(g: PoniGeometry) -> AzimuthalIntegrator:
    det = Detector(g.pixel1, g.pixel2, max_shape=g.shape)
    return AzimuthalIntegrator(dist=g.dist, poni1=g.poni1, poni2=g.poni2, rot1=g.rot1,
                               rot2=g.rot2, rot3=g.rot3, detector=det,
                               wavelength=g.wavelength)


@pytest.mark.parametrize("g", TILTED)
def test_arrays_agree_with_pyfai(g: PoniGeometry) -> None:
    ai = pyfai_of(g)
    assert np.allclose(g.tth(), ai.center_array(unit="2th_rad", scale=False),
                       rtol=0, atol=1e-10)
    assert np.allclose(g.chi(), ai.center_array(unit="chi_rad", scale=False),
                       rtol=0, atol=1e-10)
    assert np.allclose(g.q(), ai.center_array(unit="q_nm^-1", scale=False),
                       rtol=1e-10, atol=1e-10)
    assert np.allclose(g.r(), ai.center_array(unit="r_mm", scale=True), rtol=1e-10, atol=1e-10)
    # deprecated array API (still float64 for 2θ/χ) and the float64 incidence behind the
    # solid angle; pyFAI stores its solid-angle and polarization arrays as float32
    assert np.allclose(g.tth(), ai.twoThetaArray(), rtol=0, atol=1e-10)
    d1, d2 = np.meshgrid(np.arange(g.shape[0], dtype=np.float64),
                         np.arange(g.shape[1], dtype=np.float64), indexing="ij")
    assert np.allclose(g.solid_angle(), ai.cos_incidence(d1, d2) ** 3, rtol=1e-10, atol=0)
    assert np.allclose(g.solid_angle(), ai.solidAngleArray(), rtol=1e-6, atol=0)
    for factor in (0.0, 0.95, -0.5):
        assert np.allclose(g.polarization(factor), ai.polarization(factor=factor),
                           rtol=1e-6, atol=0)
    assert g.tth().dtype == np.float64 and g.tth().shape == g.shape


def test_polarization_formula_unpolarised_is_cos_average() -> None:
    g = TILTED[0]
    cos2 = np.cos(g.tth()) ** 2
    assert np.allclose(g.polarization(0.0), 0.5 * (1 + cos2), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="polarization factor must be in"):
        g.polarization(1.5)


@pytest.mark.parametrize("g", TILTED)
def test_poni_round_trip_and_pyfai_loads_ours(g: PoniGeometry, tmp_path: Path) -> None:
    path = tmp_path / "ours.poni"
    write_poni(g, path)
    assert read_poni(path) == g
    ai = pyFAI.load(str(path))
    assert (ai.dist, ai.poni1, ai.poni2) == (g.dist, g.poni1, g.poni2)
    assert (ai.rot1, ai.rot2, ai.rot3) == (g.rot1, g.rot2, g.rot3)
    assert (ai.detector.pixel1, ai.detector.pixel2) == (g.pixel1, g.pixel2)
    assert tuple(ai.detector.max_shape) == g.shape and ai.wavelength == g.wavelength
    assert np.allclose(ai.center_array(unit="2th_rad", scale=False), g.tth(), atol=1e-12)


@pytest.mark.parametrize("g", TILTED)
def test_we_load_pyfai_written_files(g: PoniGeometry, tmp_path: Path) -> None:
    path = tmp_path / "pyfai.poni"
    pyfai_of(g).write(str(path))
    assert read_poni(path) == g


def _poni_text(**replace: str) -> str:
    fields = {
        "poni_version": "2.1", "Detector": "Detector",
        "Detector_config": '{"pixel1": 7.5e-05, "pixel2": 7.5e-05, "max_shape": [10, 20]}',
        "Distance": "0.1", "Poni1": "0.001", "Poni2": "0.002", "Rot1": "0", "Rot2": "0",
        "Rot3": "0", "Wavelength": "1e-10",
    }
    fields.update(replace)
    return "# comment\n" + "".join(f"{k}: {v}\n" for k, v in fields.items() if v != "DROP")


def test_read_minimal_file(tmp_path: Path) -> None:
    path = tmp_path / "a.poni"
    path.write_text(_poni_text())
    g = read_poni(path)
    assert g.shape == (10, 20) and g.poni2 == 0.002 and g.wavelength == 1e-10


@pytest.mark.parametrize(("replace", "message"), [
    ({"Rot2": "DROP"}, r"a\.poni: missing key\(s\) Rot2"),
    ({"Distance": "0.1m"}, r"a\.poni:5: Distance is not a number: '0\.1m'"),
    ({"Poni1": "nan"}, r"a\.poni:6: Poni1 must be finite"),
    ({"Detector_config": "{pixel1: 1"}, r"a\.poni:4: Detector_config is not valid JSON"),
    ({"Detector_config": '{"pixel1": 1e-4, "pixel2": 1e-4}'},
     r"a\.poni:3: the detector's shape is not in the file .*pass shape=\(rows, cols\)"),
    ({"Detector_config": '{"pixel1": 1e-4, "pixel2": -1, "max_shape": [2, 2]}'},
     r"a\.poni:4: Detector_config pixel2 must be a positive number"),
    ({"Detector_config": '{"pixel1": 1e-4, "pixel2": 1e-4, "max_shape": [2, 2], '
                         '"orientation": 5}'}, r"a\.poni:4: detector orientation 5"),
    ({"poni_version": "4"}, r"a\.poni:2: poni_version 4 is not supported"),
    ({"Distance": "-0.1"}, r"a\.poni: PoniGeometry\.dist must be a positive"),
])
def test_malformed_poni_names_file_and_line(tmp_path: Path, replace: dict[str, str],
                                            message: str) -> None:
    path = tmp_path / "a.poni"
    path.write_text(_poni_text(**replace))
    with pytest.raises(PoniError, match=message):
        read_poni(path)


def test_line_without_colon_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "a.poni"
    path.write_text(_poni_text() + "garbage line\n")
    with pytest.raises(PoniError, match=r"a\.poni:12: expected 'Key: value'"):
        read_poni(path)
    with pytest.raises(PoniError, match=r"nope\.poni: cannot read"):
        read_poni(tmp_path / "nope.poni")


def test_bad_geometry_arguments() -> None:
    with pytest.raises(ValueError, match=r"PoniGeometry\.shape must be two positive ints"):
        PoniGeometry(dist=0.1, poni1=0, poni2=0, shape=(0, 3))
    with pytest.raises(ValueError, match=r"PoniGeometry\.rot1 must be a finite number"):
        PoniGeometry(dist=0.1, poni1=0, poni2=0, rot1=math.inf)


def test_arm_without_rotations_equals_normal_poni_geometry() -> None:
    dist, pixel1, pixel2, n0, m0 = 0.2, 75e-6, 100e-6, 130.0, 47.5
    shape = (256, 200)
    arm = arm_two_theta(shape, n0, m0, pixel1 / dist, pixel2 / dist, phi=0.0, delta=0.0)
    poni = PoniGeometry(dist=dist, poni1=(n0 + 0.5) * pixel1, poni2=(m0 + 0.5) * pixel2,
                        pixel1=pixel1, pixel2=pixel2, shape=shape)
    assert np.allclose(arm, poni.tth(), rtol=0, atol=1e-12)


def test_rotated_arm_against_rotation_matrices() -> None:
    shape, n0, m0, wn, wm, phi, delta = (40, 60), 12.0, 33.0, 4e-4, 5e-4, 0.3, 0.7
    n, m = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    v = np.stack([np.ones(shape), (n - n0) * wn, (m - m0) * wm], axis=-1)
    rx = np.array([[1, 0, 0], [0, math.cos(phi), -math.sin(phi)],
                   [0, math.sin(phi), math.cos(phi)]])
    rz = np.array([[math.cos(delta), -math.sin(delta), 0],
                   [math.sin(delta), math.cos(delta), 0], [0, 0, 1]])
    w = v @ (rz @ rx).T
    expected = np.arccos(w[..., 0] / np.linalg.norm(w, axis=-1))
    got = arm_two_theta(shape, n0, m0, wn, wm, phi, delta)
    assert got.shape == shape
    assert np.allclose(got, expected, rtol=0, atol=1e-12)
    # the arm angle is the 2θ of the detector zero
    assert got[12, 33] == pytest.approx(delta, abs=1e-15)
    with pytest.raises(ValueError, match="wn and wm must be positive"):
        arm_two_theta(shape, n0, m0, 0.0, wm, phi, delta)


def test_geometry_metadata_round_trip_and_errors() -> None:
    import json

    from geometry import PoniError, PoniGeometry

    g = PoniGeometry(dist=0.12, poni1=0.02, poni2=0.021, rot1=0.01, pixel1=172e-6,
                     pixel2=172e-6, shape=(256, 240), wavelength=0.5e-10)
    md = json.loads(json.dumps(g.to_metadata()))
    assert PoniGeometry.from_metadata(md) == g
    with pytest.raises(PoniError, match=r"start\.geometry: unknown key"):
        PoniGeometry.from_metadata({**md, "distance": 1}, "start.geometry")
    with pytest.raises(PoniError, match="dist must be a positive"):
        PoniGeometry.from_metadata({**md, "dist": -1.0})
    with pytest.raises(PoniError, match="mapping"):
        PoniGeometry.from_metadata([1, 2])


def test_geometry_imports_nothing_of_the_project() -> None:
    """devices and analysis both import geometry, so it must import neither (nor more than
    numpy): the one-way import rule of the README."""
    import subprocess
    import sys

    code = ("import sys, geometry; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'sme', 'fpga', 'devices', 'dataflow', 'plans', 'analysis', 'pyFAI', 'h5py'}); "
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_binned_named_detector_geometry_and_metadata() -> None:
    """A binned Dectris detector given by name and pixel size; its metadata (the run's
    start document) gives it back, and the image shape may be said too."""
    g = PoniGeometry(dist=0.2, poni1=0.05, poni2=0.05, detector="Eiger1M", pixel1=150e-6,
                     pixel2=150e-6, wavelength=1e-10)
    assert (g.shape, g.detector.binning) == ((532, 515), (2, 2))
    assert PoniGeometry.from_metadata(g.to_metadata()) == g
    same = PoniGeometry(dist=0.2, poni1=0.05, poni2=0.05, detector="Eiger1M", pixel1=150e-6,
                        pixel2=150e-6, shape=(532, 515), wavelength=1e-10)
    assert same == g
    smaller = PoniGeometry(dist=0.2, poni1=0.05, poni2=0.05, detector="Eiger1M",
                           pixel1=150e-6, pixel2=150e-6, shape=(500, 400))
    assert smaller.shape == (500, 400) and smaller.detector.max_shape == (1000, 800)
    with pytest.raises(ValueError, match=r"pixel1 0\.0001 m is neither its pixel size"):
        PoniGeometry(dist=0.2, poni1=0.05, poni2=0.05, detector="Eiger1M", pixel1=100e-6)


@pytest.mark.parametrize("detector", [None, "Pilatus100k", "Eiger2_1M"])
def test_binned_geometry_is_pyfai_s_binned_detector(detector: str | None) -> None:
    """``binned(k)`` is pyFAI's ``detector.binning = k`` on the same geometry: pixel
    positions (so 2θ, χ) of every binned pixel, shape and pixel size."""
    from pyFAI.detectors import Detector as PyFAIDetector
    from pyFAI.detectors import detector_factory
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    kw = dict(dist=0.15, poni1=0.011, poni2=0.017, rot1=0.02, rot2=-0.03, rot3=0.1,
              wavelength=1e-10)
    g = PoniGeometry(pixel1=100e-6, pixel2=120e-6, shape=(81, 64), **kw) if detector is None \
        else PoniGeometry(detector=detector, **kw)
    b = g.binned(2, 3)
    theirs = PyFAIDetector(100e-6, 120e-6, max_shape=(81, 64)) if detector is None \
        else detector_factory(detector)
    theirs.binning = (2, 3)
    ai = AzimuthalIntegrator(detector=theirs, **kw)
    assert b.shape == tuple(theirs.shape) and (b.pixel1, b.pixel2) == pytest.approx(
        (theirs.pixel1, theirs.pixel2), rel=1e-12)
    d1, d2 = (i.ravel() for i in np.indices(b.shape))
    assert np.allclose(b.tth().ravel(), ai.tth(d1, d2), rtol=0, atol=1e-9)
    assert np.allclose(b.chi().ravel(), ai.chi(d1, d2), rtol=0, atol=1e-9)
    assert b.binned(1) == b and PoniGeometry.from_metadata(b.to_metadata()) == b
    with pytest.raises(ValueError, match=r"binning must be positive ints, got \(0, 0\)"):
        g.binned(0)
