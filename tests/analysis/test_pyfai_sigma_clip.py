"""``sigma_clip_ng`` side by side with pyFAI's own (its default method, ``("no", "csr",
"cython")``): both error models, thresholds and rounds, masks, dummies, NaN, ranges and
corrections, on a powder frame with hot pixels (what the clipping is for)."""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pytest

from analysis.azint import AzimuthalIntegrator
from tests.analysis.test_pyfai_parity import FRAME, MASK, TILTED, _dirty, _pyfai

pyFAI = pytest.importorskip("pyFAI")
logging.getLogger("pyFAI").setLevel(logging.ERROR)

HOT = FRAME.copy()
HOT[np.random.default_rng(3).random(HOT.shape) < 0.01] = 3000.0  # zingers / hot pixels

CASES: dict[str, dict[str, Any]] = {
    "poisson": dict(error_model="poisson"),
    "azimuthal": dict(error_model="azimuthal"),
    "azimuthal-2th-mask-3-sigma-10-rounds": dict(error_model="azimuthal", unit="2th_deg",
                                                 mask=MASK, thres=3, max_iter=10),
    "nan-dummy-radial-range": dict(data=_dirty(HOT), error_model="poisson", dummy=-5.0,
                                   delta_dummy=0.5, radial_range=(5, 40)),
    "corrections-azimuth-range": dict(
        error_model="azimuthal", dark=np.full(HOT.shape, 3.0, np.float32),
        flat=np.linspace(0.8, 1.2, HOT.size, dtype=np.float32).reshape(HOT.shape),
        polarization_factor=0.95, normalization_factor=2.5, azimuth_range=(-120, 75)),
    "one-round": dict(error_model="azimuthal", max_iter=1, unit="r_mm"),
}


@pytest.fixture(scope="module")
def ours() -> AzimuthalIntegrator:
    return AzimuthalIntegrator(TILTED)


@pytest.mark.parametrize("case", list(CASES))
def test_sigma_clip_ng_is_pyfais(ours: AzimuthalIntegrator, case: str) -> None:
    kw = dict(CASES[case])
    data = kw.pop("data", HOT)
    want = _pyfai(TILTED).sigma_clip_ng(data, 40, **kw)
    got = ours.sigma_clip_ng(data, 40, **kw)
    assert got.unit == want.unit.name and got.error_model == kw["error_model"]
    np.testing.assert_allclose(got.radial, want.radial, rtol=1e-12)
    # pyFAI reports a count of at least 3 for a bin whose clipping stopped early (it
    # raises its copy of the count for Chauvenet's criterion): only there may they differ
    quirk = (want.count == 3) & (got.count > 0) & (got.count < 3)
    assert np.array_equal(got.count[~quirk], want.count[~quirk])
    has = want.count > 0
    assert has.sum() > 20
    for name in ("intensity", "std", "sem", "sigma", "sum_signal", "sum_normalization",
                 "sum_normalization2", "sum_variance"):
        a, b = np.asarray(getattr(got, name)), np.asarray(getattr(want, name))
        worst = float(np.max(np.abs(a[has] - b[has]) / np.abs(b[has])))
        assert worst < 1e-6, f"{name}: relative difference {worst:.2e}"  # (1e-7 measured)
        assert np.array_equal(a[~has], b[~has]), name


def hot_background(ai: AzimuthalIntegrator) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A flat Poisson background (mean 100), the same with 0.5 % hot pixels, and the
    integration arguments; checks that integrate1d's mean is pulled up by them."""
    rng = np.random.default_rng(8)
    flat = rng.poisson(100.0, TILTED.shape).astype(np.float32)
    hot = flat.copy()
    hot[rng.random(hot.shape) < 0.005] = 1e5
    kw: dict[str, Any] = dict(unit="2th_deg", correctSolidAngle=False, method="no")
    assert (ai.integrate1d(hot, 30, **kw).intensity > 150).sum() > 20
    return flat, hot, kw


def test_the_clipped_mean_is_the_background(ours: AzimuthalIntegrator) -> None:
    """What users call it for: with hot pixels on a flat background, the clipped mean of
    every bin is the background's mean, where integrate1d's mean is pulled up."""
    flat, hot, kw = hot_background(ours)
    clean = ours.integrate1d(flat, 30, **kw)
    clipped = ours.sigma_clip_ng(hot, 30, error_model="azimuthal", thres=3, **kw)
    np.testing.assert_allclose(clipped.intensity, clean.intensity, rtol=0.05)
    assert np.all(np.abs(clipped.intensity - 100.0) < 5 * clipped.sem + 1.0)


@pytest.mark.parametrize(("call", "model"), [("sigma_clip_ng", "azimuthal"),
                                             ("medfilt1d_ng", "poisson")])
def test_a_stack_is_one_call_per_frame(ours: AzimuthalIntegrator, call: str,
                                       model: str) -> None:
    frames = np.stack([HOT, FRAME, HOT * 2])
    got = getattr(ours, call)(frames, 30, error_model=model)
    assert got.intensity.shape == got.count.shape == got.sigma.shape == (3, 30)
    for k in range(3):
        one = getattr(ours, call)(frames[k], 30, error_model=model)
        np.testing.assert_array_equal(got.intensity[k], one.intensity)


def test_sigma_clip_is_sigma_clip_ng(ours: AzimuthalIntegrator) -> None:
    """pyFAI's current name for the same call."""
    np.testing.assert_array_equal(ours.sigma_clip(HOT, 30, error_model="poisson").intensity,
                                  ours.sigma_clip_ng(HOT, 30, error_model="poisson").intensity)


@pytest.mark.parametrize(("kw", "message"), [
    ({}, "sigma_clip_ng needs error_model='poisson' or 'azimuthal'"),
    (dict(error_model=None), "sigma_clip_ng needs error_model="),
    (dict(error_model="hybrid"), "pyFAI's 'hybrid' error model is not offered"),
    (dict(error_model="poisson", method="bbox"),
     "sigma_clip_ng runs without pixel splitting: method 'bbox' splits pixels"),
    (dict(error_model="poisson", method=("full", "csr", "cython")),
     "method ('full', 'csr', 'cython') splits pixels"),
    (dict(error_model="poisson", variance=np.ones(TILTED.shape)),
     "sigma_clip_ng: a variance array is not offered"),
    (dict(error_model="poisson", absorption=np.ones(TILTED.shape)),
     "sigma_clip_ng: a absorption array is not offered"),
    (dict(error_model="poisson", thres=-1), "thres must be a finite number >= 0, got -1"),
    (dict(error_model="poisson", max_iter=2.5), "max_iter must be a whole number, got 2.5"),
    (dict(error_model="poisson", max_iter=float("nan")), "max_iter must be a finite"),
])
def test_what_is_not_offered_is_refused(ours: AzimuthalIntegrator, kw: dict[str, Any],
                                        message: str) -> None:
    """pyFAI's default (no error model) returns zeros from its Cython engine, and it only
    warns about pixel splitting: both are refused here, naming the argument."""
    with pytest.raises(ValueError, match=re.escape(message)):
        ours.sigma_clip_ng(HOT, 30, **kw)


def test_pyfais_default_is_no_answer() -> None:
    """Why error_model=None is refused: pyFAI's own default returns 0 in every bin."""
    want = _pyfai(TILTED).sigma_clip_ng(HOT, 30)
    assert np.all(want.intensity == 0) and np.all(want.count == 0)
