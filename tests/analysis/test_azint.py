"""The OpenCL kernels against the numpy reference (every kernel, splitting, error model,
frame type and dynamic mask), the result objects, the cache, and bad-input messages."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyopencl.array as cla
import pytest

from analysis import azint_args
from analysis.azint import AzimuthalIntegrator, Integrate1dResult
from analysis.azint_engine import FRAME_TYPES, Engine
from analysis.azint_plan import Dummy, reference
from geometry import PoniGeometry

GEOMETRY = PoniGeometry(dist=0.03, poni1=0.0035, poni2=0.0045, rot1=0.07, rot2=-0.04,
                        rot3=0.3, pixel1=100e-6, pixel2=100e-6, shape=(64, 80),
                        wavelength=1.2e-10)
RNG = np.random.default_rng(7)
FRAMES = RNG.poisson(2.0 + 40.0 * np.sin(GEOMETRY.tth() * 40) ** 8,
                     (3, *GEOMETRY.shape)).astype(np.float32)
FRAMES[0][RNG.random(GEOMETRY.shape) < 0.02] = np.nan
FRAMES[1][RNG.random(GEOMETRY.shape) < 0.02] = -2.0
FRAMES[1, :, :3] = np.inf
FRAME = FRAMES[0]
MASK = np.zeros(GEOMETRY.shape, dtype=bool)
MASK[20:26, :] = True
MASK[:, 50:53] = True
DARK = RNG.poisson(1.0, GEOMETRY.shape).astype(np.float32)
FLAT = RNG.uniform(0.8, 1.2, GEOMETRY.shape).astype(np.float32)
FLAT[3, 3] = 0.0  # a dead pixel in the flat


@pytest.fixture(scope="module", params=["private", "csr"])
def ai(request: pytest.FixtureRequest) -> AzimuthalIntegrator:
    return AzimuthalIntegrator(GEOMETRY, kernel=request.param)


def _same(got: object, want: object, rtol: float = 1e-9) -> None:
    if want is None:
        assert got is None
        return
    assert got is not None
    g, w = np.asarray(got), np.asarray(want)
    assert g.shape == w.shape
    assert np.allclose(g, w, rtol=rtol, atol=1e-9 * max(1.0, float(np.abs(w).max()))), \
        float(np.max(np.abs(g - w)))


def _results_match(got: object, want: object) -> None:
    for name in ("intensity", "sigma", "std", "count", "sum_signal", "sum_variance",
                 "sum_normalization", "sum_normalization2"):
        _same(getattr(got, name), getattr(want, name))
    assert np.array_equal(got.radial, want.radial)  # type: ignore[attr-defined]


CASES_1D = [dict(method=m, error_model=e, **extra) for m, e, extra in itertools.product(
    ["no", "bbox", "full"], [None, "poisson", "azimuthal"],
    [{}, {"mask": MASK, "dark": DARK, "flat": FLAT, "polarization_factor": 0.9,
          "dummy": -2.0, "delta_dummy": 0.5, "unit": "2th_deg"},
     {"azimuth_range": (-60.0, 120.0), "radial_range": (2.0, 5.0), "unit": "r_mm",
      "correctSolidAngle": False, "normalization_factor": 3.0}])]


@pytest.mark.parametrize("options", CASES_1D, ids=lambda o: "-".join(
    f"{k}" if not isinstance(v, str) else v for k, v in o.items()))
def test_1d_stack_matches_reference(ai: AzimuthalIntegrator, options: dict[str, object]
                                    ) -> None:
    got = ai.integrate1d(FRAMES, 40, **options)  # type: ignore[arg-type]
    want = ai.reference1d(FRAMES, 40, **options)
    assert got.intensity.shape == (3, 40)
    _results_match(got, want)


@pytest.mark.parametrize("method", ["bbox", "full"])
@pytest.mark.parametrize("width", [1, 2])
def test_pixels_spread_wider_than_the_stored_width(method: str, width: int) -> None:
    """The private split kernel stores a fixed number of coefficients per pixel; the others
    go through its overflow list (forced here with a narrow width)."""
    ai = AzimuthalIntegrator(GEOMETRY, kernel="private")
    options = dict(method=method, error_model="poisson", dummy=-2.0, unit="2th_deg")
    plan = ai.plan1d(90, **options)
    engine = Engine(ai.rt, plan, "private", width=width)
    assert engine.kind == "split" and engine.width == width
    assert engine._buffers["over_pix"].size >= 4 * 100  # many listed coefficients
    got = engine.sums(engine.frames(FRAMES), "poisson", Dummy(-2.0, 0.0))
    want = reference(plan, FRAMES, "poisson", Dummy(-2.0, 0.0))
    for name in ("signal", "variance", "norm", "norm2", "count"):
        _same(getattr(got, name), getattr(want, name))


@pytest.mark.parametrize(("method", "error_model"), [("no", "poisson"), ("bbox", None),
                                                     ("full", "azimuthal")])
def test_2d_cake_matches_reference(ai: AzimuthalIntegrator, method: str,
                                   error_model: str | None) -> None:
    options = dict(method=method, error_model=error_model, mask=MASK, unit="2th_deg",
                   azimuth_range=(-150.0, 90.0))
    got = ai.integrate2d(FRAMES[:2], 30, 24, **options)  # type: ignore[arg-type]
    want = ai.reference2d(FRAMES[:2], 30, 24, **options)
    assert got.intensity.shape == (2, 24, 30) and got.azimuthal.shape == (24,)
    _results_match(got, want)
    assert np.array_equal(got.azimuthal, want.azimuthal)
    assert -150 < got.azimuthal[0] < got.azimuthal[-1] < 90


@pytest.mark.parametrize("dtype", list(FRAME_TYPES))
def test_every_frame_type_is_converted_on_the_device(ai: AzimuthalIntegrator,
                                                     dtype: np.dtype) -> None:
    info = np.iinfo(dtype) if dtype.kind in "iu" else None
    frame = np.clip(FRAMES[2], 0, 100 if info is None else min(100, info.max)).astype(dtype)
    if info is not None:  # the extremes of the type survive the conversion (64-bit types:
        top = min(info.max, 2**40)  # a double holds 53 bits, sums of ±2**63 cancel)
        frame[5, 5:9] = top
        frame[30, 5:9] = max(info.min, -top)
    for method in ("no", "bbox"):
        got = ai.integrate1d(frame, 50, method=method, error_model="poisson", unit="2th_deg")
        want = ai.reference1d(frame, 50, method=method, error_model="poisson", unit="2th_deg")
        _results_match(got, want)


def test_big_endian_and_strided_frames(ai: AzimuthalIntegrator) -> None:
    want = ai.integrate1d(FRAMES[2].astype(np.uint16), 30, method="no")
    swapped = FRAMES[2].astype(">u2")
    assert np.array_equal(ai.integrate1d(swapped, 30, method="no").intensity, want.intensity)
    wide = np.zeros((GEOMETRY.shape[0], 2 * GEOMETRY.shape[1]), np.uint16)
    wide[:, ::2] = FRAMES[2].astype(np.uint16)
    assert np.array_equal(ai.integrate1d(wide[:, ::2], 30, method="no").intensity,
                          want.intensity)


def test_device_frames_and_single_frames(ai: AzimuthalIntegrator) -> None:
    dev = cla.to_device(ai.rt.queue, FRAMES)
    got = ai.integrate1d(dev, 60, unit="2th_deg", mask=MASK, error_model="poisson")
    want = ai.reference1d(FRAMES, 60, unit="2th_deg", mask=MASK, error_model="poisson")
    _results_match(got, want)
    one = ai.integrate1d(cla.to_device(ai.rt.queue, FRAMES[1]), 60, unit="2th_deg",
                         mask=MASK, error_model="poisson")
    assert one.intensity.shape == (60,)
    _same(one.intensity, want.intensity[1])


def test_frames_with_many_bad_pixels(ai: AzimuthalIntegrator) -> None:
    """More pixels drop out than the private kernels list: the frame is summed again."""
    frame = FRAMES[2].copy()
    frame[::2] = np.nan
    frame[1::2, ::3] = -2.0
    for method in ("no", "full"):
        got = ai.integrate1d(frame, 64, method=method, dummy=-2.0, error_model="poisson")
        want = ai.reference1d(frame, 64, method=method, dummy=-2.0, error_model="poisson")
        _results_match(got, want)
    empty = ai.integrate1d(np.full(GEOMETRY.shape, np.nan, np.float32), 20, dummy=-7.0)
    assert np.all(empty.intensity == 0.0) and np.all(empty.count == 0)  # ai.empty
    assert np.all(empty.sum_normalization == 0)
    other = AzimuthalIntegrator(GEOMETRY, empty=-7.0)
    nothing = other.integrate1d(np.full(GEOMETRY.shape, np.nan, np.float32), 20, dummy=-7.0)
    assert np.all(nothing.intensity == -7.0)


def test_results_unpack_like_pyfai(ai: AzimuthalIntegrator) -> None:
    res = ai.integrate1d(FRAME, 32, error_model="poisson")
    x, intensity, sigma = res
    assert len(res) == 3 and res[0] is res.radial and sigma is res.sigma
    assert res.sem is not None and np.array_equal(res.sem, sigma) and "npt=32" in repr(res)
    assert x.shape == intensity.shape == (32,) and res.unit == "q_nm^-1"
    assert res.method == ("bbox", "csr", "opencl") and res.error_model == "poisson"
    x, intensity = ai.integrate1d(FRAME, 32)
    assert isinstance(ai.integrate1d(FRAME, 32), Integrate1dResult)
    cake = ai.integrate2d(FRAME, 20, 12, unit=("2th_deg", "chi_rad"), error_model="poisson")
    image, tth, chi, sigma = cake
    assert image.shape == (12, 20) and tth.shape == (20,) and chi.shape == (12,)
    assert cake.unit == ("2th_deg", "chi_rad") and np.all(np.abs(chi) <= np.pi)
    assert len(ai.integrate2d(FRAME, 20, 12)) == 3


def test_an_empty_stack_gives_no_pattern(ai: AzimuthalIntegrator) -> None:
    for method in ("no", "bbox"):
        res = ai.integrate1d(np.zeros((0, *GEOMETRY.shape), np.uint16), 12, method=method,
                             error_model="poisson")
        assert res.intensity.shape == res.sigma.shape == (0, 12)  # type: ignore[union-attr]
        assert res.radial.shape == (12,)


def test_stack_equals_frame_by_frame(ai: AzimuthalIntegrator) -> None:
    """Long stacks go one work-item per frame, short ones split each frame: same result."""
    frames = np.concatenate([FRAMES, FRAMES[::-1] * 2])
    stack = ai.integrate1d(frames, 48, method="no", error_model="poisson", dummy=-2.0)
    for k in range(len(frames)):
        one = ai.integrate1d(frames[k], 48, method="no", error_model="poisson", dummy=-2.0)
        assert np.array_equal(stack.intensity[k], one.intensity)
        assert np.array_equal(stack.count[k], one.count)


def test_arrays_edited_in_place_are_never_stale() -> None:
    ai = AzimuthalIntegrator(GEOMETRY)
    frame = FRAMES[2]
    mask = MASK.copy()
    dark = DARK.copy()
    flat = FLAT.copy()
    first = ai.integrate1d(frame, 40, mask=mask, dark=dark, flat=flat)
    edits = [(mask, (slice(0, 10), slice(None)), True),
             (dark, (slice(None), slice(0, 40)), 5.0),
             (flat, (slice(30, 40), slice(None)), 2.0)]
    for array, where, value in edits:
        array[where] = value
        again = ai.integrate1d(frame, 40, mask=mask, dark=dark, flat=flat)
        fresh = AzimuthalIntegrator(GEOMETRY).integrate1d(frame, 40, mask=mask.copy(),
                                                          dark=dark.copy(), flat=flat.copy())
        assert np.array_equal(again.intensity, fresh.intensity)
        assert not np.array_equal(again.intensity, first.intensity)
        first = again


def test_named_detector_gaps_and_dummy_apply_by_default() -> None:
    g = PoniGeometry(dist=0.2, poni1=0.02, poni2=0.04, detector="Pilatus100k",
                     wavelength=1e-10)
    ai = AzimuthalIntegrator(g)
    frame = RNG.poisson(30, g.shape).astype(np.int32)
    frame[g.detector.mask] = -1  # Pilatus files flag gaps with -1, dead pixels with -2
    frame[10, 10:20] = -2
    got = ai.integrate1d(frame, 50, unit="2th_deg")
    valid = ~g.detector.mask & (frame >= 0)
    explicit = ai.integrate1d(np.where(valid, frame, 0), 50, unit="2th_deg",
                              mask=~valid, dummy=-99.0)
    assert np.allclose(got.intensity[got.count > 0], explicit.intensity[got.count > 0])
    wide = ai.integrate1d(frame, 50, unit="2th_deg", radial_range=(0, 30))  # past 14°
    assert (wide.count == 0).sum() > 10
    assert np.all(wide.intensity[wide.count == 0] == 0.0)  # ai.empty, not the dummy
    assert got.count.sum() == pytest.approx(valid.sum())


def _mask_with(value: float, where: tuple[int, int]) -> np.ndarray:
    """A float mask of 0s and 1s (as read from an image file) holding ``value`` once."""
    mask = np.zeros(GEOMETRY.shape, np.float32)
    mask[10:12] = 1.0
    mask[where] = value
    return mask


def test_a_float_mask_of_whole_numbers_is_a_mask() -> None:
    """0.0/1.0/-1.0 as a bool mask; a fraction or NaN is refused in test_bad_inputs (pyFAI
    reads its mask as int8, so 0.5 counted as used there and as masked here, no error)."""
    ai = AzimuthalIntegrator(GEOMETRY)
    mask = _mask_with(-1.0, (3, 7))
    got = ai.integrate1d(FRAME, 10, mask=mask)
    want = ai.integrate1d(FRAME, 10, mask=mask != 0)
    np.testing.assert_array_equal(got.intensity, want.intensity)
    np.testing.assert_array_equal(got.count, want.count)


def test_bad_inputs() -> None:
    ai = AzimuthalIntegrator(GEOMETRY)
    cases: list[tuple[type[Exception], str, object]] = [
        (ValueError, r"data has shape \(10, 10\), expected \(64, 80\)",
         lambda: ai.integrate1d(np.zeros((10, 10), np.float32), 10)),
        (ValueError, r"unknown radial unit 'q_pm\^-1'; valid: 2th_deg",
         lambda: ai.integrate1d(FRAME, 10, unit="q_pm^-1")),
        (ValueError, "npt must be an integer >= 1, got 0", lambda: ai.integrate1d(FRAME, 0)),
        (ValueError, "npt_azim must be an integer >= 1, got -3",
         lambda: ai.integrate2d(FRAME, 10, -3)),
        (TypeError, "frames of dtype float16 are not supported",
         lambda: ai.integrate1d(FRAME.astype(np.float16), 10)),
        (TypeError, "frames of dtype bool are not supported",
         lambda: ai.integrate1d(FRAME > 3, 10)),
        (ValueError, r"mask has shape \(3, 3\), expected \(64, 80\)",
         lambda: ai.integrate1d(FRAME, 10, mask=np.zeros((3, 3), bool))),
        (ValueError, r"mask holds 1 value\(s\) that are not whole numbers, first 0.5 at "
                     r"pixel \(row 3, column 7\); a mask is 0 where",
         lambda: ai.integrate1d(FRAME, 10, mask=_mask_with(0.5, (3, 7)))),
        (ValueError, r"mask holds 1 value\(s\) that are not whole numbers, first nan at "
                     r"pixel \(row 0, column 1\)",
         lambda: ai.integrate1d(FRAME, 10, mask=_mask_with(np.nan, (0, 1)))),
        (ValueError, r"mask holds 1 value\(s\) that are not whole numbers, first inf",
         lambda: ai.integrate2d(FRAME, 10, 10, mask=_mask_with(np.inf, (0, 1)))),
        (ValueError, "radial_range must be two different finite numbers",
         lambda: ai.integrate1d(FRAME, 10, radial_range=(1.0, 1.0))),
        (ValueError, r"azimuth_range \(170.0, -170.0\) crosses the χ discontinuity",
         lambda: ai.integrate1d(FRAME, 10, azimuth_range=(170.0, -170.0))),
        (ValueError, "unknown error_model 'gauss'",
         lambda: ai.integrate1d(FRAME, 10, error_model="gauss")),
        (ValueError, r"polarization_factor must be in \[-1, 1\]",
         lambda: ai.integrate1d(FRAME, 10, polarization_factor=2.0)),
        (ValueError, "every pixel is masked",
         lambda: ai.integrate1d(FRAME, 10, mask=np.ones(GEOMETRY.shape, bool))),
        (ValueError, r"method 'pseudo': pyFAI's 'pseudo' splitting is not offered",
         lambda: ai.integrate1d(FRAME, 10, method="pseudo")),
        (ValueError, "kernel .private. needs at most 4096 bins, got 10000",
         lambda: AzimuthalIntegrator(GEOMETRY, kernel="private").integrate2d(FRAME, 100, 100)),
        (ValueError, "unknown kernel 'fast'; valid: auto, private, csr",
         lambda: AzimuthalIntegrator(GEOMETRY, kernel="fast")),
        (TypeError, "data must be a numpy or pyopencl array, got list",
         lambda: ai.integrate1d([[1.0]], 10)),
        (ValueError, "dummy must be a finite number or None, got nan",
         lambda: ai.integrate1d(FRAME, 10, dummy=float("nan"))),
        (ValueError, "normalization_factor must be a finite non-zero number",
         lambda: ai.integrate1d(FRAME, 10, normalization_factor=0)),
        (ValueError, "unit 'q_nm\\^-1' needs the wavelength",
         lambda: AzimuthalIntegrator(GEOMETRY.replace(wavelength=None)).integrate1d(FRAME, 10)),
    ]
    for exc, message, call in cases:
        with pytest.raises(exc, match=message):
            call()  # type: ignore[operator]
    # without a wavelength, angles and radii still work
    ai_no_wl = AzimuthalIntegrator(GEOMETRY.replace(wavelength=None))
    assert ai_no_wl.integrate1d(FRAME, 10, unit="2th_deg").intensity.shape == (10,)


def test_content_keys_are_exact_and_keep_arrays_used_in_turn_cached() -> None:
    keys = azint_args.ContentKeys()
    a = np.arange(13, dtype=np.uint8)  # 13 bytes: one word and a 5-byte tail
    first = keys.key("dark", a)
    assert keys.key("dark", a) == first
    a[11] += 1  # an edit in the tail
    second = keys.key("dark", a)
    assert second != first
    a[2] += 1  # and in the word
    assert keys.key("dark", a) not in (first, second)
    assert keys.key("dark", a.astype(np.int8)) != keys.key("dark", a)  # dtype counts
    assert keys.key("dark", None) is None
    keys.keep_bytes = 8  # larger arrays: digested every time, still exact about edits
    big = np.zeros(100, np.float32)
    assert keys.key("flat", big) == keys.key("flat", big)
    before = keys.key("flat", big)
    big[50] = 1.0
    assert keys.key("flat", big) != before and "flat" not in keys._last
    # two masks used in turn keep their matrices: no rebuild, equal results
    ai = AzimuthalIntegrator(GEOMETRY)
    other = MASK.copy()
    other[:, :4] = True
    results = [ai.integrate1d(FRAME, 40, mask=m, method="bbox").intensity
               for m in (MASK, other, MASK, other)]
    assert len(ai._matrices) == 2
    assert np.array_equal(results[0], results[2]) and np.array_equal(results[1], results[3])
    assert not np.array_equal(results[0], results[1])


@pytest.mark.parametrize("method", ["no", "bbox"])
def test_a_few_bad_and_low_pixels_among_clean_blocks(method: str) -> None:
    """The private kernels screen blocks of pixels without a branch and go back over the
    blocks that held a pixel that does not count (or, for Poisson errors, one below 1):
    a frame where only a few blocks do, in either part of the frame."""
    ai = AzimuthalIntegrator(GEOMETRY, kernel="private")
    frame = FRAMES[2] + 5.0  # every pixel above 1
    frame[3, 7] = np.nan
    frame[40, 60] = -2.0
    frame[50, 11] = 0.25
    for error_model in (None, "poisson"):
        options = dict(method=method, error_model=error_model, dummy=-2.0, unit="2th_deg")
        got = ai.integrate1d(frame, 50, **options)  # type: ignore[arg-type]
        want = ai.reference1d(frame, 50, **options)
        _results_match(got, want)
        clean = ai.integrate1d(FRAMES[2] + 5.0, 50, **options)  # type: ignore[arg-type]
        assert np.all(got.count <= clean.count) and np.any(got.count < clean.count)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.int64])
def test_integer_frames_compare_the_dummy_as_pyfai_does(ai: AzimuthalIntegrator,
                                                        dtype: type) -> None:
    """Integer frames are compared with the range of the type's values that equal the
    dummy value in float32 (pyFAI's compare), built into the kernel: the range's edges
    and the values just outside it."""
    info = np.iinfo(dtype)
    value = float(np.float32(info.max)) if info.max > 2**24 else float(info.max - 2)
    dummy = Dummy(value, 1.5)
    lo, hi = dummy.integers(np.dtype(dtype)) or (0, -1)
    assert lo <= hi and dummy.flags(np.array([lo, hi], dtype).astype(np.float32)).all()
    frame = np.clip(FRAMES[2], 0, 50).astype(dtype)
    edges = [v for v in (lo - 1, lo, hi, hi + 1) if info.min <= v <= info.max]
    for k, v in enumerate(edges):
        frame[5 + 3 * k, 10:70:7] = v
    for method in ("no", "bbox"):
        options = dict(method=method, error_model="poisson", dummy=value, delta_dummy=1.5)
        got = ai.integrate1d(frame, 40, **options)  # type: ignore[arg-type]
        want = ai.reference1d(frame, 40, **options)
        assert np.array_equal(got.count, want.count)  # the same pixels count
        # (the device sums integers exactly, the reference their float32 values, as pyFAI)
        for name in ("intensity", "sigma", "sum_signal", "sum_variance"):
            _same(getattr(got, name), getattr(want, name), rtol=1e-7)
    assert Dummy(0.5, 0.0).integers(np.dtype(dtype)) is None  # no integer is 0.5


def test_too_many_bins_is_a_clear_error_before_memory_runs_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """More bins than the device or the splitting matrix can hold: one error naming the bin
    count, not OpenCL's INVALID_BUFFER_SIZE or a 80 GiB numpy allocation (on a machine
    whose memory would pass the call's own estimate: 1 PiB available here)."""
    monkeypatch.setattr(azint_args, "available_memory", lambda: 2**50)
    ai = AzimuthalIntegrator(GEOMETRY)
    with pytest.raises(ValueError, match=r"100000000 bins: pixel splitting would spread 5120 "
                                         r"pixels .* use fewer bins or method='no'"):
        ai.integrate1d(FRAME, 10**8, method="bbox")


def test_too_many_bins_for_one_frame_names_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """When even one frame's sums do not fit (the device's limit lowered to 1 MiB), the error
    names the bins, the buffer and the limit before anything is allocated."""
    from analysis.azint_engine import Engine

    real_init = Engine.__init__

    def one_mib(self: Engine, *a: Any, **k: Any) -> None:
        real_init(self, *a, **k)
        self.max_alloc = 2**20

    monkeypatch.setattr(Engine, "__init__", one_mib)
    with pytest.raises(ValueError, match=r"100000 bins need a \d+ MiB 'csr_out' buffer on "
                                         r"the OpenCL device, more than the 1 MiB it can"):
        AzimuthalIntegrator(GEOMETRY).integrate1d(FRAME, 100_000, method="no",
                                                  error_model="azimuthal")


@pytest.mark.parametrize(("method", "error_model"), [("no", None), ("no", "poisson"),
                                                     ("bbox", "poisson"), ("no", "azimuthal")])
def test_a_stack_too_large_for_one_call_is_summed_in_parts(method: str,
                                                           error_model: str | None) -> None:
    """A stack whose scratch buffers would exceed what the device allocates at once (here
    lowered to five frames' worth) is summed five frames at a time, every row the same as
    one call's; a stack already on the device is refused, saying how many frames fit."""
    stack = np.random.default_rng(5).poisson(30.0, (23, *GEOMETRY.shape)).astype(np.uint32)
    ai = AzimuthalIntegrator(GEOMETRY)
    whole = ai.integrate1d(stack, 300, method=method, error_model=error_model)
    (engine,) = ai._engines.values()
    assert engine.frames_per_call(stack.dtype) >= 23
    engine.max_alloc = 5 * engine.frame_bytes(stack.dtype) + 1
    calls: list[int] = []
    real_sums = engine.sums

    def counted(frames: Any, *args: Any) -> Any:
        calls.append(frames.n)
        return real_sums(frames, *args)

    engine.sums = counted  # type: ignore[method-assign]
    parts = ai.integrate1d(stack, 300, method=method, error_model=error_model)
    assert calls == [5, 5, 5, 5, 3]
    for name in ("intensity", "sigma", "count", "sum_signal", "sum_normalization"):
        np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name), err_msg=name)
    on_device = cla.to_device(ai.rt.queue, stack)
    with pytest.raises(ValueError, match=r"a stack of 23 frames already on the OpenCL "
                                         r"device .* pass at most 5 frames per call"):
        ai.integrate1d(on_device, 300, method=method, error_model=error_model)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("error_model", [None, "poisson"])
def test_unsigned_counts_summed_packed_match_the_reference_exactly(dtype: type,
                                                                   error_model: str | None
                                                                   ) -> None:
    """A detector's unsigned 8/16-bit counts go through ``hist_private``'s packed pass
    (value and zero count in one 64-bit add): sums, Poisson variance (zeros count as 1)
    and counts equal the numpy reference's for frames full of zeros, of the type's
    largest value and of both, one frame at a time (a slice per compute unit) and as a
    stack (a frame per work-item), with and without a mask; 16-bit signed and 32-bit
    frames keep the float path."""
    ai = AzimuthalIntegrator(GEOMETRY, kernel="private")
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(11)
    frames = rng.poisson(0.7, (6, *GEOMETRY.shape)).astype(dtype)  # half the pixels 0
    frames[1] = top
    frames[2, ::2] = top
    frames[3] = 0
    for mask in (None, MASK):
        options = dict(method="no", error_model=error_model, mask=mask, unit="2th_deg")
        for data in (frames, *frames):
            got = ai.integrate1d(data, 70, **options)  # type: ignore[arg-type]
            want = ai.reference1d(data, 70, **options)  # type: ignore[arg-type]
            for name in ("sum_signal", "sum_variance", "count"):
                _same(getattr(got, name), getattr(want, name), rtol=1e-12)
            _results_match(got, want)
    engine = next(iter(ai._engines.values()))
    assert engine.kind == "hist" and engine._packs(np.dtype(dtype))
    assert not any(engine._packs(np.dtype(t)) for t in (np.int16, np.uint32, np.float32))


def test_an_absurd_npt_is_refused_before_anything_is_allocated() -> None:
    """``integrate1d(npt=10**9)`` / ``integrate2d(10**5, 10**5)`` allocated until the process
    was killed (no fixed bound fits: pyFAI's default cake alone is 180 000 bins): now a
    ValueError naming the request, the estimate and the limit, with the peak memory
    unchanged. In a fresh process, its address space capped 1 GiB above what it has, so
    that a regression fails with MemoryError instead of taking the machine's memory."""
    import subprocess
    import sys

    code = f"""
import resource
import numpy as np
from analysis.azint import AzimuthalIntegrator
from geometry import PoniGeometry
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key)) * 1024
ai = AzimuthalIntegrator(PoniGeometry(**{GEOMETRY.to_metadata()!r}))
frame = np.ones((64, 80), np.float32)
ai.integrate1d(frame, 100, method="no")
ai.integrate2d(frame, 50, 36, method="no")
cap = status("VmSize") + 2**30
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
before = status("VmHWM")
for call in (lambda: ai.integrate1d(frame, 10**9, method="no"),
             lambda: ai.integrate2d(frame, 10**5, 10**5, method="no")):
    try:
        call()
    except ValueError as exc:
        print(exc)
print((status("VmHWM") - before) // 2**20)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two, grown_mb = done.stdout.strip().splitlines()
    assert one.startswith("integrate1d: npt=1000000000 for 1 frame(s) of 64×80 pixels "
                          "needs about 305.5 GiB of host memory, more than the "), one
    assert "GiB a call may take (50% of the " in one and "use fewer bins" in one, one
    assert two.startswith("integrate2d: npt_rad=100000 × npt_azim=100000 = 10000000000 "
                          "bins for 1 frame(s)"), two
    assert int(grown_mb) < 16, f"the refused calls grew the peak memory by {grown_mb} MB"


def test_the_memory_rule_counts_bins_frames_and_pixels(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """Half the available memory (here 2 GiB available): pyFAI's default cake (500 × 360)
    passes for one frame and for 20, not for a stack of 40 (≈ 1.5 GiB of results), and the
    refusal comes before the matrix is built."""
    import analysis.azint as azint_module

    monkeypatch.setattr(azint_args, "available_memory", lambda: 2 * 2**30)
    assert azint_args.memory_estimate(500 * 360, 1, (64, 80)) == \
        500 * 360 * (128 + 200) + 64 * 80 * 64
    azint_args.check_memory("integrate2d", 500, 360, 20, (64, 80))
    monkeypatch.setattr(azint_args, "available_memory", lambda: 0)  # small: not read
    azint_args.check_memory("integrate2d", 500, 360, 1, (64, 80))
    monkeypatch.setattr(azint_args, "available_memory", lambda: 2 * 2**30)
    ai = AzimuthalIntegrator(GEOMETRY)
    cake = ai.integrate2d(FRAME, 500, 360)
    assert cake.intensity.shape == (360, 500)

    def no_build(*_: Any) -> None:
        raise AssertionError("the matrix was built")

    monkeypatch.setattr(azint_module, "build", no_build)
    ai.reset()
    stack = np.zeros((40, *GEOMETRY.shape), np.float32)
    with pytest.raises(ValueError, match=r"^integrate2d: npt_rad=500 × npt_azim=360 = "
                                         r"180000 bins for 40 frame\(s\) of 64×80 pixels "
                                         r"needs about 1\.4 GiB of host memory, more than "
                                         r"the 1\.0 GiB a call may take \(50% of the 2\.0 "
                                         r"GiB available\)"):
        ai.integrate2d(stack, 500, 360)
    with pytest.raises(ValueError, match=r"^plan1d: npt=10000000 for 0 frame"):
        ai.plan1d(10**7)


def test_a_cached_configuration_counts_only_its_frames(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """A configuration whose tables and matrix are cached allocates only its frames' sums
    and results: the memory rule counted the tables and ``PIXEL_BYTES`` per pixel again on
    every call, so a repeated call was refused once the first call's matrix (and anything
    else) had taken the memory it left available — a large detector's second frame."""
    monkeypatch.setattr(azint_args, "PIXEL_BYTES", 10**5)  # 64×80 pixels: ≈ 490 MiB
    monkeypatch.setattr(azint_args, "available_memory", lambda: 2 * 2**30)  # limit 1 GiB
    ai = AzimuthalIntegrator(GEOMETRY)
    first = ai.integrate1d(FRAME, 100)
    plan = ai.plan1d(100)  # (integrate1d's configuration: q_nm^-1, as pyFAI's default)
    monkeypatch.setattr(azint_args, "available_memory", lambda: 2**29)  # limit 256 MiB
    again = ai.integrate1d(FRAME, 100)  # was refused: 'needs about 0.5 GiB'
    assert np.array_equal(first.intensity, again.intensity, equal_nan=True)
    assert ai.plan1d(100) is plan
    with pytest.raises(ValueError, match=r"^integrate1d: npt=101 for 1 frame\(s\) of 64×80 "
                                         r"pixels needs about 0\.5 GiB"):
        ai.integrate1d(FRAME, 101)  # a new configuration still counts its matrix
    with pytest.raises(ValueError, match=r"^plan1d: npt=100 for 0 frame"):
        ai.plan1d(100, unit="2th_deg")  # another configuration
