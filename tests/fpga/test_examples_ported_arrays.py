"""SME C#'s ArrayOfBuses ported with its 100 input buses as Array signals of one bus
(``sme/examples/array_of_buses.py``): the C# tester's sums, in the interpreter, the compiled
backend and GHDL; and the array of buses itself, refused with that alternative named."""

from __future__ import annotations

from typing import Any

import pytest

from fpga.pytest_plugin import HardwareTester
from fpga.stimulus import random_stimulus
from sme import DeclarationError, In, Out, Process, Simulator, Trace
from sme.examples import array_of_buses as ab


def _sums(trace: Trace | None) -> list[int]:
    """What the C# tester reads after each round: the output of the tick that drove it
    (a combinational process: trace row ``t + 1`` for the round driven at tick ``t``)."""
    assert trace is not None
    valid, value = trace.column("output.valid"), trace.column("output.value")
    assert list(valid) == [False, False] + [True] * (len(valid) - 2)
    return list(value[2:])


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_the_csharp_testers_sums(backend: str) -> None:
    trace = Simulator(ab.build(), backend=backend).run(stimulus=list(ab.stimulus()))
    assert _sums(trace) == ab.expected()
    assert len(set(ab.expected())) == 10  # (ten different rounds)


@pytest.mark.ghdl
def test_the_csharp_testers_sums_in_every_backend(sme_hw: HardwareTester) -> None:
    trace = sme_hw.all_backends(ab.build(), list(ab.stimulus()))  # interp = compiled = GHDL
    assert _sums(trace) == ab.expected()


def _reference(row: dict[str, Any]) -> tuple[bool, int]:
    """C#'s ReduceAdd on one tick's lanes, with C#'s int wrap-around."""
    total = sum(v + i for i, (ok, v) in enumerate(zip(row["lanes.valid"], row["lanes.value"],
                                                          strict=True)) if ok)
    return row["lanes.valid"][0], (total + 2**31) % 2**32 - 2**31


def test_random_lanes_valid_or_not_and_wrapping() -> None:
    stim = list(random_stimulus(ab.build(), 60, seed=3))
    trace = Simulator(ab.build(), backend="compiled").run(stimulus=stim)
    assert trace is not None
    got = list(zip(trace.column("output.valid")[1:], trace.column("output.value")[1:],
                   strict=True))
    assert got == [_reference(row) for row in stim]
    assert any(not all(row["lanes.valid"]) for row in stim)


def test_the_array_of_buses_is_refused_naming_this_port() -> None:
    with pytest.raises(DeclarationError, match=r"ReduceAdd\.input: list\[In\[ValueBus\]\]: a "
                       r"port holds one bus; arrays of buses are not supported: .*Array "
                       r"signals of one bus .*see sme/examples/array_of_buses\.py\)$"):
        class ReduceAdd(Process):  # C#: [InputBus] public ValueBus[] input;
            input: list[In[ab.ValueBus]]
            output: Out[ab.ValueBus]
