"""Counts of one exposure of a whole frame: ``draw_counts`` checks its arguments and runs the
compiled pass (``devices.counting_pass``, whose docstring says how the counts are drawn;
its public names and those of ``devices.normal_table`` are re-exported here);
``KeptTerms`` holds what a pass keeps of its means for the next passes with the same means.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from numba import njit

from sme.native import native_kernel

from .counting_pass import (
    BLOCK,
    FAST_TERMS,
    GAMMA,
    LOW_MEAN,
    NORMAL_MIN_MEAN,
    TERMS,
    CounterWords,
    draw_pass,
    exp_neg,
    mix64,
)
from .normal_table import TABLE_BITS, TAIL_BINS, normal_quantile, quantile_table, word_to_normal

_A = TypeVar("_A", bound=np.generic)


class KeptTerms:
    """What a counting pass keeps of its means for later passes with the very same means
    (``draw_counts(kept=…)``): each pixel's first term ``e^(−λ)`` of the inversion
    (``exps``, 8 bytes a pixel; the pixels of blocks whose means are all large leave it
    as it is) and, block by block, the pixels whose means are ``LOW_MEAN`` or more
    (``high``, offsets in their block, 2 bytes a pixel at most; block ``b``'s are
    ``high[starts[b]:starts[b + 1]]``). ``filled``: whether a pass has kept them."""

    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 0 <= n <= 1 << 32:
            raise ValueError(f"KeptTerms: n must be an int in 0 … 2**32, got {n!r}")
        self.n = int(n)
        self.exps = np.empty(self.n)
        self.high = np.empty(self.n, np.uint16)
        self.starts = np.zeros(-(-self.n // BLOCK) + 1, np.int64)
        self.filled = False


def draw_counts(flux: npt.NDArray[np.floating], efficiency: float | npt.NDArray[np.float64],
                hot: npt.NDArray[np.bool_ | np.intp], dead: npt.NDArray[np.bool_ | np.intp],
                exposure: float, hot_rate: float, cap: float, top: int,
                words: CounterWords | npt.NDArray[np.uint64],
                out: npt.NDArray[np.uint32 | np.int64], *, scale: float = 1.0,
                kept: KeptTerms | None = None, kept_ready: bool = False) -> int:
    """Counts of one exposure into ``out`` (all arrays flat and of one length, one random
    word per pixel, from ``words``: a :class:`CounterWords` stream or the words
    themselves): the mean ``min(ε·s·Φ·t + hot·rate·t, cap)`` (0 on dead pixels; ``s`` is
    ``scale``, the flux's factor), drawn as the module says and saturated at ``top``.
    ``out`` is ``uint32``, or ``int64``: the words of the firmware's link, which the counts
    can then be drawn into without a copy (``devices.sensor_link.frame_link``).
    ``efficiency`` is per pixel or one number for all; ``hot`` and ``dead`` are masks
    or the sorted indices of their pixels (a few among millions: the pass then reads
    only the flux per pixel). Returns -1, or the index of the first pixel whose flux is
    not finite or negative (``out`` is then incomplete).

    ``kept``: where the pass keeps what of its means the next passes with the same means
    need not compute again (:class:`KeptTerms`; it is then ``filled``, unless a flux
    was bad); with ``kept_ready`` the pass reads them from there instead. That is the
    caller's promise that every mean (flux, efficiency, scale, exposure, hot and dead
    pixels, cap) is the one of the pass that filled ``kept`` (``SensorModel.expose``
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
    if kept is not None and (not isinstance(kept, KeptTerms) or kept.n != n):
        raise ValueError(f"draw_counts: kept must be the KeptTerms of {n} pixels, got "
                         f"{kept!r}" if not isinstance(kept, KeptTerms) else
                         f"draw_counts: kept must be the KeptTerms of {n} pixels, got "
                         f"those of {kept.n}")
    if kept_ready and (kept is None or not kept.filled):
        raise ValueError("draw_counts: kept_ready without kept terms a pass has filled")
    for name, a, dtypes in (("flux", flux, (np.float32, np.float64)),
                            ("efficiency", None if uniform else eff, (np.float64,)),
                            ("words", given if use_given else None, (np.uint64,)),
                            ("out", out, (np.uint32, np.int64))):
        if a is None:
            continue
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.shape[0] != n \
                or a.dtype not in dtypes:
            got = f"{a.dtype} of shape {a.shape}" if isinstance(a, np.ndarray) else repr(a)
            raise ValueError(f"draw_counts: {name} must be a flat array of {n} "
                             f"{' or '.join(np.dtype(d).name for d in dtypes)}, got {got}")
    hot_at, dead_at = _pixel_indices("hot", hot, n), _pixel_indices("dead", dead, n)
    into = _NO_KEPT if kept is None else kept
    if kept is not None and not kept_ready:
        kept.filled = False
    bad = int(_draw_pass(_read_only(flux), _read_only(eff), uniform, hot_at, dead_at,
                           exposure * scale, exposure * hot_rate, cap, top, base,
                           _read_only(given), use_given, quantile_table(), out,
                           into.exps, into.high, into.starts, kept is not None, kept_ready))
    if kept is not None and bad < 0:
        kept.filled = True
    return bad


_draw_pass = native_kernel(draw_pass)
"""``draw_pass`` from the natively built module when there is one (``sme.native``)."""

_NO_KEPT = KeptTerms(0)
"""What the pass gets for ``kept`` when there is none (it keeps nothing then)."""


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
    if pixels.dtype.kind not in "iu":  # (not issubdtype: a frame's µs; and no timedelta64)
        raise ValueError(f"draw_counts: {name} must be a mask or pixel indices, got dtype "
                         f"{pixels.dtype}")
    at = pixels.astype(np.intp, copy=False)
    if not _sorted_below_native(at, n):
        raise ValueError(f"draw_counts: {name} indices must be sorted, distinct and in "
                         f"0 … {n - 1}")
    return _read_only(at)


@njit(cache=True, nogil=True)
def _sorted_below(at: npt.NDArray[np.intp], n: int) -> bool:  # pragma: no cover - compiled
    """Whether ``at`` is strictly increasing, from 0 on and below ``n`` (one compiled
    loop: a frame's pass checks its hot and dead pixels every time)."""
    last = -1
    for i in range(at.shape[0]):
        if at[i] <= last or at[i] >= n:
            return False
        last = at[i]
    return True


_sorted_below_native = native_kernel(_sorted_below)
"""``_sorted_below`` from the natively built module when there is one (``sme.native``)."""


def _read_only(a: npt.NDArray[_A]) -> npt.NDArray[_A]:
    """``a`` as a read-only array (a view when it is writeable): numba compiles the pass
    once for read-only and once for writeable inputs, and the scene's cached flux images
    are read-only — so every input is, and the first frame never waits for a compile."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


__all__ = ["BLOCK", "FAST_TERMS", "GAMMA", "LOW_MEAN", "NORMAL_MIN_MEAN", "TABLE_BITS",
           "TAIL_BINS", "TERMS", "CounterWords", "KeptTerms", "draw_counts", "exp_neg",
           "mix64", "normal_quantile", "quantile_table", "word_to_normal"]
