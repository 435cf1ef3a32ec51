"""Numba functions for ``test_native.py``: one per kind of argument and result the
natively built modules must carry exactly as the JIT does."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

OFFSET = 0.25
"""A global the compiled code reads (frozen into it)."""


@njit(inline="always")
def _shifted(v: float) -> float:  # pragma: no cover - compiled
    return v + OFFSET


@njit(cache=True, nogil=True, error_model="numpy")
def scale_into(x: npt.NDArray[np.float64], k: float,
               out: npt.NDArray[np.float64]) -> int:  # pragma: no cover - compiled
    """``out = x·k + OFFSET``, ``x / 0`` where that is negative (numpy's error model: an
    infinity, where numba's default raises ZeroDivisionError); returns how many were."""
    neg = 0
    for i in range(x.shape[0]):
        v = _shifted(x[i] * k)
        if v < 0.0:
            v = x[i] / (v - v)
            neg += 1
        out[i] = v
    return neg


@njit(cache=True)
def squares(n: int) -> npt.NDArray[np.float64]:  # pragma: no cover - compiled
    """A new array: ``i²`` for ``i < n``."""
    out = np.empty(n)
    for i in range(n):
        out[i] = i * i
    return out


@njit(cache=True, nogil=True)
def corner_sum(a: npt.NDArray[np.int64]) -> tuple[int, int]:  # pragma: no cover - compiled
    """The sums of a 2-D array's first row and first column."""
    return int(a[0, :].sum()), int(a[:, 0].sum())


@njit(cache=True, nogil=True)
def checked(x: int) -> int:  # pragma: no cover - compiled
    """``x`` doubled; ValueError for a negative ``x``."""
    if x < 0:
        raise ValueError("checked: x must be >= 0")
    return 2 * x


@njit(cache=True, nogil=True)
def spin(n: int) -> int:  # pragma: no cover - compiled
    """``n`` steps of a 64-bit linear congruential generator (a long call)."""
    s = np.uint64(1)
    for _ in range(n):
        s = s * np.uint64(6364136223846793005) + np.uint64(1442695040888963407)
    return int(s >> np.uint64(33))
