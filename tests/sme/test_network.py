"""Networks: elaboration (inputs, outputs, order) and the build-time errors, each naming the
user's file and line for every party."""

import sys

import pytest

from sme import (
    Bool,
    Bus,
    CombinationalLoopError,
    DeclarationError,
    In,
    MultipleWritersError,
    Network,
    NetworkError,
    Out,
    Process,
    UInt,
    UnconnectedInputError,
)

HERE = "test_network.py"


def next_line() -> int:
    """The line after the caller's: where the object under test is built."""
    return sys._getframe(1).f_lineno + 1


class Word(Bus):
    value: UInt[8] = 0
    valid: Bool = False


class Reg(Process):
    inp: In[Word]
    out: Out[Word]

    def on_tick(self) -> None:
        self.out.value = self.inp.value


class Comb(Process, combinational=True):
    inp: In[Word]
    out: Out[Word]

    def on_tick(self) -> None:
        self.out.value = self.inp.value


class Sink(Process):
    inp: In[Word]

    def on_tick(self) -> None:
        pass


def test_inputs_outputs_and_process_kinds_are_found() -> None:
    a, b, c = Word(name="a"), Word(name="b"), Word(name="c")
    r, k, s = Reg(inp=a, out=b), Comb(inp=b, out=c), Sink(inp=c)
    net = Network("net", [r, k, s])
    assert net.inputs == [a]
    assert net.outputs == []
    assert net.buses == [a, b, c]
    assert net.writer == {b: r, c: k}
    assert net.readers == {a: [r], b: [k], c: [s]}
    assert net.clocked == [r, s]
    assert net.combinational == [k]
    assert net.bus("b") is b
    assert net.process("comb") is k
    assert repr(net) == "<Network 'net': 3 processes, 3 buses>"
    marked = Network("marked", [Reg(inp=a, out=b), Comb(inp=b, out=c)], outputs=[b])
    assert marked.outputs == [b, c]  # c: written and read by nobody; b: marked


def test_lookups_of_unknown_names() -> None:
    net = Network("net", [Reg(inp=Word(name="a"), out=Word(name="b"))])
    with pytest.raises(KeyError, match="network 'net' has no bus 'x'; buses: a, b"):
        net.bus("x")
    with pytest.raises(KeyError, match="network 'net' has no process 'x'"):
        net.process("x")


def test_traced_signals_put_inputs_first() -> None:
    a, b, c = Word(name="a"), Word(name="b"), Word(name="c")
    net = Network("net", [Reg(inp=b, out=c), Reg(inp=a, out=b)])  # b is used before a
    assert [t.name for t in net.traced_signals()] == [
        "a.value", "a.valid", "b.value", "b.valid", "c.value", "c.valid"]
    assert [t.is_input for t in net.traced_signals()] == [True, True, False, False, False, False]
    assert net.traced_signals()[0].type is UInt[8]


def test_auto_names_are_made_unique_and_explicit_clashes_are_errors() -> None:
    r1, r2 = Reg(), Reg(name="reg_0")
    net = Network("net", [r1, r2, Reg()])
    assert [p.name for p in net.processes] == ["reg_1", "reg_0", "reg_2"]
    assert sorted(b.name for b in net.buses) == ["word_0", "word_1", "word_2", "word_3", "word_4",
                                                "word_5"]
    line1 = next_line()
    first = Reg(name="same")
    line2 = next_line()
    second = Reg(name="same")
    with pytest.raises(NetworkError) as info:
        line = next_line()
        Network("net", [first, second])
    info.match(rf"^.*{HERE}:{line}: two processes are both named 'same':\n"
               rf"  Reg 'same' \(created at .*{HERE}:{line1}\)\n"
               rf"  Reg 'same' \(created at .*{HERE}:{line2}\)$")
    with pytest.raises(NetworkError, match="two buses are both named 'w':"):
        Network("net", [Reg(inp=Word(name="w")), Sink(inp=Word(name="w"))])


def test_empty_and_malformed_networks() -> None:
    with pytest.raises(NetworkError) as info:
        line = next_line()
        Network("net", [])
    info.match(rf"^.*{HERE}:{line}: network 'net' has no processes$")
    with pytest.raises(NetworkError, match=r"network 'net': 'reg' is not a Process$"):
        Network("net", ["reg"])  # type: ignore[list-item]
    with pytest.raises(DeclarationError, match="network name 'my net' must be an identifier"):
        Network("my net", [Reg()])


def test_two_writers_name_the_bus_and_both_writers() -> None:
    line_bus = next_line()
    shared = Word(name="shared")
    line1 = next_line()
    w1 = Reg(out=shared)
    line2 = next_line()
    w2 = Comb(out=shared)
    with pytest.raises(MultipleWritersError) as info:
        Network("net", [w1, w2])
    info.match(
        rf"^bus 'shared' \(Word, created at .*{HERE}:{line_bus}\) has two writers; a bus has "
        rf"exactly one:\n  Reg 'reg' \(created at .*{HERE}:{line1}\) writes it\n"
        rf"  Comb 'comb' \(created at .*{HERE}:{line2}\) writes it through port 'out'$"
    )


def test_combinational_loop_names_every_process_and_bus() -> None:
    lines = []
    lines.append(next_line())
    a = Word(name="a")
    lines.append(next_line())
    b = Word(name="b")
    lines.append(next_line())
    c = Word(name="c")
    lines.append(next_line())
    p = Comb(inp=a, out=b, name="p")
    lines.append(next_line())
    q = Comb(inp=b, out=c, name="q")
    lines.append(next_line())
    r = Comb(inp=c, out=a, name="r")
    la, lb, lc, lp, lq, lr = lines
    with pytest.raises(CombinationalLoopError) as info:
        line = next_line()
        Network("loop", [p, q, r, Sink(inp=b)])
    info.match(
        rf"^combinational loop in network 'loop' \(.*{HERE}:{line}\): each process reads a bus "
        r"written by the next, in the same tick:\n"
        rf"  Comb 'p' \(created at .*{HERE}:{lp}\) reads bus 'a' \(Word, created at "
        rf".*{HERE}:{la}\)\n"
        rf"  Comb 'r' \(created at .*{HERE}:{lr}\) reads bus 'c' \(Word, created at "
        rf".*{HERE}:{lc}\)\n"
        rf"  Comb 'q' \(created at .*{HERE}:{lq}\) reads bus 'b' \(Word, created at "
        rf".*{HERE}:{lb}\)\n"
        r"Hint: make one of these processes clocked to break the loop$"
    )


def test_a_combinational_process_reading_its_own_output_is_a_loop() -> None:
    w = Word(name="w")
    with pytest.raises(CombinationalLoopError) as info:
        Network("net", [Comb(inp=w, out=w)])
    info.match(r"in the same tick:\n  Comb 'comb' \(created at .*\) reads bus 'w' \(Word, "
               r"created at .*\)\nHint")


def test_a_loop_through_a_clocked_process_is_fine() -> None:
    a, b = Word(name="a"), Word(name="b")
    net = Network("net", [Comb(inp=a, out=b), Reg(inp=b, out=a)])
    assert net.inputs == []
    assert net.combinational == [net.process("comb")]


def test_combinational_order_follows_dependencies_not_the_list() -> None:
    a, b, c, d = (Word(name=n) for n in "abcd")
    p1, p2, p3 = Comb(inp=a, out=b, name="p1"), Comb(inp=b, out=c, name="p2"), Comb(
        inp=c, out=d, name="p3")
    net = Network("net", [p3, p1, p2])
    assert net.combinational == [p1, p2, p3]
    assert net.depends_on_inputs() == [p1, p2, p3]
    assert net.depends_on_registers() == []


def test_dependencies_on_inputs_and_on_registers() -> None:
    i, r, x, y, z = (Word(name=n) for n in ("i", "r", "x", "y", "z"))
    from_input = Comb(inp=i, out=x, name="from_input")
    reg = Reg(inp=x, out=r)
    from_reg = Comb(inp=r, out=y, name="from_reg")
    after = Comb(inp=y, out=z, name="after")
    net = Network("net", [after, from_reg, reg, from_input])
    assert net.depends_on_inputs() == [from_input]
    assert net.depends_on_registers() == [from_reg, after]


def test_unconnected_input_with_declared_inputs() -> None:
    line_in = next_line()
    declared = Word(name="declared")
    line_bus = next_line()
    forgotten = Word(name="forgotten")
    line_r1 = next_line()
    r1 = Reg(inp=declared)
    line_r2 = next_line()
    r2 = Sink(inp=forgotten)
    line_r3 = next_line()
    r3 = Comb(inp=forgotten)
    with pytest.raises(UnconnectedInputError) as info:
        line = next_line()
        Network("net", [r1, r2, r3], inputs=[declared])
    info.match(
        rf"^bus 'forgotten' \(Word, created at .*{HERE}:{line_bus}\) is read but no process "
        rf"writes it and it is not a declared top-level input of network 'net' "
        rf"\(.*{HERE}:{line}\):\n"
        rf"  read by Sink 'sink' \(created at .*{HERE}:{line_r2}\)\n"
        rf"  read by Comb 'comb' \(created at .*{HERE}:{line_r3}\)\n"
        r"Hint: connect the writer's Out port to this bus, or list it in inputs=\[\.\.\.\]$"
    )
    assert line_in != line_r1
    net = Network("net", [Reg(inp=declared), Sink(inp=forgotten)])  # undeclared: found
    assert net.inputs == [declared, forgotten]
    declared_net = Network("net", [Reg(inp=declared), Sink(inp=forgotten)],
                           inputs=[forgotten, declared])
    assert declared_net.inputs == [declared, forgotten]  # in order of use


def test_declared_inputs_must_be_unwritten_and_read() -> None:
    line_bus = next_line()
    a = Word(name="a")
    line_w = next_line()
    w = Reg(out=a)
    with pytest.raises(NetworkError) as info:
        line = next_line()
        Network("net", [w], inputs=[a])
    info.match(
        rf"^.*{HERE}:{line}: bus 'a' \(Word, created at .*{HERE}:{line_bus}\) is declared a "
        rf"top-level input of 'net' but Reg 'reg' \(created at .*{HERE}:{line_w}\) writes it$"
    )
    stray = Word(name="stray")
    with pytest.raises(NetworkError) as info:
        Network("net", [Reg()], inputs=[stray])
    info.match(r"bus 'stray' \(Word, created at .*\) is declared a top-level input of 'net' but "
               r"no process of the network reads it$")


def test_building_a_network_freezes_its_processes() -> None:
    r = Reg()
    r.note = "fine before the network"
    Network("net", [r])
    with pytest.raises(DeclarationError, match=r"cannot assign self\.note"):
        r.note = "not after"


def test_marked_output_must_be_written_by_the_network() -> None:
    from sme.examples.counter import Counter, CounterControl, CounterData

    ctl = CounterControl()
    with pytest.raises(NetworkError, match=r"marked a top-level output of 'n' but no process"):
        Network("n", [Counter(control=ctl, data=CounterData())], outputs=[ctl])
