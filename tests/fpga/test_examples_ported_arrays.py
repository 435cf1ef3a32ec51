"""SME C#'s ArrayOfBuses ported as C# writes it (``sme/examples/array_of_buses.py``):
``ReduceAdd`` reads ``In[Array[ValueBus, size]]`` as ``self.input[i].value``, and C#'s
tester writes ``Out[Array[ValueBus, size]]``. The tester's checks pass on C#'s 100 buses in
the interpreter and give the sums C#'s ``Debug.Assert`` expects; the same rounds driven as
stimulus run bit for bit alike in the interpreter, the compiled backend and GHDL."""

from __future__ import annotations

from typing import Any

import pytest

from fpga.pytest_plugin import HardwareTester
from fpga.stimulus import random_stimulus
from sme import Array, In, Network, Out, Process, SimulationError, Simulator, Trace
from sme.examples import array_of_buses as ab


def _sums(trace: Trace | None) -> list[int]:
    """What the C# tester reads after each round: the output of the tick that drove it
    (a combinational process: trace row ``t + 1`` for the round driven at tick ``t``)."""
    assert trace is not None
    valid, value = trace.column("output.valid"), trace.column("output.value")
    assert list(valid) == [False, False] + [True] * (len(valid) - 2)
    return list(value[2:])


def test_the_csharp_tester_checks_csharps_100_buses() -> None:
    """C#'s Program: the tester's array of output buses is the reducer's array of input
    buses; every Debug.Assert of the tester holds, and the sums it checks are on the
    output bus, a round per tick, as with the stimulus on the top-level inputs."""
    sim = Simulator(ab.tested())
    sim.step(25)
    assert sim.trace is not None
    tested = list(sim.trace.column("output.value"))
    assert tested[2:12] == ab.expected() and len(set(ab.expected())) == 10
    assert [b.name for b in sim.network.inputs] == []  # (the tester writes them all)
    driven = Simulator(ab.build(ab.SIZE)).run(stimulus=list(ab.stimulus(size=ab.SIZE)))
    assert _sums(driven) == ab.expected()
    assert list(driven.column("output.value")) == tested[:12]


@pytest.mark.ghdl
def test_csharps_100_buses_in_ghdl(sme_hw: HardwareTester) -> None:
    """C#'s size in the exported VHDL: the testbench replays the interpreter's trace of the
    tester's rounds (the compiled backend runs 10 buses: see ``ab.BUILT``)."""
    result = sme_hw.testbench(ab.build(ab.SIZE), list(ab.stimulus(size=ab.SIZE)))
    assert result.passed and "11 ticks" in result.summary()


def test_the_csharp_tester_fails_a_wrong_sum() -> None:
    class OffByOne(Process, combinational=True, simulation_only=True):
        input: In[Array[ab.ValueBus, ab.SIZE]]
        output: Out[ab.ValueBus]

        def on_tick(self) -> None:  # (any Python: an iteration over the array of buses)
            self.output.valid = self.input[0].valid
            self.output.value = sum(b.value + i for i, b in enumerate(self.input) if b.valid) + 1

    buses = [ab.ValueBus() for _ in range(ab.SIZE)]
    out = ab.ValueBus(name="output")
    net = Network("wrong", [ab.reduce_add_tester(ab.SIZE)(network_input=buses,
                                                         network_output=out),
                            OffByOne(input=buses, output=out)])
    with pytest.raises(SimulationError, match=rf"Error: Expected {ab.expected()[0]}, got "
                                              rf"{ab.expected()[0] + 1}"):
        Simulator(net).step(25)


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_the_csharp_testers_sums(backend: str) -> None:
    # 10 buses: see ab.BUILT
    trace = Simulator(ab.build(10), backend=backend).run(stimulus=list(ab.stimulus(size=10)))
    assert _sums(trace) == ab.expected(size=10)


@pytest.mark.ghdl
def test_the_csharp_testers_sums_in_every_backend(sme_hw: HardwareTester) -> None:
    net = ab.build(10)
    trace = sme_hw.all_backends(net, list(ab.stimulus(size=10)))  # interp = compiled = GHDL
    assert _sums(trace) == ab.expected(size=10)
    vhdl = (sme_hw.export(net).out_dir / "ReduceAdd.vhd").read_text()
    assert "input_value : in array_s32_10_t;" in vhdl  # C#'s T_SYSTEM_INT32_ARRAY port
    assert "if input_valid(i) = '1' then" in vhdl


def _reference(row: dict[str, Any], size: int) -> tuple[bool, int]:
    """C#'s ReduceAdd on one tick's buses, with C#'s int wrap-around."""
    total = sum(row[f"value_bus_{i}.value"] + i for i in range(size)
                if row[f"value_bus_{i}.valid"])
    return row["value_bus_0.valid"], (total + 2**31) % 2**32 - 2**31


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_random_buses_valid_or_not_and_wrapping(backend: str) -> None:
    stim = list(random_stimulus(ab.build(6), 60, seed=3))
    trace = Simulator(ab.build(6), backend=backend).run(stimulus=stim)
    assert trace is not None
    got = list(zip(trace.column("output.valid")[1:], trace.column("output.value")[1:],
                   strict=True))
    assert got == [_reference(row, 6) for row in stim]
    assert any(not row["value_bus_2.valid"] for row in stim)
    assert any(abs(v) > 2**30 for v in trace.column("output.value"))  # (wrapped sums)
