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
        else:
            self.array = np.asarray(value)
        self.used = 0

    def take(self, start_tick: int, n: int) -> np.ndarray:
        if self.func is not None:
            got = np.asarray(self.func(np.arange(start_tick, start_tick + n, dtype=np.int64)))
            if got.ndim == 0 or (got.shape[0] == 1 and n != 1):
                return np.broadcast_to(got, (n, *got.shape[1:])).copy()
            if got.shape[0] != n:
                raise BackendError(f"run_batch: stimulus function for {self.name!r} returned "
                                   f"{got.shape[0]} values for {n} ticks")
            return got
        if self.array is not None:
            part = self.array[self.used:self.used + n]
            self.used += n
            return part
        return self._from_iterator(n)

    def _from_iterator(self, n: int) -> np.ndarray:
        assert self.iter is not None
        have = sum(len(p) for p in self.pending)
        while have < n:
            try:
                part = np.atleast_1d(np.asarray(next(self.iter)))
            except StopIteration:
                raise BackendError(f"run_batch: the stimulus iterator for {self.name!r} ended "
                                   f"after {self.used + have} values") from None
            self.pending.append(part)
            have += len(part)
        joined = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        self.pending = [joined[n:]] if len(joined) > n else []
        self.used += n
        return joined[:n]


def is_vectorised(stimulus: Mapping[str, Any]) -> bool:
    """Whether some stimulus value is a function or an iterator (a chunked run)."""
    return any(callable(v) or isinstance(v, Iterator) for v in stimulus.values())


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
        got = run({s.name: s.take(first_tick + done, n) for s in sources}, n, outputs)
        for name, arr in got.items():
            parts.setdefault(name, []).append(arr)
        done += n
        if n == 0:
            break
    return {name: np.concatenate(arrs) if len(arrs) > 1 else arrs[0]
            for name, arrs in parts.items()}


__all__ = ["CHUNK", "is_vectorised", "run_chunked"]
