"""Random stimulus for any network: a value for every top-level input signal, every tick.

Values are drawn from each signal's whole range, with the edges (0, ±1, the minimum and
the maximum) drawn more often than their share, since that is where width and sign bugs
hide. The same seed gives the same stimulus, so a failing run can be repeated.

    for item in random_stimulus(net, ticks=10_000, seed=1):
        ...   # {"samples.x": -32768, "samples.x_valid": True}
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from sme.network import Network
from sme.types import ArrayType, BoolType, EnumType, Fixed, FixedType, IntegerType, SignalType

EDGE_PROBABILITY = 0.2
"""How often an integer is drawn from its edge values instead of uniformly."""


def value_drawer(t: SignalType) -> Callable[[random.Random], Any]:
    """A function drawing a random value of type ``t`` from a ``random.Random``."""
    if isinstance(t, BoolType):
        return lambda rng: rng.random() < 0.5
    if isinstance(t, EnumType):
        members = t.members
        return lambda rng: rng.choice(members)
    if isinstance(t, FixedType):
        raw = _int_drawer(t.raw_type.lo, t.raw_type.hi)
        frac = t.frac_bits
        return lambda rng: Fixed(raw(rng), frac)
    if isinstance(t, IntegerType):
        return _int_drawer(t.lo, t.hi)
    if isinstance(t, ArrayType):
        elem, n = value_drawer(t.element), t.length
        return lambda rng: [elem(rng) for _ in range(n)]
    raise TypeError(f"no random values for signal type {t!r}")


def _int_drawer(lo: int, hi: int) -> Callable[[random.Random], int]:
    edges = sorted({v for v in (lo, lo + 1, -1, 0, 1, hi - 1, hi) if lo <= v <= hi})

    def draw(rng: random.Random) -> int:
        if rng.random() < EDGE_PROBABILITY:
            return rng.choice(edges)
        return rng.randint(lo, hi)

    return draw


def random_stimulus(
    network: Network, ticks: int, seed: int | None = 0, *, hold: float = 0.0
) -> Iterator[dict[str, Any]]:
    """``ticks`` stimulus items for ``network``: every top-level input signal gets a random
    value each tick (with probability ``hold`` it keeps its previous value instead, which
    makes level-sensitive inputs such as enables stay on for a while)."""
    rng = random.Random(seed)
    drawers = [(t.name, value_drawer(t.type)) for t in network.traced_signals() if t.is_input]
    for i in range(ticks):
        yield {name: draw(rng) for name, draw in drawers
               if i == 0 or hold == 0.0 or rng.random() >= hold}


__all__ = ["EDGE_PROBABILITY", "random_stimulus", "value_drawer"]
