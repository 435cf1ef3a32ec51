"""Poisson counts of a whole frame in one compiled pass: the sensor model's inner loop
(``draw_pass``; ``devices.counting.draw_counts`` checks its arguments and calls it).

Random words. Pixel ``i`` of frame ``f`` of a sensor whose noise key is ``key`` gets the
64-bit word ``mix64(key + c·γ)`` with the counter ``c = f·2³² + i``: SplitMix64's output
function (a bijective 64-bit mixer; the SplitMix64 sequence passes BigCrush) at
position ``c`` of the SplitMix64 sequence that starts at ``key``. A word depends only on
``(key, frame, pixel)``, so a seed gives the same frames on every machine, whichever
part of the frame is drawn first and however many threads share it, and distinct
``(frame, pixel)`` never share a word (no noise is reused between frames). Tests (and
callers that bring their own generator) may pass the words instead
(:class:`CounterWords` or an array).

Each word decides its pixel's count:

* mean ``λ < NORMAL_MIN_MEAN``: exact Poisson by inversion, the word read as a uniform
  ``u = (w₅₂ + ½)·2⁻⁵²`` in (0, 1) from its top 52 bits ``w₅₂``, ``k`` the smallest count
  whose distribution function reaches ``u``. The first ``FAST_TERMS`` terms are summed
  for every pixel without a branch (``k`` counts the partial sums below ``u``; that loop
  runs four pixels per instruction), which is what makes it fast: a search that stops
  at a random count mispredicts a branch per pixel. The pixels whose mean is
  ``LOW_MEAN`` or more (a powder pattern's rings among its dim background) are listed
  and get ``TERMS`` terms the same way; a block where they are more than one pixel in
  ``DENSE`` gives every pixel ``TERMS`` terms instead. The few counts beyond (beyond
  ``FAST_TERMS``: one in 60 000 at ``λ = 0.3``; beyond ``TERMS``: one in 10⁶ at ``λ = 1``,
  half at ``λ = 9``) continue the same sum one term at a time;
* ``λ >= NORMAL_MIN_MEAN``: the Cornish–Fisher expansion of the Poisson quantile in a
  standard normal ``z`` (see ``devices.sensor``), where ``z = Φ⁻¹(u)`` comes from
  inverse-transform sampling: the top 16 bits of the word pick one of 2¹⁶ equal-probability
  bins of the normal distribution, the next 32 bits interpolate linearly between the bin's
  quantiles (a table computed once); in the ``TAIL_BINS`` outermost bins on each side
  (|z| > 3.1, 2 words in 1000), where the quantile curves too much for a straight line,
  ``z`` is computed exactly from the 53-bit uniform. The interpolated ``z`` is off by at
  most 1e-5 (next to those bins; below 1e-7 for |z| < 2), far less than a count. The
  expansion's part beyond ``λ`` is computed in single precision (``devices.counting_normal``: eight
  pixels per instruction), with a relative error of about 1e-7, that of ``z``: a count
  can differ from the exact expansion's only where that is within about 1e-6 of a
  half-integer (a few pixels in a million, each off by one).

A block whose means are all large (a bright image, as in transmission imaging) draws its
normals without a branch, four to eight pixels per instruction (the bin clamped out of the tails),
then redoes the few pixels whose word falls in a tail bin: the same counts as the
per-pixel path. The pass is compiled with numpy's error model, so a float division has
no zero-divisor branch to keep its loop from running four pixels at a time (no divisor
in it can be 0).

Fusing the mean (efficiency × flux × exposure, hot and dead pixels, the cap), the flux
checks, the words and the draw into one pass over blocks of ``BLOCK`` pixels (kept in
cache between the steps) is what lets a megapixel sensor run at the firmware's rate.
The one thing of a small mean's draw that does not depend on the word, its first term
``e^(−λ)``, is the dearest part (an exponential per pixel, which the compiled loop
cannot run four at a time: its table lookup does not vectorise here); a caller whose
means do not change between exposures (a powder pattern while the sample stays put)
may have the pass keep those terms and the lists of larger means (``KeptTerms``) and
read them back the next times: the very same counts, 40 % less time per frame of a
diffraction pattern (10.4 → 6.0 ms a megapixel, one core; 7.4 ms before the lists).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from .counting_normal import normal_block, normal_block_into, normal_count
from .normal_table import (
    TABLE_BITS,
    TAIL_BINS,
    tail_flags,
    word_to_normal,
)

NORMAL_MIN_MEAN = 10.0
"""Counts with a mean at least this are drawn from the Cornish–Fisher normal expansion."""

@njit(inline="always")
def mix64(z: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """SplitMix64's output function: a bijective mix of the 64 bits of ``z``."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class CounterWords:
    """The random words of pixels ``0 … n − 1`` of frame ``frame`` of the noise stream
    ``key``: pixel ``i``'s word is ``mix64(key + (frame·2³² + i)·γ)`` (module docstring)."""

    key: int
    frame: int

    def __post_init__(self) -> None:
        if not 0 <= self.key < 1 << 64 or not 0 <= self.frame < 1 << 32:
            raise ValueError(f"CounterWords: key must be in 0 … 2**64 − 1 and frame in "
                             f"0 … 2**32 − 1, got key={self.key}, frame={self.frame}")

    @property
    def base(self) -> np.uint64:
        """``key + frame·2³²·γ`` (mod 2⁶⁴): pixel ``i``'s word is ``mix64(base + i·γ)``."""
        return np.uint64((self.key + (self.frame << 32) * GAMMA) % (1 << 64))

    def words(self, n: int) -> npt.NDArray[np.uint64]:
        """The words of pixels ``0 … n − 1`` (what ``draw_counts`` draws from)."""
        if not 0 <= n <= 1 << 32:
            raise ValueError(f"CounterWords.words: n must be in 0 … 2**32, got {n}")
        out = np.empty(n, np.uint64)
        _counter_words(self.base, out)
        return out


GAMMA = 0x9E3779B97F4A7C15
"""SplitMix64's increment γ (odd, so ``c ↦ key + c·γ`` never repeats over 2⁶⁴ counters)."""
_GAMMA = np.uint64(GAMMA)

LOW_MEAN = 1.0
"""Means below this take only ``FAST_TERMS`` terms without a branch (their counts go
beyond in fewer than 4 in 1000 draws); the pixels of larger ones are listed, and those
lists kept with the first terms (``KeptTerms``)."""
DENSE = 8
"""A block more than one pixel in ``DENSE`` of whose means are ``LOW_MEAN`` or more gives
every pixel ``TERMS`` terms (listing that many costs more)."""
FAST_TERMS = 4
"""Terms of the Poisson sum every pixel below ``NORMAL_MIN_MEAN`` gets without a branch."""
TERMS = 8
"""Terms the pixels whose count goes beyond ``FAST_TERMS`` get without a branch (listed);
those beyond these go on one term at a time."""
BLOCK = 2048
"""Pixels per block of the compiled pass (its scratch arrays stay in the cache)."""
_STEPS = np.arange(BLOCK, dtype=np.uint64) * _GAMMA
"""``j·γ`` (mod 2⁶⁴) for ``j`` in a block: a block's counters ``c₀ + j`` as words
``c₀·γ + j·γ`` with an add, not a 64-bit product (three 32-bit products in AVX2)."""
_INV = np.array([0.0] + [1.0 / k for k in range(1, 256)])
"""``1/k``: the Poisson terms' ratios ``λ/k`` as products (a division is slower)."""


EXP_STEPS = 64
"""Table steps per unit of ``exp_neg``'s argument."""
_EXP_TABLE = np.exp(-np.arange(int(NORMAL_MIN_MEAN) * EXP_STEPS + 1) / EXP_STEPS)
_EXP_TAYLOR = tuple((-1.0) ** k / math.factorial(k) for k in range(7, -1, -1))


@njit(inline="always")
def exp_neg(x: float) -> float:  # pragma: no cover - compiled
    """``e^(−x)`` for ``0 <= x <= NORMAL_MIN_MEAN`` to 2 units in the last place:
    ``e^(−i/64)`` from a table times the Taylor polynomial of ``e^(−f)``, ``0 <= f < 1/64``
    (twice as fast as ``math.exp``, which is a call)."""
    i = int(x * EXP_STEPS)
    f = x - i * (1.0 / EXP_STEPS)
    e = 0.0
    for c in _EXP_TAYLOR:
        e = e * f + c
    return float(_EXP_TABLE[i] * e)


@njit(cache=True, nogil=True)
def _counter_words(base: np.uint64, out: npt.NDArray[np.uint64]) -> None:  # pragma: no cover
    for i in range(out.shape[0]):
        out[i] = mix64(base + np.uint64(i) * _GAMMA)


@njit(cache=True, nogil=True, error_model="numpy")  # (see the module docstring)
def draw_pass(flux: npt.NDArray[np.floating], efficiency: npt.NDArray[np.float64],
                 uniform: bool, hot: npt.NDArray[np.intp], dead: npt.NDArray[np.intp],
                 exposure: float, hot_counts: float, cap: float, top: int, base: np.uint64,
                 given: npt.NDArray[np.uint64], use_given: bool,
                 table: npt.NDArray[np.float64], out: npt.NDArray[np.uint32 | np.int64],
                 exps: npt.NDArray[np.float64], high: npt.NDArray[np.uint16],
                 starts: npt.NDArray[np.int64], keep: bool, ready: bool
                 ) -> int:  # pragma: no cover - compiled
    lams = np.empty(BLOCK)
    words = np.empty(BLOCK, np.uint64)
    us = np.empty(BLOCK)
    bits = np.empty(BLOCK, np.uint64)
    firsts = np.empty(BLOCK)
    terms = np.empty(BLOCK)
    sums = np.empty(BLOCK)
    ks = np.empty(BLOCK)
    listed = np.empty(BLOCK, np.uint16)
    flags = np.zeros(BLOCK, np.uint8)
    groups = flags.view(np.uint64)
    singles = np.empty(4 * BLOCK, np.float32)
    scratch = (np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK),
               np.empty(BLOCK), np.empty(BLOCK), np.empty(BLOCK, np.uint64),
               np.empty(BLOCK, np.intp), singles)
    n = flux.shape[0]
    next_hot = next_dead = 0
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        block = start // BLOCK
        # (the block's views: indexed from 0 by the loops' own counters, whose loads
        # and stores the compiler then knows to be consecutive, several at a time)
        fl = flux[start:start + m]
        o = out[start:start + m]
        # 1. means, flux checks and words: no branch (the few hot and dead pixels after)
        # (capped as they are made: a loop that only caps stores the few capped means
        # with a masked store, slow on AMD; a hot pixel's min(min(x, cap) + h, cap) is
        # min(x + h, cap), the same number)
        ok: np.bool_ = np.bool_(True)
        if uniform:
            rate = efficiency[0] * exposure
            for j in range(m):
                phi = np.float64(fl[j])
                ok &= (phi >= 0.0) & (phi < np.inf)
                lams[j] = min(rate * phi, cap)
        else:
            ef = efficiency[start:start + m]
            for j in range(m):
                phi = np.float64(fl[j])
                ok &= (phi >= 0.0) & (phi < np.inf)
                lams[j] = min(ef[j] * phi * exposure, cap)
        while next_hot < hot.shape[0] and hot[next_hot] < start + m:
            lams[hot[next_hot] - start] = min(lams[hot[next_hot] - start] + hot_counts, cap)
            next_hot += 1
        while next_dead < dead.shape[0] and dead[next_dead] < start + m:
            lams[dead[next_dead] - start] = 0.0
            next_dead += 1
        large = n_high = 0
        for j in range(m):
            large += lams[j] >= NORMAL_MIN_MEAN
            n_high += lams[j] >= LOW_MEAN
        if use_given:
            gv = given[start:start + m]
            for j in range(m):
                words[j] = gv[j]
        else:  # (a loop of its own: its 64-bit products do not run four pixels at a
            # time, the loops around it do)
            counter = base + np.uint64(start) * _GAMMA
            for j in range(m):
                words[j] = mix64(counter + _STEPS[j])
        if not ok:
            for j in range(m):
                phi = np.float64(fl[j])
                if not (phi >= 0.0 and phi < np.inf):
                    return start + j
        if large == m:  # 2a. every mean large (a bright image): the normal draws without
            # a branch, four at a time, then the few words in the table's tails again
            if keep and not ready:
                starts[block + 1] = starts[block]
            normal_block_into(lams, words, table, float(top), m, singles, o)
            tail_flags(words, m, flags)
            for g in range(groups.shape[0]):
                if groups[g]:  # (8 flags a word: a block has about 4 tail words)
                    for j in range(8 * g, min(8 * g + 8, m)):
                        if flags[j]:
                            v = normal_count(lams[j], word_to_normal(words[j], table))
                            o[j] = top if v >= top else (0 if v <= 0.0
                                                                   else np.uint32(v))
            continue
        # 2. the inversion's first terms for every pixel, without a branch
        _uniforms(words, bits, us, m)
        if ready:  # the first terms kept from a pass with these very means
            first = exps[start:start + m]
        else:
            first = firsts
            for j in range(m):
                firsts[j] = exp_neg(min(lams[j], NORMAL_MIN_MEAN))
            if keep:
                ex = exps[start:start + m]
                for j in range(m):
                    ex[j] = firsts[j]
        if n_high * DENSE > m:  # 2b. many larger means: every pixel TERMS terms
            rest = large + _all_terms(lams, us, first, terms, sums, ks, m)
            for j in range(m):
                o[j] = min(int(ks[j]), top)
            if keep and not ready:
                starts[block + 1] = starts[block]
            if rest == 0:
                continue
            for j in range(m):  # the large means and the counts beyond TERMS
                lam = lams[j]
                if lam >= NORMAL_MIN_MEAN:
                    v = normal_count(lam, word_to_normal(words[j], table))
                    o[j] = top if v >= top else (0 if v <= 0.0 else np.uint32(v))
                elif ks[j] > TERMS:
                    o[j] = min(_continue(lam, us[j], terms[j], sums[j], TERMS),
                                         top)
            continue
        # 2c. mostly small means: every pixel FAST_TERMS terms, then the larger ones
        beyond = _first_terms(lams, us, first, terms, sums, ks, m)
        for j in range(m):
            o[j] = min(int(ks[j]), top)
        # the pixels of means from LOW_MEAN on: listed (the lists kept with the terms),
        # the inversion's first TERMS terms, or the normal draw
        if ready:
            at = high[starts[block]:starts[block + 1]]
        else:
            at = listed[:0]
            if n_high:
                count = 0
                for j in range(m):
                    listed[count] = j
                    count += lams[j] >= LOW_MEAN
                at = listed[:count]
            if keep:
                first_at = starts[block]
                starts[block + 1] = first_at + at.shape[0]
                high[first_at:first_at + at.shape[0]] = at
        if at.shape[0]:
            _high_means(at, lams, us, first, words, table, top, o, scratch)
        if beyond:  # the few small means whose counts go beyond FAST_TERMS
            for j in range(m):
                if ks[j] > FAST_TERMS and lams[j] < LOW_MEAN:
                    o[j] = min(_continue(lams[j], us[j], terms[j], sums[j],
                                                   FAST_TERMS), top)
    return -1


_U_ONE = np.uint64(0x3FF0000000000000)
"""The bits of 1.0: with 52 bits of a word below them, a double in [1, 2)."""
_U_OFFSET = 1.0 - 2.0 ** -53


@njit(inline="always")
def _uniforms(words: npt.NDArray[np.uint64], bits: npt.NDArray[np.uint64],
              us: npt.NDArray[np.float64], m: int) -> None:  # pragma: no cover - compiled
    """The uniforms of the first ``m`` words: ``u = (w₅₂ + ½)·2⁻⁵²`` in (0, 1), ``w₅₂``
    the word's top 52 bits — as the double ``1 + w₅₂·2⁻⁵²`` made of its bits, minus
    ``1 − 2⁻⁵³`` (exact: the two are within a factor 2). No integer → float conversion,
    which has no vector instruction here: two loops of several pixels at a time
    (``bits``: scratch of ``m`` words)."""
    for j in range(m):
        bits[j] = (words[j] >> np.uint64(12)) | _U_ONE
    doubles = bits.view(np.float64)
    for j in range(m):
        us[j] = doubles[j] - _U_OFFSET


def _terms_pass(n_terms: int) -> Any:
    """The compiled loop of the inversion's first ``n_terms`` terms (see ``_first_terms``)."""

    @njit(inline="always")
    def terms_pass(lams: npt.NDArray[np.float64], us: npt.NDArray[np.float64],
                   first: npt.NDArray[np.float64], terms: npt.NDArray[np.float64],
                   sums: npt.NDArray[np.float64], ks: npt.NDArray[np.float64],
                   m: int) -> int:  # pragma: no cover - compiled
        beyond = 0
        for j in range(m):
            lam = min(lams[j], NORMAL_MIN_MEAN)
            u = us[j]
            p = first[j]
            cdf = p
            k = 0.0
            for t in range(1, n_terms + 1):
                k += 1.0 if u > cdf else 0.0
                p *= lam * _INV[t]
                cdf += p
            k += 1.0 if u > cdf else 0.0
            ks[j] = k
            terms[j] = p
            sums[j] = cdf
            beyond += (k > n_terms) & (lam < LOW_MEAN or n_terms == TERMS)
        return beyond

    return terms_pass


_first_terms = _terms_pass(FAST_TERMS)
"""The inversion's first ``FAST_TERMS`` terms for pixels ``0 … m − 1`` without a branch,
from their first terms ``first``: ``ks`` the count (a float: the loop runs four pixels
per instruction), ``terms`` the last term and ``sums`` the distribution function there.
Returns how many pixels of a mean below ``LOW_MEAN`` have a count beyond
``FAST_TERMS``."""
_all_terms = _terms_pass(TERMS)
"""``_first_terms`` with ``TERMS`` terms; returns how many counts go beyond ``TERMS``."""


@njit(nogil=True, error_model="numpy")
def _high_means(at: npt.NDArray[np.uint16], lams: npt.NDArray[np.float64],
                us: npt.NDArray[np.float64], first: npt.NDArray[np.float64],
                words: npt.NDArray[np.uint64], table: npt.NDArray[np.float64], top: int,
                out: npt.NDArray[np.uint32 | np.int64],
                scratch: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                               npt.NDArray[np.float64], npt.NDArray[np.float64],
                               npt.NDArray[np.float64], npt.NDArray[np.float64],
                               npt.NDArray[np.uint64], npt.NDArray[np.intp],
                               npt.NDArray[np.float32]]
                ) -> None:  # pragma: no cover - compiled
    """The counts of a block's pixels ``at`` (offsets in the block, whose counts ``out``
    is), whose means are
    ``LOW_MEAN`` or more: gathered into ``scratch``, the inversion's first ``TERMS``
    terms without a branch (then term after term for the counts beyond), or, for means
    of ``NORMAL_MIN_MEAN`` and more, the normal draws without a branch (the words in
    the table's tails again)."""
    g_lam, g_u, g_first, g_p, g_cdf, g_k, g_w, bigs, singles = scratch
    n = at.shape[0]
    for i in range(n):
        j = at[i]
        g_lam[i] = lams[j]
        g_u[i] = us[j]
        g_first[i] = first[j]
    _all_terms(g_lam, g_u, g_first, g_p, g_cdf, g_k, n)
    n_big = 0
    for i in range(n):
        lam = g_lam[i]
        if lam >= NORMAL_MIN_MEAN:
            bigs[n_big] = i
            n_big += 1
        elif g_k[i] > TERMS:
            out[at[i]] = min(_continue(lam, g_u[i], g_p[i], g_cdf[i], TERMS), top)
        else:
            out[at[i]] = min(int(g_k[i]), top)
    if n_big == 0:
        return
    for b in range(n_big):  # (g_cdf: the means, g_w: the words of the large ones)
        g_cdf[b] = g_lam[bigs[b]]
        g_w[b] = words[at[bigs[b]]]
    normal_block(g_cdf, g_w, table, float(top), n_big, singles, g_k)
    shift = np.uint64(64 - TABLE_BITS)
    for b in range(n_big):
        j = at[bigs[b]]
        out[j] = np.int64(g_k[b])
        idx = g_w[b] >> shift
        if idx < np.uint64(TAIL_BINS) or idx >= np.uint64((1 << TABLE_BITS) - TAIL_BINS):
            v = normal_count(g_cdf[b], word_to_normal(g_w[b], table))
            out[j] = top if v >= top else (0 if v <= 0.0 else np.uint32(v))


@njit(cache=True, nogil=True)
def _continue(lam: float, u: float, p: float, cdf: float,
              k: int) -> int:  # pragma: no cover - compiled
    """The inversion from count ``k + 1`` on, for a ``u`` above the first ``k`` terms'
    sum ``cdf`` (``p``: the term at ``k``)."""
    while True:
        k += 1
        p *= lam * _INV[k] if k < _INV.shape[0] else lam / k
        if k > lam and p <= cdf * 2.0 ** -53:
            return k  # u fell in the rounding gap above the summed terms: the tail
        cdf += p
        if u <= cdf:
            return k


__all__ = ["BLOCK", "FAST_TERMS", "GAMMA", "LOW_MEAN", "NORMAL_MIN_MEAN", "TERMS",
           "CounterWords", "draw_pass", "exp_neg", "mix64"]
