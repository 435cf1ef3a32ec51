"""Poisson counts of a whole frame in one compiled pass: the sensor model's inner loop.

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
  ``u`` in (0, 1) with 53 bits, ``k`` the smallest count whose distribution function
  reaches ``u``. The first ``TERMS`` terms are summed for every pixel without a branch
  (``k`` counts the partial sums below ``u``; that loop runs four pixels per
  instruction), which is what makes it fast: a search that stops at a random count
  mispredicts a branch per pixel. Pixels whose count is beyond ``TERMS`` (one in 10⁶ at
  ``λ = 1``, a third at ``λ = 9``) continue the same sum one term at a time;
* ``λ >= NORMAL_MIN_MEAN``: the Cornish–Fisher expansion of the Poisson quantile in a
  standard normal ``z`` (see ``devices.sensor``), where ``z = Φ⁻¹(u)`` comes from
  inverse-transform sampling: the top 16 bits of the word pick one of 2¹⁶ equal-probability
  bins of the normal distribution, the next 32 bits interpolate linearly between the bin's
  quantiles (a table computed once); in the ``TAIL_BINS`` outermost bins on each side
  (|z| > 3.1, 2 words in 1000), where the quantile curves too much for a straight line,
  ``z`` is computed exactly from the 53-bit uniform. The interpolated ``z`` is off by at
  most 1e-5 (next to those bins; below 1e-7 for |z| < 2), far less than a count.

A block whose means are all large (a bright image, as in transmission imaging) draws its
normals without a branch, four pixels per instruction (the bin clamped out of the tails),
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
may have the pass keep those terms and read them back the next times (``exps``): a
fifth less time per frame of a diffraction pattern, the very same counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from numba import njit

_A = TypeVar("_A", bound=np.generic)

NORMAL_MIN_MEAN = 10.0
"""Counts with a mean at least this are drawn from the Cornish–Fisher normal expansion."""

TABLE_BITS = 16
"""log2 of the number of equal-probability bins of the normal quantile table."""

TAIL_BINS = 64
"""Bins at each end of the table where ``z`` is computed exactly instead of interpolated."""

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(cache=True, nogil=True)
def normal_quantile(p: float) -> float:  # pragma: no cover - compiled
    """``Φ⁻¹(p)`` for ``0 < p < 1`` to about 1e-14: a rational first guess (error < 5e-4)
    refined by Newton steps on ``log Φ(z) = log p`` (well conditioned in both tails)."""
    lower = p <= 0.5
    q = p if lower else 1.0 - p
    t = math.sqrt(-2.0 * math.log(q))
    z = -(t - (2.515517 + t * (0.802853 + t * 0.010328))
          / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))))
    for _ in range(6):
        cdf = 0.5 * math.erfc(-z * _SQRT_HALF)
        if cdf <= 0.0:
            break
        step = (math.log(cdf) - math.log(q)) * cdf / (_INV_SQRT_2PI * math.exp(-0.5 * z * z))
        z -= step
        if abs(step) < 1e-15 * (1.0 + abs(z)):
            break
    return z if lower else -z


@njit(cache=True)
def _quantile_table(bits: int) -> npt.NDArray[np.float64]:  # pragma: no cover - compiled
    n = 1 << bits
    table = np.empty(n + 1)
    table[0] = -np.inf
    table[n] = np.inf
    for i in range(1, n):
        table[i] = normal_quantile(i / n) if i <= n // 2 else -normal_quantile((n - i) / n)
    return table


_TABLE: npt.NDArray[np.float64] | None = None


def quantile_table() -> npt.NDArray[np.float64]:
    """``Φ⁻¹(i / 2**TABLE_BITS)`` for ``i = 0 … 2**TABLE_BITS`` (±inf at the ends),
    computed on first use."""
    global _TABLE
    if _TABLE is None:
        table = _quantile_table(TABLE_BITS)
        table.flags.writeable = False
        _TABLE = table
    return _TABLE


@njit(cache=True, nogil=True)
def word_to_normal(word: np.uint64, table: npt.NDArray[np.float64]
                   ) -> float:  # pragma: no cover - compiled
    """A standard normal deviate from one uniformly random 64-bit word (see the module)."""
    shift = np.uint64(64 - TABLE_BITS)
    idx = word >> shift
    if idx < np.uint64(TAIL_BINS) or idx >= np.uint64((1 << TABLE_BITS) - TAIL_BINS):
        mantissa = word >> np.uint64(11)
        if idx < np.uint64(TAIL_BINS):
            return normal_quantile((np.float64(mantissa) + 0.5) * 2.0 ** -53)
        top = np.uint64((1 << 53) - 1)
        return -normal_quantile((np.float64(top - mantissa) + 0.5) * 2.0 ** -53)
    frac = np.float64((word >> np.uint64(64 - TABLE_BITS - 32)) & np.uint64(0xFFFFFFFF)) \
        * 2.0 ** -32
    i = np.int64(idx)
    return float(table[i] + frac * (table[i + 1] - table[i]))


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

TERMS = 8
"""Terms of the Poisson sum every pixel below ``NORMAL_MIN_MEAN`` gets without a branch."""
BLOCK = 2048
"""Pixels per block of the compiled pass (its scratch arrays stay in the cache)."""
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


def draw_counts(flux: npt.NDArray[np.floating], efficiency: float | npt.NDArray[np.float64],
                hot: npt.NDArray[np.bool_ | np.intp], dead: npt.NDArray[np.bool_ | np.intp],
                exposure: float, hot_rate: float, cap: float, top: int,
                words: CounterWords | npt.NDArray[np.uint64],
                out: npt.NDArray[np.uint32 | np.int64], *, scale: float = 1.0,
                exps: npt.NDArray[np.float64] | None = None, exps_ready: bool = False) -> int:
    """Counts of one exposure into ``out`` (all arrays flat and of one length, one random
    word per pixel, from ``words``: a :class:`CounterWords` stream or the words
    themselves): the mean ``min(ε·s·Φ·t + hot·rate·t, cap)`` (0 on dead pixels; ``s`` is
    ``scale``, the flux's factor), drawn as the module says and saturated at ``top``.
    ``out`` is ``uint32``, or ``int64``: the words of the firmware's link, which the counts
    can then be drawn into without a copy (``devices.sensor.frame_link``).
    ``efficiency`` is per pixel or one number for all; ``hot`` and ``dead`` are masks
    or the sorted indices of their pixels (a few among millions: the pass then reads
    only the flux per pixel). Returns -1, or the index of the first pixel whose flux is
    not finite or negative (``out`` is then incomplete).

    ``exps``: a flat ``float64`` array of ``n`` where the pass keeps the first term
    ``e^(−λ)`` of each pixel's inversion (the pixels of blocks with a small mean; the
    rest of it is left as it is), so that exposures of the same means need not compute
    them again: with ``exps_ready`` it reads them from there instead. That is the
    caller's promise that every mean (flux, efficiency, scale, exposure, hot and dead
    pixels, cap) is the one of the pass that filled ``exps`` (``SensorModel.expose``
    keeps them for a flux image that cannot change); the counts are the same either
    way."""
    n = flux.shape[0]
    if isinstance(words, CounterWords):
        if n > 1 << 32:
            raise ValueError(f"draw_counts: a frame of {n} pixels has more than 2**32")
        base, given, use_given = words.base, np.zeros(1, np.uint64), False
    else:
        base, given, use_given = np.uint64(0), words, True
    uniform = not isinstance(efficiency, np.ndarray)
    eff = efficiency if isinstance(efficiency, np.ndarray) else np.array([float(efficiency)])
    if exps_ready and exps is None:
        raise ValueError("draw_counts: exps_ready without exps")
    for name, a, dtypes in (("flux", flux, (np.float32, np.float64)),
                            ("efficiency", None if uniform else eff, (np.float64,)),
                            ("words", given if use_given else None, (np.uint64,)),
                            ("out", out, (np.uint32, np.int64)),
                            ("exps", exps, (np.float64,))):
        if a is None:
            continue
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.shape[0] != n \
                or a.dtype not in dtypes:
            got = f"{a.dtype} of shape {a.shape}" if isinstance(a, np.ndarray) else repr(a)
            raise ValueError(f"draw_counts: {name} must be a flat array of {n} "
                             f"{' or '.join(np.dtype(d).name for d in dtypes)}, got {got}")
    if exps is not None and not exps.flags.writeable:
        raise ValueError("draw_counts: exps must be writeable (the pass keeps terms in it)")
    hot_at, dead_at = _pixel_indices("hot", hot, n), _pixel_indices("dead", dead, n)
    return int(_draw_counts(_read_only(flux), _read_only(eff), uniform, hot_at, dead_at,
                            exposure * scale, exposure * hot_rate, cap, top, base,
                            _read_only(given), use_given, quantile_table(), out,
                            _NO_EXPS if exps is None else exps, exps_ready))


_NO_EXPS = np.zeros(0)
"""What the pass gets for ``exps`` when there is none (it keeps no terms then)."""


def _pixel_indices(name: str, pixels: npt.NDArray[Any], n: int) -> npt.NDArray[np.intp]:
    """A mask of ``n`` pixels, or sorted distinct indices below ``n``, as the indices."""
    if not isinstance(pixels, np.ndarray) or pixels.ndim != 1:
        raise ValueError(f"draw_counts: {name} must be a flat mask of {n} bools or an array "
                         f"of pixel indices, got {pixels!r}")
    if pixels.dtype == np.bool_:
        if pixels.shape[0] != n:
            raise ValueError(f"draw_counts: {name} must be a flat array of {n} bool, got "
                             f"bool of shape {pixels.shape}")
        return np.flatnonzero(pixels)
    if not np.issubdtype(pixels.dtype, np.integer):
        raise ValueError(f"draw_counts: {name} must be a mask or pixel indices, got dtype "
                         f"{pixels.dtype}")
    at = pixels.astype(np.intp, copy=False)
    if at.size and (at[0] < 0 or at[-1] >= n or (np.diff(at) <= 0).any()):
        raise ValueError(f"draw_counts: {name} indices must be sorted, distinct and in "
                         f"0 … {n - 1}")
    return _read_only(at)


def _read_only(a: npt.NDArray[_A]) -> npt.NDArray[_A]:
    """``a`` as a read-only array (a view when it is writeable): numba compiles the pass
    once for read-only and once for writeable inputs, and the scene's cached flux images
    are read-only — so every input is, and the first frame never waits for a compile."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


@njit(cache=True, nogil=True, error_model="numpy")  # (see the module docstring)
def _draw_counts(flux: npt.NDArray[np.floating], efficiency: npt.NDArray[np.float64],
                 uniform: bool, hot: npt.NDArray[np.intp], dead: npt.NDArray[np.intp],
                 exposure: float, hot_counts: float, cap: float, top: int, base: np.uint64,
                 given: npt.NDArray[np.uint64], use_given: bool,
                 table: npt.NDArray[np.float64], out: npt.NDArray[np.uint32 | np.int64],
                 exps: npt.NDArray[np.float64], exps_ready: bool
                 ) -> int:  # pragma: no cover - compiled
    lams = np.empty(BLOCK)
    words = np.empty(BLOCK, np.uint64)
    terms = np.empty(BLOCK)
    sums = np.empty(BLOCK)
    ks = np.empty(BLOCK, np.uint8)
    n = flux.shape[0]
    next_hot = next_dead = 0
    for start in range(0, n, BLOCK):
        m = min(BLOCK, n - start)
        # 1. means, flux checks and words: no branch (the few hot and dead pixels after)
        ok: np.bool_ = np.bool_(True)
        if uniform:
            rate = efficiency[0] * exposure
            for j in range(m):
                phi = np.float64(flux[start + j])
                ok &= (phi >= 0.0) & (phi < np.inf)
                lams[j] = rate * phi
        else:
            for j in range(m):
                phi = np.float64(flux[start + j])
                ok &= (phi >= 0.0) & (phi < np.inf)
                lams[j] = efficiency[start + j] * phi * exposure
        while next_hot < hot.shape[0] and hot[next_hot] < start + m:
            lams[hot[next_hot] - start] += hot_counts
            next_hot += 1
        while next_dead < dead.shape[0] and dead[next_dead] < start + m:
            lams[dead[next_dead] - start] = 0.0
            next_dead += 1
        large = 0
        for j in range(m):
            lam = min(lams[j], cap)
            lams[j] = lam
            large += lam >= NORMAL_MIN_MEAN
            words[j] = given[start + j] if use_given else mix64(base + np.uint64(start + j)
                                                                 * _GAMMA)
        if not ok:
            for j in range(m):
                phi = np.float64(flux[start + j])
                if not (phi >= 0.0 and phi < np.inf):
                    return start + j
        if large == m:  # 2a. every mean large (a bright image): the normal draws without
            # a branch, four at a time, then the few words in the table's tails again
            _normal_block(lams, words, table, float(top), m, terms, sums)
            for j in range(m):
                out[start + j] = np.int64(sums[j])
            shift = np.uint64(64 - TABLE_BITS)
            for j in range(m):
                idx = words[j] >> shift
                if idx < np.uint64(TAIL_BINS) \
                        or idx >= np.uint64((1 << TABLE_BITS) - TAIL_BINS):
                    v = _normal_count(lams[j], word_to_normal(words[j], table))
                    out[start + j] = top if v >= top else (0 if v <= 0.0 else np.uint32(v))
            continue
        # 2. the first TERMS terms of the inversion for every pixel, no branch
        rest = large
        if exps_ready:  # the first terms kept from a pass with these very means
            for j in range(m):
                terms[j] = exps[start + j]
        else:
            for j in range(m):
                terms[j] = exp_neg(min(lams[j], NORMAL_MIN_MEAN))
            if exps.shape[0]:
                for j in range(m):
                    exps[start + j] = terms[j]
        for j in range(m):
            lam = min(lams[j], NORMAL_MIN_MEAN)
            u = (np.float64(words[j] >> np.uint64(11)) + 0.5) * 2.0 ** -53
            p = terms[j]
            cdf = p
            k = 0
            for t in range(1, TERMS + 1):
                k += u > cdf
                p *= lam * _INV[t]
                cdf += p
            k += u > cdf
            ks[j] = k
            out[start + j] = min(k, top)
            terms[j] = p
            sums[j] = cdf
            rest += k > TERMS
        if rest == 0:
            continue
        # 3. the pixels that need more: large means, and counts beyond TERMS
        for j in range(m):
            lam = lams[j]
            if lam >= NORMAL_MIN_MEAN:
                v = _normal_count(lam, word_to_normal(words[j], table))
                out[start + j] = top if v >= top else (0 if v <= 0.0 else np.uint32(v))
            elif ks[j] > TERMS:
                out[start + j] = min(_continue(lam, words[j], terms[j], sums[j]), top)
    return -1


@njit(inline="always")
def _normal_count(lam: float, z: float) -> float:  # pragma: no cover - compiled
    """The count of mean ``lam`` at the standard normal ``z`` before saturation: the
    Cornish–Fisher expansion (``devices.sensor``) rounded down (``np.floor``, a float: four
    pixels per instruction where the caller's loop has no branch)."""
    return float(np.floor(lam + math.sqrt(lam - 1.0 / 12.0) * z + (z * z - 1.0) / 6.0
                          + z * (1.0 - z * z) / (72.0 * math.sqrt(lam)) + 0.5))


@njit(inline="always")
def _normal_block(lams: npt.NDArray[np.float64], words: npt.NDArray[np.uint64],
                  table: npt.NDArray[np.float64], top: float, m: int,
                  zs: npt.NDArray[np.float64], counts: npt.NDArray[np.float64]
                  ) -> None:  # pragma: no cover - compiled
    """Counts (saturated at ``top``, as floats into ``counts``) of the ``m`` pixels of a
    block whose means are all large, each word's ``z`` interpolated in the table with its
    bin clamped out of the tails (``word_to_normal`` elsewhere; the caller redoes the
    pixels whose bin is a tail bin). Two loops without a branch."""
    shift = np.uint64(64 - TABLE_BITS)
    for j in range(m):
        w = words[j]
        i: int = min(max(int(np.int64(w >> shift)), TAIL_BINS),
                     (1 << TABLE_BITS) - TAIL_BINS - 1)
        frac = np.float64(np.int64((w >> np.uint64(64 - TABLE_BITS - 32))
                                   & np.uint64(0xFFFFFFFF))) * 2.0 ** -32
        below = table[i]
        zs[j] = below + frac * (table[i + 1] - below)
    for j in range(m):
        counts[j] = min(max(_normal_count(lams[j], zs[j]), 0.0), top)


@njit(cache=True, nogil=True)
def _continue(lam: float, word: np.uint64, p: float, cdf: float) -> int:  # pragma: no cover
    """The inversion from count ``TERMS + 1`` on, for a ``u`` above the first ``TERMS``
    terms' sum ``cdf`` (``p``: the term at ``TERMS``)."""
    u = (np.float64(word >> np.uint64(11)) + 0.5) * 2.0 ** -53
    k = TERMS
    while True:
        k += 1
        p *= lam * _INV[k] if k < _INV.shape[0] else lam / k
        if k > lam and p <= cdf * 2.0 ** -53:
            return k  # u fell in the rounding gap above the summed terms: the tail
        cdf += p
        if u <= cdf:
            return k


__all__ = ["BLOCK", "GAMMA", "NORMAL_MIN_MEAN", "TABLE_BITS", "TAIL_BINS", "TERMS",
           "CounterWords", "draw_counts", "mix64", "normal_quantile", "quantile_table",
           "word_to_normal"]
