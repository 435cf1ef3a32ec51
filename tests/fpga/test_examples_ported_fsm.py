"""SME C#'s StateMachineTester ported (``sme/examples/state_machines.py``): each of the
thirteen state processes shows, tick by tick, the states the C# tests state, in the
interpreter, the compiled backend and GHDL. Of the C# ExceptionTests (state machines C#
refuses), those with a path that loops within a tick are refused by every backend with
``file:line:col``; the two whose every path waits for the clock run alike everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from fpga.export import export
from fpga.pytest_plugin import HardwareTester
from fpga.stimulus import random_stimulus
from sme import Network, Simulator, SmeError, Trace
from sme.examples import state_machines as sm


def _states(trace: Trace) -> dict[str, tuple[int, ...]]:
    """Each machine's state after tick i, for as many ticks as its C# test checks."""
    return {cls.__name__: tuple(trace.column(f"{sm.bus_name(cls)}_res.state")[
        1:1 + len(sm.EXPECTED[cls.__name__][3])]) for cls in sm.MACHINES}


EXPECTED_STATES = {name: states for name, (*_, states) in sm.EXPECTED.items()}


def test_every_machine_gives_the_csharp_states() -> None:
    trace = Simulator(sm.build()).run(stimulus=list(sm.stimulus()))
    assert trace is not None
    assert _states(trace) == EXPECTED_STATES


@pytest.mark.ghdl
def test_every_machine_gives_the_csharp_states_in_every_backend(
        sme_hw: HardwareTester) -> None:
    trace = sme_hw.all_backends(sm.build(), list(sm.stimulus()))  # interp = compiled = GHDL
    assert _states(trace) == EXPECTED_STATES


# C#'s ExceptionTests. These loop within one tick on some path: refused.


class NestedIfWithinWhileWithoutAwait(sm.StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        while self.control.go1:
            self.result.state = 1
            if self.control.go2:
                self.result.state = 2
                yield
                self.result.state = 3
            else:
                self.result.state = 4
            self.result.state = 5
        self.result.state = 6


class NestedSwitchWithinWhileWithoutDefault(sm.StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        while self.control.go1:
            self.result.state = 1
            if self.control.value == 0:
                self.result.state = 2
                yield
                self.result.state = 3
            elif self.control.value == 1:
                self.result.state = 4
                yield
                self.result.state = 5
            self.result.state = 6
        self.result.state = 7


class WhileWithoutAwait(sm.StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        yield
        while self.control.go1:
            self.result.state = 1


LOOPS_IN_A_TICK = r"on_tick can loop without reaching a yield here"
REFUSED = [(NestedIfWithinWhileWithoutAwait, LOOPS_IN_A_TICK),
           (NestedSwitchWithinWhileWithoutDefault, LOOPS_IN_A_TICK),
           (WhileWithoutAwait, r"a while loop that does not yield would run without bound")]


@pytest.mark.parametrize(("cls", "message"), REFUSED, ids=[c.__name__ for c, _ in REFUSED])
def test_a_loop_within_a_tick_is_refused_by_every_backend(cls: type[sm.StateMachineTest],
                                                          message: str, tmp_path: Any) -> None:
    pattern = r"test_examples_ported_fsm\.py:\d+:\d+: " + message

    def net() -> Network:
        return Network("refused", [cls(control=sm.Control(), result=sm.Result())])

    for backend in ("interp", "compiled"):
        with pytest.raises(SmeError, match=pattern):
            Simulator(net(), backend=backend)
    with pytest.raises(SmeError, match=pattern):
        export(net(), tmp_path)


# These C# refuses too, but every path waits for the clock: smeflow runs them.


class NestedForWithinWhileWithoutAwait(sm.StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        while self.control.go1:
            self.result.state = 1
            for _ in range(10):
                self.result.state = 0
                yield
                self.result.state = 1
            for _ in range(10):
                self.result.state = 2
                yield
                self.result.state = 3


class NestedWhileWithoutAwait(sm.StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        while self.control.go1:
            self.result.state = 1
            while self.control.go2:
                self.result.state = 2
                yield
            while not self.control.go2:
                self.result.state = 3
                yield


@pytest.mark.ghdl
def test_what_csharp_refuses_but_always_yields_runs_in_every_backend(
        sme_hw: HardwareTester) -> None:
    net = Network("accepted", [
        NestedForWithinWhileWithoutAwait(control=sm.Control(name="a_ctl"),
                                         result=sm.Result(name="a_res")),
        NestedWhileWithoutAwait(control=sm.Control(name="b_ctl"), result=sm.Result(name="b_res"))])
    stimulus = list(random_stimulus(net, 80, seed=4, hold=0.7))
    trace = sme_hw.all_backends(net, stimulus)
    assert len(set(trace.column("a_res.state"))) == 3 and len(set(trace.column("b_res.state"))) > 2
