"""A ``simulation_only`` process (any Python, run by the interpreter alone) whose loop is
never left stops the tick with the one ``SimulationError`` of a generator that never
yields (``sme.lower.cycles.spin_message``), naming the process and the loop's
``file:line``, generator or not; before, the interpreter ran it unchecked and hung. A loop
that is left, however long, runs as before."""

from __future__ import annotations

import inspect
import itertools
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from sme import Bool, Bus, In, Network, Out, Process, SimulationError, Simulator, UInt
from sme.cli import main
from sme.lower.cycles import MAX_STEPS


class Go(Bus):
    go: Bool = False


class Word(Bus):
    value: UInt[8] = 0


class BusyWait(Process, simulation_only=True):
    """A testbench model waiting, inside one tick, for an input that cannot change in it."""

    inp: In[Go]
    out: Out[Word]

    def on_tick(self) -> None:
        self.out.value = 1
        while not self.inp.go:
            pass


class WaitsInPython(Process, simulation_only=True):
    """A generator that yields only when a Python attribute says so: never, from tick 2."""

    inp: In[Go]
    out: Out[Word]

    def on_tick(self) -> Any:
        ready = [True, True]
        self.out.value = 2
        yield
        while True:
            if ready:
                ready.pop()
                yield
            self.out.value = 3


class Base(Process):
    inp: In[Go]
    out: Out[Word]

    def on_tick(self) -> None:
        self.out.value = 4


class Derived(Base, simulation_only=True):
    """Calls ``super()`` and then waits for ever from tick 3 on (a Python counter)."""

    def on_tick(self) -> None:
        super().on_tick()
        self.__dict__["t"] = t = self.__dict__.get("t", 0) + 1
        while t >= 3:
            t = t + 0


class Counts(Process, simulation_only=True):
    """Loops 999,999 and 1,000 times within a tick: left each time, so never stopped."""

    inp: In[Go]
    out: Out[Word]

    def on_tick(self) -> None:
        n, k = 0, 0
        while n < MAX_STEPS - 1:
            n += 1
        while k < 1000:
            k += 1
        self.out.value = (n + k) % 256


def _line(cls: type[Process], text: str) -> str:
    lines, first = inspect.getsourcelines(cls.on_tick)
    return f"{__file__}:{first + next(k for k, ln in enumerate(lines) if ln.strip() == text)}"


CASES = {BusyWait: ("while not self.inp.go:", 0), WaitsInPython: ("while True:", 3),
         Derived: ("while t >= 3:", 2)}


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_a_loop_never_left_stops_with_the_process_and_its_line(cls: type[Process]) -> None:
    text, tick = CASES[cls]
    net = Network("n", [cls(name="model", inp=Go(), out=Word())])
    start = time.process_time()
    with pytest.raises(SimulationError) as info:
        Simulator(net).run(stimulus=[{"go.go": False}] * 6)
    assert time.process_time() - start < 60  # (before: for ever)
    message = str(info.value)
    assert message.startswith(f"{cls.__name__} 'model' (created at ")
    assert message.split("): ", 1)[1] == (
        f"on_tick() made {MAX_STEPS:,} steps in one tick without yielding, going round the "
        f"loop at {_line(cls, text)} (does its test read a register or a local that nothing "
        "changes within the tick? a loop must reach a yield)")
    assert f"(at tick {tick})" in getattr(info.value, "__notes__", [])


def test_loops_that_are_left_run_as_before() -> None:
    net = Network("n", [Counts(inp=Go(), out=Word())])
    trace = Simulator(net).run(stimulus=[{"go.go": True}] * 2)
    assert trace is not None
    assert list(trace.column("word.value")) == [0, (MAX_STEPS - 1 + 1000) % 256,
                                                (MAX_STEPS - 1 + 1000) % 256]
    d = Network("d", [Derived(inp=Go(), out=Word())])  # super() works in the counted copy
    trace = Simulator(d).run(stimulus=[{"go.go": True}] * 2)
    assert trace is not None and list(trace.column("word.value")) == [0, 4, 4]


def test_the_cli_says_so_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    design = tmp_path / "waiting.py"
    design.write_text(textwrap.dedent('''
        from sme import Bool, Bus, In, Network, Out, Process


        class Go(Bus):
            go: Bool = False


        class Model(Process, simulation_only=True):
            inp: In[Go]
            out: Out[Go]

            def on_tick(self):
                while not self.inp.go:
                    pass


        def build():
            return Network("waiting", [Model(inp=Go(name="go"), out=Go(name="done"))])
    '''))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["sim", "waiting:build", "--ticks", "3"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "Model 'model' (created at waiting.py:19): on_tick() made 1,000,000 steps" in err, err
    assert f"going round the loop at {design}:14" in err, err


class ForEver(Process, simulation_only=True):
    """Waits inside one tick with a ``for`` over an endless iterator, not a ``while``."""

    inp: In[Go]
    out: Out[Word]

    def on_tick(self) -> None:
        self.out.value = 5
        for _ in itertools.count():
            if self.inp.go:
                break


class YieldsForEver(Process, simulation_only=True):
    """A generator whose ``for`` over an endless iterator yields only while a Python list
    says so: never, from tick 2."""

    inp: In[Go]
    out: Out[Word]

    def on_tick(self) -> Any:
        ready = [True]
        for _ in itertools.repeat(None):
            if ready:
                ready.pop()
                yield
            self.out.value = 6


class CountsFor(Process, simulation_only=True):
    """``for`` loops over sized iterables end, however long: a range of more passes than
    the limit within a tick, and (a generator) a list walked with a yield in it."""

    inp: In[Go]
    out: Out[Word]

    def on_tick(self) -> Any:
        n = 0
        for _ in range(MAX_STEPS + 10):
            n += 1
        for _ in [1, 2]:
            n += 1
            yield
        self.out.value = n % 256


@pytest.mark.parametrize(("cls", "text", "tick"), [
    (ForEver, "for _ in itertools.count():", 0),
    (YieldsForEver, "for _ in itertools.repeat(None):", 1)], ids=["plain", "generator"])
def test_a_for_over_an_endless_iterator_stops_as_a_while_does(
        cls: type[Process], text: str, tick: int) -> None:
    net = Network("n", [cls(name="model", inp=Go(), out=Word())])
    with pytest.raises(SimulationError) as info:
        Simulator(net).run(stimulus=[{"go.go": False}] * 4)
    assert str(info.value).split("): ", 1)[1] == (
        f"on_tick() made {MAX_STEPS:,} steps in one tick without yielding, going round the "
        f"loop at {_line(cls, text)} (does its test read a register or a local that nothing "
        "changes within the tick? a loop must reach a yield)")
    assert f"(at tick {tick})" in getattr(info.value, "__notes__", [])
    trace = Simulator(Network("c", [CountsFor(inp=Go(), out=Word())])).run(
        stimulus=[{"go.go": True}] * 4)
    assert trace is not None and list(trace.column("word.value"))[-1] == (MAX_STEPS + 12) % 256
