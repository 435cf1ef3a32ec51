"""``integrate_radial`` — pyFAI's χ profile over a radial range — side by side with pyFAI's
own (``(split, "csr", "cython")``): every splitting, both χ units, radial and azimuth
ranges, masks, dummies, NaN and corrections, and pyFAI's non-regression test #1602 (a
full ring's profile covers -180..180°)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from analysis.azint import AzimuthalIntegrator
from geometry import PoniGeometry
from tests.analysis.test_pyfai_parity import (
    FRAME,
    MASK,
    TILTED,
    _dirty,
    _first_pixel_cells,
    _powder,
    _pyfai,
)

pyFAI = pytest.importorskip("pyFAI")
logging.getLogger("pyFAI").setLevel(logging.ERROR)

SPLITS = ["no", "bbox", "full"]
CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "2th-range-chi-rad": dict(radial_range=(3.0, 15.0), radial_unit="2th_deg",
                              unit="chi_rad"),
    "azimuth-range-in-degrees": dict(azimuth_range=(-120.0, 75.0), unit="chi_rad",
                                     mask=MASK, radial_unit="r_mm"),
    "nan-dummy-mask": dict(data=_dirty(FRAME), dummy=-5.0, delta_dummy=0.5, mask=MASK,
                           radial_unit="2th_deg", radial_range=(5.0, 12.0)),
    "corrections": dict(dark=np.full(TILTED.shape, 3.0, np.float32),
                        flat=np.linspace(0.8, 1.2, FRAME.size, dtype=np.float32
                                         ).reshape(TILTED.shape),
                        polarization_factor=0.95, correctSolidAngle=1,
                        normalization_factor=2.5, radial_unit="q_A^-1"),
}


@pytest.fixture(scope="module")
def ours() -> AzimuthalIntegrator:
    return AzimuthalIntegrator(TILTED)


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # pyFAI's, empty χ
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("split", SPLITS)
def test_integrate_radial_is_pyfais(ours: AzimuthalIntegrator, split: str, case: str) -> None:
    kw = dict(CASES[case])
    data = kw.pop("data", FRAME)
    want = _pyfai(TILTED).integrate_radial(data, 36, 20, method=(split, "csr", "cython"),
                                           **kw)
    got = ours.integrate_radial(data, 36, 20, method=(split, "csr", "opencl"), **kw)
    assert got.unit == want.unit.name and got.unit.scale == want.unit.scale
    assert np.allclose(got.radial, want.radial, rtol=1e-9, atol=1e-9)
    assert got.sigma is None and want.sigma is None
    assert got.sum_variance is None and want.sum_variance is None
    assert got.std is None and got.sem is None
    has = want.count > 0
    assert has.sum() > 10
    if split == "full":  # pyFAI's first pixel has arbitrary weights (see test_cakes)
        has &= ~_first_pixel_cells(ours, 20, 36).any(axis=1)
    tol = 1e-6  # (1e-7 at worst with full splitting, 3e-8 without)
    for name in ("count", "sum_signal", "sum_normalization", "intensity"):
        a, b = np.asarray(getattr(got, name))[has], np.asarray(getattr(want, name))[has]
        worst = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6 * np.abs(b).max())))
        assert worst < tol, f"{name}: relative difference {worst:.2e}"
    empty = want.count == 0
    assert np.array_equal(got.intensity[empty], want.intensity[empty])


#: pyFAI's test_azimuthal_integrator.test_radial (#1602) on a detector with the beam on it
CENTRED = PoniGeometry(dist=0.1, poni1=0.0178, poni2=0.0166, rot1=0.01, rot2=-0.02,
                       detector="Pilatus100k", wavelength=1.0e-10)


def test_a_full_rings_profile_covers_all_of_chi() -> None:
    """pyFAI's non-regression test #1602: ``npt=360`` χ bins over a ring around the beam
    span -180..180° (-π..π in ``chi_rad``), with the ring's intensity in every bin."""
    ai = AzimuthalIntegrator(CENTRED)
    frame = _powder(CENTRED, seed=2)
    kw = dict(npt_rad=10, radial_range=(3.6, 4.4), radial_unit="2th_deg")
    theirs = _pyfai_named(CENTRED)
    for unit, low, high in (("chi_deg", -179, 179), ("chi_rad", -3, 3)):
        got = ai.integrate_radial(frame, 360, unit=unit, **kw)
        want = theirs.integrate_radial(frame, 360, unit=unit, **kw)
        assert got.radial.min() < low and got.radial.max() > high
        has = got.count > 0
        assert has.sum() > 300  # (the Pilatus's gaps cross the ring)
        assert got.intensity[has].min() > 120 and got.intensity.max() < 10000
        np.testing.assert_allclose(got.intensity[has], want.intensity[has], rtol=1e-4)
        np.testing.assert_allclose(got.radial, want.radial, rtol=1e-9, atol=1e-9)


def _pyfai_named(g: PoniGeometry, name: str = "Pilatus100k") -> Any:
    import pyFAI.detectors
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator as PyFAI

    return PyFAI(dist=g.dist, poni1=g.poni1, poni2=g.poni2, rot1=g.rot1, rot2=g.rot2,
                 rot3=g.rot3, detector=pyFAI.detectors.detector_factory(name),
                 wavelength=g.wavelength)


def test_a_stack_gives_a_profile_per_frame(ours: AzimuthalIntegrator) -> None:
    frames = np.stack([FRAME, FRAME * 2, _dirty(FRAME)])
    kw = dict(radial_unit="2th_deg", dummy=-5.0, delta_dummy=0.5)
    got = ours.integrate_radial(frames, 24, **kw)
    assert got.intensity.shape == got.count.shape == (3, 24)
    for k in range(3):
        one = ours.integrate_radial(frames[k], 24, **kw)
        np.testing.assert_allclose(got.intensity[k], one.intensity, rtol=1e-12)
    np.testing.assert_allclose(got.intensity[1], 2 * got.intensity[0], rtol=1e-6)


@pytest.mark.parametrize(("kw", "error", "message"), [
    (dict(unit="q_nm^-1"), ValueError,
     r"integrate_radial: unit is the profile's azimuthal unit: unknown azimuthal unit "
     r"'q_nm\^-1'; valid: chi_deg, chi_rad \(the radial unit summed over is radial_unit\)"),
    (dict(radial_unit="chi_deg"), ValueError, r"unknown radial unit 'chi_deg'"),
    (dict(error_model="poisson"), TypeError, r"unexpected keyword argument 'error_model'"),
    (dict(npt_azim=10), TypeError, r"unexpected keyword argument 'npt_azim'"),
])
def test_arguments_pyfai_does_not_take_are_refused(ours: AzimuthalIntegrator,
                                                   kw: dict[str, Any], error: type,
                                                   message: str) -> None:
    """A radial unit given as ``unit`` (pyFAI fails with an AttributeError about None), an
    error model or an azimuthal bin count (pyFAI's own TypeError)."""
    with pytest.raises(error, match=message):
        ours.integrate_radial(FRAME, 36, **kw)
