"""The integration matrices entry by entry against the sparse matrices pyFAI's own CSR
engines build for the same geometry, unit, bins, ranges and mask."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pytest

from analysis.azint_matrix import Matrix, Request, build
from geometry import PoniGeometry, radial_unit

pyFAI = pytest.importorskip("pyFAI")
from pyFAI.detectors import Detector  # noqa: E402
from pyFAI.integrator.azimuthal import AzimuthalIntegrator as PyFAI  # noqa: E402
from pyFAI.method_registry import IntegrationMethod  # noqa: E402

logging.getLogger("pyFAI").setLevel(logging.ERROR)

#: the beam centre on the detector: pixels straddle the χ discontinuity at ±180°
GEOMETRY = PoniGeometry(dist=0.05, poni1=0.45 * 48 * 100e-6, poni2=0.55 * 60 * 100e-6,
                        rot1=0.02, rot2=-0.01, rot3=0.3, pixel1=100e-6, pixel2=100e-6,
                        shape=(48, 60), wavelength=1e-10)
MASK = np.zeros(GEOMETRY.shape, bool)
MASK[10:16, 30:42] = True
ONES = np.ones(GEOMETRY.shape, np.float32)


def _pyfai() -> Any:
    g = GEOMETRY
    return PyFAI(dist=g.dist, poni1=g.poni1, poni2=g.poni2, rot1=g.rot1, rot2=g.rot2,
                 rot3=g.rot3, detector=Detector(g.pixel1, g.pixel2, max_shape=g.shape),
                 wavelength=g.wavelength)


def _dense(data: Any, indices: Any, indptr: Any, nbins: int) -> np.ndarray:
    m = np.zeros((nbins, ONES.size))
    rows = np.repeat(np.arange(nbins), np.diff(indptr))
    np.add.at(m, (rows, np.asarray(indices)), np.asarray(data, dtype=np.float64))
    return m


def _theirs(split: str, unit: str, npt: int, npt_azim: int | None,
            azimuth_range: tuple[float, float] | None) -> tuple[np.ndarray, Any]:
    ai = _pyfai()
    kw = dict(unit=unit, method=(split, "csr", "cython"), mask=MASK,
              azimuth_range=azimuth_range, correctSolidAngle=False)
    if npt_azim is None:
        res = ai.integrate1d(ONES, npt, **kw)
    else:
        res = ai.integrate2d(ONES, npt, npt_azim, **kw)
    method = IntegrationMethod.select_one_available((split, "csr", "cython"),
                                                    dim=1 if npt_azim is None else 2)
    data, indices, indptr = ai.engines[method].engine.lut
    return _dense(data, indices, indptr, npt * (npt_azim or 1)), res


def _ours(split: str, unit: str, npt: int, npt_azim: int | None,
          azimuth_range: tuple[float, float] | None) -> Matrix:
    rng = None if azimuth_range is None else tuple(math.radians(a) for a in azimuth_range)
    return build(GEOMETRY, Request(split, radial_unit(unit), npt, None, npt_azim, rng), MASK)


@pytest.mark.parametrize("split", ["no", "bbox", "full"])
@pytest.mark.parametrize("unit", ["2th_deg", "q_A^-1", "r_mm"])
@pytest.mark.parametrize("azimuth_range", [None, (-100.0, 30.0)])
def test_1d_matrices(split: str, unit: str, azimuth_range: tuple[float, float] | None
                     ) -> None:
    theirs, res = _theirs(split, unit, 40, None, azimuth_range)
    m = _ours(split, unit, 40, None, azimuth_range)
    ours = _dense(m.coefs, m.indices, m.indptr, 40)
    assert np.allclose(m.radial.centres(), res.radial, rtol=1e-9)
    # bbox and no splitting: the same entries; full: the same up to float32 areas
    tol = 0.0 if split != "full" else 1e-5
    assert np.max(np.abs(ours - theirs)) <= tol
    assert np.all(np.diff(m.indices[m.indptr[5]:m.indptr[6]]) > 0)  # pixels in order


@pytest.mark.parametrize("split", ["no", "bbox", "full"])
@pytest.mark.parametrize("azimuth_range", [None, (-100.0, 30.0)])
def test_2d_matrices(split: str, azimuth_range: tuple[float, float] | None) -> None:
    theirs, res = _theirs(split, "2th_deg", 30, 24, azimuth_range)
    m = _ours(split, "2th_deg", 30, 24, azimuth_range)
    assert m.azimuthal is not None
    ours = _dense(m.coefs, m.indices, m.indptr, 30 * 24)
    assert np.allclose(m.radial.centres(), res.radial, rtol=1e-9)
    assert np.allclose(m.azimuthal.centres(), res.azimuthal, rtol=1e-9)
    if split == "full":
        # pyFAI's 2D full builder fills its first pixel from an uninitialised buffer
        # (numpy.empty): that pixel's weights are arbitrary there, so it is left out
        first = int(m.indices.min())
        ours[:, first] = theirs[:, first] = 0.0
        assert np.max(np.abs(ours - theirs)) <= 1e-5
    else:
        assert np.max(np.abs(ours - theirs)) == 0.0


def test_full_split_conserves_each_pixel() -> None:
    """Every pixel inside the range is shared out completely (weights sum to 1)."""
    m = build(GEOMETRY, Request("full", radial_unit("2th_deg"), 50), MASK)
    per_pixel = np.bincount(m.indices, m.coefs.astype(np.float64), minlength=ONES.size)
    kept = per_pixel[~MASK.ravel()]
    assert np.allclose(kept, 1.0, atol=1e-6)
    assert np.all(per_pixel[MASK.ravel()] == 0)
