"""``.poni`` files as pyFAI writes them — every version and spelling — and as users
wrote them by hand with older pyFAI versions; pyFAI reads the same files beside us."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from geometry import PoniError, PoniGeometry, read_poni, write_poni

pyFAI = pytest.importorskip("pyFAI")
import pyFAI.detectors as pyfai_detectors  # noqa: E402
from pyFAI.integrator.azimuthal import AzimuthalIntegrator  # noqa: E402
from pyFAI.io.ponifile import PoniFile  # noqa: E402

logging.getLogger("pyFAI").setLevel(logging.ERROR)

TILT = {"dist": 0.21, "poni1": 0.081, "poni2": 0.067, "rot1": 0.031, "rot2": -0.042,
        "rot3": 0.2}
NAMED = ["Pilatus1M", "Eiger2_4M", "Eiger4M", "Pilatus4_2M", "PilatusCdTe300k",
         "Eiger2CdTe_1M", "Perkin", "Rayonix133"]


def _pyfai_file(tmp_path: Path, det: object, version: float | None = None,
                wavelength: float | None = 0.7e-10, name: str = "pyfai.poni") -> Path:
    ai = AzimuthalIntegrator(detector=det, wavelength=wavelength, **TILT)
    poni = PoniFile(ai)
    if version is not None:
        poni.API_VERSION = version
    out = io.StringIO()
    poni.write(out)
    path = tmp_path / name
    path.write_text(out.getvalue())
    return path


def _same_as_pyfai(g: PoniGeometry, path: Path) -> None:
    """Geometry, detector, mask and per-pixel 2θ/χ equal what pyFAI makes of ``path``."""
    ai = pyFAI.load(str(path))
    assert (g.dist, g.poni1, g.poni2, g.rot1, g.rot2, g.rot3) == \
        (ai.dist, ai.poni1, ai.poni2, ai.rot1, ai.rot2, ai.rot3)
    assert g.wavelength == ai.wavelength
    assert g.shape == tuple(ai.detector.shape)
    assert (g.pixel1, g.pixel2) == (ai.detector.pixel1, ai.detector.pixel2)
    mask = ai.detector.mask
    assert np.array_equal(g.detector.mask, np.zeros(g.shape, bool) if mask is None
                          else mask.astype(bool))
    rng = np.random.default_rng(3)
    d1 = np.concatenate([[0, g.shape[0] - 1], rng.integers(0, g.shape[0], 300)])
    d2 = np.concatenate([[g.shape[1] - 1, 0], rng.integers(0, g.shape[1], 300)])
    assert np.allclose(g.tth()[d1, d2], ai.tth(d1, d2), rtol=0, atol=1e-9)
    assert np.allclose(g.chi()[d1, d2], ai.chi(d1, d2), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", NAMED)
def test_named_detector_files_written_by_pyfai(tmp_path: Path, name: str) -> None:
    """Current pyFAI: ``Detector: <name>``, pixel sizes and orientation, no max_shape."""
    path = _pyfai_file(tmp_path, pyfai_detectors.detector_factory(name))
    assert "max_shape" not in path.read_text()
    g = read_poni(path)
    assert g.detector.name == name
    _same_as_pyfai(g, path)


@pytest.mark.parametrize("version", [2, 2.1, 3])
def test_every_version_pyfai_writes(tmp_path: Path, version: float) -> None:
    path = _pyfai_file(tmp_path, pyfai_detectors.Pilatus1M(), version=version)
    text = path.read_text()
    assert f"poni_version: {version}" in text
    assert ("orientation" in text) == (version >= 2.1) and ("Parallax" in text) == (version >= 3)
    _same_as_pyfai(read_poni(path), path)


def test_generic_detector_file_written_by_pyfai(tmp_path: Path) -> None:
    det = pyfai_detectors.Detector(80e-6, 90e-6, max_shape=(300, 400))
    path = _pyfai_file(tmp_path, det)
    g = read_poni(path)
    assert g.detector.is_generic and g.shape == (300, 400)
    _same_as_pyfai(g, path)


HAND_WRITTEN = {
    # pyFAI 0.x: version 1, pixel sizes, no detector name, spline "None"
    "v1_generic.poni": """# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis
# Calibration done at Mon Jan 14 13:47:16 2013
PixelSize1: 0.000172
PixelSize2: 0.000172
Distance: 0.21
Poni1: 0.081
Poni2: 0.067
Rot1: 0.031
Rot2: -0.042
Rot3: 0.2
SplineFile: None
Wavelength: 7e-11
""",
    # version 1 naming its detector
    "v1_named.poni": """# Calibration done at Tue Mar 10 09:12:01 2015
PixelSize1: 0.000172
PixelSize2: 0.000172
Detector: Pilatus1M
Distance: 0.21
Poni1: 0.081
Poni2: 0.067
Rot1: 0.031
Rot2: -0.042
Rot3: 0.2
Wavelength: 7e-11
""",
    # pyFAI 0.19-2023: version 2, the detector's config empty
    "v2_empty_config.poni": """# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis
# Calibration done at Thu Feb 11 16:01:42 2021
poni_version: 2
Detector: Pilatus1M
Detector_config: {}
Distance: 0.21
Poni1: 0.081
Poni2: 0.067
Rot1: 0.031
Rot2: -0.042
Rot3: 0.2
Wavelength: 7e-11
""",
    # an alias instead of the class name, keys in other cases, no wavelength
    "v2_alias_no_wavelength.poni": """poni_version: 2
detector: Pilatus 1M
detector_config: {"pixel1": 0.000172, "pixel2": 0.000172}
distance: 0.21
poni1: 0.081
poni2: 0.067
rot1: 0.031
rot2: -0.042
rot3: 0.2
""",
}


@pytest.mark.parametrize("name", sorted(HAND_WRITTEN))
def test_hand_written_older_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(HAND_WRITTEN[name])
    shape = (1043, 981) if name == "v1_generic.poni" else None
    g = read_poni(path, shape=shape)
    assert g.shape == (1043, 981)
    if name == "v1_generic.poni":
        ai = pyFAI.load(str(path))  # pyFAI's generic detector takes the image's shape
        assert ai.detector.shape is None
        ai.detector.shape = ai.detector.max_shape = (1043, 981)
        assert g.detector.is_generic and not g.detector.mask.any()
        assert np.allclose(g.tth(), ai.center_array(g.shape, unit="2th_rad", scale=False),
                           rtol=0, atol=1e-9)
    else:
        assert g.detector.name == "Pilatus1M"
        _same_as_pyfai(g, path)


def test_no_wavelength_keeps_angles_and_refuses_q(tmp_path: Path) -> None:
    path = _pyfai_file(tmp_path, pyfai_detectors.Eiger2_4M(), wavelength=None)
    assert "Wavelength" not in path.read_text()
    g = read_poni(path)
    assert g.wavelength is None
    _same_as_pyfai(g, path)
    assert g.r().shape == g.shape
    for unit in ("q_nm^-1", "q_A^-1", "d*2_A^-2"):
        with pytest.raises(ValueError, match=re.escape(f"unit '{unit}' needs the wavelength")):
            g.array(unit)


@pytest.mark.parametrize("orientation", [1, 2, 4])
def test_orientations(tmp_path: Path, orientation: int) -> None:
    det = pyfai_detectors.Detector(100e-6, 120e-6, max_shape=(64, 80),
                                   orientation=orientation)
    path = _pyfai_file(tmp_path, det)
    g = read_poni(path)
    assert g.detector.orientation == orientation
    _same_as_pyfai(g, path)
    ai = pyFAI.load(str(path))
    corners = ai.corner_array(unit="2th_rad", scale=False)  # (rows, cols, 4, 2), float32
    ours = g.array("2th_rad", corners=True)
    assert np.allclose(corners[:, :, 0, 0], ours[:-1, :-1], rtol=1e-6, atol=1e-7)
    assert np.allclose(corners[:, :, 2, 0], ours[1:, 1:], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["Pilatus1M", "Eiger2_4M", "Perkin"])
def test_we_write_named_detectors_pyfai_reads(tmp_path: Path, name: str) -> None:
    g = PoniGeometry(detector=name, wavelength=1.1e-10, **TILT)
    path = tmp_path / "ours.poni"
    write_poni(g, path)
    assert read_poni(path) == g
    ai = pyFAI.load(str(path))
    assert type(ai.detector).__name__ == name
    _same_as_pyfai(g, path)


PILATUS = HAND_WRITTEN["v2_alias_no_wavelength.poni"]


@pytest.mark.parametrize(("text", "kwargs", "message"), [
    (PILATUS.replace("Pilatus 1M", "Pilatus 7M"), {},
     r":2: unknown detector 'Pilatus 7M'; did you mean"),
    (PILATUS.replace('"pixel2": 0.000172}', '"pixel2": 0.000172, "splineFile": "a.spline"}'),
     {}, r":3: the detector has a spline file .*not supported"),
    (PILATUS.replace('"pixel2": 0.000172}', '"pixel2": 0.000172, "filename": "d.h5"}'),
     {}, r":3: Detector_config key\(s\) filename not supported"),
    (PILATUS + "Parallax: True\n", {}, r":10: Parallax: True — the parallax correction"),
    (PILATUS, {"shape": (1000, 981)}, r"Pilatus1M is 1043 x 981, not the shape=\(1000, 981\)"),
    (HAND_WRITTEN["v1_generic.poni"], {}, r"not in the file .*pass shape=\(rows, cols\)"),
    (HAND_WRITTEN["v1_generic.poni"].replace("SplineFile: None", "SplineFile: f.spline"), {},
     r":11: the detector has a spline file"),
    (HAND_WRITTEN["v1_generic.poni"].replace("PixelSize2: 0.000172\n", ""),
     {"shape": (10, 10)}, r"missing key\(s\) PixelSize1/PixelSize2"),
    (PILATUS.replace("poni_version: 2\n", "poni_version: 2\nDetector_config: {}\n")
     .replace("detector: Pilatus 1M\n", ""), {}, r"missing key\(s\) Detector "),
    (PILATUS.replace('{"pixel1": 0.000172, "pixel2": 0.000172}', '{"orientation": 6}'),
     {}, r":3: detector orientation 6 is not supported"),
])
def test_bad_files_name_file_and_line(tmp_path: Path, text: str, kwargs: dict[str, object],
                                      message: str) -> None:
    path = tmp_path / "bad.poni"
    path.write_text(text)
    with pytest.raises(PoniError, match=message) as info:
        read_poni(path, **kwargs)  # type: ignore[arg-type]
    assert str(info.value).startswith(str(path))


#: user report U1: a Pilatus 1M binned 2 x 2 as pyFAI 2026.9 writes its .poni
BINNED_PILATUS = """\
# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis
# Calibration done on Sat Dec  5 19:13:30 2026
poni_version: 2.1
Detector: Pilatus1M
Detector_config: {"pixel1": 0.000344, "pixel2": 0.000344, "orientation": 3}
Distance: 0.2
Poni1: 0.05
Poni2: 0.05
Rot1: 0
Rot2: 0
Rot3: 0
Wavelength: 1e-10
"""


def _same_binned(g: PoniGeometry, path: Path) -> None:
    """As :func:`_same_as_pyfai`; pyFAI cannot bin the gap mask of a detector whose shape
    is no multiple of the binning (it raises), so that mask is checked by hand there."""
    ai = pyFAI.load(str(path))
    assert g.shape == tuple(ai.detector.shape) and g.detector.binning == ai.detector.binning
    assert (g.pixel1, g.pixel2) == (ai.detector.pixel1, ai.detector.pixel2)
    try:
        theirs = ai.detector.mask.astype(bool)
    except RuntimeError:
        (b0, b1), (n0, n1) = g.detector.binning, g.shape
        full = PoniGeometry(detector=g.detector.name, **TILT).detector.mask
        theirs = full[:n0 * b0, :n1 * b1].reshape(n0, b0, n1, b1).any(axis=(1, 3))
    assert np.array_equal(g.detector.mask, theirs)
    d1, d2 = (i.ravel() for i in np.indices(g.shape))
    assert np.allclose(g.tth().ravel(), ai.tth(d1, d2), rtol=0, atol=1e-9)
    assert np.allclose(g.chi().ravel(), ai.chi(d1, d2), rtol=0, atol=1e-9)


def test_the_binned_pilatus_of_user_report_u1(tmp_path: Path) -> None:
    path = tmp_path / "binned.poni"
    path.write_text(BINNED_PILATUS)
    g = read_poni(path)
    assert g.shape == (521, 490) and (g.pixel1, g.pixel2) == (344e-6, 344e-6)
    _same_binned(g, path)
    assert read_poni(path, shape=(521, 490)) == g
    with pytest.raises(PoniError, match=r"Pilatus1M is 521 x 490, not the shape=\(1043, 981"):
        read_poni(path, shape=(1043, 981))


@pytest.mark.parametrize(("name", "binning"), [
    ("Pilatus1M", (2, 2)), ("Pilatus100k", (3, 3)), ("Eiger1M", (2, 2)),
    ("Eiger2_4M", (2, 2)), ("Eiger2CdTe_1M", (2, 2)), ("Pilatus4_1M", (2, 1)),
    ("Rayonix133", (4, 4))])
def test_binned_detector_files_written_by_pyfai(tmp_path: Path, name: str,
                                                binning: tuple[int, int]) -> None:
    theirs = pyfai_detectors.detector_factory(name, {"binning": list(binning)})
    path = _pyfai_file(tmp_path, theirs)
    text = path.read_text()
    assert "max_shape" not in text and "binning" not in text  # the pixel size says it
    g = read_poni(path)
    assert g.detector.binning == binning
    _same_binned(g, path)
    ours = tmp_path / "ours.poni"
    write_poni(g, ours)
    assert read_poni(ours) == g
    _same_binned(g, ours)


@pytest.mark.parametrize("config", [
    '{"binning": [2, 2]}', '{"binning": 2, "orientation": 3}',
    '{"pixel1": 0.000172, "pixel2": 0.000172, "binning": [2, 2]}',
    '{"pixel1": 0.000344, "pixel2": 0.000344, "binning": [2, 2]}'])
def test_binning_key_in_detector_config(tmp_path: Path, config: str) -> None:
    """pyFAI's detector factory takes ``binning`` (pyFAI itself does not write it)."""
    path = tmp_path / "binning.poni"
    path.write_text(BINNED_PILATUS.replace(
        '{"pixel1": 0.000344, "pixel2": 0.000344, "orientation": 3}', config))
    g = read_poni(path)
    assert g.shape == (521, 490) and g.detector.binning == (2, 2)
    _same_binned(g, path)


@pytest.mark.parametrize(("config", "message"), [
    ('{"pixel1": 0.000258, "pixel2": 0.000258}',
     r":4: detector Pilatus1M: pixel1 0.000258 m is neither its pixel size 0.000172 m nor "
     r"an integer multiple of it"),
    ('{"pixel1": 0.000344, "pixel2": 0.000344, "binning": [4, 4]}',
     r":4: detector Pilatus1M: pixel1 0.000344 m contradicts binning 4"),
    ('{"binning": "2x2"}', r":4: detector Pilatus1M: binning must be a positive int"),
])
def test_binned_files_that_say_no_binning_are_refused(tmp_path: Path, config: str,
                                                      message: str) -> None:
    path = tmp_path / "bad.poni"
    path.write_text(BINNED_PILATUS.replace(
        '{"pixel1": 0.000344, "pixel2": 0.000344, "orientation": 3}', config))
    with pytest.raises(PoniError, match=message):
        read_poni(path)
