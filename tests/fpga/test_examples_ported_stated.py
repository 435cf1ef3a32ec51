"""SME C#'s StatedAdder ported (``sme/examples/stated_adder.py``): the C# tester's four
checks (both sums equal, and 0, 0, 0, 6) hold in the interpreter, the compiled backend and
GHDL, and the hand-written two-tick adder equals the state process on every tick of a
random run. The checks fit C#'s timing only with the tester's latency: a clocked
``SimulationProcess``'s write reaches the (clocked) adders a tick later."""

from __future__ import annotations

from typing import Any

import pytest

from fpga.pytest_plugin import HardwareTester
from fpga.stimulus import random_stimulus
from sme import Simulator, Trace
from sme.examples import stated_adder as sa


def _checks(trace: Trace | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """What the C# tester reads on its four checks (ticks 1..4): both sums."""
    assert trace is not None
    rows = slice(1, 1 + len(sa.EXPECTED))
    return (tuple(trace.column("manual.sum")[rows]), tuple(trace.column("stated.sum")[rows]))


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_the_csharp_testers_checks_hold(backend: str) -> None:
    trace = Simulator(sa.build(), backend=backend).run(stimulus=list(sa.stimulus()))
    assert _checks(trace) == (sa.EXPECTED, sa.EXPECTED)


@pytest.mark.ghdl
def test_the_csharp_testers_checks_hold_in_every_backend(sme_hw: HardwareTester) -> None:
    trace = sme_hw.all_backends(sa.build(), list(sa.stimulus()))  # interp = compiled = GHDL
    assert _checks(trace) == (sa.EXPECTED, sa.EXPECTED)


def _random(ticks: int) -> list[dict[str, Any]]:
    return list(random_stimulus(sa.build(), ticks, seed=7, hold=0.5))


def test_the_state_process_is_the_hand_written_adder_on_every_tick() -> None:
    stim = _random(400)
    trace = Simulator(sa.build()).run(stimulus=stim)
    assert trace is not None
    manual, stated = trace.column("manual.sum"), trace.column("stated.sum")
    assert list(manual) == list(stated)
    # the sum of what was read at ticks 0, 2, 4, ... (mod 2**32) is written at ticks
    # 1, 3, 5, ...: rows 2, 4, 6, ...
    held = {"a": 0, "b": 0, "c": 0}
    sums = []
    for t, row in enumerate(stim):
        held.update({k.split(".")[1]: v for k, v in row.items()})
        if t % 2 == 0:
            sums.append(sum(held.values()))
    assert [manual[r] for r in range(2, len(stim) + 1, 2)] == \
        [v % 2**32 for v in sums[:len(range(2, len(stim) + 1, 2))]]
    assert any(v >= 2**32 for v in sums)  # (some sums wrap, as C#'s uint does)


@pytest.mark.ghdl
def test_random_operands_in_every_backend(sme_hw: HardwareTester) -> None:
    trace = sme_hw.all_backends(sa.build(), _random(200))
    assert list(trace.column("manual.sum")) == list(trace.column("stated.sum"))


def test_without_the_testers_latency_the_checks_fail() -> None:
    """Seen in the tick the tester writes it (the StateMachineTester's unclocked machines'
    timing), ``(1, 2, 3)`` is read at tick 0 and summed at tick 1: not what C# checks."""
    early = [{"control.a": 1, "control.b": 2, "control.c": 3}] * 5
    trace = Simulator(sa.build()).run(stimulus=early)
    assert _checks(trace) == ((0, 6, 6, 6), (0, 6, 6, 6)) != (sa.EXPECTED, sa.EXPECTED)
