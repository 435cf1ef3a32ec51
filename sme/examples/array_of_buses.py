"""SME C#'s ArrayOfBuses example, with its array of buses carried as Array signals of one bus.

C#'s ``ReduceAdd`` reads ``[InputBus] ValueBus[] input`` (100 buses of ``valid`` and
``Value``) and writes, on one output bus, the sum of ``Value + i`` over the valid inputs
``i`` and the first input's ``valid``. smeflow ports hold one bus each (an array of buses
is refused, naming this alternative), so here the 100 buses are one ``Lanes`` bus whose
signals are arrays: ``valid[i]`` and ``value[i]`` are C#'s ``input[i].valid`` and
``input[i].Value``. The process body is C#'s, loop for loop; C#'s ``int`` sum wraps, here
with ``wrap(...)``.

C#'s ``ReduceAdd`` is a ``SimpleProcess`` without ``[ClockedProcess]``: combinational, as
here. Its tester writes 10 rounds of random values (0..99, all valid) and waits until the
output is valid, then checks the sum; :func:`stimulus` drives those rounds, one per tick
after an idle tick, and :func:`expected` gives the sums the C# tester checks.

    smeflow vhdl sme.examples.array_of_buses:build -o out/array_of_buses \\
        --stimulus sme.examples.array_of_buses:stimulus --run
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from sme import Array, Bool, Bus, In, Int, Network, Out, Process, wrap

SIZE = 100
"""C#'s ``const int size = 100``: the number of input buses (here lanes)."""

BIAS = tuple(range(SIZE))
"""C#'s ``bias[i] = i``."""


class Lanes(Bus):
    """C#'s ``ValueBus[] input``, lane ``i`` being ``input[i]``."""

    valid: Array[Bool, SIZE] = [False] * SIZE
    value: Array[Int[32], SIZE] = [0] * SIZE


class ValueBus(Bus):
    """C#'s ``ValueBus``: the output."""

    valid: Bool = False
    value: Int[32] = 0


class ReduceAdd(Process, combinational=True):
    """``output.Value = sum(input[i].Value + bias[i] for valid i)``; ``output.valid =
    input[0].valid``."""

    input: In[Lanes]
    output: Out[ValueBus]

    def on_tick(self) -> None:
        total: Int[32] = 0
        for i in range(SIZE):
            if self.input.valid[i]:
                total = wrap(total + self.input.value[i] + BIAS[i])
        self.output.valid = self.input.valid[0]
        self.output.value = total


def build() -> Network:
    """The ``lanes`` bus (a top-level input) → ``ReduceAdd`` → ``output``."""
    return Network("array_of_buses", [ReduceAdd(input=Lanes(name="lanes"),
                                                output=ValueBus(name="output"))])


def rounds(count: int = 10, seed: int = 0) -> list[list[int]]:
    """The tester's data: ``count`` rounds of ``SIZE`` values in 0..99 (C#'s
    ``rng.Next(0, 100)``)."""
    rng = random.Random(seed)
    return [[rng.randrange(100) for _ in range(SIZE)] for _ in range(count)]


def stimulus(count: int = 10, seed: int = 0) -> Iterator[dict[str, Any]]:
    """An idle tick, then one round of :func:`rounds` per tick, every lane valid."""
    yield {}
    for data in rounds(count, seed):
        yield {"lanes.valid": (True,) * SIZE, "lanes.value": tuple(data)}


def expected(count: int = 10, seed: int = 0) -> list[int]:
    """The sums the C# tester checks: ``sum(data[i] + i)`` of each round."""
    return [sum(v + i for i, v in enumerate(data)) for data in rounds(count, seed)]
