"""Arrays of buses (C#'s ``[InputBus] B[] ins`` / ``[OutputBus] B[] outs``): declared
``In[Array[B, n]]`` / ``Out[Array[B, n]]``, connected to a list of ``n`` buses, each its own
bus in the network (its own writer, its own trace columns), indexed in the body as
``self.ins[i].signal`` with a constant or a run-time ``i``. The interpreter, the compiled
backend and GHDL agree with a reference written here, and every other spelling or
connection is refused with one error saying what to write."""

from __future__ import annotations

from typing import Any

import pytest

from fpga.pytest_plugin import HardwareTester
from fpga.stimulus import random_stimulus
from sme import (
    Array,
    ArrayIndexError,
    Bool,
    Bus,
    BusTypeError,
    DeclarationError,
    In,
    Int,
    MultipleWritersError,
    Network,
    Out,
    Process,
    Simulator,
    UInt,
)
from sme.lower import lower_process
from sme.lower.errors import LoweringError


class Sel(Bus):
    idx: UInt[3] = 0
    v: Int[8] = 0
    go: Bool = False


class Word(Bus):
    value: Int[8] = 0
    valid: Bool = False


class Fanout(Process):
    """Writes ``v`` into bus ``idx % 3`` of its array (a run-time index), and marks each
    bus valid when the value it is about to hold is not 0 (a read of its own outputs)."""

    sel: In[Sel]
    outs: Out[Array[Word, 3]]

    def on_tick(self) -> None:
        if self.sel.go:
            self.outs[self.sel.idx % 3].value = self.sel.v
        for i in range(len(self.outs)):
            self.outs[i].valid = self.outs[i].value != 0


class Pick(Process):
    """Reads bus ``idx % 3`` of its array (connected in another order than Fanout's)."""

    sel: In[Sel]
    ins: In[Array[Word, 3]]
    out: Out[Word]

    def on_tick(self) -> None:
        self.out.value = self.ins[self.sel.idx % 3].value
        self.out.valid = self.ins[2].valid


def _net() -> Network:
    a, b, c, sel = Word(name="a"), Word(name="b"), Word(name="c"), Sel(name="sel")
    return Network("bus_arrays", [Fanout(sel=sel, outs=[a, b, c]),
                                  Pick(sel=sel, ins=[c, a, b], out=Word(name="o"))])


def _reference(stim: list[dict[str, Any]]) -> list[tuple[int, int, int, int, bool]]:
    """a, b, c and o's value and valid after each tick, computed here: Fanout's writes
    land at the clock edge, Pick reads the values of the tick before."""
    buses = [0, 0, 0]  # a, b, c
    o, o_valid, valid_b = 0, False, False
    out = []
    for row in stim:
        idx, v, go = row["sel.idx"], row["sel.v"], row["sel.go"]
        picked = [buses[2], buses[0], buses[1]][idx % 3]  # (ins = [c, a, b]: ins[2] is b)
        new_o_valid = valid_b
        if go:
            buses[idx % 3] = v
        o, o_valid, valid_b = picked, new_o_valid, buses[1] != 0
        out.append((buses[0], buses[1], buses[2], o, o_valid))
    return out


def _observed(trace: Any) -> list[tuple[int, int, int, int, bool]]:
    cols = [trace.column(n) for n in ("a.value", "b.value", "c.value", "o.value", "o.valid")]
    return list(zip(*(list(c)[1:] for c in cols), strict=True))


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_a_run_time_index_reads_and_writes_the_right_bus(backend: str) -> None:
    stim = list(random_stimulus(_net(), 80, seed=5))
    trace = Simulator(_net(), backend=backend).run(stimulus=stim)
    assert trace is not None
    assert _observed(trace) == _reference(stim)
    assert [c.name for c in trace.columns][:3] == ["sel.idx", "sel.v", "sel.go"]
    assert {"a.value", "b.valid", "c.value"} <= {c.name for c in trace.columns}


@pytest.mark.ghdl
def test_every_backend_runs_it_alike(sme_hw: HardwareTester) -> None:
    stim = list(random_stimulus(_net(), 80, seed=6))
    trace = sme_hw.all_backends(_net(), stim)  # interp = compiled = GHDL, bit for bit
    assert _observed(trace) == _reference(stim)
    out = sme_hw.export(_net()).out_dir
    top = (out / "bus_arrays.vhd").read_text()
    assert "outs_value(0) => a_value," in top and "ins_value(0) => c_value," in top


class Unchecked(Process):
    """Indexes its 3 buses with 0..7: past 2 is an error, read or written."""

    sel: In[Sel]
    ins: In[Array[Word, 3]]
    outs: Out[Array[Word, 3]]

    def on_tick(self) -> None:
        if self.sel.go:
            self.outs[self.sel.idx].value = 1
        else:
            self.outs[0].value = self.ins[self.sel.idx].value


@pytest.mark.parametrize("go", [False, True], ids=["read", "write"])
@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_an_index_past_the_array_is_one_error(backend: str, go: bool) -> None:
    net = Network("unchecked", [Unchecked(sel=Sel(name="sel"), ins=[Word() for _ in range(3)],
                                          outs=[Word() for _ in range(3)])])
    with pytest.raises(ArrayIndexError) as info:
        Simulator(net, backend=backend).run(
            stimulus=[{"sel.idx": 1, "sel.go": go}, {"sel.idx": 5, "sel.go": go}])
    assert str(info.value).startswith("self.outs[5]: index out of range 0..2 (read by "
                                      if go else
                                      "self.ins[5]: index out of range 0..2 (read by ")
    assert "test_bus_arrays.py:" in str(info.value)


class SimOnly(Process, simulation_only=True):
    """A simulation-only process (never lowered: its Python runs as written) indexing its
    arrays of buses from the end, or past them."""

    sel: In[Sel]
    ins: In[Array[Word, 3]]
    outs: Out[Array[Word, 3]]

    def on_tick(self) -> None:
        i = int(self.sel.v)
        if self.sel.go:
            self.outs[i].value = 5
        else:
            self.outs[0].value = self.ins[i].value


@pytest.mark.parametrize("index", [-1, -3, 3])
@pytest.mark.parametrize("go", [False, True], ids=["read", "write"])
def test_a_simulation_only_process_indexes_an_array_of_buses_as_an_array(go: bool,
                                                                         index: int) -> None:
    """The review's finding: its arrays were plain tuples, so ``self.outs[-1]`` wrote bus
    2 and ``self.ins[-2]`` read bus 1 without an error (an ``Array`` signal refuses them),
    and ``self.ins[3]`` was a bare 'tuple index out of range'."""
    net = Network("sim_only", [SimOnly(sel=Sel(name="sel"), ins=[Word() for _ in range(3)],
                                       outs=[Word() for _ in range(3)])])
    with pytest.raises(ArrayIndexError) as info:
        Simulator(net, backend="interp").run(
            stimulus=[{"sel.v": 1, "sel.go": go}, {"sel.v": index, "sel.go": go}])
    port = "outs" if go else "ins"
    assert str(info.value).startswith(f"sim_only.{port}[{index}]: index out of range 0..2")


def test_connections_are_checked() -> None:
    with pytest.raises(BusTypeError, match=r"port 'ins' is In\[Array\[Word, 3\]\]: it needs a "
                                           r"list of 3 Word buses, got 2 buses$"):
        Pick(sel=Sel(), ins=[Word(), Word()], out=Word())
    with pytest.raises(BusTypeError, match=r"port 'ins\[1\]' is an element of In\[Array\[Word, "
                                           r"3\]\] but was connected to bus 'sel' \(Sel, "):
        Pick(sel=Sel(), ins=[Word(), Sel(name="sel"), Word()], out=Word())
    w = Word(name="w")
    with pytest.raises(BusTypeError, match=r"writes bus 'w' \(Word, .* as its elements 0 and 2; a "
                                           r"bus has one writer"):
        Fanout(sel=Sel(), outs=[w, Word(), w])
    with pytest.raises(MultipleWritersError, match=r"through port 'outs\[1\]'"):
        Network("two", [Fanout(sel=Sel(), outs=[Word(), w, Word()]),
                        Fanout(sel=Sel(), outs=[Word(), w, Word()])])
    made = Pick(sel=Sel(), out=Word())  # (not given: three new buses, as a port's one)
    assert [made.bus(f"ins[{k}]").name for k in range(3)] == ["word"] * 3


def test_other_spellings_are_refused() -> None:
    with pytest.raises(DeclarationError, match=r"Bad\.ins: Array\[Word, 3\] is an array of "
                                               r"buses without a direction: declare it "
                                               r"In\[Array\[Word, 3\]\] or Out\[Array\[Word, 3\]\]"):
        class Bad(Process):
            ins: Array[Word, 3]  # type: ignore[valid-type]
    with pytest.raises(DeclarationError, match=r"an array of buses holds n >= 1 buses"):
        class Empty(Process):  # C#: "Cannot parse an empty bus array"
            ins: In[Array[Word, 0]]


class AsValue(Process):
    ins: In[Array[Word, 2]]
    out: Out[Word]

    def on_tick(self) -> None:
        self.out.value = self.ins.value  # type: ignore[attr-defined]


class BusAsValue(Process):
    ins: In[Array[Word, 2]]
    out: Out[Word]

    def on_tick(self) -> None:
        x = self.ins[0]
        self.out.valid = x.valid


class WritesInput(Process):
    ins: In[Array[Word, 2]]

    def on_tick(self) -> None:
        self.ins[1].value = 3


class Lanes(Bus):
    v: Array[UInt[4], 2] = [0, 0]


class ArrayOfArrays(Process):
    ins: In[Array[Lanes, 2]]
    out: Out[Word]

    def on_tick(self) -> None:
        self.out.valid = self.ins[1].v[0] == 1


@pytest.mark.parametrize("cls, message", [
    (AsValue, r"self\.ins is an array of buses; read the signal of one of them: "
              r"self\.ins\[i\]\.value"),
    (BusAsValue, r"self\.ins\[0\] is a bus of the array self\.ins; read its signals: "
                 r"self\.ins\[i\]\.<signal>"),
    (WritesInput, r"cannot write self\.ins\[i\]\.value: port 'ins' is an In port"),
    (ArrayOfArrays, r"self\.ins is an array of Lanes buses, whose signal 'v' is an Array: an "
                    r"array of arrays is not supported"),
], ids=lambda x: getattr(x, "__name__", ""))
def test_bodies_that_use_an_array_of_buses_otherwise_are_refused(cls: type[Process],
                                                                  message: str) -> None:
    with pytest.raises(LoweringError, match=message) as info:
        lower_process(cls)
    assert "test_bus_arrays.py:" in str(info.value)


class Walk(Process):
    """A generator stepping through its input buses, one a tick, into an Out array."""

    ins: In[Array[Word, 4]]
    outs: Out[Array[Word, 2]]

    def on_tick(self) -> Any:
        for i in range(4):
            if self.ins[i].valid:
                self.outs[i % 2].value = self.ins[i].value
            yield
        self.outs[1].valid = not self.outs[1].valid


class Split(Process, combinational=True):
    """A combinational process writing an Out array, one bus by a run-time index."""

    src: In[Word]
    outs: Out[Array[Word, 3]]

    def on_tick(self) -> None:
        for k in range(3):
            self.outs[k].value = self.src.value + k - 2 if self.src.value >= 2 else k
            self.outs[k].valid = self.src.valid
        self.outs[self.src.value % 3].valid = False


def _states() -> Network:
    return Network("walk_split", [
        Walk(ins=[Word(name=f"i{k}") for k in range(4)], outs=[Word(name="o0"), Word(name="o1")]),
        Split(src=Word(name="src"), outs=[Word(name=f"s{k}") for k in range(3)])])


def test_a_generator_and_a_combinational_process_with_arrays() -> None:
    stim = list(random_stimulus(_states(), 60, seed=2))
    trace = Simulator(_states()).run(stimulus=stim)
    assert trace is not None
    # a pass of Walk is 5 ticks: bus i at tick 5n + i when it is valid, and at 5n + 4 the
    # end of the loop toggles o1's valid (the end of on_tick ends that tick)
    o0 = o1 = 0
    o1_valid = False
    for t, row in enumerate(stim):
        i = t % 5
        if i == 4:
            o1_valid = not o1_valid
        elif row[f"i{i}.valid"]:
            o0, o1 = (row[f"i{i}.value"], o1) if i % 2 == 0 else (o0, row[f"i{i}.value"])
        assert (trace.column("o0.value")[t + 1], trace.column("o1.value")[t + 1]) == (o0, o1)
        assert trace.column("o1.valid")[t + 1] == o1_valid
        v = row["src.value"]
        for k in range(3):  # combinational: the same tick's row
            assert trace.column(f"s{k}.value")[t + 1] == (v + k - 2 if v >= 2 else k)
            assert trace.column(f"s{k}.valid")[t + 1] == (row["src.valid"] and v % 3 != k)
    assert Simulator(_states(), backend="compiled").run(stimulus=stim).first_difference(
        trace) is None


@pytest.mark.ghdl
def test_a_generator_and_a_combinational_process_with_arrays_in_ghdl(
        sme_hw: HardwareTester) -> None:
    sme_hw.all_backends(_states(), list(random_stimulus(_states(), 60, seed=2)))
