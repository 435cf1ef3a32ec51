"""pyFAI's geometry attributes on the integrator, set as pyFAI's documentation sets them
(``ai = pyFAI.load("file.poni"); ai.wavelength = 1.54e-10``): the next integration uses
the new geometry, as pyFAI's does. Before, ``ai.wavelength = ...`` made a new attribute
that nothing read, and ``ai.geometry = ...`` after an integration kept the old geometry's
cached matrix: the old geometry's pattern, without an error.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

from analysis.azint import AzimuthalIntegrator
from geometry import photon_energy
from tests.analysis.test_pyfai_parity import FRAME, TILTED, _agree, _pyfai

pytest.importorskip("pyFAI")
logging.getLogger("pyFAI").setLevel(logging.ERROR)

CHANGES: dict[str, Any] = {"wavelength": 1.6e-10, "dist": 0.05, "poni1": 0.004,
                           "poni2": 0.0065, "rot1": 0.02, "rot2": 0.01, "rot3": -0.3,
                           "energy": 17.0}


@pytest.mark.parametrize("name", list(CHANGES))
def test_a_geometry_attribute_set_as_pyfai_sets_it_changes_the_next_pattern(
        name: str) -> None:
    ours, theirs = AzimuthalIntegrator(TILTED), _pyfai(TILTED)
    ours.integrate1d(FRAME, 60)  # (a matrix cached for the old geometry)
    setattr(ours, name, CHANGES[name])
    setattr(theirs, name, CHANGES[name])
    assert getattr(ours, name) == pytest.approx(getattr(theirs, name), rel=1e-12)
    kw = dict(unit="q_nm^-1", error_model="poisson", method=("no", "csr", "cython"))
    _agree(ours.integrate1d(FRAME, 60, **kw), theirs.integrate1d(FRAME, 60, **kw))
    kw2 = dict(kw, unit="2th_deg")
    got, want = ours.integrate2d(FRAME, 30, 12, **kw2), theirs.integrate2d(FRAME, 30, 12, **kw2)
    np.testing.assert_allclose(got.radial, want.radial, rtol=1e-6)
    has = want.count > 0
    assert has.sum() > 100
    np.testing.assert_allclose(got.count, want.count, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(got.intensity[has], want.intensity[has], rtol=1e-5)


def test_energy_is_the_wavelength_in_kev() -> None:
    ours = AzimuthalIntegrator(TILTED)
    assert ours.energy == pytest.approx(photon_energy(TILTED.wavelength), rel=1e-12)
    ours.energy = 24.8
    assert photon_energy(ours.geometry.wavelength) == pytest.approx(24.8, rel=1e-12)


def test_a_new_geometry_after_an_integration_is_the_one_integrated_with() -> None:
    ours = AzimuthalIntegrator(TILTED)
    before = ours.integrate1d(FRAME, 60)
    moved = TILTED.replace(dist=0.08, wavelength=1.6e-10)
    ours.geometry = moved
    got = ours.integrate1d(FRAME, 60)
    want = AzimuthalIntegrator(moved).integrate1d(FRAME, 60)
    assert not np.allclose(got.radial, before.radial)
    np.testing.assert_array_equal(got.radial, want.radial)
    np.testing.assert_array_equal(got.intensity, want.intensity)


def test_a_bad_geometry_value_is_refused_and_changes_nothing() -> None:
    ours = AzimuthalIntegrator(TILTED)
    with pytest.raises(ValueError, match=r"PoniGeometry\.dist must be a positive finite "
                                         r"number, got -1"):
        ours.dist = -1
    with pytest.raises(ValueError, match="energy must be a positive finite number of keV, "
                                         "got 0"):
        ours.energy = 0
    with pytest.raises(TypeError, match="geometry must be a PoniGeometry, got dict"):
        ours.geometry = {"dist": 0.1}  # type: ignore[assignment]
    assert ours.geometry is TILTED


@pytest.mark.parametrize("name", ["mask", "detector", "chiDiscAtPi", "pixel1", "flat"])
def test_a_pyfai_attribute_it_does_not_have_is_refused_not_ignored(name: str) -> None:
    ours = AzimuthalIntegrator(TILTED)
    with pytest.raises(AttributeError, match=f"AzimuthalIntegrator has no setting {name!r}"
                                             r": .* dist, poni1, poni2, rot1, rot2, rot3, "
                                             r"wavelength, energy"):
        setattr(ours, name, 1)


def test_the_kernel_set_after_an_integration_is_the_next_ones() -> None:
    """``ai.kernel = ...`` after an integration makes the next use it, as a new integrator
    with that kernel would (review of 3880246: it was stored and the cached plans kept the
    old one); a kernel that does not exist and a new OpenCL runtime are refused."""
    method = ("no", "csr", "opencl")
    ai = AzimuthalIntegrator(TILTED, kernel="private")
    first = ai.integrate1d(FRAME, 60, method=method)
    assert [e.kind for e in ai._engines.values()] == ["hist"]
    ai.kernel = "csr"
    again = ai.integrate1d(FRAME, 60, method=method)
    fresh = AzimuthalIntegrator(TILTED, kernel="csr")
    fresh.integrate1d(FRAME, 60, method=method)
    assert [e.kind for e in ai._engines.values()] == [e.kind for e in fresh._engines.values()]
    np.testing.assert_allclose(again.intensity, first.intensity, rtol=1e-5)
    with pytest.raises(ValueError, match="unknown kernel 'fast'"):
        ai.kernel = "fast"
    assert ai.kernel == "csr"
    with pytest.raises(AttributeError):
        ai.rt = fresh.rt  # type: ignore[misc]
