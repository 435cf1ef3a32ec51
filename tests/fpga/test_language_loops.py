"""Loops and the SME "await the clock" style in every backend: generators with ``while``,
``for`` (constant or bus-bounded) that yield, ``break``, ``continue`` and early ``return``
lowered to a state machine; ``for`` loops that do not yield with ``break``/``continue``,
a run-time stop and arrays. Interpreter ≡ compiled ≡ GHDL testbench on random stimulus."""

from __future__ import annotations

from typing import Any

import pytest

from fpga.export import export, record_trace
from fpga.pytest_plugin import HardwareTester
from fpga.stimulus import random_stimulus
from sme import Array, Bool, Bus, In, Network, Out, Process, UInt, wrap
from sme.lower import LoweringError, UnsupportedConstructError, lower_process

pytestmark = pytest.mark.ghdl


class Ctl(Bus):
    start: Bool = False
    abort: Bool = False
    skip: Bool = False
    limit: UInt[3] = 0
    data: Array[UInt[4], 4] = [0, 0, 0, 0]


class Status(Bus):
    value: UInt[8] = 0
    busy: Bool = False
    total: UInt[8] = 0
    found: UInt[3] = 0


class AwaitCounter(Process):
    """SME C#'s state-based counter in the await style: wait for start, count to the limit
    read from the bus one tick at a time, stop early on abort, skip a tick on skip."""

    ctl: In[Ctl]
    out: Out[Status]

    def on_tick(self) -> Any:
        while True:
            while not self.ctl.start:
                self.out.busy = False
                yield
            n = self.ctl.limit
            self.out.busy = True
            for i in range(n):
                if self.ctl.skip:
                    yield
                    continue
                self.out.value = wrap(self.out.value + i)
                yield
                if self.ctl.abort:
                    break
            self.out.busy = False
            yield


class Restarts(Process):
    """Early return ends the tick (the next starts at the top); nested loops that yield."""

    ctl: In[Ctl]
    out: Out[Status]
    rounds: UInt[8] = 0

    def on_tick(self) -> Any:
        self.rounds = wrap(self.rounds + 1)
        self.out.total = self.rounds
        if self.ctl.abort:
            yield
            return
        for row in range(2):
            for col in range(1, 4, 2):
                self.out.value = wrap(row * 10 + col + self.rounds)
                yield
                if self.ctl.skip:
                    return
        for x in self.ctl.data:
            self.out.found = x % 8
            yield


class Search(Process, combinational=True):
    """Loops that do not yield: first match with break, continue, a bus-bounded range,
    and a register-bounded range whose register the body changes (range() reads it once)."""

    ctl: In[Ctl]
    out: Out[Status]

    def on_tick(self) -> None:
        found = 0
        for i in range(4):
            if self.ctl.data[i] > 9:
                found = i + 1
                break
        total: UInt[8] = 0  # an accumulator needs a declared type (at most 7*15 + 4)
        for i in range(self.ctl.limit):
            if self.ctl.data[i % 4] == 0:
                continue
            total = total + self.ctl.data[i % 4]
        for x in self.ctl.data:
            if x == 15:
                break
            total = total + 1
        self.out.found = found % 8
        self.out.total = total
        self.out.busy = found != 0
        self.out.value = 0


class Budget(Process):
    """A register-bounded range whose register the body changes: range() reads it once."""

    ctl: In[Ctl]
    out: Out[Status]
    budget: UInt[3] = 5

    def on_tick(self) -> None:
        spent: UInt[3] = 0
        for _ in range(self.budget):
            self.budget = wrap(self.budget - 1)
            spent = spent + 1
        if self.ctl.start:
            self.budget = self.ctl.limit
        self.out.value = spent
        self.out.total = self.budget


def _net(proc: type[Process]) -> Network:
    return Network(f"loops_{proc.__name__.lower()}", [proc(ctl=Ctl(), out=Status())])


@pytest.mark.parametrize("proc", [AwaitCounter, Restarts, Search, Budget])
def test_every_backend_agrees(proc: type[Process], sme_hw: HardwareTester) -> None:
    net = _net(proc)
    sme_hw.all_backends(net, random_stimulus(net, 400, seed=7, hold=0.6))


def test_await_counter_counts_to_the_limit_read_from_the_bus(sme_hw: HardwareTester) -> None:
    stim: list[dict[str, Any]] = [{"ctl.start": True, "ctl.limit": 4}] + [
        {"ctl.start": False}] * 7
    trace = sme_hw.simulate(_net(AwaitCounter), stim)
    value = trace.names.index("status.value")
    busy = trace.names.index("status.busy")
    assert [r[value] for r in trace.rows[1:]] == [0, 1, 3, 6, 6, 6, 6, 6]
    assert [r[busy] for r in trace.rows[1:]] == [True, True, True, True, False, False, False,
                                                 False]


def test_generated_vhdl_is_a_case_over_states(sme_hw: HardwareTester) -> None:
    net = _net(AwaitCounter)
    folder = sme_hw.export(net, record_trace(net, [{"ctl.start": True}])).out_dir
    vhdl = (folder / "AwaitCounter.vhd").read_text()
    assert "case tick_state is" in vhdl
    states = lower_process(AwaitCounter).states
    assert states is not None and 5 <= len(states) <= 10
    search = (sme_hw.export(_net(Search)).out_dir / "Search.vhd").read_text()
    assert "exit;" in search and "next;" in search and "exit when not (" in search


class NeverYields(Process):
    ctl: In[Ctl]
    out: Out[Status]

    def on_tick(self) -> Any:
        while True:
            if self.ctl.start:
                yield
            self.out.value = 1


class WideRunTimeRange(Process):
    ctl: In[Ctl]
    out: Out[Status]

    def on_tick(self) -> None:
        n: UInt[16] = self.ctl.limit
        for i in range(n):
            self.out.value = wrap(i)


def test_a_loop_that_can_skip_every_yield_is_refused_at_build_time() -> None:
    """(A pass that ends without a yield is no such loop: its end ends the tick, see
    test_generator_semantics.py.)"""
    with pytest.raises(LoweringError, match=r"test_language_loops\.py:\d+:\d+: on_tick can "
                       "loop without reaching a yield"):
        lower_process(NeverYields)


def test_unbounded_run_time_range_is_refused(tmp_path: Any) -> None:
    with pytest.raises(UnsupportedConstructError, match=r"this loop may make 65535 passes in "
                       r"one tick \(its stop is a u16\[0\.\.65535\]\); bound it"):
        export(_net(WideRunTimeRange), tmp_path)
