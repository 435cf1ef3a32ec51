"""The sensor's compiled counting pass: the normal quantile, the word → normal deviate
table, and the counts it draws (against scipy's distributions)."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from scipy import stats

from devices.counting import (
    BLOCK,
    FAST_TERMS,
    LOW_MEAN,
    NORMAL_MIN_MEAN,
    TABLE_BITS,
    TAIL_BINS,
    TERMS,
    CounterWords,
    KeptTerms,
    draw_counts,
    exp_neg,
    normal_quantile,
    quantile_table,
    word_to_normal,
)
from devices.normal_table import table_normals


@numba.njit(cache=False)
def _normals(words: np.ndarray, table: np.ndarray) -> np.ndarray:  # pragma: no cover
    out = np.empty(words.shape[0])
    for i in range(words.shape[0]):
        out[i] = word_to_normal(words[i], table)
    return out


def test_table_normals_are_word_to_normal_to_the_bit() -> None:
    """The block loop's deviates (the fraction made of the word's bits) are
    ``word_to_normal``'s to the bit, in float64 and float32, at every non-tail bin edge
    and with the fraction's bits all 0, all 1 or random."""
    rng = np.random.default_rng(21)
    bins = np.concatenate([[TAIL_BINS, TAIL_BINS + 1, (1 << TABLE_BITS) // 2 - 1,
                            (1 << TABLE_BITS) // 2, (1 << TABLE_BITS) - TAIL_BINS - 1],
                           rng.integers(TAIL_BINS, (1 << TABLE_BITS) - TAIL_BINS, 5000)])
    fracs = np.concatenate([[0, 0xFFFFFFFF, 1, 1 << 31],
                            rng.integers(0, 1 << 32, bins.size - 4)])
    rest = rng.integers(0, 1 << 16, bins.size)
    words = ((bins.astype(np.uint64) << np.uint64(64 - TABLE_BITS))
             | (fracs.astype(np.uint64) << np.uint64(64 - TABLE_BITS - 32))
             | rest.astype(np.uint64))
    table = quantile_table()
    want = _normals(words, table)
    for dtype in (np.float64, np.float32):
        zs = np.empty(words.size, dtype)
        table_normals(words, table, words.size, zs, np.empty(words.size, np.uint64))
        np.testing.assert_array_equal(zs, want.astype(dtype))


@pytest.mark.parametrize("p", [1e-300, 1e-100, 1e-20, 1e-9, 2e-5, 0.01, 0.2, 0.5, 0.7,
                               0.99, 1 - 1e-9, 1 - 2**-53,
                               # where the first guess changes from the tail's to the centre's
                               0.024249999, 0.02425, 0.024250001, 1 - 0.02425, 0.3, 0.4999])
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
    with pytest.raises(ValueError, match=r"out must be a flat array of 4 uint32 or int64, "
                                         r"got uint32 of shape \(3,\)"):
        draw_counts(*args, 1.0, 0.0, 1e7, 2**20 - 1, tail[0], np.empty(3, np.uint32))


@pytest.mark.parametrize("mean", [10.0, 12.0, 30.0])
def test_rounding_adds_no_variance_above_the_normal_threshold(mean: float) -> None:
    """Sheppard's correction in the linear term: the variance of the rounded draws is λ
    (2M draws: the variance ratio's standard error is about 0.001)."""
    c = _draw(np.full(2_000_000, mean), seed=int(mean)).astype(np.float64)
    assert abs(c.var() / mean - 1) < 4 * math.sqrt(2 / c.size) * 1.05


@numba.njit(cache=False)
def _exps(x: np.ndarray) -> np.ndarray:  # pragma: no cover
    out = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        out[i] = exp_neg(x[i])
    return out


def test_exp_neg_is_exp_to_the_last_places() -> None:
    x = np.concatenate([np.linspace(0.0, NORMAL_MIN_MEAN, 100_001),
                        np.random.default_rng(3).uniform(0.0, NORMAL_MIN_MEAN, 100_000),
                        np.nextafter(np.arange(1, 641) / 64, 0.0)])  # just below table steps
    ours = _exps(x)
    assert ours[0] == 1.0
    assert np.abs(ours / np.exp(-x) - 1).max() <= 2.5 * np.finfo(float).eps


def _counts(lam: np.ndarray, words: CounterWords | np.ndarray, top: int = 2**20 - 1
            ) -> np.ndarray:
    out = np.empty(lam.size, np.uint32)
    n = lam.size
    assert draw_counts(lam, np.ones(n), np.zeros(n, bool), np.zeros(n, bool), 1.0, 0.0,
                       4.0 * (2**20 - 1), top, words, out) == -1
    return out


def _poisson_gof(counts: np.ndarray, mean: float, top: int | None = None) -> float:
    """Chi-square p-value of ``counts`` against Poisson(``mean``) (cut at ``top``): the
    counts with an expected frequency of at least 20 each a class, the rest pooled."""
    n = counts.size
    law = stats.poisson(mean)
    values = np.arange(int(mean + 12 * math.sqrt(mean) + 12))
    expected = law.pmf(values) * n
    if top is not None:
        values = values[:top + 1]
        expected = expected[:top + 1]
        expected[top] = law.sf(top - 1) * n
    observed = np.bincount(counts, minlength=values.size)[:values.size]
    keep = expected >= 20
    rest_obs, rest_exp = n - observed[keep].sum(), n - expected[keep].sum()
    obs = np.append(observed[keep], rest_obs)
    exp = np.append(expected[keep], rest_exp)
    if rest_exp < 1e-9 * n:
        obs, exp = obs[:-1], exp[:-1]
        assert rest_obs == 0
    return float(stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


@pytest.mark.parametrize("mean", [0.02, 0.3, 1.0, 2.5, 6.0, 9.99])
def test_counter_words_give_poisson_counts(mean: float) -> None:
    """Chi-square goodness of fit against scipy's Poisson law, means on both sides of the
    branch-free terms (at 6 and 9.99 a sixth and more than half of the counts are beyond TERMS).
    The same test rejects a law with a mean 1 % off (the test can fail)."""
    n = 600_000
    c = _counts(np.full(n, mean), CounterWords(1234, int(mean * 100)))
    assert _poisson_gof(c, mean) > 1e-4
    assert abs(c.mean() - mean) < 4.5 * math.sqrt(mean / n)
    if mean >= 1.0:
        off = _counts(np.full(n, mean * 1.01 + 0.02), CounterWords(1234, 7))
        assert _poisson_gof(off, mean) < 1e-4


def test_mixed_means_in_one_block_each_follow_their_law() -> None:
    """Alternating small and large means in every block: the paths do not mix pixels."""
    n = 400_000
    lam = np.where(np.arange(n) % 3 == 0, 40.0, 0.7)
    c = _counts(lam, CounterWords(99, 5))
    assert _poisson_gof(c[lam == 0.7], 0.7) > 1e-4
    big = c[lam == 40.0].astype(float)
    assert abs(big.mean() - 40) < 4.5 * math.sqrt(40 / big.size)
    assert abs(big.var() / 40 - 1) < 4.5 * math.sqrt(2 / big.size)


def test_a_counter_below_the_branch_free_terms_saturates_at_top() -> None:
    """A 3-count counter at mean 5: counts 0, 1, 2 as Poisson's, the rest read 3."""
    top = 3
    assert top <= TERMS
    c = _counts(np.full(300_000, 5.0), CounterWords(8, 8), top=top)
    assert c.max() == top
    assert _poisson_gof(c, 5.0, top=top) > 1e-4


def test_counter_words_are_the_words_drawn_from() -> None:
    """A stream's words, materialised, give the very same counts (and the same frame
    number twice the same words, another frame or key others)."""
    lam = np.random.default_rng(2).exponential(4.0, BLOCK * 3 + 17)
    stream = CounterWords(5, 9)
    assert np.array_equal(_counts(lam, stream), _counts(lam, stream.words(lam.size)))
    assert np.array_equal(stream.words(100), CounterWords(5, 9).words(100))
    assert not np.array_equal(stream.words(100), CounterWords(5, 10).words(100))
    assert not np.array_equal(stream.words(100), CounterWords(6, 9).words(100))
    # pixel i of frame f: SplitMix64 (Steele, Lea & Flood 2014; Vigna's splitmix64.c) at
    # counter f·2³² + i from the key
    mask = (1 << 64) - 1

    def splitmix(state: int) -> int:
        z = state & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    gamma = 0x9E3779B97F4A7C15
    for i in (0, 2, BLOCK + 1):
        assert int(stream.words(BLOCK + 2)[i]) == splitmix(5 + ((9 << 32) + i) * gamma)


def test_counter_words_are_uniform_and_independent() -> None:
    """Top bytes uniform (chi-square), no correlation between neighbouring pixels or
    between the same pixel of successive frames."""
    n = 1 << 20
    a = CounterWords(42, 0).words(n)
    b = CounterWords(42, 1).words(n)
    top = (a >> np.uint64(56)).astype(np.int64)
    assert stats.chisquare(np.bincount(top, minlength=256)).pvalue > 1e-4
    low = (a & np.uint64(0xFF)).astype(np.int64)
    assert stats.chisquare(np.bincount(low, minlength=256)).pvalue > 1e-4
    ua = (a >> np.uint64(11)).astype(np.float64)
    ub = (b >> np.uint64(11)).astype(np.float64)
    bound = 4.5 / math.sqrt(n)
    assert abs(np.corrcoef(ua[:-1], ua[1:])[0, 1]) < bound
    assert abs(np.corrcoef(ua, ub)[0, 1]) < bound
    assert len(np.unique(np.concatenate([a, b]))) == 2 * n


def test_counter_words_refuse_out_of_range_keys_and_frames() -> None:
    with pytest.raises(ValueError, match=r"frame in 0 … 2\*\*32 − 1, got key=1, frame=-1"):
        CounterWords(1, -1)
    with pytest.raises(ValueError, match=r"got key=18446744073709551616"):
        CounterWords(1 << 64, 0)


def test_bad_flux_in_a_later_block_is_reported_at_its_index() -> None:
    n = BLOCK * 2 + 5
    flux = np.ones(n)
    flux[BLOCK + 3] = -2.0
    flux[BLOCK * 2 + 1] = np.nan
    out = np.empty(n, np.uint32)
    args = (np.ones(n), np.zeros(n, bool), np.zeros(n, bool), 1.0, 0.0, 1e7, 2**20 - 1,
            CounterWords(0, 0), out)
    assert draw_counts(flux, *args) == BLOCK + 3
    flux[BLOCK + 3] = 0.0
    assert draw_counts(flux, *args) == BLOCK * 2 + 1


def test_read_only_and_writeable_inputs_share_one_compiled_pass() -> None:
    """The scene's cached flux is read-only, a computed one writeable: both run the same
    compiled specialisation (no compile when the first frame of a scan arrives)."""
    from devices.counting_pass import draw_pass

    lam = np.full(100, 3.0)
    _counts(lam, CounterWords(1, 1))
    before = len(draw_pass.signatures)
    frozen = lam.copy()
    frozen.flags.writeable = False
    assert np.array_equal(_counts(frozen, CounterWords(1, 1)), _counts(lam, CounterWords(1, 1)))
    assert len(draw_pass.signatures) == before
    assert lam.flags.writeable  # the caller's array is left as it was


def test_hot_and_dead_as_indices_and_one_efficiency_for_all() -> None:
    """The forms the sensor passes (one efficiency, sorted hot/dead indices) draw the
    very counts of the per-pixel forms; dead wins over hot; bad indices are refused."""
    n = BLOCK * 2 + 9
    flux = np.random.default_rng(4).exponential(30.0, n)
    hot = np.zeros(n, bool)
    dead = np.zeros(n, bool)
    hot[[3, BLOCK + 1, n - 1]] = True
    dead[[0, 3, BLOCK * 2]] = True
    words = CounterWords(77, 2)

    def draw(eff: float | np.ndarray, h: np.ndarray, d: np.ndarray) -> np.ndarray:
        out = np.empty(n, np.uint32)
        assert draw_counts(flux, eff, h, d, 0.5, 1e4, 4e6, 2**20 - 1, words, out) == -1
        return out

    masks = draw(np.full(n, 0.8), hot, dead)
    assert np.array_equal(draw(0.8, np.flatnonzero(hot), np.flatnonzero(dead)), masks)
    assert masks[0] == masks[3] == masks[BLOCK * 2] == 0          # dead, also when hot
    assert masks[BLOCK + 1] > 4000 and masks[n - 1] > 4000        # 1e4/s for 0.5 s
    out = np.empty(n, np.uint32)
    for bad in (np.array([5, 5]), np.array([7, 2]), np.array([n]), np.array([-1])):
        with pytest.raises(ValueError, match=r"hot indices must be sorted, distinct and in "
                                             rf"0 … {n - 1}"):
            draw_counts(flux, 0.8, bad, dead, 0.5, 1e4, 4e6, 2**20 - 1, words, out)
    with pytest.raises(ValueError, match=r"dead must be a mask or pixel indices, got dtype "
                                         r"float64"):
        draw_counts(flux, 0.8, hot, np.zeros(3), 0.5, 1e4, 4e6, 2**20 - 1, words, out)
    with pytest.raises(ValueError, match=r"hot must be a mask or pixel indices, got dtype "
                                         r"timedelta64"):   # (numpy counts it an integer)
        draw_counts(flux, 0.8, np.array([3], "m8[s]"), dead, 0.5, 1e4, 4e6, 2**20 - 1,
                    words, out)


def test_the_cap_bounds_the_mean_with_the_hot_counts_on_top() -> None:
    """A mean is ``min(flux part + hot part, cap)``: pixels whose flux part, hot part or
    their sum passes the cap draw the counts of a mean of exactly the cap from the same
    words (the pass caps the flux part as it makes it, then a hot pixel's sum again)."""
    n, cap = BLOCK + 40, 50.0
    words = CounterWords(5, 9).words(n)
    exposure, rate = 0.5, 60.0                     # hot part 30 (below the cap)
    flux = np.full(n, cap / exposure)              # every mean exactly the cap ...
    flux[[1, 2, BLOCK + 3]] = [1e9, 45.0, 1e300]   # ... but: far above, 22.5 + 30, above
    hot = np.array([1, 2, 7, BLOCK + 3])           # 7: exactly the cap + 30
    want, out = np.empty(n, np.uint32), np.empty(n, np.uint32)
    no = np.zeros(0, np.intp)
    assert draw_counts(np.full(n, cap / exposure), 1.0, no, no, exposure, 0.0, cap,
                       2**20 - 1, words, want) == -1
    assert draw_counts(flux, 1.0, hot, no, exposure, rate, cap, 2**20 - 1, words, out) == -1
    assert np.array_equal(out, want)
    flux[2] = 10.0                                  # 5 + 30: below the cap, drawn as 35
    assert draw_counts(flux, 1.0, hot, no, exposure, rate, cap, 2**20 - 1, words, out) == -1
    mean35 = np.empty(n, np.uint32)
    assert draw_counts(np.full(n, 70.0), 1.0, no, no, exposure, 0.0, cap, 2**20 - 1, words,
                       mean35) == -1
    assert out[2] == mean35[2]
    assert np.array_equal(np.delete(out, 2), np.delete(want, 2))


def test_a_block_of_large_means_draws_as_a_mixed_block_does() -> None:
    """A block whose means are all large takes the branch-free normal draws (the table's
    tail words redone exactly); a block with one small mean takes the per-pixel path:
    the same words and means give the same counts either way, tail words included, and
    saturation at ``top`` too."""
    n = BLOCK
    words = np.random.default_rng(5).bit_generator.random_raw(n).astype(np.uint64)
    bins = np.array([0, 1, TAIL_BINS - 1, TAIL_BINS, (1 << TABLE_BITS) - TAIL_BINS - 1,
                     (1 << TABLE_BITS) - TAIL_BINS, (1 << TABLE_BITS) - 1], np.uint64)
    words[:bins.size] = (bins << np.uint64(64 - TABLE_BITS)) | np.uint64(12345)
    lam = np.random.default_rng(6).uniform(10.0, 3000.0, n)
    lam[bins.size] = 5e6  # saturates
    for top in (2**20 - 1, 2000):
        large = _counts(lam, words, top=top)
        mixed_lam = lam.copy()
        mixed_lam[-1] = 0.5
        mixed = _counts(mixed_lam, words, top=top)
        np.testing.assert_array_equal(large[:-1], mixed[:-1])
        assert large[bins.size] == top and large.max() == top
        z = np.array([_normals(words[i:i + 1], quantile_table())[0] for i in range(bins.size)])
        want = np.floor(lam[:bins.size] + np.sqrt(lam[:bins.size] - 1 / 12) * z
                        + (z * z - 1) / 6 + z * (1 - z * z) / (72 * np.sqrt(lam[:bins.size]))
                        + 0.5)
        np.testing.assert_array_equal(large[:bins.size], np.clip(want, 0, top))


def test_tail_words_anywhere_in_a_block_are_drawn_exactly() -> None:
    """The branch-free path finds a block's tail words by their flags, 8 at a time: tail
    words at every offset within a group of 8, in later groups and blocks, and in a last
    block shorter than a multiple of 8 (its last pixel among them) are each redone from
    the exact quantile — the counts of the per-pixel path (a block with one small mean)
    and of the expansion at ``word_to_normal``'s deviate."""
    n = 2 * BLOCK + 13
    rng = np.random.default_rng(11)
    words = rng.bit_generator.random_raw(n).astype(np.uint64)
    tails = np.array(sorted({*range(0, 8), *range(8 * 17 + 3, n, 61), n - 1, BLOCK - 1,
                             BLOCK, 2 * BLOCK + 8}))
    low = rng.integers(0, TAIL_BINS, tails.size).astype(np.uint64)
    high = rng.integers((1 << TABLE_BITS) - TAIL_BINS, 1 << TABLE_BITS,
                        tails.size).astype(np.uint64)
    bins = np.where(rng.random(tails.size) < 0.5, low, high)
    words[tails] = (bins << np.uint64(64 - TABLE_BITS)) | (words[tails] & np.uint64(0xFFFF))
    lam = rng.uniform(10.0, 3000.0, n)
    large = _counts(lam, words)
    z = _normals(words, quantile_table())
    want = np.floor(lam + np.sqrt(lam - 1 / 12) * z + (z * z - 1) / 6
                    + z * (1 - z * z) / (72 * np.sqrt(lam)) + 0.5)
    np.testing.assert_array_equal(large[tails], want[tails])
    assert np.abs(z[tails]).min() > 3.0  # (they were tail words)
    for block in range(3):  # each block with one small mean: the per-pixel path
        mixed_lam = lam.copy()
        last = min(n, (block + 1) * BLOCK) - 1
        mixed_lam[last - 1] = 0.5
        mixed = _counts(mixed_lam, words)
        keep = np.arange(n) != last - 1
        np.testing.assert_array_equal(large[keep], mixed[keep])


def test_kept_terms_give_the_counts_of_computed_ones() -> None:
    """``kept``: a pass keeps each small mean's first term and each block's list of
    means from LOW_MEAN on, a pass told they are ready reads them back (the same counts:
    blocks of small means with a few larger ones listed, blocks dense with larger means,
    blocks of only large means, counts beyond FAST_TERMS and TERMS), and really reads
    them (first terms of 1 make every small mean's count 0)."""
    rng = np.random.default_rng(8)
    n = BLOCK * 4 + 11
    lam = rng.uniform(0.0, 9.0, n)                                 # dense block
    lam[BLOCK:2 * BLOCK] = rng.uniform(10.0, 500.0, BLOCK)        # a block of large means
    lam[2 * BLOCK::7] = rng.uniform(10.0, 500.0, lam[2 * BLOCK::7].size)  # mixed, dense
    low = slice(3 * BLOCK, 4 * BLOCK)                             # listed: small means
    lam[low] = rng.exponential(0.2, BLOCK)
    lam[3 * BLOCK + 2:4 * BLOCK:3] = 0.99  # counts beyond FAST_TERMS (4 in 1000)
    lam[3 * BLOCK + 1:4 * BLOCK:61] = rng.uniform(1.0, 40.0, lam[3 * BLOCK + 1:4 * BLOCK:61].size)
    lam[3 * BLOCK + 5] = 0.999  # below LOW_MEAN: the first FAST_TERMS terms only
    words = CounterWords(31, 4)
    plain = _counts(lam, words)
    kept = KeptTerms(n)

    def draw(ready: bool) -> np.ndarray:
        out = np.empty(n, np.uint32)
        assert draw_counts(lam, 1.0, np.zeros(0, np.intp), np.zeros(0, np.intp), 1.0, 0.0,
                           4.0 * (2**20 - 1), 2**20 - 1, words, out, kept=kept,
                           kept_ready=ready) == -1
        return out

    assert not kept.filled
    np.testing.assert_array_equal(draw(False), plain)
    assert kept.filled
    small = lam < NORMAL_MIN_MEAN
    np.testing.assert_allclose(kept.exps[small], np.exp(-lam[small]), rtol=3e-16, atol=0)
    listed = kept.high[kept.starts[3]:kept.starts[4]]
    np.testing.assert_array_equal(listed, np.flatnonzero(lam[low] >= LOW_MEAN))
    assert kept.starts[1] == kept.starts[2] == kept.starts[3] == 0  # dense, large, dense
    np.testing.assert_array_equal(draw(True), plain)
    assert (plain[small] > TERMS).any() and (plain[low][lam[low] < LOW_MEAN] > FAST_TERMS).any()
    kept.exps[:] = 1.0
    ones = draw(True)
    assert not ones[small].any()
    np.testing.assert_array_equal(ones[~small], plain[~small])


def test_listed_means_follow_their_laws() -> None:
    """Blocks of small means with a few larger ones among them (a powder pattern's
    rings): each class drawn through its path (FAST_TERMS terms, the listed ones' TERMS
    terms or normal draws) follows its Poisson law."""
    n = 600_000
    lam = np.full(n, 0.3)
    lam[::50] = 2.5   # listed (one pixel in 50: below the dense limit)
    lam[25::50] = 0.99  # not listed: FAST_TERMS terms and the rare continuation
    lam[10::100] = 60.0  # listed, large
    c = _counts(lam, CounterWords(17, 3))
    for mean in (0.3, 2.5, 0.99):
        assert _poisson_gof(c[lam == mean], mean) > 1e-4, mean
    big = c[lam == 60.0].astype(float)
    assert abs(big.mean() - 60) < 4.5 * math.sqrt(60 / big.size)
    assert abs(big.var() / 60 - 1) < 4.5 * math.sqrt(2 / big.size)


def test_kept_terms_are_checked() -> None:
    n = 6
    args = (np.ones(n), 1.0, np.zeros(0, np.intp), np.zeros(0, np.intp), 1.0, 0.0, 1e7,
            2**20 - 1, CounterWords(0, 0), np.empty(n, np.uint32))
    with pytest.raises(ValueError, match=r"kept must be the KeptTerms of 6 pixels, got "
                                         r"those of 5"):
        draw_counts(*args, kept=KeptTerms(5))
    with pytest.raises(ValueError, match=r"kept must be the KeptTerms of 6 pixels, got "
                                         r"array"):
        draw_counts(*args, kept=np.empty(n))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kept_ready without kept terms a pass has filled"):
        draw_counts(*args, kept_ready=True)
    with pytest.raises(ValueError, match="kept_ready without kept terms a pass has filled"):
        draw_counts(*args, kept=KeptTerms(n), kept_ready=True)
    for bad in (-1, 1.5, True, 1 << 33):
        with pytest.raises(ValueError, match="KeptTerms: n must be an int"):
            KeptTerms(bad)  # type: ignore[arg-type]
    flux = np.ones(n)
    flux[4] = np.nan
    kept = KeptTerms(n)
    assert draw_counts(flux, *args[1:], kept=kept) == 4
    assert not kept.filled  # (a pass that stopped at a bad flux kept nothing usable)


def test_large_means_are_the_expansion_but_where_it_is_a_hair_from_a_boundary() -> None:
    """The expansion's part beyond the mean is computed in single precision: 2M draws of
    means from 10 to 1e5 (words given, their deviates from ``word_to_normal``) are the
    expansion computed in double precision by numpy (with √(λ − 1/12) itself), but where
    that value lies within a few 1e-7 (relative) of a count boundary — a handful of
    pixels, each off by one."""
    n = 2_000_000
    rng = np.random.default_rng(21)
    lam = np.exp(rng.uniform(math.log(10.0), math.log(1e5), n))
    words = rng.bit_generator.random_raw(n).astype(np.uint64)
    got = _counts(lam, words).astype(np.float64)
    z = _normals(words, quantile_table())
    deviation = (np.sqrt(lam - 1 / 12) * z + (z * z - 1) / 6
                 + z * (1 - z * z) / (72 * np.sqrt(lam)))
    exact = lam + deviation + 0.5
    want = np.floor(exact)
    off = got != want
    near = np.abs(exact - np.round(exact)) < 1e-6 * (1 + np.abs(deviation))
    assert not (off & ~near).any(), (lam[off & ~near][:5], exact[off & ~near][:5])
    assert np.abs(got - want).max() <= 1
    assert off.sum() <= 20
