"""Parity with pyFAI, run side by side: tilted geometries, every unit, every pixel
splitting, error models, dummy/NaN/mask/azimuth-range combinations, every frame type, 2D
cakes, and named-detector ``.poni`` files written by pyFAI and by hand.

pyFAI's CSR engines (``(split, "csr", "cython")``) are the reference; results must agree
to 1e-5 relative on every bin that has coverage (the issue asks for 1e-3), and bins without
coverage must hold the same empty value.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.azint import AzimuthalIntegrator
from geometry import RADIAL_UNITS, PoniGeometry, read_poni

pyFAI = pytest.importorskip("pyFAI")
import pyFAI.detectors as pyfai_detectors  # noqa: E402
from pyFAI.integrator.azimuthal import AzimuthalIntegrator as PyFAI  # noqa: E402

logging.getLogger("pyFAI").setLevel(logging.ERROR)

#: tilted, beam centre on the detector (pixels straddle the χ discontinuity)
TILTED = PoniGeometry(dist=0.04, poni1=0.0052, poni2=0.0071, rot1=0.12, rot2=-0.07, rot3=0.4,
                      pixel1=100e-6, pixel2=110e-6, shape=(96, 128), wavelength=0.8e-10)
SPLITS = ["no", "bbox", "full"]
TOL = 1e-5
TOL_SPLIT = 1e-4  # corners are float32 (pyFAI keeps them so): bin edges move by ~1e-7


def _powder(g: PoniGeometry, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tth = np.degrees(g.tth())
    rings = sum(a * np.exp(-0.5 * ((tth - c) / 0.15) ** 2)
                for a, c in ((400, 4.0), (250, 9.5), (600, 13.0), (150, 21.0)))
    return rng.poisson(20.0 + rings).astype(np.float32)


FRAME = _powder(TILTED)
MASK = np.zeros(TILTED.shape, dtype=bool)
MASK[30:36, :] = True
MASK[:, 90:94] = True


def _pyfai(g: PoniGeometry) -> Any:
    det = pyfai_detectors.Detector(g.pixel1, g.pixel2, max_shape=g.shape)
    return PyFAI(dist=g.dist, poni1=g.poni1, poni2=g.poni2, rot1=g.rot1, rot2=g.rot2,
                 rot3=g.rot3, detector=det, wavelength=g.wavelength)


@pytest.fixture(scope="module")
def ours() -> AzimuthalIntegrator:
    return AzimuthalIntegrator(TILTED)


@pytest.fixture
def theirs() -> Any:
    """A new pyFAI integrator for each test, while ``ours`` is shared by the module: pyFAI's
    answer depends on the calls before it. The first unit without a fast path in its
    ``corner_array`` (``d*2_*``: pyFAI/geometry/core.py ``position_array(corners=True)``)
    makes the detector cache its pixel corners as float32 (pyFAI/detectors/_common.py
    ``get_pixel_corners``); from then on ``calc_cartesian_positions`` interpolates every
    unit's corners from that cache instead of computing them in float64, so bin edges move
    by ~7e-8 relative and a bbox cake's counts by 5e-3 (``count``). Ours gives the same
    answer whatever ran before (``test_our_answer_does_not_depend_on_the_calls_before``)."""
    return _pyfai(TILTED)


def _agree(got: Any, want: Any, tol: float = TOL, skip: np.ndarray | None = None) -> None:
    """Every array pyFAI returns, bin by bin, on the bins with coverage."""
    has = np.asarray(want.count) > 0
    if skip is not None:
        has &= ~skip
    assert has.sum() > 0.5 * has.size
    assert np.allclose(got.radial, want.radial, rtol=1e-6, atol=1e-12)  # float32 corners
    pairs = [("count", "count"), ("intensity", "intensity"), ("sum_signal", "sum_signal"),
             ("sum_normalization", "sum_normalization")]
    if want.sigma is not None:
        pairs += [("sigma", "sigma"), ("sum_variance", "sum_variance"), ("std", "std")]
    else:
        assert got.sigma is None
    for ours_name, their_name in pairs:
        a, b = np.asarray(getattr(got, ours_name)), np.asarray(getattr(want, their_name))
        assert a.shape == b.shape, ours_name
        scale = np.maximum(np.abs(b[has]), 1e-6 * np.abs(b[has]).max())
        worst = float(np.max(np.abs(a[has] - b[has]) / scale))
        assert worst < tol, f"{ours_name}: relative difference {worst:.2e}"
    empty = ~(np.asarray(want.count) > 0)
    assert np.array_equal(got.intensity[empty], want.intensity[empty])


@pytest.mark.parametrize("unit", list(RADIAL_UNITS))
@pytest.mark.parametrize("split", SPLITS)
def test_every_unit_and_splitting(ours: AzimuthalIntegrator, theirs: Any, unit: str,
                                  split: str) -> None:
    kw = dict(unit=unit, mask=MASK, error_model="poisson")
    want = theirs.integrate1d(FRAME, 70, method=(split, "csr", "cython"), **kw)
    got = ours.integrate1d(FRAME, 70, method=(split, "csr", "opencl"), **kw)
    assert got.unit == unit
    _agree(got, want, tol=TOL if split == "no" else TOL_SPLIT)


def _dirty(frame: np.ndarray) -> np.ndarray:
    """NaN, infinite and dummy-valued pixels scattered over the frame."""
    rng = np.random.default_rng(9)
    out = frame.copy()
    out[rng.random(out.shape) < 0.02] = np.nan
    out[rng.random(out.shape) < 0.01] = np.inf
    out[rng.random(out.shape) < 0.02] = -5.0
    out[rng.random(out.shape) < 0.01] = -5.3  # within delta_dummy of -5
    return out


COMBOS: dict[str, dict[str, Any]] = {
    "nan-dummy-delta": dict(data=_dirty(FRAME), dummy=-5.0, delta_dummy=0.5),
    "nan-dummy-exact-mask": dict(data=_dirty(FRAME), dummy=-5.0, mask=MASK),
    "azimuth-range": dict(azimuth_range=(-120.0, 75.0), mask=MASK),
    "azimuth-range-to-180": dict(azimuth_range=(20.0, 180.0)),
    "azimuth-range-all": dict(azimuth_range=(-180.0, 180.0), mask=MASK),
    "radial-range": dict(radial_range=(3.0, 15.0), unit="2th_deg"),
    "corrections": dict(dark=np.full(TILTED.shape, 3.0, np.float32),
                        flat=np.linspace(0.8, 1.2, FRAME.size, dtype=np.float32
                                         ).reshape(TILTED.shape),
                        polarization_factor=0.95, correctSolidAngle=True),
    "no-solid-angle-normalisation": dict(correctSolidAngle=False, normalization_factor=2.5),
    "azimuthal-errors": dict(error_model="azimuthal", mask=MASK),
}


@pytest.mark.parametrize("combo", list(COMBOS))
@pytest.mark.parametrize("split", SPLITS)
def test_dummy_nan_mask_ranges_corrections(ours: AzimuthalIntegrator, theirs: Any,
                                           combo: str, split: str) -> None:
    kw = dict(COMBOS[combo])
    data = kw.pop("data", FRAME)
    kw.setdefault("error_model", "poisson")
    kw.setdefault("unit", "q_nm^-1")
    want = theirs.integrate1d(data, 60, method=(split, "csr", "cython"), **kw)
    got = ours.integrate1d(data, 60, method=(split, "csr", "opencl"), **kw)
    _agree(got, want, tol=TOL if split == "no" else TOL_SPLIT)


PILATUS = PoniGeometry(dist=0.12, poni1=0.014, poni2=0.045, rot1=0.03, rot2=-0.02,
                       rot3=0.1, detector="Pilatus100k", wavelength=1.0e-10)


@pytest.fixture(scope="module")
def pilatus_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tilted Pilatus 100k: the .poni pyFAI writes today, and an older hand-written one
    (version 2 with an empty detector config)."""
    folder = tmp_path_factory.mktemp("poni")
    g = PILATUS
    det = pyfai_detectors.Pilatus100k()
    ai = PyFAI(dist=g.dist, poni1=g.poni1, poni2=g.poni2, rot1=g.rot1, rot2=g.rot2,
               rot3=g.rot3, detector=det, wavelength=g.wavelength)
    current = folder / "current.poni"
    ai.write(str(current))
    older = folder / "older.poni"
    older.write_text("\n".join([
        "# Calibration done at Thu Feb 11 16:01:42 2021", "poni_version: 2",
        "Detector: Pilatus100k", "Detector_config: {}", f"Distance: {g.dist}",
        f"Poni1: {g.poni1}", f"Poni2: {g.poni2}", f"Rot1: {g.rot1}", f"Rot2: {g.rot2}",
        f"Rot3: {g.rot3}", f"Wavelength: {g.wavelength}", ""]))
    return {"current": current, "older": older}


def _pilatus_frame(dtype: np.dtype) -> np.ndarray:
    frame = _powder(PILATUS, seed=3)
    det = PILATUS.detector
    frame[det.mask] = -1  # what Pilatus files hold in the gaps
    frame[7, 100:140] = -2  # flagged pixels
    if dtype.kind == "u":  # unsigned frames hold the flags wrapped around
        return frame.astype(np.int64).astype(dtype)
    return frame.astype(dtype)


@pytest.mark.parametrize("name", ["current", "older"])
def test_named_detector_poni_files_with_defaults(pilatus_files: dict[str, Path],
                                                 name: str) -> None:
    """Both tools load the same file and integrate with their defaults (bbox splitting,
    q in nm⁻¹, the detector's gap mask and dummy value)."""
    path = pilatus_files[name]
    assert read_poni(path).detector.name == "Pilatus100k"
    theirs = pyFAI.load(str(path))
    ours = AzimuthalIntegrator.load(path)
    frame = _pilatus_frame(np.dtype(np.int32))
    _agree(ours.integrate1d(frame, 200), theirs.integrate1d(frame, 200))
    _agree(ours.integrate1d(frame, 200, error_model="poisson", unit="2th_deg"),
           theirs.integrate1d(frame, 200, error_model="poisson", unit="2th_deg"))


@pytest.fixture(scope="module")
def pilatus_pair(pilatus_files: dict[str, Path]) -> tuple[AzimuthalIntegrator, Any]:
    path = pilatus_files["current"]
    return AzimuthalIntegrator.load(path), pyFAI.load(str(path))


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "int16", "int32", "float32",
                                   "float64"])
def test_every_frame_type(pilatus_pair: tuple[AzimuthalIntegrator, Any], dtype: str) -> None:
    ours, theirs = pilatus_pair
    frame = _pilatus_frame(np.dtype(dtype))
    kw = dict(unit="2th_deg", error_model="poisson", method=("bbox", "csr", "cython"))
    _agree(ours.integrate1d(frame, 150, **kw), theirs.integrate1d(frame, 150, **kw))


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("azimuthal", ["chi_deg", "chi_rad"])
def test_cakes(ours: AzimuthalIntegrator, theirs: Any, split: str, azimuthal: str) -> None:
    rng = (-150.0, 100.0) if azimuthal == "chi_deg" else (-2.5, 1.5)
    kw = dict(unit=("2th_deg", azimuthal), mask=MASK, error_model="poisson",
              azimuth_range=rng)
    want = theirs.integrate2d(FRAME, 40, 24, method=(split, "csr", "cython"), **kw)
    got = ours.integrate2d(FRAME, 40, 24, method=(split, "csr", "opencl"), **kw)
    assert got.intensity.shape == want.intensity.shape == (24, 40)
    assert np.allclose(got.azimuthal, want.azimuthal, rtol=1e-9, atol=1e-9)
    skip = None
    if split == "full":
        # pyFAI's 2D full-splitting builder starts from an uninitialised buffer
        # (numpy.empty), so the first pixel it processes gets arbitrary weights: leave out
        # the cells of that pixel (the first one our matrix holds, in raster order)
        skip = _first_pixel_cells(ours, 40, 24)
    _agree(got, want, tol={"no": TOL, "bbox": TOL_SPLIT}.get(split, 1e-3), skip=skip)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("flags", ["clean", "nan-and-dummy"])
def test_a_cakes_poisson_variance_adds_the_darks(ours: AzimuthalIntegrator, theirs: Any,
                                                  split: str, flags: str) -> None:
    """pyFAI's integrate2d, whose CSR engines without pixel splitting or with bbox
    splitting do not manage the variance, computes the Poisson variance itself as
    max(x, 1) + max(dark, 0) (the dark's own counts), where its 1D engines and its 2D
    full-splitting engine use max(x, 1) alone. A cake with a dark followed the latter:
    sigma 16 % off without an error. The dark has negative pixels too (pyFAI clips them)."""
    rng = np.random.default_rng(11)
    dark = rng.uniform(-1.0, 6.0, TILTED.shape).astype(np.float32)
    data = FRAME if flags == "clean" else _dirty(FRAME)
    kw: dict[str, Any] = dict(unit=("2th_deg", "chi_deg"), error_model="poisson", dark=dark,
                              azimuth_range=(-150.0, 100.0))
    if flags != "clean":
        kw.update(dummy=-5.0, delta_dummy=0.5)
    want = theirs.integrate2d(data, 30, 12, method=(split, "csr", "cython"), **kw)
    got = ours.integrate2d(data, 30, 12, method=(split, "csr", "opencl"), **kw)
    _agree(got, want, tol={"no": TOL, "bbox": TOL_SPLIT}.get(split, 1e-3),
           skip=_first_pixel_cells(ours, 30, 12) if split == "full" else None)
    ref = ours.reference2d(data, 30, 12, method=split, **kw)
    np.testing.assert_allclose(ref.sum_variance, got.sum_variance, rtol=1e-9)
    one = ours.integrate1d(data, 30, method=split, **{**kw, "unit": "2th_deg"})
    want1 = theirs.integrate1d(data, 30, method=(split, "csr", "cython"),
                               **{**kw, "unit": "2th_deg"})
    _agree(one, want1, tol={"no": TOL, "bbox": TOL_SPLIT}.get(split, 1e-3))  # 1D: max(x, 1)


@pytest.mark.parametrize("split", SPLITS)
def test_our_answer_does_not_depend_on_the_calls_before(ours: AzimuthalIntegrator,
                                                        split: str) -> None:
    """The shared integrator, after calls in other units, splittings and shapes (the
    d*2 one that moves pyFAI's answer: see ``theirs``), gives a new one's answer bit for
    bit: no cached matrix, plan or dark key leaks from one configuration into another."""
    rng = np.random.default_rng(11)
    dark = rng.uniform(-1.0, 6.0, TILTED.shape).astype(np.float32)
    kw: dict[str, Any] = dict(unit=("2th_deg", "chi_deg"), error_model="poisson", dark=dark,
                              azimuth_range=(-150.0, 100.0), method=split)
    for unit in ("d*2_nm^-2", "q_nm^-1", "r_mm"):
        ours.integrate1d(FRAME, 70, method="full", unit=unit, mask=MASK)
    ours.integrate2d(FRAME, 40, 24, **{**kw, "dark": dark + 1, "mask": MASK})
    fresh = AzimuthalIntegrator(TILTED)
    for data in (FRAME, _dirty(FRAME)):
        got, want = ours.integrate2d(data, 30, 12, **kw), fresh.integrate2d(data, 30, 12, **kw)
        for name in ("count", "intensity", "sigma", "sum_variance", "radial", "azimuthal"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), name)


def _first_pixel_cells(ours: AzimuthalIntegrator, npt_rad: int, npt_azim: int) -> np.ndarray:
    """The cells of the first pixel pyFAI's 2D full-splitting builder processes (see
    test_cakes: it starts from an uninitialised buffer), in the plan of ``ours``'s last
    call (its engines are kept most recently used last)."""
    engine = next(reversed(ours._engines.values()))
    first = int(engine.plan.indices.min())
    rows = engine.plan.rows()[engine.plan.indices == first]
    skip = np.zeros(npt_rad * npt_azim, bool)
    skip[rows] = True
    return skip.reshape(npt_rad, npt_azim).T


def test_pyfai_objects_as_arguments(ours: AzimuthalIntegrator, theirs: Any) -> None:
    """pyFAI's unit and method objects stand for their names."""
    from pyFAI import units
    from pyFAI.method_registry import IntegrationMethod

    method = IntegrationMethod.select_one_available(("full", "csr", "cython"), dim=1)
    want = theirs.integrate1d(FRAME, 40, unit=units.TTH_DEG, method=method)
    got = ours.integrate1d(FRAME, 40, unit=units.TTH_DEG, method=method)
    assert got.method == ("full", "csr", "opencl") and got.unit == "2th_deg"
    _agree(got, want, tol=TOL_SPLIT)


def test_pyfais_ng_names_are_the_same_integrators(ours: AzimuthalIntegrator,
                                                  theirs: Any) -> None:
    """Scripts written for pyFAI 0.20 to 2023 call ``integrate1d_ng``/``integrate2d_ng``,
    which pyFAI's ``integrate1d``/``integrate2d`` now are (it was an AttributeError)."""
    kw = dict(unit="2th_deg", error_model="poisson", method=("no", "csr", "cython"))
    _agree(ours.integrate1d_ng(FRAME, 40, **kw), theirs.integrate1d_ng(FRAME, 40, **kw))
    cake = ours.integrate2d_ng(FRAME, 20, 12, **kw)
    want = theirs.integrate2d_ng(FRAME, 20, 12, **kw)
    np.testing.assert_allclose(cake.intensity, want.intensity, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("name", ["NO", "POISSON", "AZIMUTHAL"])
def test_pyfais_error_model_enum_stands_for_its_name(ours: AzimuthalIntegrator, theirs: Any,
                                                     name: str) -> None:
    """``error_model=ErrorModel.POISSON``, as pyFAI's own code passes it, is ``"poisson"``
    (it was refused as an unknown model)."""
    from pyFAI.containers import ErrorModel

    model = ErrorModel[name]
    want = theirs.integrate1d(FRAME, 40, error_model=model, method=("no", "csr", "cython"))
    got = ours.integrate1d(FRAME, 40, error_model=model, method="no")
    assert got.error_model == (None if name == "NO" else name.lower())
    _agree(got, want)


@pytest.mark.parametrize("model", ["hybrid", "variance", "HYBRID", "VARIANCE"])
def test_pyfais_error_models_not_offered_are_named(ours: AzimuthalIntegrator,
                                                   model: str) -> None:
    from pyFAI.containers import ErrorModel

    given = ErrorModel[model] if model.isupper() else model
    with pytest.raises(ValueError, match=rf"error_model {re.escape(repr(given))}: pyFAI's "
                                         rf"{model.lower()!r} error model is not offered; "
                                         r"valid: None, 'poisson', 'azimuthal'"):
        ours.integrate1d(FRAME, 40, error_model=given)


@pytest.mark.parametrize("order", [True, 3, 1, 2, 0.5, 0, False])
@pytest.mark.parametrize("dim", [1, 2])
def test_correct_solid_angle_is_pyfais_order(ours: AzimuthalIntegrator, theirs: Any,
                                             order: Any, dim: int) -> None:
    """pyFAI reads a number for ``correctSolidAngle`` as the power of cos(incidence) it
    divides by (``solidAngleArray(order=...)``; True is 3, 0 and False none): 1 is not
    True's cos³. Before, any true value meant cos³, a different answer without an error."""
    kw = dict(unit="2th_deg", correctSolidAngle=order, method=("no", "csr", "cython"))
    if dim == 1:
        want, got = theirs.integrate1d(FRAME, 50, **kw), ours.integrate1d(FRAME, 50, **kw)
    else:
        kw["azimuth_range"] = (-150.0, 100.0)
        want, got = theirs.integrate2d(FRAME, 20, 12, **kw), ours.integrate2d(FRAME, 20, 12,
                                                                              **kw)
    _agree(got, want)


def test_numpys_true_is_true(ours: AzimuthalIntegrator) -> None:
    """(pyFAI reads numpy's True as order 1: ``order is True`` fails, float() gives 1.)"""
    got = ours.integrate1d(FRAME, 50, correctSolidAngle=np.True_)
    want = ours.integrate1d(FRAME, 50, correctSolidAngle=True)
    np.testing.assert_array_equal(got.intensity, want.intensity)


@pytest.mark.parametrize("order", [-1, float("nan"), float("inf"), "yes", [3]])
def test_a_solid_angle_order_that_is_no_power_is_refused(ours: AzimuthalIntegrator,
                                                         order: Any) -> None:
    with pytest.raises(ValueError, match=r"correctSolidAngle must be True, False or the "
                                         r"order .* got " + re.escape(repr(order))):
        ours.integrate1d(FRAME, 50, correctSolidAngle=order)


def test_stack_is_n_pyfai_calls(ours: AzimuthalIntegrator, theirs: Any) -> None:
    frames = np.stack([FRAME, _dirty(FRAME), FRAME * 3])
    kw = dict(unit="r_mm", error_model="poisson", dummy=-5.0, delta_dummy=0.5)
    got = ours.integrate1d(frames, 50, method="bbox", **kw)
    for k in range(3):
        want = theirs.integrate1d(frames[k], 50, method=("bbox", "csr", "cython"), **kw)
        for name in ("intensity", "sigma", "count"):
            one = getattr(got, name)[k]
            ref = getattr(want, name)
            has = want.count > 0
            assert np.allclose(one[has], ref[has], rtol=TOL), name


# -- user report U2: empty bins hold ai.empty, not the detector's dummy -------------------


def _empty_bins_agree(got: Any, want: Any) -> int:
    empty = np.asarray(want.count) == 0
    assert np.array_equal(np.asarray(got.count) == 0, empty)
    assert np.array_equal(got.intensity[empty], want.intensity[empty])
    if want.sigma is not None:
        assert np.array_equal(got.sigma[empty], want.sigma[empty])
    return int(empty.sum())


@pytest.fixture(scope="module")
def pilatus_tilted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tilted, rotated Pilatus 100k as pyFAI writes it (user report U2's file)."""
    ai = PyFAI(dist=0.1, poni1=0.03, poni2=0.04, rot1=0.02, rot2=-0.01, rot3=0.1,
               detector=pyfai_detectors.detector_factory("Pilatus100k"), wavelength=1e-10)
    path = tmp_path_factory.mktemp("u2") / "pilatus100k.poni"
    ai.write(str(path))
    return path


@pytest.mark.parametrize("kw", [{}, {"dummy": -5.0, "delta_dummy": 0.5},
                                {"error_model": "poisson"}])
def test_empty_bins_of_a_dectris_pattern_hold_pyfai_s_empty(pilatus_tilted: Path,
                                                             kw: dict[str, Any]) -> None:
    theirs, ours = pyFAI.load(str(pilatus_tilted)), AzimuthalIntegrator.load(pilatus_tilted)
    frame = np.random.default_rng(1).poisson(100, ours.geometry.shape).astype(np.float32)
    want = theirs.integrate1d(frame, 100, radial_range=(0, 40), unit="2th_deg", **kw)
    got = ours.integrate1d(frame, 100, radial_range=(0, 40), unit="2th_deg", **kw)
    assert _empty_bins_agree(got, want) > 10
    assert not np.any(got.intensity == -2.0)


def test_empty_cells_of_a_dectris_cake_hold_pyfai_s_empty(pilatus_tilted: Path) -> None:
    theirs, ours = pyFAI.load(str(pilatus_tilted)), AzimuthalIntegrator.load(pilatus_tilted)
    frame = np.random.default_rng(2).poisson(100, ours.geometry.shape).astype(np.float32)
    want = theirs.integrate2d(frame, 100, 90, unit="2th_deg")
    got = ours.integrate2d(frame, 100, 90, unit="2th_deg")
    assert _empty_bins_agree(got, want) > 1000
    has = want.count > 0
    assert np.allclose(got.intensity[has], want.intensity[has], rtol=TOL_SPLIT)
    # what the report saw: the mean over χ of pyFAI's cake, empty cells counted as pyFAI's
    assert np.allclose(got.intensity.mean(axis=0), want.intensity.mean(axis=0),
                       rtol=TOL_SPLIT)


@pytest.mark.parametrize("value", [-1.0, float("nan"), None])
def test_empty_is_settable_as_pyfai_s(pilatus_tilted: Path, value: float | None) -> None:
    theirs, ours = pyFAI.load(str(pilatus_tilted)), AzimuthalIntegrator.load(pilatus_tilted)
    theirs.empty = value
    ours.empty = value  # type: ignore[assignment]
    assert ours.empty == theirs.empty or (np.isnan(ours.empty) and np.isnan(theirs.empty))
    frame = np.random.default_rng(4).poisson(30, ours.geometry.shape).astype(np.int32)
    kw = dict(radial_range=(0, 40), unit="2th_deg", error_model="poisson")
    want, got = theirs.integrate1d(frame, 60, **kw), ours.integrate1d(frame, 60, **kw)
    empty = want.count == 0
    assert empty.sum() > 5
    assert np.array_equal(got.intensity[empty], want.intensity[empty], equal_nan=True)
    assert np.array_equal(got.sigma[empty], want.sigma[empty], equal_nan=True)
    with pytest.raises(ValueError, match=r"empty must be a number .*got 'zero'"):
        ours.empty = "zero"  # type: ignore[assignment]


# -- user report U3: pyFAI's method names -------------------------------------------------


@pytest.mark.parametrize("method", [
    "csr", "lut", "nosplit_csr", "nosplit_lut", "full_csr", "full_lut", "cython", "numpy",
    "splitpixel", "bbox", "BBox split CSR Cython", "full_histogram_cython", "csr_ocl",
    ("no", "histogram", "cython"), ("full", "lut", "cython"), ["bbox", "csc", "python"]])
def test_pyfai_method_names(ours: AzimuthalIntegrator, theirs: Any, method: Any) -> None:
    """Each of pyFAI's method spellings runs the splitting pyFAI runs for it."""
    want = theirs.integrate1d(FRAME, 40, unit="2th_deg", method=method)
    got = ours.integrate1d(FRAME, 40, unit="2th_deg", method=method)
    assert got.method[0] == want.method.split_lower
    _agree(got, want, tol=TOL if got.method[0] == "no" else TOL_SPLIT)


@pytest.mark.parametrize(("method", "message"), [
    ("pseudo", r"'pseudo' splitting is not offered here; use 'bbox' or 'full'"),
    (("pseudo", "csr", "cython"), r"'pseudo' splitting is not offered"),
    ("csr_cython", r"method 'csr_cython' names no pixel splitting"),
    ("bbox_full", r"method 'bbox_full' names two pixel splittings"),
    ("xyz", r"unknown method 'xyz': 'xyz' is no part of a pyFAI method name"),
    (("bbox", "fast", "cython"), r"'fast' is not a pyFAI algorithm"),
    (("bbox", "csr", "cuda"), r"'cuda' is not a pyFAI implementation"),
    (3, r"unknown method 3: give the pixel splitting"),
])
def test_methods_of_another_splitting_are_refused(ours: AzimuthalIntegrator, method: Any,
                                                  message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ours.integrate1d(FRAME, 40, method=method)
