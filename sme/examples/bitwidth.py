"""SME C#'s BitWidth example: an adder of 10-bit values whose sum wraps to 10 bits.

``Add`` reads two ``ValueBus`` buses; on a tick where both are valid it puts their sum,
wrapped to 10 bits, on its output bus (valid one tick later). C# writes the narrowing as a
cast, ``(UInt10)(a.Value + b.Value)``, and a ``UInt10`` (``SME.VHDL.UInt10``) wraps; in
smeflow a value that does not fit its signal is an error, and ``wrap(...)`` says that the
wrap-around is meant. (Without it, the first sum above 1023 stops the simulation with a
``SignalValueError`` naming the signal, the value, the process and the tick.)

    smeflow vhdl sme.examples.bitwidth:build -o out/bitwidth \\
        --stimulus sme.examples.bitwidth:stimulus --run
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from sme import Bool, Bus, In, Network, Out, Process, UInt, wrap


class ValueBus(Bus):
    """A 10-bit value and whether it is valid."""

    valid: Bool = False
    value: UInt[10] = 0


class Add(Process):
    """``c = (a + b) mod 2**10`` on each tick where ``a`` and ``b`` are both valid."""

    a: In[ValueBus]
    b: In[ValueBus]
    c: Out[ValueBus]

    def on_tick(self) -> None:
        if self.a.valid and self.b.valid:
            self.c.value = wrap(self.a.value + self.b.value)
            self.c.valid = True
        else:
            self.c.valid = False


def build() -> Network:
    """Two top-level input buses ``a``, ``b`` → ``Add`` → ``c``."""
    return Network("bitwidth", [Add(a=ValueBus(name="a"), b=ValueBus(name="b"),
                                    c=ValueBus(name="c"))])


def stimulus(count: int = 40, seed: int = 10) -> Iterator[dict[str, Any]]:
    """As the C# tester: after an idle tick, ``count`` random pairs, each valid for one
    tick and followed by an idle tick (the tester waits for the result)."""
    rng = random.Random(seed)
    yield {"a.valid": False, "b.valid": False}
    for _ in range(count):
        yield {"a.valid": True, "b.valid": True,
               "a.value": rng.randrange(1024), "b.value": rng.randrange(1024)}
        yield {"a.valid": False, "b.valid": False}
