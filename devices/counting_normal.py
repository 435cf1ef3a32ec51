"""The counts of large means (``NORMAL_MIN_MEAN`` and more) for the sensor's counting
pass (``devices.counting_pass``, whose docstring says how they are drawn): the
Cornish–Fisher expansion of the Poisson quantile at a standard normal ``z``
(``devices.normal_table``), in single precision, one pixel at a time (``normal_count``) or a
block without a branch (``normal_block``, ``normal_block_into``), the same counts to the
bit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from .normal_table import table_normals

_THIRD = 1.0 / 3.0
_F1 = np.float32(1.0)
_F6 = np.float32(1.0 / 6.0)
_F24 = np.float32(1.0 / 24.0)
_F72 = np.float32(1.0 / 72.0)
_F1152 = np.float32(1.0 / 1152.0)


@njit(inline="always")
def deviation(lam: np.float32, z: np.float32) -> np.float32:  # pragma: no cover - compiled
    """``w`` of the count ``⌊λ + ⅓ + w⌋`` of mean ``λ`` at the standard normal ``z``: the
    Cornish–Fisher expansion (``devices.sensor``) ``λ + √(λ − 1/12)·z + (z² − 1)/6 +
    z(1 − z²)/(72√λ)``, rounded to the nearest integer, is ``⌊λ + ⅓ + w⌋`` with
    ``w = z·(√(λ − 1/12) + z/6 + (1 − z²)/(72√λ))``. In single precision (eight pixels
    per instruction, where the caller's loop has no branch): its relative error, about
    1e-7, is that of the table's ``z`` (``devices.counting_pass``); ``1/√λ`` correctly rounded
    (so the same on every machine), ``√(λ − 1/12) =
    λ·(1/√λ)·√(1 − ε)``, ``ε = 1/(12λ) <= 1/120``, from its series to ``ε²`` (the next
    term is below 4e-8 of it)."""
    y = _F1 / np.sqrt(lam)
    r = y * y
    sd = lam * y * (_F1 - r * (_F24 + r * _F1152))
    w: np.float32 = z * (sd + z * _F6 + (_F1 - z * z) * (y * _F72))
    return w


@njit(inline="always")
def normal_count(lam: float, z: float) -> float:  # pragma: no cover - compiled
    """The count of mean ``lam`` at the standard normal ``z`` before saturation,
    ``⌊λ + ⅓ + w⌋`` (``deviation``; ``np.floor``, a float) — what ``normal_block``
    computes a block at a time, to the bit."""
    w = deviation(np.float32(lam), np.float32(z))
    return float(np.floor((lam + _THIRD) + np.float64(w)))


@njit(inline="always")
def deviations(lams: npt.NDArray[np.float64], words: npt.NDArray[np.uint64],
                table: npt.NDArray[np.float64], m: int,
                scratch: npt.NDArray[np.float32]) -> None:  # pragma: no cover - compiled
    """``deviation`` of the first ``m`` pixels into ``scratch[:m]`` (the table's ``z``,
    its tail bins clamped: ``table_normals``; ``scratch``: ``4 × BLOCK`` floats). Three
    loops without a branch, the last all in single precision."""
    block = scratch.shape[0] // 4
    zs = scratch[:block]
    ls = scratch[block:2 * block]
    table_normals(words, table, m, zs, scratch[2 * block:].view(np.uint64))
    for j in range(m):
        ls[j] = np.float32(lams[j])
    for j in range(m):
        zs[j] = deviation(ls[j], zs[j])


@njit(inline="always")
def normal_block(lams: npt.NDArray[np.float64], words: npt.NDArray[np.uint64],
                  table: npt.NDArray[np.float64], top: float, m: int,
                  scratch: npt.NDArray[np.float32], counts: npt.NDArray[np.float64]
                  ) -> None:  # pragma: no cover - compiled
    """Counts (saturated at ``top``, as floats into ``counts``) of the ``m`` pixels of a
    block whose means are all large (``deviations``; the caller redoes the pixels
    whose bin is a tail bin)."""
    deviations(lams, words, table, m, scratch)
    for j in range(m):
        counts[j] = min(max(np.floor((lams[j] + _THIRD) + np.float64(scratch[j])), 0.0), top)


@njit(inline="always")
def normal_block_into(lams: npt.NDArray[np.float64], words: npt.NDArray[np.uint64],
                       table: npt.NDArray[np.float64], top: float, m: int,
                       scratch: npt.NDArray[np.float32], out: npt.NDArray[np.uint32 | np.int64]
                       ) -> None:  # pragma: no cover - compiled
    """``normal_block`` with the counts stored straight into ``out[:m]`` (the block's;
    no pass through a scratch array of floats: 7 % less time for a bright frame). Counts
    below 2³¹ (a sensor's counters are 20 bits) go through a 32-bit integer: a double
    becomes one four pixels per instruction, where a 64-bit integer takes AVX-512 (one
    pixel at a time here: 0.1 ms of a 512×512 frame); the same numbers, as every count
    is a whole number from 0 to ``top``."""
    deviations(lams, words, table, m, scratch)
    if top < 2.0 ** 31:
        for j in range(m):
            out[j] = np.int32(min(max(np.floor((lams[j] + _THIRD) + np.float64(scratch[j])),
                                      0.0), top))
    else:
        for j in range(m):
            out[j] = np.int64(min(max(np.floor((lams[j] + _THIRD) + np.float64(scratch[j])),
                                      0.0), top))


__all__ = ["deviation", "deviations", "normal_block", "normal_block_into", "normal_count"]
