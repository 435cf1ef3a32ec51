"""Per-frame statistics and histograms on OpenCL (PoCL) against numpy."""

from __future__ import annotations

import numpy as np
import pyopencl.array as cla
import pytest

from analysis import cl
from analysis.devarray import ArrayArgumentError
from analysis.stats import frame_stats, frame_stats_reference

FIELDS = ("count", "sum", "min", "max", "saturated")


@pytest.fixture(scope="module")
def rt() -> cl.Runtime:
    return cl.runtime()  # fails (does not skip) without OpenCL


@pytest.fixture
def counts() -> np.ndarray:
    rng = np.random.default_rng(11)
    a = rng.integers(0, 65536, (3, 301, 517), dtype=np.uint16)
    a[0, :7] = 65535
    a[1, 0, :50] = np.arange(50, dtype=np.uint16) * 1000  # on and around bin edges
    a[2] = rng.poisson(20.0, a.shape[1:]).astype(np.uint16)
    return a


def test_uint16_stack_is_exact(rt: cl.Runtime, counts: np.ndarray) -> None:
    got = frame_stats(counts, bins=97, hist_range=(1000.0, 49000.0))
    x = counts.reshape(3, -1)
    np.testing.assert_array_equal(got.sum, x.astype(np.int64).sum(axis=1))
    assert got.sum.dtype == np.int64
    np.testing.assert_array_equal(got.count, [x.shape[1]] * 3)
    np.testing.assert_array_equal(got.min, x.min(axis=1))
    np.testing.assert_array_equal(got.max, x.max(axis=1))
    np.testing.assert_array_equal(got.saturated, (x == 65535).sum(axis=1))
    assert got.saturated[0] >= 7 * 517
    assert got.histogram is not None and got.histogram.shape == (3, 97)
    for frame, hist in zip(x, got.histogram, strict=True):
        np.testing.assert_array_equal(hist, np.histogram(frame, 97, (1000.0, 49000.0))[0])
    np.testing.assert_allclose(got.mean, x.mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(got.std, x.std(axis=1), rtol=1e-12)


def test_saturation_level_and_many_bins(rt: cl.Runtime, counts: np.ndarray) -> None:
    # more bins than fit in local memory: the global-atomics path
    got = frame_stats(counts, saturation=60000, bins=70001, hist_range=(0, 70001))
    ref = frame_stats_reference(counts, saturation=60000, bins=70001, hist_range=(0, 70001))
    np.testing.assert_array_equal(got.saturated, (counts.reshape(3, -1) >= 60000).sum(axis=1))
    np.testing.assert_array_equal(got.histogram, ref.histogram)


def test_single_frame_gives_scalars(rt: cl.Runtime, counts: np.ndarray) -> None:
    got = frame_stats(counts[2])
    assert got.mean.shape == () and got.histogram is None and got.bin_edges is None
    assert float(got.mean) == pytest.approx(counts[2].mean(), rel=1e-14)
    assert int(got.sum) == int(counts[2].astype(np.int64).sum())


def test_float_frames_skip_nan_and_keep_precision(rt: cl.Runtime) -> None:
    rng = np.random.default_rng(5)
    # large mean, tiny spread: a sum of squares in float64 would lose most digits
    f = (1.0e4 + rng.normal(0.0, 1e-3, (3, 257, 263))).astype(np.float32)
    f[0, 10:20] = np.nan
    f[1, :] = np.nan  # nothing left: NaN statistics
    f[2, 0, :5] = np.float32(1.0e4)
    edges = np.histogram_bin_edges(np.zeros(0, np.float32), 8, (9999.99, 10000.01))
    f[2, 1, :9] = edges  # values exactly on the (float32) edges
    f[2, 2, :9] = np.nextafter(edges, np.float32(0))
    got = frame_stats(f, saturation=1.0e4, bins=8, hist_range=(9999.99, 10000.01))
    x = f.reshape(3, -1).astype(np.float64)
    for k in (0, 2):
        row = x[k][~np.isnan(x[k])]
        assert got.count[k] == row.size
        assert got.sum[k] == pytest.approx(row.sum(), rel=1e-12)
        assert got.mean[k] == pytest.approx(row.mean(), rel=1e-12)
        assert got.std[k] == pytest.approx(row.std(), rel=1e-6)
        assert got.min[k] == row.min() and got.max[k] == row.max()
        assert got.saturated[k] == (row >= 1.0e4).sum()
        assert got.histogram is not None
        np.testing.assert_array_equal(got.histogram[k],
                                      np.histogram(f[k], 8, (9999.99, 10000.01))[0])
    assert got.count[1] == 0 and np.isnan([got.mean[1], got.std[1], got.min[1], got.max[1]]).all()
    assert got.histogram is not None and got.histogram[1].sum() == 0
    ref = frame_stats_reference(f, saturation=1.0e4, bins=8, hist_range=(9999.99, 10000.01))
    np.testing.assert_allclose(got.std, ref.std, rtol=1e-6)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))


def test_device_frames(rt: cl.Runtime, counts: np.ndarray) -> None:
    d = cla.to_device(rt.queue, counts)
    got = frame_stats(d, bins=16, hist_range=(0, 65536))
    ref = frame_stats_reference(counts, bins=16, hist_range=(0, 65536))
    for name in (*FIELDS, "histogram"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))
    np.testing.assert_allclose(got.std, ref.std, rtol=1e-12)


def test_bad_arguments_are_named(rt: cl.Runtime, counts: np.ndarray) -> None:
    with pytest.raises(ArrayArgumentError, match=r"`frames`: expected dtype uint16 or float32, got int32"):
        frame_stats(counts.astype(np.int32))
    with pytest.raises(ArrayArgumentError, match=r"give both"):
        frame_stats(counts, bins=10)
    with pytest.raises(ArrayArgumentError, match=r"`hist_range`: expected finite"):
        frame_stats(counts, bins=10, hist_range=(5.0, 1.0))
    with pytest.raises(ArrayArgumentError, match=r"`bins`: expected a positive int, got 0"):
        frame_stats(counts, bins=0, hist_range=(0, 1))
    with pytest.raises(ArrayArgumentError, match=r"expected 2 or 3 dimensions, got 1"):
        frame_stats(counts.ravel())
    with pytest.raises(ArrayArgumentError, match=r"`bins`, `hist_range`: Too many bins"):
        frame_stats(np.zeros((2, 2), np.float32), bins=40, hist_range=(1e4, 1e4 + 0.006))
