"""``separate`` — Bragg and amorphous images from the azimuthal median projected back —
side by side with pyFAI's, on the hot-pixel powder frame and on a Pilatus 100k whose gaps
are restored (pyFAI's non-regression test #2473 calls it with the defaults)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from analysis.azint import AzimuthalIntegrator
from geometry import PoniGeometry
from tests.analysis.test_pyfai_parity import MASK, TILTED, _powder, _pyfai
from tests.analysis.test_pyfai_radial import CENTRED, _pyfai_named
from tests.analysis.test_pyfai_sigma_clip import HOT

pyFAI = pytest.importorskip("pyFAI")
logging.getLogger("pyFAI").setLevel(logging.ERROR)


def _same(got: Any, want: Any, tol: float = 1e-6) -> None:
    bragg, amorphous = got
    want_bragg, want_amorphous = want
    assert len(got) == 2 and bragg.shape == want_bragg.shape
    scale = float(np.abs(want_amorphous).max())
    np.testing.assert_allclose(amorphous, want_amorphous, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(bragg, want_bragg, rtol=0, atol=tol * scale)
    np.testing.assert_allclose(got.radial, want.radial, rtol=1e-12)
    np.testing.assert_allclose(got.intensity, want.intensity, rtol=tol, atol=1e-9)
    assert got.unit == want.unit.name if hasattr(want.unit, "name") else want.unit


@pytest.mark.parametrize("kw", [
    {}, dict(mask=MASK, polarization_factor=0.95, percentile=(20, 80), unit="q_nm^-1"),
    dict(mask=MASK, restore_mask=False, method=("no", "csr", "cython"))],
    ids=["defaults", "mask-polarization-trimmed-q", "mask-not-restored-no-split"])
def test_separate_is_pyfais(kw: dict[str, Any]) -> None:
    want = _pyfai(TILTED).separate(HOT, 100, **kw)
    got = AzimuthalIntegrator(TILTED).separate(HOT, 100, **kw)
    _same(got, want)
    if "mask" in kw:
        restored = np.array_equal(got.amorphous[MASK], HOT[MASK])
        assert restored == kw.get("restore_mask", True)


PILATUS300K = PoniGeometry(dist=CENTRED.dist, poni1=0.05, poni2=CENTRED.poni2, rot1=0.01,
                           rot2=-0.02, detector="Pilatus300k", wavelength=1.0e-10)


def test_a_pilatus_frame_keeps_its_gaps() -> None:
    """pyFAI's #2473 (``ai.separate(data)`` with the defaults) on a Pilatus 300k: its
    gaps, masked by the detector, hold the frame's value (-1) in both images."""
    frame = _powder(PILATUS300K, seed=4)
    ours = AzimuthalIntegrator(PILATUS300K)
    frame[ours.geometry.detector.mask] = -1
    got = ours.separate(frame)
    want = _pyfai_named(PILATUS300K, "Pilatus300k").separate(frame)
    # full splitting, 1024 bins: in one bin the median is the neighbouring pixel (3e-4
    # away), pyFAI's float32 pixel corners moving a cumulative weight across the half
    _same(got, want, tol=1e-3)
    gaps = ours.geometry.detector.mask
    assert gaps.any() and np.all(got.bragg[gaps] == -1) and np.all(got.amorphous[gaps] == -1)


def test_the_bragg_image_holds_the_hot_pixels() -> None:
    ours = AzimuthalIntegrator(TILTED)
    bragg, amorphous = ours.separate(HOT, 100, method="no")
    hot = HOT == 3000.0
    assert np.all(bragg[hot] > 2500)
    assert np.abs(np.median(bragg[~hot])) < 3.0  # the powder rings went to amorphous
    stack = ours.separate(np.stack([HOT, HOT * 2]), 100, method="no")
    np.testing.assert_allclose(stack.amorphous[1], 2 * amorphous, rtol=1e-6)


def test_restore_mask_must_be_a_bool() -> None:
    with pytest.raises(ValueError, match=r"restore_mask must be True or False, got 'no'"):
        AzimuthalIntegrator(TILTED).separate(HOT, 100, restore_mask="no")
