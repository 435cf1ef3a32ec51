"""Tomography reduction and filtered back-projection on OpenCL (PoCL): against the numpy
references of the same algorithm and against scikit-image's iradon on Shepp-Logan."""

from __future__ import annotations

import numpy as np
import pyopencl.array as cla
import pytest
from skimage.data import shepp_logan_phantom
from skimage.transform import iradon, radon, resize

from analysis import cl
from analysis.devarray import ArrayArgumentError
from analysis.fbp import FilteredBackProjection, fbp, fbp_reference, padded_size, ramp_filter
from analysis.tomo import (
    absorption,
    average,
    average_reference,
    minus_log,
    minus_log_reference,
    normalize,
    normalize_reference,
    sinograms,
    sinograms_reference,
)

N = 96
ANGLES = np.linspace(0.0, 180.0, 72, endpoint=False)


@pytest.fixture(scope="module")
def rt() -> cl.Runtime:
    return cl.runtime()  # fails (does not skip) without OpenCL


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    ph = np.asarray(resize(shepp_logan_phantom(), (N, N), anti_aliasing=True))
    ph[~inside(N)] = 0.0
    return ph


@pytest.fixture(scope="module")
def sinogram(phantom: np.ndarray) -> np.ndarray:
    """(angles, width), as our functions take it (scikit-image's transposed)."""
    return np.ascontiguousarray(radon(phantom, ANGLES, circle=True).T)


def inside(n: int) -> np.ndarray:
    x, y = np.mgrid[:n, :n] - n // 2
    return np.asarray(x * x + y * y <= (n // 2) ** 2)


def rmse(image: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((image - truth)[inside(len(truth))] ** 2)))


def test_padding_and_ramp_filter() -> None:
    assert [padded_size(w) for w in (2, 3, 64, 65, 512)] == [4, 8, 128, 256, 1024]
    f = ramp_filter(256)
    assert f.shape == (129,)
    assert 0 < f[0] < 0.01  # the band-limited ramp keeps a small DC term
    np.testing.assert_allclose(f[64], 0.5, atol=0.01)  # ~|frequency| in cycles/sample
    assert np.all(np.diff(f) > 0)
    with pytest.raises(ArrayArgumentError, match="even length"):
        ramp_filter(7)


def test_reference_is_iradon(phantom: np.ndarray, sinogram: np.ndarray) -> None:
    ours = fbp_reference(sinogram, ANGLES)
    theirs = iradon(sinogram.T, ANGLES, filter_name="ramp", interpolation="linear", circle=True)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_device_matches_reference_and_iradon(rt: cl.Runtime, phantom: np.ndarray,
                                             sinogram: np.ndarray) -> None:
    ours = fbp(sinogram.astype(np.float32), ANGLES)
    assert ours.shape == (N, N) and ours.dtype == np.float32
    ref = fbp_reference(sinogram, ANGLES)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-5 * scale)
    theirs = iradon(sinogram.T, ANGLES, filter_name="ramp", interpolation="linear", circle=True)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2e-5 * scale)
    assert (ours[~inside(N)] == 0).all()
    assert rmse(ours, phantom) <= rmse(theirs, phantom) * (1 + 1e-4)
    assert rmse(ours, phantom) < 0.1 * phantom.max()  # and it is a reconstruction


@pytest.mark.parametrize("slices", [2, 5, 8, 16])
def test_stack_equals_slices(rt: cl.Runtime, sinogram: np.ndarray, slices: int) -> None:
    stack = np.stack([sinogram * (k + 1) for k in range(slices)]).astype(np.float32)
    got = fbp(stack, ANGLES)
    assert got.shape == (slices, N, N)
    ref = fbp_reference(sinogram, ANGLES)
    for k in range(slices):
        np.testing.assert_allclose(got[k], ref * (k + 1), rtol=0,
                                   atol=2e-5 * np.abs(ref).max() * (k + 1))


@pytest.mark.parametrize(("source", "options"), [
    ("fbp.cl", ("-DSPI=1", "-DVW=16")),
    ("fbp.cl", ("-DSPI=1", "-DVW=8")),
    *(("fbp_stack.cl", (f"-DSPI={spi}", "-DPPW=8", *extra))
      for spi in (4, 8, 16)
      for extra in ((), ("-DINTERLEAVED",), ("-DINTERLEAVED", "-DPACKED"))),
])
def test_back_projection_kernels_build_without_compiler_output(
        rt: cl.Runtime, source: str, options: tuple[str, ...]) -> None:
    """PoCL passes 16-float vectors to its builtins through memory without AVX-512 and
    LLVM says so in the build log, which pyopencl prints as a warning to every user of
    ``fbp``: the kernels use at most 8-float vectors."""
    import warnings

    import pyopencl

    from analysis.devarray import kernel_source

    with warnings.catch_warnings():
        warnings.simplefilter("error", pyopencl.CompilerWarning)
        pyopencl.Program(rt.context, kernel_source(source)).build(list(options),
                                                                  cache_dir=False)


def test_radians_centre_and_no_circle(rt: cl.Runtime, sinogram: np.ndarray) -> None:
    ang = np.deg2rad(ANGLES)
    for kwargs in ({"centre": N / 2 - 1.5}, {"circle": False}, {}):
        got = fbp(sinogram.astype(np.float32), ang, degrees=False, **kwargs)
        ref = fbp_reference(sinogram, ang, degrees=False, **kwargs)
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5 * np.abs(ref).max())
    assert np.abs(fbp(sinogram.astype(np.float32), ANGLES, circle=False)[0, 0]) > 0


def test_device_sinograms_give_device_slices(rt: cl.Runtime, sinogram: np.ndarray) -> None:
    plan = FilteredBackProjection(ANGLES, N)
    stack = np.stack([sinogram, 2 * sinogram, 3 * sinogram, 4 * sinogram]).astype(np.float32)
    got = plan(cla.to_device(rt.queue, stack))
    assert isinstance(got, cla.Array) and got.shape == (4, N, N)
    np.testing.assert_allclose(got.get(), plan(stack), rtol=0, atol=0)
    odd = plan(cla.to_device(rt.queue, stack[:3]))
    assert odd.shape == (3, N, N)
    np.testing.assert_array_equal(odd.get(), plan(stack)[:3])


def test_fbp_bad_arguments(rt: cl.Runtime, sinogram: np.ndarray) -> None:
    s = sinogram.astype(np.float32)
    with pytest.raises(ArrayArgumentError, match=r"`angles`: expected 72 angles.*got shape \(71,\)"):
        fbp(s, ANGLES[:-1])
    with pytest.raises(ArrayArgumentError, match=r"`sinograms`: expected dtype float32 or float64, got uint16"):
        fbp(s.astype(np.uint16), ANGLES)
    with pytest.raises(ArrayArgumentError, match=r"`sinograms`: expected \(\.\.\., angles, width\) = \(\.\.\., 72, 96\), got \(72, 95\)"):
        FilteredBackProjection(ANGLES, N)(s[:, :-1])
    with pytest.raises(ArrayArgumentError, match=r"`width`: expected an int >= 2"):
        FilteredBackProjection(ANGLES, 1)


@pytest.fixture(scope="module")
def scan() -> dict[str, np.ndarray]:
    """uint16 projections of a small volume through Beer-Lambert, with darks and flats."""
    rng = np.random.default_rng(2)
    rows, cols, n_angles = 3, 48, 40
    ph = np.asarray(resize(shepp_logan_phantom(), (cols, cols), anti_aliasing=True))
    ph[~inside(cols)] = 0.0
    angles = np.linspace(0.0, 180.0, n_angles, endpoint=False)
    mu = np.stack([radon(ph * (0.02 * (r + 1)), angles, circle=True).T for r in range(rows)])
    mu = np.ascontiguousarray(mu.transpose(1, 0, 2))  # (angles, rows, cols)
    dark = 100.0 + rng.normal(0, 1, (rows, cols))
    beam = 20000.0 * (1 + 0.1 * rng.random((rows, cols)))
    darks = (dark + rng.normal(0, 1, (5, rows, cols))).round().astype(np.uint16)
    flats = (dark + beam + rng.normal(0, 30, (7, rows, cols))).round().astype(np.uint16)
    proj = (dark + beam * np.exp(-mu)).round().astype(np.uint16)
    return {"proj": proj, "darks": darks, "flats": flats, "mu": mu, "angles": angles}


def test_average(rt: cl.Runtime, scan: dict[str, np.ndarray]) -> None:
    for stack in (scan["darks"], scan["flats"].astype(np.float32)):
        got = average(cla.to_device(rt.queue, stack)).get()
        np.testing.assert_allclose(got, average_reference(stack), rtol=1e-7)
    np.testing.assert_array_equal(average(scan["darks"]),
                                  scan["darks"].mean(axis=0).astype(np.float32))


def test_normalize_minus_log_and_sinograms(rt: cl.Runtime, scan: dict[str, np.ndarray]) -> None:
    s = scan
    flats = s["flats"].copy()
    flats[:, 1, 2] = 50  # below the dark: a dead pixel: transmission 1 (fill)
    t = normalize(s["proj"], s["darks"], flats)
    ref = normalize_reference(s["proj"], s["darks"], flats)
    np.testing.assert_allclose(t, ref, rtol=2e-7)
    assert (t[:, 1, 2] == 1.0).all()
    mu = absorption(s["proj"], s["darks"], s["flats"])
    np.testing.assert_allclose(mu, minus_log_reference(normalize_reference(
        s["proj"], s["darks"], s["flats"])), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mu, s["mu"], atol=0.01)  # Beer-Lambert inverted
    d_mu = absorption(cla.to_device(rt.queue, s["proj"]), cla.to_device(rt.queue, s["darks"]),
                      cla.to_device(rt.queue, s["flats"]))
    assert isinstance(d_mu, cla.Array)
    np.testing.assert_allclose(d_mu.get(), mu, rtol=1e-6)
    d_sino = sinograms(d_mu)
    np.testing.assert_array_equal(d_sino.get(), sinograms_reference(mu))
    np.testing.assert_array_equal(sinograms(mu), mu.transpose(1, 0, 2))
    slices = fbp(d_sino, s["angles"]).get()
    truth = np.stack([fbp_reference(sino, s["angles"]) for sino in s["mu"].transpose(1, 0, 2)])
    assert np.sqrt(np.mean((slices - truth) ** 2)) < 0.02 * np.abs(truth).max()


def test_minus_log_clamps_and_keeps_nan(rt: cl.Runtime) -> None:
    t = np.array([1.0, 0.5, 1e-9, 0.0, -0.3, np.nan, 2.0], np.float32)
    got = minus_log(t)
    np.testing.assert_allclose(got, minus_log_reference(t), rtol=1e-6)
    assert got[2] == got[3] == got[4] == pytest.approx(-np.log(1e-6), rel=1e-6)
    assert np.isnan(got[5]) and got[0] == 0 and t[1] == np.float32(0.5)
    d = cla.to_device(rt.queue, t)
    assert minus_log(d, floor=0.1).get()[2] == pytest.approx(-np.log(0.1), rel=1e-6)
    assert d.get()[2] == np.float32(1e-9)  # not in place unless asked
    assert minus_log(d, in_place=True) is d and d.get()[1] == pytest.approx(np.log(2), rel=1e-6)
    with pytest.raises(ArrayArgumentError, match=r"`floor`: expected a finite value > 0, got 0"):
        minus_log(t, floor=0)
    with pytest.raises(ArrayArgumentError, match=r"`transmission`: expected dtype float32, got float64"):
        minus_log(t.astype(np.float64))


def test_normalize_bad_shapes(rt: cl.Runtime, scan: dict[str, np.ndarray]) -> None:
    with pytest.raises(ArrayArgumentError, match=r"`flats`: expected shape \(7, 3, 48\).*got \(7, 3, 47\)"):
        normalize(scan["proj"], scan["darks"], scan["flats"][:, :, :-1])
    with pytest.raises(ArrayArgumentError, match=r"`darks`: expected at least one frame"):
        normalize(scan["proj"], scan["darks"][:0], scan["flats"])
