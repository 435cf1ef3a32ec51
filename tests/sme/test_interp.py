"""The reference semantics (docs/semantics.md), as the interpreter implements them: tick order,
clocked vs combinational timing, registers, held values, widths, fixed point, enums, arrays,
generators, determinism."""

import enum
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest

from sme import (
    UNDEFINED,
    Array,
    Bool,
    Bus,
    Fixed,
    In,
    Int,
    Network,
    Out,
    PortDirectionError,
    Process,
    SFix,
    SignalValueError,
    Simulator,
    UFix,
    UInt,
    UndefinedSignalError,
    resize,
    saturate,
    wrap,
)


class Word(Bus):
    value: UInt[8] = 0


class Reg(Process):
    """value + 1, clocked."""

    inp: In[Word]
    out: Out[Word]

    def on_tick(self) -> None:
        self.out.value = wrap(self.inp.value + 1)


class Double(Process, combinational=True):
    """value * 2, combinational."""

    inp: In[Word]
    out: Out[Word]

    def on_tick(self) -> None:
        self.out.value = wrap(self.inp.value * 2)


def words(*names: str) -> list[Word]:
    return [Word(name=n) for n in names]


def column(sim: Simulator, name: str) -> list[Any]:
    assert sim.trace is not None
    return sim.trace.column(name)


def drive(sim: Simulator, signal: str, values: list[Any]) -> None:
    sim.run(stimulus=({signal: v} for v in values))


# -- tick timing ------------------------------------------------------------------------------
def test_clocked_outputs_are_visible_at_the_next_tick() -> None:
    i, a, b = words("i", "a", "b")
    sim = Simulator(Network("net", [Reg(inp=i, out=a, name="r1"), Reg(inp=a, out=b, name="r2")]))
    drive(sim, "i.value", [10, 20, 30, 40])
    # row k = right after tick k-1: r1 shows i(k-1)+1, r2 shows r1 as latched one tick earlier
    assert column(sim, "i.value") == [0, 10, 20, 30, 40]
    assert column(sim, "a.value") == [0, 11, 21, 31, 41]
    assert column(sim, "b.value") == [0, 1, 12, 22, 32]


def test_clocked_processes_run_in_any_order() -> None:
    i, a, b = words("i", "a", "b")
    sim = Simulator(Network("net", [Reg(inp=a, out=b, name="r2"), Reg(inp=i, out=a, name="r1")]))
    drive(sim, "i.value", [10, 20, 30, 40])
    assert column(sim, "b.value") == [0, 1, 12, 22, 32]


def test_combinational_outputs_are_visible_in_the_same_tick() -> None:
    i, a, b = words("i", "a", "b")
    sim = Simulator(Network("net", [Reg(inp=i, out=a), Double(inp=a, out=b)]))
    drive(sim, "i.value", [10, 20, 30])
    assert column(sim, "a.value") == [0, 11, 21, 31]
    assert column(sim, "b.value") == [0, 22, 42, 62]


def test_combinational_processes_fed_by_top_level_inputs() -> None:
    i, a, b = words("i", "a", "b")
    sim = Simulator(Network("net", [Double(inp=i, out=a), Reg(inp=a, out=b)]))
    drive(sim, "i.value", [1, 2, 3])
    assert column(sim, "a.value") == [0, 2, 4, 6]  # the input of the same tick, doubled
    assert column(sim, "b.value") == [0, 3, 5, 7]  # the clocked reader sees it before the edge


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]])
def test_combinational_chains_run_in_dependency_order_whatever_the_list_order(
    order: list[int],
) -> None:
    i, a, b, c = words("i", "a", "b", "c")
    chain = [Double(inp=i, out=a, name="d1"), Double(inp=a, out=b, name="d2"),
             Double(inp=b, out=c, name="d3")]
    sim = Simulator(Network("net", [chain[k] for k in order]))
    drive(sim, "i.value", [1, 3, 5])
    assert column(sim, "c.value") == [0, 8, 24, 40]


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0]])
def test_combinational_chain_after_registers(order: list[int]) -> None:
    i, a, b, c = words("i", "a", "b", "c")
    procs = [Reg(inp=i, out=a), Double(inp=a, out=b, name="d1"), Double(inp=b, out=c, name="d2")]
    sim = Simulator(Network("net", [procs[k] for k in order]))
    drive(sim, "i.value", [1, 2])
    assert column(sim, "c.value") == [0, 8, 12]


def test_reset_row_runs_every_combinational_process_once() -> None:
    class Seven(Process, combinational=True):
        out: Out[Word]

        def on_tick(self) -> None:
            self.out.value = 7

    a, b = words("a", "b")
    sim = Simulator(Network("net", [Seven(out=a), Double(inp=a, out=b)]))
    assert sim.trace is not None
    assert sim.trace.rows == [(7, 14)]
    sim.run(2)
    assert sim.trace.rows == [(7, 14)] * 3


def test_combinational_process_reading_an_input_and_a_register() -> None:
    class Pair(Bus):
        x: UInt[8] = 0

    class Add(Process, combinational=True):
        a: In[Word]
        b: In[Pair]
        out: Out[Word]

        def on_tick(self) -> None:
            self.out.value = wrap(self.a.value + self.b.x)

    class Acc(Process):
        inp: In[Word]
        out: Out[Pair]

        def on_tick(self) -> None:
            self.out.x = self.inp.value

    i, s = words("i", "s")
    p = Pair()
    sim = Simulator(Network("net", [Add(a=i, b=p, out=s), Acc(inp=s, out=p)]))
    drive(sim, "i.value", [1, 1, 1, 1])
    # s(k) = i(k) + p(k-1); p latches s: a running sum, settled after both phases of a tick
    assert column(sim, "s.value") == [0, 2, 3, 4, 5]
    assert column(sim, "pair.x") == [0, 1, 2, 3, 4]


# -- held values, own outputs, registers ------------------------------------------------------
class Pulse(Process):
    """Writes its output only on even ticks; reads back what it wrote."""

    out: Out[Word]
    t: UInt[8] = 0
    seen: UInt[8] = 0

    def on_tick(self) -> None:
        if self.t % 2 == 0:
            self.out.value = self.t + 10
        self.seen = self.out.value  # own output port: the value it last wrote
        self.t = self.t + 1


def test_signals_hold_until_written_and_a_writer_sees_what_it_wrote() -> None:
    p = Pulse()
    sim = Simulator(Network("net", [p]))
    seen = []
    for _ in range(5):
        sim.step()
        seen.append(p.seen)
    assert column(sim, "word.value") == [0, 10, 10, 12, 12, 14]
    assert seen == [10, 10, 12, 12, 14]


def test_registers_have_variable_semantics() -> None:
    class Twice(Process):
        out: Out[Word]
        n: UInt[8] = 0

        def on_tick(self) -> None:
            self.n = self.n + 1
            self.n = self.n + 1  # sees its own write at once
            self.out.value = self.n

    sim = Simulator(Network("net", [Twice()]))
    sim.run(3)
    assert column(sim, "word.value") == [0, 2, 4, 6]


def test_reader_sees_the_value_latched_at_the_previous_tick_not_the_next_one() -> None:
    class Counter(Process):
        out: Out[Word]
        n: UInt[8] = 0

        def on_tick(self) -> None:
            self.n = self.n + 1
            self.out.value = self.n

    class Watch(Process):
        inp: In[Word]
        out: Out[Word]

        def on_tick(self) -> None:
            self.out.value = self.inp.value

    c, w = words("c", "w")
    for order in ([0, 1], [1, 0]):
        procs = [Counter(out=c), Watch(inp=c, out=w)]
        sim = Simulator(Network("net", [procs[k] for k in order]))
        sim.run(3)
        assert column(sim, "w.value") == [0, 0, 1, 2]


# -- undefined values -----------------------------------------------------------------------
class Maybe(Bus):
    value: UInt[8]


def test_undefined_signals_are_U_until_written() -> None:
    class Late(Process):
        out: Out[Maybe]
        t: UInt[4] = 0

        def on_tick(self) -> None:
            if self.t == 1:
                self.out.value = 5
            self.t = self.t + 1

    sim = Simulator(Network("net", [Late()]))
    sim.run(3)
    assert column(sim, "maybe.value") == [UNDEFINED, UNDEFINED, 5, 5]
    assert sim.peek("maybe.value") == 5


def test_reading_an_undefined_signal_is_an_error_at_the_tick_it_happens() -> None:
    class Late(Process):
        out: Out[Maybe]
        t: UInt[4] = 0

        def on_tick(self) -> None:
            if self.t == 2:
                self.out.value = 5
            self.t = self.t + 1

    class Use(Process):
        inp: In[Maybe]
        out: Out[Word]

        def on_tick(self) -> None:
            self.out.value = self.inp.value

    m = Maybe()
    sim = Simulator(Network("net", [Late(out=m), Use(inp=m)]))
    with pytest.raises(UndefinedSignalError, match=r"maybe\.value has no initial value.*\n"
                       r"\(at tick 0\)$"):
        sim.step()
    sim = Simulator(Network("net", [Late(out=m), Use(inp=m)]))
    sim.run(0)
    with pytest.raises(UndefinedSignalError, match="read by the testbench"):
        sim.peek("maybe.value")


# -- values and widths ------------------------------------------------------------------------
class Wide(Bus):
    s: Int[8] = 0
    u: UInt[8] = 0
    b: Bool = False


def run_values(make: Any, ticks: int = 1) -> Simulator:
    class Emit(Process, simulation_only=True):  # any Python value: interp only
        out: Out[Wide]

        def on_tick(self) -> None:
            for name, value in make().items():
                setattr(self.out, name, value)

    sim = Simulator(Network("net", [Emit()]))
    sim.run(ticks)
    return sim


def test_arithmetic_is_exact_and_checked_only_when_stored() -> None:
    sim = run_values(lambda: {"u": (200 * 200) >> 8, "s": (-100 - 100) // 2})
    assert (sim.peek("wide.u"), sim.peek("wide.s")) == (156, -100)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [(lambda: -7 // 2, -4), (lambda: -7 % 3, 2), (lambda: 7 % -3, -2), (lambda: -7 >> 1, -4),
     (lambda: ~5, -6), (lambda: -1 >> 10, -1)],
)
def test_python_integer_semantics(expr: Any, expected: int) -> None:
    assert run_values(lambda: {"s": expr()}).peek("wide.s") == expected


def test_bool_into_an_integer_signal_is_an_error_and_0_1_into_a_bool_is_accepted() -> None:
    sim = run_values(lambda: {"b": 1})
    assert sim.peek("wide.b") is True
    with pytest.raises(SignalValueError, match=r"^wide\.u: cannot store True \(True is a bool, "
                       r"not an integer; use int\(\.\.\.\) to convert\); UInt\[8\] allows "
                       r"0\.\.255; written by Emit 'emit' .* \(tick 0\)$"):
        run_values(lambda: {"u": True})
    with pytest.raises(SignalValueError, match=r"^wide\.b: cannot store 2 \(2 is not a Bool\); "
                       r"Bool allows False/True \(or 0/1\); written by"):
        run_values(lambda: {"b": 2})


def test_misfit_names_the_tick() -> None:
    counter = iter(range(120, 200, 4))
    with pytest.raises(SignalValueError, match=r"^wide\.s: cannot store 128 .*-128\.\.127.* "
                       r"\(tick 2\)$") as info:
        run_values(lambda: {"s": next(counter)}, ticks=5)
    assert info.value.tick == 2


@pytest.mark.parametrize(("value", "expected"), [(wrap(128), -128), (wrap(-129), 127),
                                                 (saturate(1000), 127), (saturate(-1000), -128)])
def test_wrap_and_saturate_on_signals(value: Any, expected: int) -> None:
    assert run_values(lambda: {"s": value}).peek("wide.s") == expected


class Fix(Bus):
    f: UFix[4, 4] = 0
    g: SFix[4, 2] = 0


def run_fixed(make: Any) -> Simulator:
    class EmitFix(Process, simulation_only=True):
        out: Out[Fix]

        def on_tick(self) -> None:
            for name, value in make().items():
                setattr(self.out, name, value)

    sim = Simulator(Network("net", [EmitFix()]))
    sim.run(1)
    return sim


def test_fixed_point_products_are_exact_and_must_be_rounded_explicitly() -> None:
    a, b = UFix[4, 4](1.25), UFix[4, 4](1.0625)  # the product has 8 fractional bits
    assert (a * b).as_fraction() == Fraction(85, 64)
    sim = run_fixed(lambda: {"f": resize(a * b, UFix[4, 4], rounding="floor")})
    assert sim.peek("fix.f") == Fixed(21, 4)
    assert run_fixed(lambda: {"f": wrap(a * b, rounding="nearest")}).peek("fix.f").raw == 21
    with pytest.raises(SignalValueError, match=r"^fix\.f: cannot store Fixed\(85/64\) \(.*has 8 "
                       r"fractional bits and would lose precision at 4; choose a rounding"):
        run_fixed(lambda: {"f": a * b})
    assert run_fixed(lambda: {"f": a * b * 4}).peek("fix.f") == Fixed(85, 4)  # exact: fits
    assert run_fixed(lambda: {"f": a * 2}).peek("fix.f") == Fixed(40, 4)
    v = Fixed(-11, 3)  # -1.375
    assert run_fixed(lambda: {"g": wrap(v, rounding="nearest")}).peek("fix.g").raw == -5
    assert run_fixed(lambda: {"g": saturate(v, rounding="floor")}).peek("fix.g").raw == -6
    assert run_fixed(lambda: {"g": saturate(Fixed(100, 0))}).peek("fix.g").raw == 31
    with pytest.raises(SignalValueError, match=r"fix\.g: cannot store 8 \(8\.0 is out of range\); "
                       r"SFix\[4, 2\] allows -8\.0\.\.7\.75 in steps of 2\*\*-2"):
        run_fixed(lambda: {"g": 8})


class Mode(enum.Enum):
    IDLE = 0
    RUN = 1
    DONE = 2


class ModeBus(Bus):
    mode: Mode = Mode.IDLE


def test_enums_on_buses_and_in_registers() -> None:
    class Machine(Process):
        out: Out[ModeBus]
        state: Mode = Mode.IDLE

        def on_tick(self) -> None:
            if self.state is Mode.IDLE:
                self.state = Mode.RUN
            elif self.state is Mode.RUN:
                self.state = Mode.DONE
            self.out.mode = self.state

    sim = Simulator(Network("net", [Machine()]))
    sim.run(3)
    assert column(sim, "mode_bus.mode") == [Mode.IDLE, Mode.RUN, Mode.DONE, Mode.DONE]

    class Wrong(Process, simulation_only=True):  # the run-time check
        out: Out[ModeBus]

        def on_tick(self) -> None:
            self.out.mode = 1

    with pytest.raises(SignalValueError, match=r"mode_bus\.mode: cannot store 1 \(1 is not a "
                       r"member of Mode\); Mode allows Mode\.IDLE, Mode\.RUN, Mode\.DONE"):
        Simulator(Network("net", [Wrong()])).step()


# -- arrays -----------------------------------------------------------------------------------
class Taps(Bus):
    taps: Array[UInt[4], 3] = (0, 0, 0)


class LooseTaps(Bus):
    taps: Array[UInt[4], 3]
    n: UInt[4] = 0


def test_array_signals_clocked_element_writes_latch_at_the_tick() -> None:
    class Shift(Process):
        inp: In[Word]
        out: Out[Taps]

        def on_tick(self) -> None:
            self.out.taps[2] = self.out.taps[1]
            self.out.taps[1] = self.out.taps[0]
            self.out.taps[0] = self.inp.value

    class Sum(Process, combinational=True, simulation_only=True):
        inp: In[Taps]
        out: Out[Word]

        def on_tick(self) -> None:
            self.out.value = sum(self.inp.taps)

    i, s = words("i", "s")
    t = Taps()
    sim = Simulator(Network("net", [Shift(inp=i, out=t), Sum(inp=t, out=s)]))
    drive(sim, "i.value", [1, 2, 3, 4])
    assert column(sim, "taps.taps") == [(0, 0, 0), (1, 0, 0), (2, 1, 0), (3, 2, 1), (4, 3, 2)]
    assert column(sim, "s.value") == [0, 1, 3, 6, 9]
    with pytest.raises(SignalValueError, match=r"^taps\.taps\[0\]: 16 is out of range; "
                       r"Array\[UInt\[4\], 3\] allows 3 elements, each 0\.\.15; written "
                       rf"at .*test_interp\.py:{Shift.on_tick.__code__.co_firstlineno + 3} "
                       r"\(tick 4\)$"):
        drive(sim, "i.value", [16])


def test_array_signal_without_initial_value_stays_undefined_until_written() -> None:
    class Later(Process):
        out: Out[LooseTaps]
        t: UInt[4] = 0

        def on_tick(self) -> None:
            self.out.n = self.t
            if self.t == 1:
                self.out.taps = [1, 2, 3]
            self.t = self.t + 1

    sim = Simulator(Network("net", [Later()]))
    sim.run(3)
    assert column(sim, "loose_taps.taps") == [UNDEFINED, UNDEFINED, (1, 2, 3), (1, 2, 3)]


def test_readers_cannot_write_array_elements() -> None:
    class Meddle(Process, simulation_only=True):  # the run-time check
        inp: In[Taps]
        out: Out[Word]

        def on_tick(self) -> None:
            self.inp.taps[0] = 9

    for writer_kind in ("none", "comb"):
        t = Taps()
        procs: list[Process] = [Meddle(inp=t)]
        if writer_kind == "comb":
            class Fill(Process, combinational=True):
                out: Out[Taps]

                def on_tick(self) -> None:
                    self.out.taps = [1, 2, 3]

            procs.append(Fill(out=t))
        sim = Simulator(Network("net", procs))
        with pytest.raises(PortDirectionError, match=r"cannot write taps\.taps\[0\]"):
            sim.step()
        assert sim.peek("taps.taps")[0] != 9


# -- generators ----------------------------------------------------------------------------------
def test_generator_yield_waits_one_tick_and_its_end_ends_the_tick() -> None:
    class Blink(Process):
        out: Out[Word]

        def on_tick(self) -> Iterator[None]:
            self.out.value = 1
            yield
            self.out.value = 2
            yield
            yield
            self.out.value = 3  # then returns: the tick ends; the next starts at the top

    sim = Simulator(Network("net", [Blink()]))
    sim.run(8)
    assert column(sim, "word.value") == [0, 1, 2, 2, 3, 1, 2, 2, 3]


def test_generator_with_registers_as_a_state_machine() -> None:
    class Handshake(Bus):
        req: Bool = False

    class Sender(Process):
        inp: In[Handshake]
        out: Out[Word]
        sent: UInt[8] = 0

        def on_tick(self) -> Iterator[None]:
            while not self.inp.req:
                yield
            self.sent = self.sent + 1
            self.out.value = self.sent  # then returns: the tick ends

    sim = Simulator(Network("net", [Sender()]))
    sim.run(stimulus=[{"handshake.req": r} for r in (0, 1, 1, 0, 1)])
    assert column(sim, "word.value") == [0, 0, 1, 2, 2, 3]


def test_a_pass_that_returns_without_yielding_is_a_one_tick_pass() -> None:
    """As C#'s OnTickAsync without an await: each call is one tick."""
    class Count(Process):
        out: Out[Word]
        go: Bool = False

        def on_tick(self) -> Iterator[None]:
            if not self.go:
                self.go = True
                yield
            self.out.value = self.out.value + 1

    sim = Simulator(Network("net", [Count()]))
    sim.run(5)
    assert column(sim, "word.value") == [0, 0, 1, 2, 3, 4]


def test_generators_restart_from_the_top_in_a_new_simulation() -> None:
    class Steps(Process):
        out: Out[Word]

        def on_tick(self) -> Iterator[None]:
            for v in (5, 6, 7):
                self.out.value = v
                yield

    net = Network("net", [Steps()])
    first = Simulator(net)
    first.run(2)
    second = Simulator(net)
    second.run(2)
    assert column(second, "word.value") == [0, 5, 6]


# -- determinism -------------------------------------------------------------------------------
def test_two_runs_give_equal_traces() -> None:
    i, a, b, c = words("i", "a", "b", "c")
    net = Network("net", [Reg(inp=i, out=a), Double(inp=a, out=b), Reg(inp=b, out=c)])
    stim = [{"i.value": (k * 37) % 256} for k in range(50)]
    first = Simulator(net).run(stimulus=stim)
    second = Simulator(net).run(stimulus=stim)
    assert first is not None
    assert second is not None
    assert first.rows == second.rows
    assert first == second
    assert len(first.rows) == 51
