"""Standard normal deviates from random 64-bit words, for the sensor's counting pass
(``devices.counting_pass``, whose docstring says how they are drawn): the quantile
function ``normal_quantile``, the table of its values at ``2**TABLE_BITS`` equal
probability steps that the words' deviates are interpolated in, and the draws
(``word_to_normal`` one at a time, ``table_normals`` and ``tail_flags`` for a block
without a branch per word).

Cost: ``table_normals``' look-ups are the largest part of a bright frame's pass (40 % of
a 512×512 phantom frame's, perf of the native pass): scalar loads (AMD has no gathers
worth the compiler's while) spread over the 512 KiB table, which the frame's streams of
flux and counts push out of the L2 cache. Tried and not kept (same process, A/B): the
bin's clamp dropped (the tail words redone anyway) no change; a float32 table (256 KiB)
15 % off this loop only, with other numbers; a table indexed by the exponent and top
mantissa bits of ``min(u, 1 − u)`` (1024 linear bins an octave, every tail in it: no
words redone, the hot part 40 KiB) 6 % off the pass, with other numbers; ``_deviations``
converting the means to float32 inside its expansion loop 8 % slower.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from sme.native import native_kernel

TABLE_BITS = 16
"""log2 of the number of equal-probability bins of the normal quantile table."""

TAIL_BINS = 64
"""Bins at each end of the table where ``z`` is computed exactly instead of interpolated."""

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


_GUESS_TAIL = 0.02425
"""Below this probability (and above one minus it) ``normal_quantile``'s first guess is
the tail's rational function of ``√(−2 log p)``, elsewhere the centre's of ``p − ½``."""
_GUESS_CENTRE_NUM = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                     1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00)
_GUESS_CENTRE_DEN = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                     6.680131188771972e+01, -1.328068155288572e+01, 1.0)
_GUESS_TAIL_NUM = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                   -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00)
_GUESS_TAIL_DEN = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                   3.754408661907416e+00, 1.0)
"""Coefficients of P. J. Acklam's rational approximations of Φ⁻¹ (relative error below
1.2e-9), highest power first."""


@njit(inline="always")
def _horner(coefs: tuple[float, ...], x: float) -> float:  # pragma: no cover - compiled
    v = 0.0
    for c in coefs:
        v = v * x + c
    return v


@njit(cache=True, nogil=True)
def normal_quantile(p: float) -> float:  # pragma: no cover - compiled
    """``Φ⁻¹(p)`` for ``0 < p < 1`` to about 1e-14: Acklam's rational first guess
    (relative error < 1.2e-9) refined by Newton steps on ``log Φ(z) = log p`` (well
    conditioned in both tails), which stop once a step is below 1e-8 (1 + |z|): the
    error left is then about the step's square over 2|z|, below 1e-15 — one step from
    Acklam's guess, where a coarser guess took four (the table's tail words are a pass's
    dearest pixels)."""
    lower = p <= 0.5
    q = p if lower else 1.0 - p
    log_q = math.log(q)
    if q < _GUESS_TAIL:
        t = math.sqrt(-2.0 * log_q)
        z = _horner(_GUESS_TAIL_NUM, t) / _horner(_GUESS_TAIL_DEN, t)
    else:
        c = q - 0.5
        r = c * c
        z = _horner(_GUESS_CENTRE_NUM, r) * c / _horner(_GUESS_CENTRE_DEN, r)
    for _ in range(6):
        cdf = 0.5 * math.erfc(-z * _SQRT_HALF)
        if cdf <= 0.0:
            break
        step = (math.log(cdf) - log_q) * cdf / (_INV_SQRT_2PI * math.exp(-0.5 * z * z))
        z -= step
        if abs(step) < 1e-8 * (1.0 + abs(z)):
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


_quantile_table_native = native_kernel(_quantile_table)
"""``_quantile_table`` from the natively built module when there is one (``sme.native``)."""

_TABLE: npt.NDArray[np.float64] | None = None


def quantile_table() -> npt.NDArray[np.float64]:
    """``Φ⁻¹(i / 2**TABLE_BITS)`` for ``i = 0 … 2**TABLE_BITS`` (±inf at the ends),
    computed on first use."""
    global _TABLE
    if _TABLE is None:
        table = _quantile_table_native(TABLE_BITS)
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
def tail_flags(words: npt.NDArray[np.uint64], m: int,
                flags: npt.NDArray[np.uint8]) -> None:  # pragma: no cover - compiled
    """``flags[j]`` = 1 where word ``j`` (of the first ``m``) falls in a tail bin of the
    table, else 0 (0 from ``m`` on): one loop without a branch, so that finding a block's
    few tail words costs a look at 8 flags at a time (``flags.view(np.uint64)``), not a
    branch per pixel."""
    shift = np.uint64(64 - TABLE_BITS)
    for j in range(m):
        idx = words[j] >> shift
        flags[j] = np.uint8((idx < np.uint64(TAIL_BINS))
                            | (idx >= np.uint64((1 << TABLE_BITS) - TAIL_BINS)))
    for j in range(m, flags.shape[0]):
        flags[j] = 0


_FRAC_ONE = np.uint64(0x3FF0000000000000)
"""The bits of 1.0 (``table_normals`` puts a word's 32 fraction bits below them)."""


@njit(inline="always")
def table_normals(words: npt.NDArray[np.uint64], table: npt.NDArray[np.float64], m: int,
                   zs: npt.NDArray[np.float32 | np.float64], bits: npt.NDArray[np.uint64]
                   ) -> None:  # pragma: no cover - compiled
    """The ``z`` of each of the first ``m`` words into ``zs`` (stored in its precision),
    interpolated in the table with its bin clamped out of the tails (``word_to_normal``
    elsewhere; callers redo the words whose bin is a tail bin). Two loops without a
    branch; ``bits``: scratch of ``m`` words, where the fraction ``frac·2⁻³²`` is made
    as the double ``1 + frac·2⁻³²`` of its bits (minus 1, exact: the same number), not
    by an integer → float conversion, which has no vector instruction here."""
    shift = np.uint64(64 - TABLE_BITS)
    for j in range(m):
        bits[j] = (((words[j] >> np.uint64(64 - TABLE_BITS - 32)) & np.uint64(0xFFFFFFFF))
                   << np.uint64(20)) | _FRAC_ONE
    fracs = bits.view(np.float64)
    for j in range(m):
        i: int = min(max(int(np.int64(words[j] >> shift)), TAIL_BINS),
                     (1 << TABLE_BITS) - TAIL_BINS - 1)
        below = table[i]
        zs[j] = below + (fracs[j] - 1.0) * (table[i + 1] - below)


__all__ = ["TABLE_BITS", "TAIL_BINS", "normal_quantile", "quantile_table", "table_normals",
           "tail_flags", "word_to_normal"]
