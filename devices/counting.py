"""Poisson counts of a whole frame in one compiled pass: the sensor model's inner loop.

One 64-bit random word per pixel (from a numpy ``Generator``'s bit generator, so a seed
gives the same frames on every machine) decides the pixel's count:

* mean ``λ < NORMAL_MIN_MEAN``: exact Poisson by inversion, the word read as a uniform
  ``u`` in (0, 1) with 53 bits, ``k`` the smallest count whose distribution function
  reaches ``u``;
* ``λ >= NORMAL_MIN_MEAN``: the Cornish–Fisher expansion of the Poisson quantile in a
  standard normal ``z`` (see ``devices.sensor``), where ``z = Φ⁻¹(u)`` comes from
  inverse-transform sampling: the top 16 bits of the word pick one of 2¹⁶ equal-probability
  bins of the normal distribution, the next 32 bits interpolate linearly between the bin's
  quantiles (a table computed once); in the ``TAIL_BINS`` outermost bins on each side
  (|z| > 3.1, 2 words in 1000), where the quantile curves too much for a straight line,
  ``z`` is computed exactly from the 53-bit uniform. The interpolated ``z`` is off by at
  most 1e-5 (next to those bins; below 1e-7 for |z| < 2), far less than a count.

Fusing the mean (efficiency × flux × exposure, hot and dead pixels, the cap), the flux
checks and the draw into one loop is what lets a 512×512 sensor run at hundreds of frames
per second; the separate numpy passes and numpy's normal generator cost three times more.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

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


def draw_counts(flux: npt.NDArray[np.floating], efficiency: npt.NDArray[np.float64],
                hot: npt.NDArray[np.bool_], dead: npt.NDArray[np.bool_], exposure: float,
                hot_rate: float, cap: float, top: int, words: npt.NDArray[np.uint64],
                out: npt.NDArray[np.uint32]) -> int:
    """Counts of one exposure into ``out`` (all arrays flat and of one length, one random
    word per pixel): the mean ``min(ε·Φ·t + hot·rate·t, cap)`` (0 on dead pixels), drawn
    as the module says and saturated at ``top``. Returns -1, or the index of the first
    pixel whose flux is not finite or negative (``out`` is then incomplete)."""
    n = flux.shape[0]
    for name, array, dtypes in (("flux", flux, (np.float32, np.float64)),
                                ("efficiency", efficiency, (np.float64,)),
                                ("hot", hot, (np.bool_,)), ("dead", dead, (np.bool_,)),
                                ("words", words, (np.uint64,)), ("out", out, (np.uint32,))):
        if array.ndim != 1 or array.shape[0] != n or array.dtype not in dtypes:
            raise ValueError(f"draw_counts: {name} must be a flat array of {n} "
                             f"{' or '.join(np.dtype(d).name for d in dtypes)}, got "
                             f"{array.dtype} of shape {array.shape}")
    return int(_draw_counts(flux, efficiency, hot, dead, exposure, hot_rate, cap, top, words,
                            quantile_table(), out))


@njit(cache=True, nogil=True)
def _draw_counts(flux: npt.NDArray[np.floating], efficiency: npt.NDArray[np.float64],
                hot: npt.NDArray[np.bool_], dead: npt.NDArray[np.bool_], exposure: float,
                hot_rate: float, cap: float, top: int, words: npt.NDArray[np.uint64],
                table: npt.NDArray[np.float64], out: npt.NDArray[np.uint32]
                ) -> int:  # pragma: no cover - compiled
    hot_counts = hot_rate * exposure
    for i in range(flux.shape[0]):
        phi = np.float64(flux[i])
        if not (phi >= 0.0 and phi < np.inf):
            return i
        lam = efficiency[i] * phi * exposure
        if hot[i]:
            lam += hot_counts
        if dead[i]:
            lam = 0.0
        lam = min(lam, cap)
        word = words[i]
        if lam < NORMAL_MIN_MEAN:
            u = (np.float64(word >> np.uint64(11)) + 0.5) * 2.0 ** -53
            p = math.exp(-lam)
            cdf = p
            k = 0
            while u > cdf:
                k += 1
                p *= lam / k
                if k > lam and p <= cdf * 2.0 ** -53:
                    break  # u fell in the rounding gap above the summed terms: the tail
                cdf += p
            out[i] = k
            continue
        z = word_to_normal(word, table)
        root = math.sqrt(lam)
        v = math.floor(lam + math.sqrt(lam - 1.0 / 12.0) * z + (z * z - 1.0) / 6.0
                       + z * (1.0 - z * z) / (72.0 * root) + 0.5)
        out[i] = top if v >= top else (0 if v <= 0.0 else np.uint32(v))
    return -1


__all__ = ["NORMAL_MIN_MEAN", "TABLE_BITS", "TAIL_BINS", "draw_counts", "normal_quantile",
           "quantile_table", "word_to_normal"]
