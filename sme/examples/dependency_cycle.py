"""SME C#'s DependencyCycle example: a ring of processes that pass a value on.

``Id`` copies its input bus to its output bus. Eleven of them in a ring are a loop of
wires when every one is combinational (``UnclockedId``): there is no order to run them
in, and the network is refused when it is built — SME C#'s ``UnclockedCycleException``,
smeflow's ``CombinationalLoopError`` naming the processes and buses of the loop. With
one clocked process in the ring (``ClockedId``) the loop has a register and the network
runs: the value (0 from the buses' initial values) goes round for ever.

(SME C#'s third check — a combinational process whose input bus nobody writes is refused
with ``NoWritingParentsException`` — has no counterpart: in smeflow a bus nobody writes
is a top-level input, driven by the testbench.)

    smeflow sim sme.examples.dependency_cycle:build --ticks 5
    smeflow sim sme.examples.dependency_cycle:build_unclocked --ticks 5   # refused
"""

from __future__ import annotations

from sme import Bus, In, Int, Network, Out, Process

RING = 10
"""Combinational processes after the first one, as the C# example's ``Cycle(first, 10)``."""


class IntBus(Bus):
    """One integer, 0 until written."""

    value: Int[32] = 0


class Id(Process):
    """Copies its input to its output."""

    input: In[IntBus]
    output: Out[IntBus]

    def on_tick(self) -> None:
        self.output.value = self.input.value


class UnclockedId(Id, combinational=True):
    """``Id`` as a combinational process (wires)."""


class ClockedId(Id):
    """``Id`` as a clocked process (a register)."""


def ring(first: type[Id], count: int = RING) -> Network:
    """``first`` followed by ``count`` ``UnclockedId`` processes, the last one's output
    bus read by ``first``."""
    buses = [IntBus(name=f"link{i}") for i in range(count + 1)]
    procs: list[Process] = [first(input=buses[count], output=buses[0], name="first")]
    procs += [UnclockedId(input=buses[i], output=buses[i + 1], name=f"id{i + 1}")
              for i in range(count)]
    return Network("dependency_cycle", procs)


def build() -> Network:
    """The ring with a clocked first process: it runs."""
    return ring(ClockedId)


def build_unclocked() -> Network:
    """The ring of combinational processes only: refused when built."""
    return ring(UnclockedId)
