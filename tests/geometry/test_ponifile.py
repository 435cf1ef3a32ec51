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
