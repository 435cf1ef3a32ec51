"""``medfilt1d_ng`` side by side with pyFAI's own (CSR, Cython): the weighted median and
trimmed means in each splitting, with masks, ranges and corrections, on a powder frame
with hot pixels (the sigma-clipping tests' frame); and with NaN or dummy pixels, where pyFAI's answer is its answer for
those pixels masked (see ``test_nan_and_dummy_pixels_are_left_out``)."""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import pytest

from analysis.azint import AzimuthalIntegrator
from tests.analysis.test_pyfai_parity import MASK, TILTED, _dirty, _powder, _pyfai
from tests.analysis.test_pyfai_radial import _pyfai_named
from tests.analysis.test_pyfai_separate import PILATUS300K
from tests.analysis.test_pyfai_sigma_clip import HOT, hot_background

pyFAI = pytest.importorskip("pyFAI")
logging.getLogger("pyFAI").setLevel(logging.ERROR)

CASES: dict[str, dict[str, Any]] = {
    "defaults": {},  # the median, full splitting, q in nm^-1, no error model
    "poisson-no-split": dict(error_model="poisson", method=("no", "csr", "cython")),
    "trimmed-bbox-mask-2th": dict(percentile=(20, 80), method=("bbox", "csr", "cython"),
                                  error_model="poisson", unit="2th_deg", mask=MASK),
    "10th-percentile-radial-range": dict(percentile=10, method=("no", "csr", "cython"),
                                         radial_range=(5, 40)),
    "corrections-azimuth-range": dict(
        dark=np.full(HOT.shape, 3.0, np.float32),
        flat=np.linspace(0.8, 1.2, HOT.size, dtype=np.float32).reshape(HOT.shape),
        polarization_factor=0.95, normalization_factor=2.5, azimuth_range=(-120, 75),
        error_model="poisson"),
}


@pytest.fixture(scope="module")
def ours() -> AzimuthalIntegrator:
    return AzimuthalIntegrator(TILTED)


def _same(got: Any, want: Any) -> None:
    np.testing.assert_allclose(got.radial, want.radial, rtol=1e-12)
    assert np.array_equal(got.count, want.count)  # the same pixels are chosen
    has = want.count > 0
    assert has.sum() > 20
    names = ["intensity", "sum_signal", "sum_normalization", "sum_normalization2"]
    if want.sigma is None:
        assert got.sigma is None and got.std is None and got.sum_variance is None
    else:
        names += ["sigma", "std", "sem", "sum_variance"]
    for name in names:
        a, b = np.asarray(getattr(got, name)), np.asarray(getattr(want, name))
        worst = float(np.max(np.abs(a[has] - b[has]) / np.abs(b[has])))
        assert worst < 1e-5, f"{name}: relative difference {worst:.2e}"  # (3e-6 measured)
        assert np.array_equal(a[~has], b[~has]), name


@pytest.mark.parametrize("case", list(CASES))
def test_medfilt1d_ng_is_pyfais(ours: AzimuthalIntegrator, case: str) -> None:
    kw = CASES[case]
    want = _pyfai(TILTED).medfilt1d_ng(HOT, 40, **kw)
    got = ours.medfilt1d_ng(HOT, 40, **kw)
    assert got.unit == want.unit.name
    _same(got, want)


@pytest.mark.parametrize("kind", ["nan", "dummy", "both"])
def test_nan_and_dummy_pixels_are_left_out(ours: AzimuthalIntegrator, kind: str) -> None:
    """A NaN or dummy pixel does not count: the median is that of the other pixels, which
    is pyFAI's answer with those pixels masked. (pyFAI's own answer for the frame with
    them differs in a few bins — 94 for 206 in one: its CSR engine sorts the pixels by
    value with NaN keys for them.)"""
    bad = np.random.default_rng(2).random(HOT.shape) < 0.05
    kw: dict[str, Any] = dict(method=("no", "csr", "cython"), error_model="poisson")
    if kind == "nan":
        data = np.where(bad, np.nan, HOT)
    elif kind == "dummy":
        data = np.where(bad, -5.0, HOT).astype(np.float32)
        kw.update(dummy=-5.0)
    else:
        data = _dirty(HOT)
        bad = ~np.isfinite(data) | (np.abs(data + 5.0) <= 0.5)
        kw.update(dummy=-5.0, delta_dummy=0.5)
    got = ours.medfilt1d_ng(data, 40, **kw)
    masked = {k: v for k, v in kw.items() if k not in ("dummy", "delta_dummy")}
    _same(got, _pyfai(TILTED).medfilt1d_ng(HOT, 40, mask=bad, **masked))


def test_the_median_is_the_background(ours: AzimuthalIntegrator) -> None:
    """What users call it for: hot pixels on a flat background leave the median at the
    background, where integrate1d's mean is pulled up."""
    _, hot, kw = hot_background(ours)
    median = ours.medfilt1d_ng(hot, 30, **kw)
    assert np.all(np.abs(median.intensity - 100.0) < 6.0)


@pytest.mark.parametrize(("kw", "message"), [
    (dict(error_model="azimuthal"), "medfilt1d_ng: error_model 'azimuthal' is not offered"),
    (dict(percentile=101), "percentile must be a number in [0, 100] or two of them, got 101"),
    (dict(percentile=(10, 50, 90)), "got (10, 50, 90)"),
    (dict(percentile="median"), "got 'median'"),
    (dict(percentile=float("nan")), "got nan"),
    (dict(variance=np.ones(TILTED.shape)), "medfilt1d_ng: a variance array is not offered"),
    (dict(method="pseudo"), "'pseudo' splitting is not offered"),
])
def test_what_is_not_offered_is_refused(ours: AzimuthalIntegrator, kw: dict[str, Any],
                                        message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ours.medfilt1d_ng(HOT, 30, **kw)


@pytest.mark.parametrize("call", ["medfilt1d_ng", "sigma_clip_ng"])
def test_a_dectris_frames_flagged_pixels_are_left_out(call: str) -> None:
    """``dummy=None`` is the detector's dummy (-2 ± 1.5 for a Pilatus), as in
    ``integrate1d`` — pyFAI's ``integrate1d`` too, where its ``medfilt1d_ng`` and
    ``sigma_clip_ng`` take the flagged pixels as values of -2 (41-44 bins of 200 differ).
    The answer is pyFAI's when told the dummy (or, for the median, whose pyFAI sort meets
    NaN keys for them, when the flagged pixels are masked)."""
    frame = _powder(PILATUS300K, seed=4)
    ours = AzimuthalIntegrator(PILATUS300K)
    gaps = ours.geometry.detector.mask
    frame[gaps] = -1
    frame[100:110, 100:300] = -2  # flagged pixels, as Pilatus files hold them
    theirs = _pyfai_named(PILATUS300K, "Pilatus300k")
    kw: dict[str, Any] = dict(method=("no", "csr", "cython"), error_model="poisson")
    got = getattr(ours, call)(frame, 200, **kw)
    if call == "medfilt1d_ng":
        want = theirs.medfilt1d_ng(frame, 200, mask=gaps | (frame == -2), **kw)
    else:
        want = theirs.sigma_clip_ng(frame, 200, dummy=-2, delta_dummy=1.5, **kw)
    _same(got, want)
