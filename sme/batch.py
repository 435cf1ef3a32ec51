"""Vectorised stimulus for batch runs: per-signal arrays, numpy expressions of the tick
index, or generators of arrays, consumed in chunks.

``Simulator.run_batch(stimulus, ticks)`` takes, for each top-level input ``"bus.signal"``:

* an array (or sequence) of at least ``ticks`` values, as before;
* a function of the tick index: called with an ``int64`` array of tick numbers (the
  simulator's own tick count, so a second run continues the expression) and returning an
  array of as many values, or one value for every tick — ``lambda i: i % 8 != 7``;
* an iterator (a generator) of arrays of any lengths, read as the run needs values.

With a function or an iterator the run goes ``chunk`` ticks at a time: only one chunk of
stimulus and outputs is built at once, so a 10-million-tick stimulus costs what numpy
needs to evaluate it, not a Python call per tick.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from .errors import BackendError
from .types import ArrayType, SignalType

CHUNK = 1 << 20
"""Ticks per chunk of a run with stimulus functions or iterators."""

RunBatch = Callable[[Mapping[str, np.ndarray], int, "list[str] | None"], dict[str, np.ndarray]]


class _Source:
    """Values of one signal, taken ``n`` at a time."""

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.func: Callable[[np.ndarray], Any] | None = None
        self.iter: Iterator[Any] | None = None
        self.pending: list[np.ndarray] = []
        self.array: np.ndarray | None = None
        if callable(value):
            self.func = value
        elif isinstance(value, Iterator):
            self.iter = value
        else:  # a masked array stays one: its mask is checked as its parts are taken
            self.array = value if np.ma.isMaskedArray(value) else np.asarray(value)
        self.used = 0

    def take(self, start_tick: int, n: int) -> np.ndarray:
        if self.func is not None:
            got = self.func(np.arange(start_tick, start_tick + n, dtype=np.int64))
            check_unmasked(self.name, got, start_tick)
            got = np.asarray(got)
            if got.ndim == 0 or (got.shape[0] == 1 and n != 1):
                return np.broadcast_to(got, (n, *got.shape[1:])).copy()
            if got.shape[0] != n:
                raise BackendError(f"run_batch: stimulus function for {self.name!r} returned "
                                   f"{got.shape[0]} values for {n} ticks")
            return got
        if self.array is not None:
            part = self.array[self.used:self.used + n]
            check_unmasked(self.name, part, start_tick)
            self.used += n
            return np.asarray(part)
        return self._from_iterator(start_tick, n)

    def _from_iterator(self, start_tick: int, n: int) -> np.ndarray:
        assert self.iter is not None
        have = sum(len(p) for p in self.pending)
        while have < n:
            try:
                got = next(self.iter)
            except StopIteration:
                raise BackendError(f"run_batch: the stimulus iterator for {self.name!r} ended "
                                   f"after {self.used + have} values") from None
            check_unmasked(self.name, got, start_tick + have)
            part = np.atleast_1d(np.asarray(got))
            self.pending.append(part)
            have += len(part)
        joined = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        self.pending = [joined[n:]] if len(joined) > n else []
        self.used += n
        return joined[:n]


def is_vectorised(stimulus: Mapping[str, Any]) -> bool:
    """Whether some stimulus value is a function or an iterator (a chunked run)."""
    return any(callable(v) or isinstance(v, Iterator) for v in stimulus.values())


_INT64_BOUND = 2.0 ** 63


def check_unmasked(name: str, values: Any, first: int = 0) -> None:
    """Raise ``BackendError`` when ``values`` (stimulus of input ``name`` from tick
    ``first`` on) is a numpy masked array with a masked element: a missing sample has no
    value to drive, and the data under the mask is not one (numpy's ``asarray`` would
    silently drive it)."""
    if not np.ma.isMaskedArray(values):
        return
    mask = np.ma.getmaskarray(values)
    if mask.any():
        where = np.argwhere(mask)[0] if mask.ndim else (0,)
        raise BackendError(
            f"run_batch: stimulus {name!r} is masked at tick {first + int(where[0])}: a "
            "missing sample has no value to drive; fill the masked values first "
            "(values.filled(...))")


def check_shape(name: str, t: SignalType, values: np.ndarray) -> None:
    """Raise ``BackendError`` unless ``values`` holds one value of input ``name`` (of type
    ``t``) per tick: shape ``(ticks,)`` for a scalar, ``(ticks, length)`` for an array."""
    length = t.length if isinstance(t, ArrayType) else None
    if values.ndim >= 1 and values.shape[1:] == (() if length is None else (length,)):
        return
    per_tick = "no tick axis" if values.ndim == 0 else f"shape {values.shape[1:]} per tick"
    need = "(ticks,): one value per tick" if length is None else \
        f"(ticks, {length}): {length} values per tick"
    raise BackendError(f"run_batch: stimulus {name!r} has shape {values.shape} ({per_tick}); "
                       f"input {name} ({t!r}) takes shape {need}")


def check_whole_values(name: str, values: np.ndarray, first: int = 0) -> None:
    """Raise ``BackendError`` unless the stimulus ``values`` of input ``name`` (tick
    ``first`` on) are whole numbers: integer or bool arrays; float arrays (and object
    arrays, element by element) only when every value is a finite whole number within the
    64-bit integer range. Batch values are raw integers, so 1.5 is refused, never
    truncated to 1 (a fixed-point input's raw value of 1.5 is ``1.5 * 2**frac_bits``), and
    a float no 64-bit integer can hold is refused rather than cast to a wrong one."""
    kind = values.dtype.kind
    if kind in "biu":
        return
    if kind == "f":
        bad = ~np.isfinite(values) | (values != np.trunc(values))
        if float(np.finfo(values.dtype).max) >= _INT64_BOUND:  # (float16 cannot reach it)
            bad |= np.abs(values) >= _INT64_BOUND
    elif kind == "O":
        bad = np.frompyfunc(_not_whole, 1, 1)(values).astype(bool) if values.size \
            else np.zeros(values.shape, bool)
    else:
        raise BackendError(f"run_batch: stimulus {name!r} has dtype {values.dtype}; batch "
                           "values are raw integers (or bools)")
    if not bad.any():
        return
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    at = f"tick {first + where[0]}" + (f", element {where[1:]}" if len(where) > 1 else "")
    value = values[where]
    shown = repr(value.item() if isinstance(value, np.generic) else value)
    raise BackendError(
        f"run_batch: stimulus {name!r} holds {shown} at {at}: not a whole number in the "
        "64-bit range (batch values are raw integers; a fixed-point input's raw value is "
        "value * 2**frac_bits)")


def _not_whole(v: Any) -> bool:
    """For object arrays: Python and numpy integers (any size: wide signals) pass, floats
    as in float arrays, anything else is refused."""
    if isinstance(v, int | np.integer):
        return False
    if isinstance(v, float | np.floating):
        f = float(v)
        return not (np.isfinite(f) and f == int(f) and abs(f) < _INT64_BOUND)
    return True


def run_chunked(run: RunBatch, stimulus: Mapping[str, Any], ticks: int, first_tick: int,
                outputs: list[str] | None, chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """Run ``ticks`` ticks through ``run`` (a session's ``run_batch``) ``chunk`` ticks at a
    time, evaluating the stimulus functions and iterators per chunk; the outputs joined."""
    if chunk < 1:
        raise BackendError(f"run_batch: chunk must be >= 1, not {chunk}")
    sources = [_Source(name, v) for name, v in stimulus.items()]
    parts: dict[str, list[np.ndarray]] = {}
    done = 0
    while done < ticks or not parts:
        n = min(chunk, ticks - done)
        taken = {s.name: s.take(first_tick + done, n) for s in sources}
        for name, values in taken.items():  # (checked here to name the run's tick)
            check_whole_values(name, np.asarray(values)[:n], first_tick + done)
        got = run(taken, n, outputs)
        for name, arr in got.items():
            parts.setdefault(name, []).append(arr)
        done += n
        if n == 0:
            break
    return {name: np.concatenate(arrs) if len(arrs) > 1 else arrs[0]
            for name, arrs in parts.items()}


__all__ = ["CHUNK", "check_shape", "check_unmasked", "check_whole_values", "is_vectorised",
           "run_chunked"]
