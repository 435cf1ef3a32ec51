"""The sensor's compiled counting pass: the normal quantile, the word → normal deviate
table, and the counts it draws (against scipy's distributions)."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy import stats

from devices.counting import (
    TABLE_BITS,
    TAIL_BINS,
    draw_counts,
    normal_quantile,
    quantile_table,
    word_to_normal,
)


@numba.njit(cache=False)
def _normals(words: np.ndarray, table: np.ndarray) -> np.ndarray:  # pragma: no cover
    out = np.empty(words.shape[0])
    for i in range(words.shape[0]):
        out[i] = word_to_normal(words[i], table)
    return out


@pytest.mark.parametrize("p", [1e-300, 1e-100, 1e-20, 1e-9, 2e-5, 0.01, 0.2, 0.5, 0.7,
                               0.99, 1 - 1e-9, 1 - 2**-53])
def test_normal_quantile_matches_scipy(p: float) -> None:
    expected = stats.norm.ppf(p)
    assert normal_quantile(p) == pytest.approx(expected, rel=1e-13, abs=1e-15)


def test_table_interpolation_is_within_its_bound_outside_the_exact_tails() -> None:
    table = quantile_table()
    n = 1 << TABLE_BITS
    assert table.shape == (n + 1,) and not table.flags.writeable
    k = np.arange(TAIL_BINS, n - TAIL_BINS)
    midpoints = (table[k] + table[k + 1]) / 2  # where linear interpolation is worst
    assert np.abs(midpoints - stats.norm.ppf((k + 0.5) / n)).max() < 1e-5


def test_words_at_the_edges_of_the_table() -> None:
    table = quantile_table()
    top = np.uint64(2**64 - 1)
    words = np.array([0, top, 1 << 63, (TAIL_BINS << (64 - TABLE_BITS)) - 1,
                      TAIL_BINS << (64 - TABLE_BITS)], dtype=np.uint64)
    z = _normals(words, table)
    assert z[0] == pytest.approx(stats.norm.ppf(0.5 * 2.0**-53), rel=1e-12)  # exact tail
    assert z[1] == pytest.approx(-z[0], rel=1e-12)                           # symmetric
    assert z[2] == pytest.approx(0.0, abs=1e-15)                               # the median
    edge = stats.norm.ppf(TAIL_BINS / (1 << TABLE_BITS))
    assert z[3] == pytest.approx(edge, abs=1e-9) and z[4] == pytest.approx(edge, abs=1e-12)
    assert z[3] < z[4]


def test_deviates_are_standard_normal() -> None:
    words = np.random.default_rng(7).bit_generator.random_raw(2_000_000)
    z = _normals(words, quantile_table())
    n = z.size
    assert abs(z.mean()) < 4 / math.sqrt(n)
    assert abs(z.var() - 1) < 4 * math.sqrt(2 / n)
    assert abs(stats.skew(z)) < 4 * math.sqrt(6 / n)
    assert abs(stats.kurtosis(z)) < 4 * math.sqrt(24 / n)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # the tails are populated as the normal's (2 in 1000 words beyond the table)
    beyond = np.mean(np.abs(z) > -stats.norm.ppf(TAIL_BINS / (1 << TABLE_BITS)))
    assert beyond == pytest.approx(2 * TAIL_BINS / (1 << TABLE_BITS), rel=0.1)


def _draw(lam: np.ndarray, seed: int = 0, words: np.ndarray | None = None) -> np.ndarray:
    n = lam.size
    phi = lam
    out = np.empty(n, np.uint32)
    if words is None:
        words = np.random.default_rng(seed).bit_generator.random_raw(n)
    bad = draw_counts(phi, np.ones(n), np.zeros(n, bool), np.zeros(n, bool), 1.0, 0.0,
                      4.0 * (2**20 - 1), 2**20 - 1, words, out)
    assert bad == -1
    return out


@pytest.mark.parametrize("mean", [0.0, 0.05, 1.0, 4.0, 9.99])
def test_small_means_are_exact_poisson(mean: float) -> None:
    c = _draw(np.full(400_000, mean), seed=int(mean * 100))
    if mean == 0:
        assert not c.any()
        return
    values = np.arange(0, int(mean + 8 * math.sqrt(mean) + 3))
    empirical = np.searchsorted(np.sort(c), values, side="right") / c.size
    assert np.abs(empirical - stats.poisson(mean).cdf(values)).max() < 0.003
    assert abs(c.mean() - mean) < 4 * math.sqrt(mean / c.size)


def test_bad_flux_is_reported_at_its_first_pixel() -> None:
    flux = np.ones(10)
    flux[[3, 7]] = [np.nan, -1.0]
    out = np.empty(10, np.uint32)
    words = np.zeros(10, np.uint64)
    args = (np.ones(10), np.zeros(10, bool), np.zeros(10, bool), 1.0, 0.0, 1e7, 2**20 - 1,
            words, out)
    assert draw_counts(flux, *args) == 3
    flux[3] = np.inf
    assert draw_counts(flux, *args) == 3
    flux[3] = 1.0
    assert draw_counts(flux, *args) == 7


def test_a_uniform_in_the_rounding_gap_gives_a_tail_count_not_a_runaway() -> None:
    """The largest words read as u ≈ 1 − 2⁻⁵⁴, above the rounded sum of all Poisson terms:
    the count stops in the far tail instead of running on."""
    lam = np.array([9.5, 9.999, 3.0, 0.5])
    top = np.full(lam.size, 2**64 - 1, dtype=np.uint64)
    c = _draw(lam, words=top)
    assert all(lam + 6 * np.sqrt(lam) < c) and all(c < lam + 20 * np.sqrt(lam) + 10), c


def test_draw_counts_refuses_arrays_of_the_wrong_kind() -> None:
    n = 4
    args: list[np.ndarray] = [np.ones(n), np.ones(n), np.zeros(n, bool), np.zeros(n, bool)]
    tail = (np.zeros(n, np.uint64), np.empty(n, np.uint32))
    with pytest.raises(ValueError, match=r"words must be a flat array of 4 uint64, got int64"):
        draw_counts(*args, 1.0, 0.0, 1e7, 2**20 - 1, np.zeros(n, np.int64), tail[1])
    with pytest.raises(ValueError, match=r"flux must be a flat array of 4 float32 or float64"):
        draw_counts(np.ones(n, int), *args[1:], 1.0, 0.0, 1e7, 2**20 - 1, *tail)
    with pytest.raises(ValueError, match=r"out must be a flat array of 4 uint32, got uint32 "
                                         r"of shape \(3,\)"):
        draw_counts(*args, 1.0, 0.0, 1e7, 2**20 - 1, tail[0], np.empty(3, np.uint32))


@pytest.mark.parametrize("mean", [10.0, 12.0, 30.0])
def test_rounding_adds_no_variance_above_the_normal_threshold(mean: float) -> None:
    """Sheppard's correction in the linear term: the variance of the rounded draws is λ
    (2M draws: the variance ratio's standard error is about 0.001)."""
    c = _draw(np.full(2_000_000, mean), seed=int(mean)).astype(np.float64)
    assert abs(c.var() / mean - 1) < 4 * math.sqrt(2 / c.size) * 1.05
