"""``integrate1d`` (OpenCL) agrees with pyFAI's ("no", "csr", "cython") bin by bin."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from analysis.azint import AzimuthalIntegrator
from geometry import PoniGeometry

pyFAI = pytest.importorskip("pyFAI")
from pyFAI.detectors import Detector  # noqa: E402
from pyFAI.integrator.azimuthal import AzimuthalIntegrator as PyFAIIntegrator  # noqa: E402

logging.getLogger("pyFAI").setLevel(logging.ERROR)

GEOMETRY = PoniGeometry(dist=0.11, poni1=0.021, poni2=0.028, rot1=0.06, rot2=-0.035,
                        rot3=0.12, pixel1=75e-6, pixel2=75e-6, shape=(512, 600),
                        wavelength=0.95e-10)
METHOD = ("no", "csr", "cython")
NPT = 400


def _frame() -> np.ndarray:
    """Synthetic powder rings on a background, with Poisson noise and some empty pixels."""
    rng = np.random.default_rng(11)
    tth = np.degrees(GEOMETRY.tth())
    rings = sum(a * np.exp(-0.5 * ((tth - c) / 0.08) ** 2)
                for a, c in ((400, 6.0), (250, 9.5), (600, 13.2), (150, 17.0)))
    frame = rng.poisson(20.0 + rings).astype(np.float32)
    frame[::9, ::7] = 0.0
    return frame


FRAME = _frame()
MASK = np.zeros(GEOMETRY.shape, dtype=bool)
MASK[200:230, :] = True
MASK[:, 410:418] = True
MASK[5, 5] = True


@pytest.fixture(scope="module")
def ours() -> AzimuthalIntegrator:
    return AzimuthalIntegrator(GEOMETRY)


@pytest.fixture(scope="module")
def theirs() -> PyFAIIntegrator:
    g = GEOMETRY
    return PyFAIIntegrator(dist=g.dist, poni1=g.poni1, poni2=g.poni2, rot1=g.rot1, rot2=g.rot2,
                           rot3=g.rot3, detector=Detector(g.pixel1, g.pixel2, max_shape=g.shape),
                           wavelength=g.wavelength)


def _rel(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    return float(np.max(np.abs(a[where] - b[where]) / np.maximum(np.abs(b[where]), 1e-300)))


@pytest.mark.parametrize("unit", ["2th_deg", "q_nm^-1", "r_mm"])
@pytest.mark.parametrize("corrections", [False, True])
@pytest.mark.parametrize("ranged", [False, True])
def test_integrate1d_agrees_with_pyfai(ours: AzimuthalIntegrator, theirs: PyFAIIntegrator,
                                       unit: str, corrections: bool, ranged: bool) -> None:
    pol = 0.95 if corrections else None
    radial_range = None
    if ranged:
        full = theirs.integrate1d(FRAME, NPT, unit=unit, method=METHOD)
        radial_range = (float(full.radial[30]), float(full.radial[300]))
    want = theirs.integrate1d(FRAME, NPT, unit=unit, method=METHOD, mask=MASK,
                              correctSolidAngle=corrections, polarization_factor=pol,
                              radial_range=radial_range, error_model="poisson")
    got = ours.integrate1d(FRAME, NPT, unit=unit, mask=MASK, correct_solid_angle=corrections,
                           polarization_factor=pol, radial_range=radial_range,
                           error_model="poisson")
    has = want.count > 0
    assert has.sum() > 0.9 * NPT
    assert np.array_equal(got.count, want.count)
    assert np.allclose(got.radial, want.radial, rtol=1e-10, atol=0)
    assert _rel(got.intensity, want.intensity, has) < 1e-4
    assert _rel(got.sum_signal, want.sum_signal, has) < 1e-4
    assert _rel(got.sum_normalization, want.sum_normalization, has) < 1e-4
    assert got.sigma is not None and got.sum_variance is not None
    assert _rel(got.sigma, want.sigma, has) < 1e-4
    assert _rel(got.sum_variance, want.sum_variance, has) < 1e-4
    assert np.all(got.intensity[~has] == 0.0)


def test_dark_and_flat_agree_with_pyfai(ours: AzimuthalIntegrator,
                                        theirs: PyFAIIntegrator) -> None:
    rng = np.random.default_rng(3)
    dark = rng.poisson(4.0, GEOMETRY.shape).astype(np.float32)
    flat = rng.uniform(0.85, 1.15, GEOMETRY.shape).astype(np.float32)
    frame = (FRAME + dark).astype(np.uint16)
    want = theirs.integrate1d(frame, NPT, unit="q_nm^-1", method=METHOD, mask=MASK,
                              dark=dark, flat=flat, polarization_factor=0.9,
                              error_model="poisson")
    got = ours.integrate1d(frame, NPT, unit="q_nm^-1", mask=MASK, dark=dark, flat=flat,
                           polarization_factor=0.9, error_model="poisson")
    has = want.count > 0
    assert _rel(got.intensity, want.intensity, has) < 1e-4
    assert got.sigma is not None
    assert _rel(got.sigma, want.sigma, has) < 1e-4
