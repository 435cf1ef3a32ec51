"""SME C#'s StateMachineTester: state processes with clock waits in loops and branches.

Each process writes numbered ``state`` values on its ``Result`` bus as it goes; the last
one written in a tick is what the tick shows. The C# tester drives ``go1``, ``go2`` and
``value`` tick by tick and checks the state after each tick (``EXPECTED``: the C#
tests' ``go1s``/``go2s``/``values``/``states`` tables, unchanged). The C# state processes
carry no ``[ClockedProcess]``: they run after the (clocked) tester in its own tick and see
its writes at once, so tick ``i`` here gets the tester's ``i``-th write (a clocked process
would see it a tick later: ``sme/examples/stated_adder.py``).

Porting rule for C#'s ``StateProcess``: each ``await ClockAsync()`` is a ``yield``; the
rest is literal. Returning from ``on_tick`` ends the tick as returning from
``OnTickAsync`` does (C#'s ``StateProcess.Run`` awaits the clock before each call), and
the next tick starts again at the top.
C#'s ``switch`` on an integer is an ``if``/``elif`` chain (``match`` takes enums) and its
``break`` ends the case.

    smeflow vhdl sme.examples.state_machines:build -o out/fsm \\
        --stimulus sme.examples.state_machines:stimulus --run
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sme import Bool, Bus, In, Int, Network, Out, Process


class Control(Bus):
    """The tester's inputs."""

    go1: Bool = False
    go2: Bool = False
    value: Int[32] = 0


class Result(Bus):
    """The state the process reached."""

    state: Int[32] = 0


class StateMachineTest(Process):
    """A state process between a control bus and a result bus."""

    control: In[Control]
    result: Out[Result]


class NestedForLoop(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        for _ in range(5):
            for _ in range(5):
                self.result.state = 1
                yield
                self.result.state = 2
            yield
            for _ in range(5):
                self.result.state = 3
                yield
                self.result.state = 4


class NestedForWithinWhile(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        while self.control.go1:
            self.result.state = 1
            for _ in range(5):
                self.result.state = 2
                yield
                self.result.state = 3
            yield
            for _ in range(5):
                self.result.state = 4
                yield
                self.result.state = 5
            self.result.state = 6
        self.result.state = 7


class NestedIfElseStatement(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        if self.control.go1:
            self.result.state = 1
            if self.control.go2:
                self.result.state = 2
                yield
                self.result.state = 3
            else:
                self.result.state = 4
                yield
                self.result.state = 5
        else:
            self.result.state = 6
            if self.control.go2:
                self.result.state = 7
                yield
                self.result.state = 8
            else:
                self.result.state = 9
                yield
                self.result.state = 10


class NestedIfStatement(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        if self.control.go1:
            self.result.state = 1
            yield
            self.result.state = 2
            if self.control.go2:
                self.result.state = 3
                yield
                self.result.state = 4
            self.result.state = 5
        self.result.state = 6


class NestedIfWithinWhile(StateMachineTest):
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
                yield
                self.result.state = 5
            self.result.state = 6
        self.result.state = 7


class NestedSwitchStatement(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        if self.control.value == 0:
            self.result.state = 1
            yield
            self.result.state = 2
            if self.control.value == 0:
                self.result.state = 3
                yield
                self.result.state = 4
            elif self.control.value == 1:
                self.result.state = 5
                yield
                self.result.state = 6
            else:
                self.result.state = 7
                yield
                self.result.state = 8
            self.result.state = 9
        elif self.control.value == 1:
            self.result.state = 10
            yield
            self.result.state = 11
        else:
            self.result.state = 12
            yield
            self.result.state = 13
        self.result.state = 14


class NestedSwitchWithinWhile(StateMachineTest):
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
            else:
                self.result.state = 6
                yield
                self.result.state = 7
            self.result.state = 8
        self.result.state = 9


class NestedWhileLoop(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        while self.control.go1:
            self.result.state = 1
            while self.control.go2:
                self.result.state = 2
                yield
                self.result.state = 3
            yield
            while not self.control.go2:
                self.result.state = 4
                yield
                self.result.state = 5
            self.result.state = 6
        self.result.state = 7


class SingleForLoop(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        for _ in range(5):
            self.result.state = 1
            yield
            self.result.state = 2
        self.result.state = 3


class SingleIfElseStatement(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        if self.control.go1:
            self.result.state = 1
            yield
            self.result.state = 2
        else:
            self.result.state = 3
            yield
            self.result.state = 4
        self.result.state = 5


class SingleIfStatement(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        if self.control.go1:
            self.result.state = 1
            yield
            self.result.state = 2
        self.result.state = 3


class SingleSwitchStatement(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        yield
        if self.control.value == 0:
            self.result.state = 1
            yield
            self.result.state = 2
        elif self.control.value == 1:
            self.result.state = 3
            yield
            self.result.state = 4
            yield
            self.result.state = 5
        elif self.control.value == 2:
            self.result.state = 6
            yield
        elif self.control.value == 3:
            self.result.state = 7
        else:
            self.result.state = 8
        self.result.state = 9


class SingleWhileLoop(StateMachineTest):
    def on_tick(self) -> Any:
        self.result.state = 0
        while self.control.go1:
            self.result.state = 1
            yield
            self.result.state = 2
        self.result.state = 3


MACHINES: tuple[type[StateMachineTest], ...] = (
    NestedForLoop, NestedForWithinWhile, NestedIfElseStatement, NestedIfStatement,
    NestedIfWithinWhile, NestedSwitchStatement, NestedSwitchWithinWhile, NestedWhileLoop,
    SingleForLoop, SingleIfElseStatement, SingleIfStatement, SingleSwitchStatement,
    SingleWhileLoop)

_F, _T = False, True
EXPECTED: dict[str, tuple[tuple[bool, ...], tuple[bool, ...], tuple[int, ...], tuple[int, ...]]] = {
    # name: (go1s, go2s, values, states), as the C# tests state them
    "NestedForLoop": ((), (), (), (1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3) * 5 + (4,)),
    "NestedForWithinWhile": ((_F, _T), (), (), (7, 2, 2, 2, 2, 2, 3, 4, 4, 4, 4, 4, 2)),
    "NestedIfElseStatement": ((_T, _T, _T, _T, _F, _F, _F, _F), (_T, _T, _F, _F, _T, _T, _F, _F),
                              (), (2, 3, 4, 5, 7, 8, 9, 10)),
    "NestedIfStatement": ((_F, _T, _T, _T, _T, _T), (_F, _F, _F, _T, _T, _T), (),
                          (6, 1, 6, 1, 3, 6)),
    "NestedIfWithinWhile": ((_F, _T, _T, _T, _T, _F), (_F, _F, _F, _T, _T, _T), (),
                            (7, 4, 4, 2, 2, 7)),
    "NestedSwitchStatement": ((), (), (0, 0, 0, 0, 1, 1, 0, 2, 2, 1, 1, 2, 2),
                              (1, 3, 14, 1, 5, 14, 1, 7, 14, 10, 14, 12, 14)),
    "NestedSwitchWithinWhile": ((_F, _T, _T, _T, _T, _F), (), (0, 0, 1, 2, 5, 5),
                                (9, 2, 4, 6, 6, 9)),
    "NestedWhileLoop": ((_F, _T, _T, _T, _T, _F, _F, _F, _F, _F),
                        (_F, _F, _F, _T, _T, _T, _F, _F, _T, _F), (),
                        (7, 1, 4, 2, 2, 2, 3, 4, 7, 7)),
    "SingleForLoop": ((), (), (), (1, 1, 1, 1, 1, 3, 1, 1, 1, 1, 1, 3)),
    "SingleIfElseStatement": ((_F, _F, _T, _T, _F, _F), (), (), (3, 5, 1, 5, 3, 5)),
    "SingleIfStatement": ((_F, _T, _F), (), (), (3, 1, 3)),
    "SingleSwitchStatement": ((), (), (0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5),
                              (0, 1, 9, 0, 3, 4, 9, 0, 6, 9, 0, 9, 0, 9)),
    "SingleWhileLoop": ((_F, _T, _T, _T, _F), (), (), (3, 1, 1, 1, 3)),
}
"""Per machine: the C# tester's inputs for tick i (an input past the end of its table
holds its last value, as the tester stops writing it) and the state it checks after
tick i."""


def bus_name(cls: type[StateMachineTest]) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in cls.__name__).lstrip("_")


def build() -> Network:
    """Every machine, each with its own control and result buses (``<name>_ctl``,
    ``<name>_res``, the name in snake_case), so that one run drives each with its own
    C# inputs."""
    return Network("state_machines", [
        cls(control=Control(name=f"{bus_name(cls)}_ctl"),
            result=Result(name=f"{bus_name(cls)}_res")) for cls in MACHINES])


def machine_inputs(name: str, tick: int) -> dict[str, Any]:
    """The C# tester's inputs of machine ``name`` at ``tick`` (held past its tables)."""
    go1s, go2s, values, _ = EXPECTED[name]
    out: dict[str, Any] = {}
    for signal, table in (("go1", go1s), ("go2", go2s), ("value", values)):
        if table:
            out[signal] = table[min(tick, len(table) - 1)]
    return out


def stimulus() -> Iterator[dict[str, Any]]:
    """Every machine's C# inputs, side by side, for as many ticks as the longest test."""
    ticks = max(len(states) for *_, states in EXPECTED.values())
    for t in range(ticks):
        yield {f"{bus_name(cls)}_ctl.{k}": v for cls in MACHINES
               for k, v in machine_inputs(cls.__name__, t).items()}
