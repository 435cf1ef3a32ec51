"""SME C#'s StatedAdder example: one sum computed over two ticks, by hand and as a state process.

``Adder`` (C#'s ``SimpleProcess``) keeps a ``state`` register: on one tick it takes
``a + b`` and ``c`` from the control bus into registers, on the next it writes their sum.
``StatedAdder`` (C#'s ``StateProcess``) does the same with an ``await ClockAsync()``
between the two halves, here a ``yield``; the locals live across it, and returning from
``on_tick`` ends the tick, as returning from ``OnTickAsync`` does. Both are
``[ClockedProcess]`` in C#; C#'s ``uint`` sums wrap at 2**32, here with ``wrap(...)``.

The C# tester is a ``SimulationProcess``, itself clocked: what it writes in a tick reaches
the adders a tick later. It waits a tick, writes ``a, b, c = 1, 2, 3``, waits a tick, then
on four ticks in a row checks that the two sums are equal and are 0, 0, 0, 6.
:func:`stimulus` is that tester's control bus, tick by tick (``(0, 0, 0)`` at tick 0, then
``(1, 2, 3)``), and :data:`EXPECTED` its four checks: the sums after ticks 0..3 (trace
rows 1..4).

Tick by tick, in C# and here (both adders alike): tick 0 reads ``(0, 0, 0)``; tick 1
writes 0; tick 2 reads ``(1, 2, 3)``; tick 3 writes 6, which the tester reads at tick 4,
its fourth check. The StateMachineTester's tables (``sme/examples/state_machines.py``) fit
the same rule: its state processes carry no ``[ClockedProcess]``, so in C# they run in the
tester's own tick, after it, and see its writes at once; there the ported stimulus gives
tick ``i`` the tester's ``i``-th write.

    smeflow vhdl sme.examples.stated_adder:build -o out/stated_adder \\
        --stimulus sme.examples.stated_adder:stimulus --run
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sme import Bus, In, Network, Out, Process, UInt, wrap


class Control(Bus):
    """C#'s ``IControl``: three ``uint`` operands."""

    a: UInt[32] = 0
    b: UInt[32] = 0
    c: UInt[32] = 0


class Result(Bus):
    """C#'s ``IResult``."""

    sum: UInt[32] = 0


class StatedAdder(Process):
    """C#'s ``StatedAdder : StateProcess``: read on one tick, write the sum on the next."""

    input: In[Control]
    output: Out[Result]

    def on_tick(self) -> Any:
        tmp0: UInt[32] = wrap(self.input.a + self.input.b)
        tmp1: UInt[32] = self.input.c
        yield
        self.output.sum = wrap(tmp0 + tmp1)


class Adder(Process):
    """C#'s ``Adder : SimpleProcess``: the same two ticks, with an explicit state register."""

    input: In[Control]
    output: Out[Result]
    tmp0: UInt[32] = 0
    tmp1: UInt[32] = 0
    state: UInt[32] = 0

    def on_tick(self) -> None:
        if self.state == 0:
            self.tmp0 = wrap(self.input.a + self.input.b)
            self.tmp1 = self.input.c
            self.state = 1
        elif self.state == 1:
            self.output.sum = wrap(self.tmp0 + self.tmp1)
            self.state = 0


def build() -> Network:
    """The control bus (a top-level input) → ``Adder`` → ``manual``, and →
    ``StatedAdder`` → ``stated``."""
    control = Control(name="control")
    return Network("stated_adder", [
        Adder(input=control, output=Result(name="manual")),
        StatedAdder(input=control, output=Result(name="stated")),
    ])


EXPECTED = (0, 0, 0, 6)
"""The C# tester's checks, ``i == 3 ? 6u : 0u``: both sums after ticks 0..3."""


def stimulus(ticks: int = 5) -> Iterator[dict[str, Any]]:
    """The C# tester's control bus at each tick: its first write (after one ``await
    ClockAsync()``) is made in tick 0 and seen from tick 1 on."""
    for t in range(ticks):
        yield {"control.a": 1, "control.b": 2, "control.c": 3} if t >= 1 else {}
