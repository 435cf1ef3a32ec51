"""OpenCL azimuthal integration against its numpy reference, and bad-input messages."""

from __future__ import annotations

import numpy as np
import pyopencl.array as cla
import pytest

from analysis.azint import AzimuthalIntegrator
from geometry import PoniGeometry

GEOMETRY = PoniGeometry(dist=0.08, poni1=0.012, poni2=0.02, rot1=0.07, rot2=-0.04, rot3=0.3,
                        pixel1=100e-6, pixel2=100e-6, shape=(256, 320), wavelength=1.2e-10)
RNG = np.random.default_rng(7)
FRAME = RNG.poisson(2.0 + 40.0 * (np.sin(GEOMETRY.tth() * 60) ** 8)).astype(np.float32)
MASK = np.zeros(GEOMETRY.shape, dtype=bool)
MASK[40:60, :] = True
MASK[:, 200:205] = True
DARK = RNG.poisson(1.0, GEOMETRY.shape).astype(np.float32)
FLAT = RNG.uniform(0.8, 1.2, GEOMETRY.shape).astype(np.float32)


@pytest.fixture(scope="module", params=["private", "gather"])
def ai(request: pytest.FixtureRequest) -> AzimuthalIntegrator:
    return AzimuthalIntegrator(GEOMETRY, method=request.param)


def _close(got: np.ndarray | None, want: np.ndarray | None) -> None:
    assert got is not None and want is not None
    assert np.allclose(got, want, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("unit", ["2th_deg", "q_nm^-1", "r_mm"])
@pytest.mark.parametrize("options", [
    {"error_model": "poisson"},
    {"mask": MASK, "polarization_factor": 0.95, "error_model": "poisson"},
    {"mask": MASK, "dark": DARK, "flat": FLAT, "correct_solid_angle": False},
    {"radial_range": None},
])
def test_1d_matches_reference(ai: AzimuthalIntegrator, unit: str,
                              options: dict[str, object]) -> None:
    got = ai.integrate1d(FRAME, 200, unit=unit, **options)  # type: ignore[arg-type]
    want = ai.reference1d(FRAME, 200, unit=unit, **options)  # type: ignore[arg-type]
    assert got.unit == unit and got.radial.shape == (200,)
    assert np.array_equal(got.radial, want.radial)
    _close(got.intensity, want.intensity)
    _close(got.sum_signal, want.sum_signal)
    assert np.array_equal(got.count, want.count)
    if options.get("error_model") is None:
        assert got.sigma is None and got.sum_variance is None
    else:
        _close(got.sigma, want.sigma)
        _close(got.sum_variance, want.sum_variance)
    assert got.count.sum() > 0.9 * (~MASK).sum()


def test_reference_is_a_plain_weighted_histogram(ai: AzimuthalIntegrator) -> None:
    """Independent check of the reference: mean of (x − dark)/norm per bin over pixels."""
    r = ai.reference1d(FRAME, 50, unit="2th_deg", dark=DARK, flat=FLAT, mask=MASK,
                       error_model="poisson")
    plan = ai.plan1d(50, unit="2th_deg", dark=DARK, flat=FLAT, mask=MASK)
    bins = plan.bins
    keep = bins < 50
    x = (FRAME.ravel() - DARK.ravel())[keep].astype(np.float64)
    norm = (FLAT * GEOMETRY.solid_angle().astype(np.float32)).ravel()[keep].astype(np.float64)
    signal = np.bincount(bins[keep], x, minlength=50)
    normsum = np.bincount(bins[keep], norm, minlength=50)
    var = np.bincount(bins[keep], np.maximum(1.0, FRAME.ravel()[keep]), minlength=50)
    has = normsum > 0
    assert np.allclose(r.intensity[has], signal[has] / normsum[has], rtol=1e-6)
    assert r.sigma is not None
    assert np.allclose(r.sigma[has], np.sqrt(var[has]) / normsum[has], rtol=1e-6)
    # the bin of each pixel contains its 2θ
    edges = np.radians(r.radial[0] - (r.radial[1] - r.radial[0]) / 2) + plan.radial.delta * (
        np.arange(51))
    tth = GEOMETRY.tth().ravel()[keep]
    assert np.all(tth >= edges[bins[keep]] - 1e-12) and np.all(tth < edges[bins[keep] + 1])


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
def test_frame_dtypes(ai: AzimuthalIntegrator, dtype: type) -> None:
    frame: np.ndarray = FRAME.astype(dtype)
    got = ai.integrate1d(frame, 100, mask=MASK, error_model="poisson")
    want = ai.reference1d(FRAME, 100, mask=MASK, error_model="poisson")
    _close(got.intensity, want.intensity)
    _close(got.sigma, want.sigma)


def test_fractional_counts_variance_floor(ai: AzimuthalIntegrator) -> None:
    frame = (FRAME * 0.3).astype(np.float32)  # many pixels below 1: variance max(1, x)
    got = ai.integrate1d(frame, 80, error_model="poisson")
    want = ai.reference1d(frame, 80, error_model="poisson")
    _close(got.sum_variance, want.sum_variance)
    assert got.sum_variance is not None
    assert np.all(got.sum_variance >= got.count - 1e-9)


def test_device_frame(ai: AzimuthalIntegrator) -> None:
    dev = cla.to_device(ai.rt.queue, FRAME)
    got = ai.integrate1d(dev, 120, unit="q_nm^-1", mask=MASK)
    want = ai.reference1d(FRAME, 120, unit="q_nm^-1", mask=MASK)
    _close(got.intensity, want.intensity)


@pytest.mark.parametrize("options", [
    {"error_model": "poisson"},
    {"mask": MASK, "polarization_factor": 0.5, "dark": DARK, "flat": FLAT},
    {"radial_range": (2.0, 20.0), "azimuth_range": (-90.0, 45.0), "unit": "2th_deg"},
    {"unit": "r_mm", "error_model": None},
])
def test_2d_cake_matches_reference(options: dict[str, object]) -> None:
    ai = AzimuthalIntegrator(GEOMETRY)  # auto: 'gather' for this many bins
    got = ai.integrate2d(FRAME, 90, 72, **options)  # type: ignore[arg-type]
    want = ai.reference2d(FRAME, 90, 72, **options)  # type: ignore[arg-type]
    assert got.intensity.shape == (72, 90) and got.azimuthal.shape == (72,)
    assert np.array_equal(got.radial, want.radial)
    assert np.array_equal(got.azimuthal, want.azimuthal)
    _close(got.intensity, want.intensity)
    _close(got.sum_signal, want.sum_signal)
    assert np.array_equal(got.count, want.count)
    if options.get("error_model") is not None:
        _close(got.sigma, want.sigma)
    else:
        assert got.sigma is None
    if "azimuth_range" in options:
        assert got.azimuthal[0] > -90 and got.azimuthal[-1] < 45


def test_cake_sums_to_pattern() -> None:
    """Summing the cake over χ gives the 1D pattern's sums (same radial bins)."""
    ai = AzimuthalIntegrator(GEOMETRY, method="private")
    one = ai.integrate1d(FRAME, 40, mask=MASK)
    cake = AzimuthalIntegrator(GEOMETRY).integrate2d(FRAME, 40, 36, mask=MASK,
                                                     radial_range=(one.radial[0] - 0.5 * (
                                                         one.radial[1] - one.radial[0]),
                                                         one.radial[-1] + 0.5 * (
                                                         one.radial[1] - one.radial[0])))
    assert np.allclose(cake.count.sum(axis=0), one.count, atol=2)
    assert np.allclose(cake.sum_signal.sum(axis=0), one.sum_signal, rtol=0.02)


def test_bad_inputs() -> None:
    ai = AzimuthalIntegrator(GEOMETRY)
    with pytest.raises(ValueError, match=r"frame has shape \(10, 10\), expected \(256, 320\)"):
        ai.integrate1d(np.zeros((10, 10), np.float32), 10)
    with pytest.raises(ValueError, match=r"unknown unit 'q_A\^-1'; valid units: 2th_deg, "
                                         r"q_nm\^-1, r_mm"):
        ai.integrate1d(FRAME, 10, unit="q_A^-1")
    with pytest.raises(ValueError, match="npt must be an integer >= 1, got 0"):
        ai.integrate1d(FRAME, 0)
    with pytest.raises(ValueError, match="npt_azim must be an integer >= 1, got -3"):
        ai.integrate2d(FRAME, 10, -3)
    with pytest.raises(TypeError, match="frame dtype float64 is not supported; use one of "
                                        "uint16, int32, float32"):
        ai.integrate1d(FRAME.astype(np.float64), 10)
    with pytest.raises(ValueError, match=r"mask has shape \(3, 3\), expected \(256, 320\)"):
        ai.integrate1d(FRAME, 10, mask=np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="radial_range must be finite with min < max"):
        ai.integrate1d(FRAME, 10, radial_range=(5.0, 1.0))
    with pytest.raises(ValueError, match="unknown error_model 'gauss'"):
        ai.integrate1d(FRAME, 10, error_model="gauss")
    with pytest.raises(ValueError, match=r"polarization_factor must be in \[-1, 1\]"):
        ai.integrate1d(FRAME, 10, polarization_factor=2.0)
    with pytest.raises(ValueError, match="everything masked"):
        ai.integrate1d(FRAME, 10, mask=np.ones(GEOMETRY.shape, bool))
    with pytest.raises(ValueError, match="method 'private' handles at most 4096 bins"):
        AzimuthalIntegrator(GEOMETRY, method="private").integrate2d(FRAME, 100, 100)
    with pytest.raises(ValueError, match="unknown method 'fast'; valid methods: auto, "
                                         "private, gather"):
        AzimuthalIntegrator(GEOMETRY, method="fast")
    with pytest.raises(TypeError, match="frame must be a numpy array or a pyopencl array"):
        ai.integrate1d([[1.0]], 10)


def test_stack_gives_one_pattern_per_frame_and_unpacks_like_pyfai(ai: AzimuthalIntegrator
                                                                   ) -> None:
    frames = np.stack([FRAME, FRAME * 2, FRAME + 1])
    res = ai.integrate1d(frames, 64, mask=MASK, error_model="poisson")
    assert res.intensity.shape == (3, 64) and res.sigma is not None
    for k in range(3):
        one = ai.integrate1d(frames[k], 64, mask=MASK, error_model="poisson")
        assert np.array_equal(res.intensity[k], one.intensity)
        assert one.sigma is not None and np.array_equal(res.sigma[k], one.sigma)
    x, intensity, sigma = res
    assert x.shape == (64,) and intensity is res.intensity and sigma is res.sigma
    x, intensity = ai.integrate1d(FRAME, 64)
    assert intensity.shape == (64,)
