"""A generator ``on_tick`` that returns (``return`` or the end of its body) ends the tick,
and the next tick starts a fresh pass at the top: the semantics of SME C#, whose
``StateProcess.Run`` is ``while (true) { await ClockAsync(); await OnTickAsync(); }``. The
same traces, tick for tick, in the interpreter, the compiled backend and GHDL."""

from __future__ import annotations

from typing import Any

import pytest

from fpga.pytest_plugin import HardwareTester
from sme import Bool, Bus, In, Network, Out, Process, Simulator, Trace, UInt, wrap
from sme.lower import ir, lower_process


class Go(Bus):
    go: Bool = False


class Word(Bus):
    value: UInt[8] = 0


class OneTwo(Process):
    """C#: ``x = 1; await ClockAsync(); x = 2;`` (then OnTickAsync returns)."""

    out: Out[Word]

    def on_tick(self) -> Any:
        self.out.value = 1
        yield
        self.out.value = 2


class YieldAtTheEnd(Process):
    """A yield just before the end costs a tick of its own, as C#'s await before return."""

    out: Out[Word]
    n: UInt[8] = 0

    def on_tick(self) -> Any:
        self.n = wrap(self.n + 1)
        self.out.value = self.n
        yield


class EarlyReturn(Process):
    """``return`` ends the tick; a pass that never yields is a one-tick pass."""

    inp: In[Go]
    out: Out[Word]
    n: UInt[8] = 0

    def on_tick(self) -> Any:
        self.n = wrap(self.n + 1)
        self.out.value = self.n
        if not self.inp.go:
            return
        yield
        self.out.value = 100


class BreakBeforeYield(Process):
    """A loop left by ``break`` before its yield: the pass ends, and so does the tick."""

    inp: In[Go]
    out: Out[Word]
    n: UInt[8] = 0

    def on_tick(self) -> Any:
        for _ in range(3):
            if not self.inp.go:
                break
            yield
        self.n = wrap(self.n + 1)
        self.out.value = self.n


GO = [False, False, True, False, True, True, False, False, True, True, True, True]
"""``go`` at each tick."""

EXPECTED = {
    # after tick 0, 1, ...; the first value is the initial one
    OneTwo: [0, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2],
    YieldAtTheEnd: [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6],
    # go: F F T F T T F F T T T T -> a pass of 2 ticks where go is set, else of 1
    EarlyReturn: [0, 1, 2, 3, 100, 4, 100, 5, 6, 7, 100, 8, 100],
    # go: three yields then the count, or the count at once where go is not set
    BreakBeforeYield: [0, 1, 2, 2, 3, 3, 3, 4, 5, 5, 5, 5, 6],
}


def _net(cls: type[Process]) -> Network:
    if cls in (OneTwo, YieldAtTheEnd):
        return Network(cls.__name__.lower(), [cls(out=Word())])
    return Network(cls.__name__.lower(), [cls(inp=Go(), out=Word())])


def _stimulus(cls: type[Process]) -> list[dict[str, Any]]:
    if cls in (OneTwo, YieldAtTheEnd):
        return [{}] * len(GO)
    return [{"go.go": g} for g in GO]


def _values(trace: Trace | None) -> list[Any]:
    assert trace is not None
    return list(trace.column("word.value"))


@pytest.mark.parametrize("backend", ["interp", "compiled"])
@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_a_return_ends_the_tick_as_in_csharp(cls: type[Process], backend: str) -> None:
    trace = Simulator(_net(cls), backend=backend).run(stimulus=_stimulus(cls))
    assert _values(trace) == EXPECTED[cls]


@pytest.mark.ghdl
@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_a_return_ends_the_tick_as_in_csharp_in_ghdl(cls: type[Process],
                                                      sme_hw: HardwareTester) -> None:
    # interpreter = compiled = GHDL, each tick and signal
    trace = sme_hw.all_backends(_net(cls), _stimulus(cls))
    assert _values(trace) == EXPECTED[cls]


def _gotos(stmts: list[ir.Stmt]) -> list[ir.Goto]:
    out: list[ir.Goto] = []
    for s in stmts:
        if isinstance(s, ir.Goto):
            out.append(s)
        elif isinstance(s, ir.If):
            out += _gotos(s.then) + _gotos(s.orelse)
    return out


def test_the_end_of_a_pass_is_a_wait_for_state_zero() -> None:
    """No same-tick edge goes back to the top; a yield just before the end waits into a
    state that only ends the pass."""
    for cls in EXPECTED:
        states = lower_process(cls).states
        assert states is not None
        ends = [g for s in states for g in _gotos(s.body) if g.state == 0]
        assert ends and all(g.wait for g in ends)
    states = lower_process(YieldAtTheEnd).states
    assert states is not None and [s.name for s in states] == ["start", "end"]
