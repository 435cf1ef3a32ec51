"""A generator loop that never reaches a yield within a tick, though its test reads a
register (so the build-time check of ``sme.lower.cycles`` cannot refuse it), is stopped
after ``MAX_STEPS`` steps by every backend with the same ``SimulationError`` naming the
process and the loop's ``file:line``: the interpreter (it used to spin for ever), the
compiled backend, and the exported VHDL in GHDL (it used to hang GHDL: simulated time stops
with the loop, and the testbench's watchdog with it)."""

from __future__ import annotations

import inspect
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from fpga.export import export
from fpga.ghdl import run_testbench
from sme import Bool, Bus, In, Network, Out, Process, SimulationError, Simulator, UInt, wrap
from sme.cli import main
from sme.lower import lower_process
from sme.lower.cycles import MAX_STEPS, spin_loops


class Go(Bus):
    go: Bool = False


class Word(Bus):
    value: UInt[8] = 0


class Spin(Process):
    """The brief's case: ``n`` is 0 and nothing changes it, so the loop never yields."""

    out: Out[Word]
    n: UInt[8] = 0

    def on_tick(self) -> Any:
        while True:
            if self.n > 0:
                yield
        self.out.value = 1


class SpinsLater(Process):
    """Counts for three ticks, then goes round a loop of two states for ever (from tick 5)."""

    inp: In[Go]
    out: Out[Word]
    n: UInt[8] = 0

    def on_tick(self) -> Any:
        self.n = wrap(self.n + 1)
        self.out.value = self.n
        yield
        while self.n >= 3:
            if self.n > 100:
                yield
            self.out.value = 7
            if self.inp.go:
                yield


class Nested(Process):
    """The outer loop spins; the inner one is passed through without a pass of its own."""

    inp: In[Go]
    out: Out[Word]
    n: UInt[8] = 0

    def on_tick(self) -> Any:
        self.n = wrap(self.n + 1)
        self.out.value = self.n
        yield
        while True:
            while self.inp.go:
                yield
            if self.n > 100:
                yield


class TwoLoops(Process):
    """Two loops, each its own same-tick cycle: the first is left (its counter runs out),
    the second spins from tick 1 on, and is the one named."""

    inp: In[Go]
    out: Out[Word]
    n: UInt[8] = 0

    def on_tick(self) -> Any:
        self.n = wrap(self.n + 1)
        while self.n < 3:
            if self.n > 100:
                yield
            self.n = wrap(self.n + 1)
        self.out.value = self.n
        yield
        while self.n >= 3:
            if self.n > 100:
                yield


def _line(cls: type[Process], text: str, nth: int = 0) -> str:
    """``file:line`` of the ``nth`` line of ``cls.on_tick`` that is ``text``."""
    lines, first = inspect.getsourcelines(cls.on_tick)
    found = [first + k for k, ln in enumerate(lines) if ln.strip() == text]
    return f"{__file__}:{found[nth]}"


CASES = {
    Spin: (_line(Spin, "while True:"), 0),
    SpinsLater: (_line(SpinsLater, "while self.n >= 3:"), 5),
    Nested: (_line(Nested, "while True:"), 1),
    TwoLoops: (_line(TwoLoops, "while self.n >= 3:"), 1),
}
"""The loop each case names, and the tick it stops in."""


def _net(cls: type[Process]) -> Network:
    if cls is Spin:
        return Network("spin", [Spin(out=Word())])
    return Network(cls.__name__.lower(), [cls(inp=Go(), out=Word())])


@pytest.mark.parametrize("backend", ["interp", "compiled"])
@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_a_loop_that_never_yields_stops_with_its_line(cls: type[Process], backend: str) -> None:
    where, tick = CASES[cls]
    sim = Simulator(_net(cls), backend=backend)
    start = time.process_time()
    with pytest.raises(SimulationError) as info:
        sim.run(stimulus=[{}] * 8 if cls is Spin else [{"go.go": False}] * 8)
    assert time.process_time() - start < 30
    name = cls.__name__
    text = str(info.value)
    instance = {Spin: "spin", SpinsLater: "spins_later", Nested: "nested",
                TwoLoops: "two_loops"}[cls]
    assert text.startswith(f"{name} '{instance}' (created at ")
    assert text.split("): ", 1)[0].endswith(f"test_generator_spin.py:{_created(cls)}")
    assert text.split("): ", 1)[1] == (
        f"on_tick() made {MAX_STEPS:,} steps in one tick without yielding, going round the loop at {where} "
        "(does its test read a register or a local that nothing changes within the tick? a "
        "loop must reach a yield)")
    assert f"(at tick {tick})" in getattr(info.value, "__notes__", [])


def _created(cls: type[Process]) -> int:
    lines, first = inspect.getsourcelines(_net)
    text = "[Spin(out=Word())]" if cls is Spin else "[cls(inp=Go(), out=Word())]"
    return first + next(k for k, ln in enumerate(lines) if text in ln)


def test_a_loop_that_yields_runs_as_before() -> None:
    # the same loop with a yield on every path: no step limit, the same trace in both
    net = Network("later", [SpinsLater(inp=Go(), out=Word())])
    stim = [{"go.go": True}] * 12
    a = Simulator(net).run(stimulus=stim)
    b = Simulator(net, backend="compiled").run(stimulus=stim)
    assert a is not None and b is not None and a.first_difference(b) is None
    assert list(a.column("word.value")) == [0, 1, 1, 2, 2, 3, 7, 7, 7, 7, 7, 7, 7]


class Blink(Process):
    """Yields on every path: no same-tick cycle, no step count in its VHDL."""

    out: Out[Word]

    def on_tick(self) -> Any:
        while True:
            self.out.value = 1
            yield
            self.out.value = 0
            yield


def test_only_states_on_a_same_tick_cycle_count_steps_in_vhdl(tmp_path: Path) -> None:
    states = lower_process(Nested).states
    assert states is not None
    spins = spin_loops(states)
    assert spins and {loc.line for loc in spins.values()} == {int(CASES[Nested][0].split(":")[-1])}
    assert spin_loops(lower_process(Blink).states or []) == {}
    two = spin_loops(lower_process(TwoLoops).states or [])
    assert {loc.line for loc in two.values()} == {
        int(_line(TwoLoops, "while self.n < 3:").split(":")[-1]),
        int(CASES[TwoLoops][0].split(":")[-1])}  # (two loops: the state picks the line)
    out = export(Network("blink", [Blink(out=Word())]), tmp_path / "blink")
    assert not any("tick_steps" in f.read_text() for f in out.files)  # no cycle: unchanged
    out = export(_net(Nested), tmp_path / "nested")
    assert any("tick_steps" in f.read_text() for f in out.files)


@pytest.mark.ghdl
@pytest.mark.parametrize("cls", [SpinsLater, TwoLoops], ids=lambda c: c.__name__)
def test_ghdl_stops_the_loop_with_the_same_message(cls: type[Process], tmp_path: Path) -> None:
    net = _net(cls)
    where, tick = CASES[cls]
    trace = Simulator(net).run(stimulus=[{"go.go": False}] * tick)  # the ticks before it
    assert trace is not None
    ex = export(net, tmp_path / "vhdl", trace)
    rows = (ex.out_dir / "trace.csv").read_text().splitlines()
    (ex.out_dir / "trace.csv").write_text("\n".join([*rows, rows[-1], rows[-1]]) + "\n")
    result = run_testbench(ex.out_dir, timeout=300)  # (before: GHDL never finished)
    assert not result.passed and result.returncode != 0
    assert (f"(assertion failure): {cls.__name__}: on_tick() made 1,000,000 steps in one "
            f"tick without yielding, going round the loop at {where} "
            "(does its test") in result.summary()


def test_the_cli_reports_the_loop_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    design = tmp_path / "spinning.py"
    design.write_text(textwrap.dedent('''
        from sme import Bus, Network, Out, Process, UInt


        class Word(Bus):
            value: UInt[8] = 0


        class Spin(Process):
            out: Out[Word]
            n: UInt[8] = 0

            def on_tick(self):
                while True:
                    if self.n > 0:
                        yield


        def build():
            return Network("spin", [Spin(out=Word())])
    '''))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["sim", "spinning:build", "--ticks", "3"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"going round the loop at {design}:14" in err, err
