"""Process declarations: ports, registers, construction arguments, and the errors of each."""

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from sme import (
    Array,
    Bool,
    Bus,
    BusTypeError,
    DeclarationError,
    In,
    Int,
    Network,
    Out,
    PortDirectionError,
    Process,
    SignalValueError,
    Simulator,
    UInt,
    UndefinedSignalError,
    UnknownSignalError,
    saturate,
    wrap,
)
from sme.declare import MISSING
from sme.lower import LoweringError
from sme.process import Direction, PortSpec, RegisterSpec

HERE = "test_process.py"


def line_of(text: str) -> int:
    """The line of this file that is ``text`` (stripped): where a store under test is."""
    lines = Path(__file__).read_text().splitlines()
    found = [k + 1 for k, ln in enumerate(lines) if ln.strip() == text]
    assert len(found) == 1, found
    return found[0]


def next_line() -> int:
    """The line after the caller's: where the object under test is built."""
    return sys._getframe(1).f_lineno + 1


class Data(Bus):
    value: UInt[8] = 0
    flag: Bool = False


class Other(Bus):
    value: UInt[8] = 0


class Copy(Process):
    """Copies its input to its output, counting ticks in a register."""

    inp: In[Data]
    out: Out[Data]
    ticks: UInt[4] = 0
    scratch: Int[8]

    def on_tick(self) -> None:
        self.out.value = self.inp.value
        self.ticks = wrap(self.ticks + 1)


class Join(Process, combinational=True):
    a: In[Data]
    out: Out[Other]

    def on_tick(self) -> None:
        self.out.value = self.a.value


class Source(Process, simulation_only=True):
    """Drives a value chosen by the test through ``make``."""

    out: Out[Data]

    def __init__(self, make: Any = None, **kw: Any) -> None:
        self.make = make  # plain attributes are fine before the network is built
        super().__init__(**kw)

    def on_tick(self) -> None:
        self.out.value = self.make()


def run_one(proc: Process, ticks: int = 1) -> Simulator:
    sim = Simulator(Network("net", [proc]))
    sim.run(ticks)
    return sim


# -- declarations ---------------------------------------------------------------------------
def test_ports_and_registers_are_declared_by_annotations() -> None:
    assert Copy.ports() == {
        "inp": PortSpec("inp", Direction.IN, Data),
        "out": PortSpec("out", Direction.OUT, Data),
    }
    assert Copy.registers() == {
        "ticks": RegisterSpec("ticks", UInt[4], 0),
        "scratch": RegisterSpec("scratch", Int[8], MISSING),
    }
    assert not Copy.is_combinational()
    assert Join.is_combinational()
    assert not Copy.is_generator()
    assert not hasattr(Copy, "ticks")  # registers live on instances


def test_subclasses_inherit_ports_registers_and_the_kind() -> None:
    class MoreCopy(Copy):
        extra: Bool = True

    class CombSub(Join):
        pass

    assert list(MoreCopy.ports()) == ["inp", "out"]
    assert list(MoreCopy.registers()) == ["ticks", "scratch", "extra"]
    assert MoreCopy.registers()["ticks"].initial == 0
    assert CombSub.is_combinational()


def test_generator_processes_are_detected() -> None:
    class Gen(Process):
        out: Out[Data]

        def on_tick(self) -> Any:
            yield

    assert Gen.is_generator()


def test_port_of_a_non_bus_class() -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Bad(Process):
            inp: In[int]  # type: ignore[type-var]
    info.match(rf"{HERE}:{line}: port .*Bad\.inp: <class 'int'> is not a Bus class")


@pytest.mark.parametrize("simulation_only", [False, True])
def test_an_async_on_tick_is_refused_where_it_is_defined(simulation_only: bool) -> None:
    """SME C#'s ``async Task OnTickAsync()`` ported literally: a simulation-only process
    with ``async def on_tick`` ran in the interpreter doing nothing (the call returned a
    coroutine nothing awaited; a RuntimeWarning only), its outputs stayed at their initial
    values; the other backends said only "is not a plain function"."""
    with pytest.raises(DeclarationError) as info:
        line = next_line() + 3
        class Bad(Process, simulation_only=simulation_only):
            out: Out[Data]

            async def on_tick(self) -> None:
                self.out.value = 7
    info.match(rf"{HERE}:{line}: .*Bad\.on_tick is an 'async def': SME processes are not "
               r"coroutines\. .*'await ClockAsync\(\)' is a 'yield'")


@pytest.mark.parametrize("kind", ["list", "tuple"])
def test_an_array_of_ports_is_refused_when_declared(kind: str) -> None:
    """SME C#'s ``[InputBus] ValueBus[] input`` ported as a list of ports was ignored: the
    class had no port ``inputs`` and making a process said only "unknown argument(s)
    inputs; ports: output"."""
    with pytest.raises(DeclarationError) as info:
        if kind == "list":
            ann, line = "list[In[Data]]", next_line()
            class Bad(Process):
                inputs: list[In[Data]]
                output: Out[Data]
        else:
            ann, line = "tuple[In[Data], ...]", next_line()
            class Bad(Process):  # type: ignore[no-redef]
                inputs: tuple[In[Data], ...]
                output: Out[Data]
    info.match(rf"{HERE}:{line}: .*Bad\.inputs: {re.escape(ann)}: {re.escape(ARRAYS_OF_BUSES)}$")


ARRAYS_OF_BUSES = (
    "an array of buses is declared with its length, In[Array[Data, n]] or Out[Array[Data, n]] "
    "(C#'s Data[] of n buses), and connected to a list of n Data buses; see "
    "sme/examples/array_of_buses.py")


def test_a_port_of_a_list_of_buses_names_the_array_form() -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Bad(Process):
            inputs: In[list[Data]]
            output: Out[Data]
    text = str(info.value)
    assert text.startswith(f"tests/sme/{HERE}:{line}: ") or f"/{HERE}:{line}: " in text
    assert text.endswith(f"<locals>.Bad.inputs: In[list[Data]]: {ARRAYS_OF_BUSES}")


def test_a_list_of_buses_given_to_a_one_bus_port_names_the_array_form() -> None:
    class Reduce(Process):
        inputs: In[Data]
        output: Out[Data]

        def on_tick(self) -> None:
            self.output.value = self.inputs.value

    with pytest.raises(BusTypeError) as info:
        Reduce(inputs=[Data(), Data()], output=Data())
    assert str(info.value).endswith(
        "; port 'inputs' holds one bus; declare it In[Array[Data, 2]] (or Out[...]) for an "
        "array of buses")
    assert "port 'inputs' needs a Data bus, got [<Data bus" in str(info.value)


def test_bad_register_name_and_type() -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Bad(Process):
            _hidden: UInt[8] = 0
    info.match(rf"{HERE}:{line}: register name '_hidden' must be an identifier")
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class BadPort(Process):
            in__put: In[Data]
    info.match(rf"{HERE}:{line}: port name 'in__put' must be an identifier")


def test_register_initial_value_that_does_not_fit() -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Bad(Process):
            count: UInt[4] = 16
    info.match(rf"{HERE}:{line}: initial value of register .*Bad\.count: 16 is out of range; "
               r"UInt\[4\] allows 0\.\.15$")


def test_combinational_generator_is_an_error() -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Bad(Process, combinational=True):
            out: Out[Data]

            def on_tick(self) -> Any:
                yield
    info.match(rf"{HERE}:{line}: combinational process .*Bad cannot be a generator \(a yield "
               r"waits for a clock tick\); make it clocked")


def test_combinational_registers_are_an_error() -> None:
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        class Bad(Process, combinational=True):
            out: Out[Data]
            count: UInt[4] = 0
            last: Bool = False
    info.match(rf"{HERE}:{line}: combinational process .*Bad cannot hold registers \(count, "
               r"last\); make it clocked or move the state elsewhere")


# -- construction ---------------------------------------------------------------------------
def test_names_and_source_location() -> None:
    line = next_line()
    p = Copy()
    assert p.name == "copy"
    assert not p.explicit_name
    assert p.src_loc.line == line
    assert re.fullmatch(rf"Copy 'copy' \(created at .*{HERE}:{line}\)", p.describe())
    q = Copy(name="first")
    assert (q.name, q.explicit_name, repr(q)) == ("first", True, "<Copy process 'first'>")
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        Copy(name="bad name")
    info.match(rf"{HERE}:{line}: process name 'bad name' must be an identifier")


def test_unconnected_ports_get_their_own_bus_created_at_the_process() -> None:
    line = next_line()
    p = Copy()
    assert isinstance(p.bus("inp"), Data)
    assert p.bus("inp") is not p.bus("out")
    assert p.bus("inp").src_loc.line == line
    assert p.input_buses() == {"inp": p.bus("inp")}
    assert p.output_buses() == {"out": p.bus("out")}


def test_ports_accept_buses_and_views() -> None:
    d = Data()
    first = Copy(out=d)
    second = Copy(inp=first.out)  # a view stands for its bus
    assert second.bus("inp") is d


def test_bus_of_the_wrong_type() -> None:
    line_bus = next_line()
    other = Other(name="elsewhere")
    with pytest.raises(BusTypeError) as info:
        line = next_line()
        Copy(inp=other)
    info.match(
        rf"^Copy 'copy' \(created at .*{HERE}:{line}\): port 'inp' is In\[Data\] but was "
        rf"connected to bus 'elsewhere' \(Other, created at .*{HERE}:{line_bus}\)$"
    )
    with pytest.raises(BusTypeError) as info:
        Copy(out=Other())
    info.match(r"port 'out' is Out\[Data\] but was connected to bus 'other'")


def test_port_given_something_that_is_not_a_bus() -> None:
    with pytest.raises(BusTypeError) as info:
        line = next_line()
        Copy(inp=3)
    info.match(rf"^.*{HERE}:{line}: Copy port 'inp' needs a Data bus, got 3$")


def test_unknown_arguments() -> None:
    with pytest.raises(TypeError) as info:
        line = next_line()
        Copy(inpt=Data(), tics=3)
    info.match(rf"^.*{HERE}:{line}: Copy\(\) got unknown argument\(s\) inpt, tics; ports: inp, "
               r"out; registers: ticks, scratch$")
    with pytest.raises(TypeError, match=r"ports: a, out; registers: -$"):
        Join(bogus=1)


def test_register_initial_values_per_instance() -> None:
    p = Copy(ticks=5, scratch=-3)
    assert p.initial_values() == {"ticks": 5, "scratch": -3}
    assert (p.ticks, p.scratch) == (5, -3)
    assert Copy().initial_values() == {"ticks": 0, "scratch": MISSING}
    with pytest.raises(DeclarationError) as info:
        line = next_line()
        Copy(name="c", ticks=99)
    info.match(rf"^.*{HERE}:{line}: initial value of register c\.ticks: 99 is out of range; "
               r"UInt\[4\] allows 0\.\.15$")


def test_on_tick_must_be_implemented() -> None:
    class Lazy(Process):
        out: Out[Data]

    with pytest.raises(LoweringError, match=r"test_process\.py:\d+:\d+: .*Lazy does not "
                       r"implement on_tick\(\)"):
        run_one(Lazy())  # refused when the simulator is built


# -- registers --------------------------------------------------------------------------
def test_reading_an_undefined_register() -> None:
    class Reads(Process):
        out: Out[Data]
        scratch: UInt[8]

        def on_tick(self) -> None:
            self.out.value = self.scratch

    line = next_line()
    p = Reads()
    with pytest.raises(UndefinedSignalError) as info:
        run_one(p)
    info.match(rf"^register reads\.scratch has no initial value and was read before anything "
               rf"wrote it \(Reads 'reads' \(created at .*{HERE}:{line}\)\)\n\(at tick 0\)$")


def test_writing_then_reading_an_undefined_register() -> None:
    class Writes(Process):
        out: Out[Data]
        scratch: UInt[8]

        def on_tick(self) -> None:
            self.scratch = 7
            self.out.value = self.scratch

    sim = run_one(Writes(), 2)
    assert sim.peek("data.value") == 7


def test_unknown_attribute_read_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="'Copy' object has no attribute 'nothing'"):
        _ = Copy().nothing


def test_register_misfit_names_process_register_value_range_and_tick() -> None:
    line = next_line()
    src = Source(make=lambda: 0, name="src")

    class Grow(Process):
        out: Out[Data]
        n: UInt[2] = 0

        def on_tick(self) -> None:
            self.n = self.n + 1

    line = next_line()
    g = Grow()
    sim = Simulator(Network("net", [g, src]))
    sim.run(3)
    with pytest.raises(SignalValueError) as info:
        sim.step()
    info.match(
        rf"^grow\.n: cannot store 4 \(4 is out of range\); UInt\[2\] allows 0\.\.3; written by "
        rf"Grow 'grow' \(created at .*{HERE}:{line}\) at .*{HERE}:{line_of('self.n = self.n + 1')}; "
        r"if the overflow is deliberate, write "
        r"wrap\(\.\.\.\) or saturate\(\.\.\.\) \(tick 3\)$"
    )
    assert (info.value.bus, info.value.signal, info.value.value, info.value.tick) == (
        "grow", "n", 4, 3)


def test_register_wrap_and_saturate() -> None:
    class Both(Process):
        out: Out[Data]
        up: UInt[2] = 0
        down: Int[3] = 0

        def on_tick(self) -> None:
            self.up = wrap(self.up + 1)
            self.down = saturate(self.down - 1)
            self.out.value = self.up

    p = Both()
    sim = Simulator(Network("net", [p]))
    ups, downs = [], []
    for _ in range(6):
        sim.step()
        ups.append(p.up)
        downs.append(p.down)
    assert ups == [1, 2, 3, 0, 1, 2]
    assert downs == [-1, -2, -3, -4, -4, -4]


def test_bool_into_a_uint_register_and_0_1_into_a_bool_register() -> None:
    class Flags(Process, simulation_only=True):  # the interpreter's run-time check
        out: Out[Data]
        n: UInt[4] = 0
        b: Bool = False

        def on_tick(self) -> None:
            self.b = 1
            self.n = True

    p = Flags()
    with pytest.raises(SignalValueError, match=r"flags\.n: cannot store True \(True is a bool, "
                       r"not an integer; use int\(\.\.\.\) to convert\)"):
        run_one(p)
    assert p.b is True


def test_array_register_elements_are_checked() -> None:
    class Hist(Process):
        out: Out[Data]
        bins: Array[UInt[4], 3] = (0, 0, 0)

        def on_tick(self) -> None:
            self.bins[1] = self.bins[1] + 8

    p = Hist()
    sim = Simulator(Network("net", [p]))
    sim.step()
    assert p.bins == [0, 8, 0]
    store = line_of("self.bins[1] = self.bins[1] + 8")
    with pytest.raises(SignalValueError, match=r"^hist\.bins\[1\]: 16 is out of range; "
                       r"Array\[UInt\[4\], 3\] allows 3 elements, each 0\.\.15; written at "
                       rf".*{HERE}:{store} \(tick 1\)$"):
        sim.step()
    Simulator(Network("again", [p]))
    assert p.bins == [0, 0, 0]  # a new simulation resets registers


def test_undeclared_attribute_write_during_simulation() -> None:
    class Sloppy(Process, simulation_only=True):  # the interpreter's run-time check
        out: Out[Data]

        def on_tick(self) -> None:
            self.total = 1

    line = next_line()
    p = Sloppy()
    with pytest.raises(DeclarationError) as info:
        run_one(p)
    info.match(
        rf"^Sloppy 'sloppy' \(created at .*{HERE}:{line}\): cannot assign self\.total: it is not "
        r"a declared register; registers are declared as annotated fields, e\.g\. "
        r"`total: UInt\[8\] = 0`\n\(at tick 0\)$"
    )


def test_plain_attributes_are_allowed_before_the_network_is_built() -> None:
    p = Source(make=lambda: 4)
    p.make = lambda: 5
    assert run_one(p).peek("data.value") == 5
    with pytest.raises(DeclarationError, match=r"cannot assign self\.make: it is not a declared"):
        p.make = lambda: 6


def test_assigning_a_port_is_an_error() -> None:
    p = Copy()
    with pytest.raises(DeclarationError) as info:
        p.out = 5
    info.match(r"cannot assign self\.out: it is a port; .*; write signals as "
               r"self\.out\.<signal> = value$")


# -- ports at run time ----------------------------------------------------------------------
def test_writing_an_input_bus() -> None:
    class Rude(Process, simulation_only=True):  # the interpreter's run-time check
        inp: In[Data]
        out: Out[Other]

        def on_tick(self) -> None:
            self.inp.value = 1

    line_bus = next_line()
    d = Data()
    line = next_line()
    p = Rude(inp=d)
    with pytest.raises(PortDirectionError) as info:
        run_one(p)
    info.match(
        rf"^Rude 'rude' \(created at .*{HERE}:{line}\) through port 'inp' cannot write "
        rf"data\.value: it reads bus 'data' \(Data, created at .*{HERE}:{line_bus}\); a process "
        r"writes only its Out\[\.\.\.\] buses\n\(at tick 0\)$"
    )


def test_unknown_signals() -> None:
    class Typo(Process, simulation_only=True):  # the interpreter's run-time check
        inp: In[Data]
        out: Out[Other]

        def on_tick(self) -> None:
            self.out.value = self.inp.valeu

    class TypoOut(Process, simulation_only=True):
        out: Out[Data]

        def on_tick(self) -> None:
            self.out.valeu = 1

    with pytest.raises(UnknownSignalError) as info:
        run_one(Typo())
    info.match(r"^bus 'data' \(Data, created at .*\) has no signal 'valeu'; its signals are: "
               r"value, flag\n\(at tick 0\)$")
    with pytest.raises(UnknownSignalError, match=r"has no signal 'valeu'; its signals are: value, "
                       r"flag\n\(at tick 0\)$"):
        run_one(TypoOut())


def test_reading_an_undefined_signal_names_the_reader() -> None:
    class Sparse(Bus):
        maybe: UInt[8]

    class Reader(Process):
        inp: In[Sparse]
        out: Out[Data]

        def on_tick(self) -> None:
            self.out.value = self.inp.maybe

    line = next_line()
    p = Reader()
    with pytest.raises(UndefinedSignalError) as info:
        run_one(p)
    info.match(
        rf"^sparse\.maybe has no initial value and nothing has written it yet \(read by Reader "
        rf"'reader' \(created at .*{HERE}:{line}\) through port 'inp'\); give it a default in "
        r"Sparse or write it first\n\(at tick 0\)$"
    )


def test_signal_misfit_in_a_process_names_bus_signal_value_range_writer_and_tick() -> None:
    line = next_line()
    p = Source(make=lambda: 256)
    with pytest.raises(SignalValueError) as info:
        run_one(p)
    info.match(
        rf"^data\.value: cannot store 256 \(256 is out of range\); UInt\[8\] allows 0\.\.255; "
        rf"written by Source 'source' \(created at .*{HERE}:{line}\) through port 'out' at "
        rf".*{HERE}:{line_of('self.out.value = self.make()')}; if the "
        r"overflow is deliberate, write wrap\(\.\.\.\) or saturate\(\.\.\.\) \(tick 0\)$"
    )


@pytest.mark.parametrize(("value", "expected"), [(wrap(300), 44), (saturate(300), 255),
                                                 (saturate(-4), 0), (wrap(-1), 255)])
def test_signal_wrap_and_saturate(value: Any, expected: int) -> None:
    assert run_one(Source(make=lambda: value)).peek("data.value") == expected
