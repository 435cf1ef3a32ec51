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


def _draw(lam: np.ndarray, seed: int = 0, flux: np.ndarray | None = None) -> np.ndarray:
    n = lam.size
    phi = lam if flux is None else flux
    out = np.empty(n, np.uint32)
    words = np.random.default_rng(seed).bit_generator.random_raw(n)
    bad = draw_counts(phi, np.ones(n), np.zeros(n, bool), np.zeros(n, bool), 1.0, 0.0,
                      4.0 * (2**20 - 1), 2**20 - 1, words, quantile_table(), out)
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
            words, quantile_table(), out)
    assert draw_counts(flux, *args) == 3
    flux[3] = np.inf
    assert draw_counts(flux, *args) == 3
    flux[3] = 1.0
    assert draw_counts(flux, *args) == 7
