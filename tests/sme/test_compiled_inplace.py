"""Buses stored in place (``sme.compiled.codegen._latched_buses``): a bus whose clocked
readers all run before its clocked writer in the tick has no next value and no latch in
compiled code. These networks break that shortcut where it would change SME semantics:
array buses written in part, in some ticks only, read by the writer itself, read by
combinational processes on both sides of the clock edge and by clocked processes listed
after the writer (which must keep the latch). Every signal of every tick is compared
with the interpreter, both with numba and with the generated code run as Python."""

from __future__ import annotations

import numpy as np
import pytest

from sme import (
    Array,
    BackendError,
    Bool,
    Bus,
    In,
    Network,
    Out,
    Process,
    SignalValueError,
    SimulationError,
    Simulator,
    UInt,
    wrap,
)
from sme.compiled.codegen import _latched_buses, generate


class Word(Bus):
    valid: Bool = False
    k: UInt[2] = 0
    data: Array[UInt[8], 4] = [0, 0, 0, 0]


class Stage(Bus):
    valid: Bool = False
    data: Array[UInt[8], 4] = [0, 0, 0, 0]
    count: UInt[8]  # no initial value: undefined until written


class Mixed(Bus):
    sum: UInt[10] = 0
    flag: Bool = False


class Partial(Process):
    """Writes one element of its array output in valid ticks only (the others keep what
    earlier ticks wrote), reads its own output back, and counts into a signal that starts
    undefined."""

    inp: In[Word]
    out: Out[Stage]
    n: UInt[8] = 0

    def on_tick(self) -> None:
        self.out.valid = self.inp.valid
        if self.inp.valid:
            k = self.inp.k
            self.out.data[k] = wrap(self.out.data[k] + self.inp.data[k])
            self.n = wrap(self.n + 1)
            self.out.count = self.n


class Every(Process):
    """Copies its input's array whole every other tick (a bus not written in some ticks)."""

    inp: In[Stage]
    out: Out[Stage]
    odd: Bool = False

    def on_tick(self) -> None:
        self.odd = not self.odd
        if self.odd:
            self.out.valid = self.inp.valid
            for j in range(4):
                self.out.data[j] = self.inp.data[j]
            if self.inp.valid:
                self.out.count = self.inp.count


class Both(Process, combinational=True):
    """Combinational over an input bus and a registered one: runs before the clocked
    processes (new input, old register) and again after the clock edge (new register)."""

    word: In[Word]
    stage: In[Stage]
    out: Out[Mixed]

    def on_tick(self) -> None:
        total: UInt[10] = 0
        for j in range(4):
            total = total + self.stage.data[j]
        self.out.sum = total
        self.out.flag = self.word.valid and self.stage.valid


class Sink(Process):
    """Clocked reader of a stage bus and of the combinational bus."""

    inp: In[Stage]
    mixed: In[Mixed]
    out: Out[Stage]

    def on_tick(self) -> None:
        self.out.valid = self.mixed.flag
        for j in range(4):
            self.out.data[j] = wrap(self.inp.data[j] + (self.mixed.sum & 0xFF))


def _network(order: str) -> tuple[Network, dict[str, Bus]]:
    word, first, second = Word("word"), Stage("first"), Stage("second")
    mixed, late, last = Mixed("mixed"), Stage("late"), Stage("last")
    partial = Partial(name="partial", inp=word, out=first)
    every = Every(name="every", inp=first, out=second)
    both = Both(name="both", word=word, stage=first, out=mixed)
    sink = Sink(name="sink", inp=second, mixed=mixed, out=last)
    # a clocked reader of ``first`` listed after its writer: ``first`` keeps its latch
    tail = Every(name="tail", inp=first, out=late)
    clocked = {"forward": [partial, every, sink, tail],
               "backward": [sink, every, partial, tail],
               "pipeline": [sink, every, tail, partial]}[order]
    net = Network(f"inplace_{order}", [both, *clocked], inputs=[word])
    return net, {"first": first, "second": second, "last": last, "late": late}


def _stimulus(ticks: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"word.valid": rng.random(ticks) < 0.6, "word.k": rng.integers(0, 4, ticks),
            "word.data": rng.integers(0, 256, (ticks, 4))}


def _rows(stim: dict[str, np.ndarray], ticks: int) -> list[dict[str, object]]:
    return [{"word.valid": bool(stim["word.valid"][t]), "word.k": int(stim["word.k"][t]),
             "word.data": [int(x) for x in stim["word.data"][t]]} for t in range(ticks)]


@pytest.mark.parametrize(("order", "in_place"), [
    # data-flow order: every bus with a clocked reader is latched (outputs need not be)
    ("forward", {"last", "late"}),
    ("backward", {"second", "last", "late"}),  # readers first, but ``tail`` reads ``first``
    ("pipeline", {"first", "second", "last", "late"}),  # last stage first: no latch
])
def test_in_place_buses_equal_the_interpreter_every_tick(order: str, in_place: set[str]
                                                         ) -> None:
    net, buses = _network(order)
    latched = _latched_buses(net)
    assert {name for name, bus in buses.items() if bus not in latched} == in_place
    source = generate(net).source
    for name, bus in buses.items():  # no next value, no latch for the in-place ones
        bi = net.buses.index(bus)
        assert (f"n{bi}_valid" in source) == (name not in in_place), name
    ticks = 120
    stim = _stimulus(ticks, seed=len(order))
    ref, got = Simulator(_network(order)[0]), Simulator(net, backend="compiled")
    ref.run(stimulus=_rows(stim, ticks))
    got.run(stimulus=_rows(stim, ticks))
    assert ref.trace is not None and got.trace is not None
    assert got.trace.names == ref.trace.names
    assert ref.trace.first_difference(got.trace) is None
    # the batch entry point (run) and step mode (step) agree too
    batch = Simulator(_network(order)[0], backend="compiled", trace=False)
    out = batch.run_batch(stim, ticks, outputs=["last.data", "late.data", "mixed.sum"])
    for name in ("last.data", "late.data", "mixed.sum"):
        assert np.array_equal(out[name][-1], np.asarray(ref.trace.column(name)[-1])), name


class Boom(Bus):
    x: UInt[4] = 0


class Overflow(Process):
    """Stores ``x + 3`` into 4 bits: fails once ``x`` reaches 13."""

    inp: In[Boom]
    out: Out[Boom]

    def on_tick(self) -> None:
        self.out.x = self.inp.x + 3


def test_two_failures_in_one_tick_report_the_interpreters_first() -> None:
    """The processes keep the interpreter's order, so when two checks would fail in the
    same tick the compiled run reports the same one (here the reader, listed first)."""

    def build() -> Network:
        a, b, c = Boom("a"), Boom("b"), Boom("c")
        reader = Overflow(name="reader", inp=b, out=c)
        writer = Overflow(name="writer", inp=a, out=b)
        return Network("boom", [reader, writer], inputs=[a])

    net = build()
    assert net.bus("b") not in _latched_buses(net)  # stored in place
    # tick 0: b = 3; tick 1: b = 6, c = 6; tick 2: a = 13 fails in writer, b = 6 -> 9 fine
    # rows: a = 0, 0, 10 (b = 13 at tick 3), then reader fails (13 + 3) with writer (a = 13)
    rows = [{"a.x": v} for v in (0, 3, 10, 13)]
    errors = []
    for backend in ("interp", "compiled"):
        sim = Simulator(build(), backend=backend)
        with pytest.raises((SignalValueError, BackendError)) as info:
            sim.run(stimulus=rows)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]
    assert "reader" in errors[0][1]


class Pair(Bus):
    x: UInt[8] = 0
    y: UInt[8] = 0


class Vec(Bus):
    a: Array[UInt[8], 2] = [0, 0]
    v: UInt[8] = 0


class VecWriter(Process):
    """Stores into its array output, then fails on an overflow (``x + y > 255``): the
    failing tick leaves ``a[0]`` written on a bus stored in place."""

    inp: In[Pair]
    out: Out[Vec]

    def on_tick(self) -> None:
        self.out.a[0] = self.inp.x
        self.out.v = self.inp.x + self.inp.y


class VecReader(Process):
    inp: In[Vec]
    out: Out[Pair]

    def on_tick(self) -> None:
        self.out.x = self.inp.a[0]
        self.out.y = self.inp.v


@pytest.mark.parametrize("how", ["step", "batch"])
def test_a_session_stopped_on_a_failed_check_does_not_go_on(how: str) -> None:
    """The failing tick's writes stay in the arrays of a bus stored in place (the
    interpreter never latches that tick): going on from there gave the next ticks'
    outputs from a value the interpreter never had (c.x 200 where it has 2). The
    compiled session raises the interpreter's error, can still be read, and refuses to
    go on, saying why; the interpreter goes on."""

    def build() -> Network:
        a, b, c = Pair("a"), Vec("b"), Pair("c")
        return Network("stopped", [VecReader(name="reader", inp=b, out=c),
                                   VecWriter(name="writer", inp=a, out=b)], inputs=[a])

    assert build().bus("b") not in _latched_buses(build())  # stored in place
    good = [{"a.x": 1, "a.y": 1}, {"a.x": 2, "a.y": 2}]
    errors = []
    for backend in ("interp", "compiled"):
        sim = Simulator(build(), backend=backend)
        sim.run(stimulus=good)
        with pytest.raises(SignalValueError) as info:
            if how == "step":
                sim.run(stimulus=[{"a.x": 200, "a.y": 100}])
            else:
                sim.run_batch({"a.x": np.array([200]), "a.y": np.array([100])}, 1)
        errors.append(str(info.value))
        sim.peek("b.a")  # still readable
        if backend == "interp":
            sim.run(stimulus=good)
            continue
        with pytest.raises(SimulationError, match="stopped on a failed check"):
            sim.run(stimulus=good)
        with pytest.raises(SimulationError, match="stopped on a failed check"):
            sim.step()
        with pytest.raises(SimulationError, match="stopped on a failed check"):
            sim.run_batch({"a.x": np.array([3])}, 1)
    assert errors[0] == errors[1]
