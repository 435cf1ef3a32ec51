"""Memories: one tick of read latency, read-first writes, initial contents from numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sme import (
    Array,
    Bool,
    DeclarationError,
    Int,
    Network,
    Process,
    SignalValueError,
    Simulator,
    UFix,
    UInt,
)
from sme.lower import lower_process
from sme.memory import (
    address_width,
    dual_port_ram,
    ram_port,
    read_data,
    read_port,
    rom,
    single_port_ram,
    true_dual_port_ram,
    write_port,
)


def test_address_width() -> None:
    assert [address_width(d) for d in (1, 2, 3, 4, 5, 1024, 1025)] == [1, 1, 2, 2, 3, 10, 11]


def test_classes_are_cached_per_parameters() -> None:
    assert rom(UInt[8], 16) is rom(UInt[8], 16)
    assert rom(UInt[8], 16) is not rom(UInt[8], 32)
    assert read_port(UInt[8], 16).__name__ == "ReadAddressUInt8x16"
    assert rom(UInt[8], 16).__name__ == "RomUInt8x16"


def test_rom_answers_one_tick_after_the_address() -> None:
    contents = np.arange(16, dtype=np.uint16) * 3
    addr, data = read_port(UInt[8], 16)("addr"), read_data(UInt[8], 16)("data")
    sim = Simulator(Network("r", [rom(UInt[8], 16)(read=addr, data=data, mem=contents)]))
    got = []
    for a in (5, 9, 15, 0):
        sim.poke("addr.addr", a)
        sim.step()
        got.append(sim.peek("data.rdata"))
    assert got == [15, 27, 45, 0]


def test_single_port_ram_is_read_first() -> None:
    Ram = single_port_ram(Int[12], 8)
    port, data = ram_port(Int[12], 8)("port"), read_data(Int[12], 8)("data")
    sim = Simulator(Network("ram", [Ram(port=port, data=data)]))
    sim.apply({"port.addr": 2, "port.we": True, "port.wdata": -100})
    sim.step()
    assert sim.peek("data.rdata") == 0  # the old word
    sim.poke("port.we", False)
    sim.step()
    assert sim.peek("data.rdata") == -100


def test_dual_port_ram_reads_old_word_on_collision() -> None:
    word = UFix[4, 4]
    Ram = dual_port_ram(word, 4)
    w, r, d = write_port(word, 4)("w"), read_port(word, 4)("r"), read_data(word, 4)("d")
    sim = Simulator(Network("dp", [Ram(write=w, read=r, data=d, mem=[0.5, 1.0, 1.5, 2.0])]))
    sim.apply({"w.we": True, "w.waddr": 1, "w.wdata": 3.25, "r.addr": 1})
    sim.step()
    assert float(sim.peek("d.rdata")) == 1.0
    sim.poke("w.we", False)
    sim.step()
    assert float(sim.peek("d.rdata")) == 3.25


def _tdp(word: object, depth: int, lanes: int = 1, mem: object = None) -> Network:
    ports = {"a": ram_port(word, depth, lanes)("pa"), "b": ram_port(word, depth, lanes)("pb"),
             "data_a": read_data(word, depth, lanes)("qa"),
             "data_b": read_data(word, depth, lanes)("qb")}
    extra = {} if mem is None else {"mem": mem}
    return Network("tdp", [true_dual_port_ram(word, depth, lanes)(**ports, **extra)])


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_true_dual_port_ram_ports_read_and_write_in_one_tick(backend: str) -> None:
    sim = Simulator(_tdp(UInt[8], 16, mem=list(range(100, 116))), backend=backend)
    # both ports write (different addresses) and read in the same tick: old words
    sim.apply({"pa.addr": 3, "pa.we": True, "pa.wdata": 33,
               "pb.addr": 7, "pb.we": True, "pb.wdata": 77})
    sim.step()
    assert (sim.peek("qa.rdata"), sim.peek("qb.rdata")) == (103, 107)
    # each port reads what the other wrote; b reads the address a writes now: old word
    sim.apply({"pa.addr": 7, "pa.we": False, "pb.addr": 3, "pb.we": False})
    sim.step()
    assert (sim.peek("qa.rdata"), sim.peek("qb.rdata")) == (77, 33)
    sim.apply({"pa.addr": 3, "pa.we": True, "pa.wdata": 1, "pb.addr": 3})
    sim.step()
    assert (sim.peek("qa.rdata"), sim.peek("qb.rdata")) == (33, 33)  # read-first, both
    # both ports write one address in one tick: port b's word is stored
    sim.apply({"pa.addr": 5, "pa.wdata": 50, "pb.addr": 5, "pb.we": True, "pb.wdata": 55})
    sim.step()
    sim.apply({"pa.we": False, "pb.we": False})
    sim.step()
    assert (sim.peek("qa.rdata"), sim.peek("qb.rdata")) == (55, 55)


def _tdp_model(mem: list[int], rows: list[dict[str, int]], lanes: int = 1
               ) -> list[tuple[object, object]]:
    """A plain Python model of the documented rules (independent of the process code)."""
    out = []
    for row in rows:
        a, b = row["pa.addr"] * lanes, row["pb.addr"] * lanes
        qa, qb = mem[a:a + lanes], mem[b:b + lanes]
        for port, base in (("pa", a), ("pb", b)):  # b after a: b wins a collision
            if row[f"{port}.we"]:
                data = row[f"{port}.wdata"]
                mem[base:base + lanes] = data if lanes > 1 else [data]
        out.append((tuple(qa), tuple(qb)) if lanes > 1 else (qa[0], qb[0]))
    return out


@pytest.mark.parametrize("backend", ["interp", "compiled"])
@pytest.mark.parametrize("lanes", [1, 3])
def test_true_dual_port_ram_matches_a_model(backend: str, lanes: int) -> None:
    rng = np.random.default_rng(lanes)
    depth = 8
    init = [int(v) for v in rng.integers(0, 256, depth * lanes)]
    rows = []
    for _ in range(300):
        row: dict[str, object] = {}
        for port in ("pa", "pb"):
            row[f"{port}.addr"] = int(rng.integers(0, 4))  # few addresses: collisions
            row[f"{port}.we"] = bool(rng.random() < 0.5)
            data = [int(v) for v in rng.integers(0, 256, lanes)]
            row[f"{port}.wdata"] = data if lanes > 1 else data[0]
        rows.append(row)
    sim = Simulator(_tdp(UInt[8], depth, lanes, mem=init), backend=backend, trace=False)
    got = []
    for row in rows:
        sim.apply(row)
        sim.step()
        qa, qb = sim.peek("qa.rdata"), sim.peek("qb.rdata")
        got.append((tuple(qa), tuple(qb)) if lanes > 1 else (qa, qb))
    assert got == _tdp_model(list(init), rows, lanes)  # type: ignore[arg-type]


def test_write_data_is_checked_against_the_word_type() -> None:
    Ram = single_port_ram(UInt[4], 4)
    port, data = ram_port(UInt[4], 4)("port"), read_data(UInt[4], 4)("data")
    sim = Simulator(Network("ram", [Ram(port=port, data=data)]))
    with pytest.raises(SignalValueError, match=r"port\.wdata: cannot store 16 .*0\.\.15"):
        sim.poke("port.wdata", 16)


def test_initial_contents_must_fit() -> None:
    with pytest.raises(DeclarationError, match=r"register rom_u_int4x4\.mem: .*element \[2\]"):
        rom(UInt[4], 4)(mem=[1, 2, 300, 4])
    with pytest.raises(DeclarationError, match="has 3 elements, expected 4"):
        rom(UInt[4], 4)(mem=[1, 2, 3])


def test_depth_must_be_positive() -> None:
    with pytest.raises(DeclarationError, match="depth must be an int >= 1, not 0"):
        rom(UInt[4], 0)


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_wide_dual_port_ram_reads_and_writes_whole_words(backend: str) -> None:
    word, depth, lanes = UInt[16], 8, 4
    wr, rd = write_port(word, depth, lanes)("wr"), read_port(word, depth, lanes)("rd")
    q = read_data(word, depth, lanes)("q")
    ram = dual_port_ram(word, depth, lanes)(write=wr, read=rd, data=q, mem=np.arange(32))
    sim = Simulator(Network("wide", [ram], inputs=[wr, rd]), backend=backend)
    sim.poke("rd.addr", 2)
    sim.step()
    assert tuple(sim.peek("q.rdata")) == (8, 9, 10, 11)
    sim.apply({"wr.we": True, "wr.waddr": 2, "wr.wdata": [1, 2, 3, 4]})
    sim.step()
    assert tuple(sim.peek("q.rdata")) == (8, 9, 10, 11)  # read-first
    sim.poke("wr.we", False)
    sim.step()
    assert tuple(sim.peek("q.rdata")) == (1, 2, 3, 4)


def test_wide_memory_parameters() -> None:
    assert dual_port_ram(UInt[8], 4, lanes=2).__name__ == "DualRamUInt8x4x2"
    assert true_dual_port_ram(UInt[8], 4).__name__ == "TdpRamUInt8x4"
    assert set(true_dual_port_ram(UInt[8], 4).ports()) == {"a", "b", "data_a", "data_b"}
    assert read_data(UInt[8], 4, 2).signals()["rdata"].type.length == 2
    with pytest.raises(DeclarationError, match="lanes must be an int >= 1"):
        rom(UInt[8], 4, lanes=0)
    with pytest.raises(DeclarationError, match="cannot be an Array"):
        from sme import Array
        rom(Array[UInt[8], 2], 4)


def test_bool_memory_takes_numpy_booleans() -> None:
    addr, data = read_port(Bool, 4)("addr"), read_data(Bool, 4)("data")
    mem = np.array([False, True, True, False])
    sim = Simulator(Network("b", [rom(Bool, 4)(read=addr, data=data, mem=mem)]))
    sim.poke("addr.addr", 1)
    sim.step()
    assert sim.peek("data.rdata") is True


def test_storage_names_array_registers_only() -> None:
    class Buf(Process, storage=("buf",)):
        buf: Array[UInt[4], 8] = [0] * 8
        count: UInt[4] = 0

        def on_tick(self) -> None:
            self.buf[self.count % 8] = self.count
            self.count = (self.count + 1) % 16

    assert {r.name: r.storage for r in lower_process(Buf).registers} == {
        "buf": True, "count": False}
    assert {r.name for r in lower_process(rom(UInt[8], 16)).registers if r.storage} == {"mem"}
    for bad in ("count", "nothing"):
        with pytest.raises(DeclarationError, match=rf"storage='{bad}': .* has no Array "
                           rf"register '{bad}'"):
            type("Bad", (Process,), {"__annotations__": {"count": UInt[4]}, "count": 0,
                                     "on_tick": lambda self: None}, storage=(bad,))


@pytest.mark.parametrize(("word", "dtype"), [
    (UInt[8], "uint8"), (Int[12], "int16"), (UInt[16], "uint16"), (UInt[31], "uint32"),
    (Int[8], "int8"), (Int[32], "int32"), (Bool, "int8"), (UInt[40], None)])
def test_big_memories_hold_their_words_in_narrow_arrays(word: object, dtype: str | None
                                                        ) -> None:
    """A memory of MEMORY_MIN words or more is an array of its own in the narrowest dtype,
    unsigned for words with no negative value (int64 words in the state array otherwise),
    read as int64 by the generated code: the extremes of the word's range
    survive writes and reads at both ends of the address range, as in the model."""
    from sme.compiled.layout import MEMORY_MIN

    depth = MEMORY_MIN
    rt: Any = getattr(word, "raw_type", word)
    lo, hi = (0, 1) if word is Bool else (rt.lo, rt.hi)
    rng = np.random.default_rng(depth)

    def value() -> object:
        v = int(rng.choice([lo, hi, int(rng.integers(lo, hi + 1))]))
        return bool(v) if word is Bool else v

    init = [value() for _ in range(depth)]
    rows = []
    for _ in range(400):
        row: dict[str, object] = {}
        for port in ("pa", "pb"):
            row[f"{port}.addr"] = int(rng.choice([0, depth - 1, int(rng.integers(0, depth))]))
            row[f"{port}.we"] = bool(rng.random() < 0.5)
            row[f"{port}.wdata"] = value()
        rows.append(row)
    sim = Simulator(_tdp(word, depth, mem=init), backend="compiled", trace=False)
    memories = sim.session.M  # type: ignore[attr-defined]
    assert [m.dtype.name for m in memories] == ([dtype] if dtype else [])
    got = []
    for row in rows:
        sim.apply(row)
        sim.step()
        got.append((sim.peek("qa.rdata"), sim.peek("qb.rdata")))
    assert got == _tdp_model(list(init), rows)  # type: ignore[arg-type]
    stim = {name: np.array([row[name] for row in rows]) for name in rows[0]}
    batch = Simulator(_tdp(word, depth, mem=init), backend="compiled").run_batch(stim, len(rows))
    assert [tuple(x) for x in zip(batch["qa.rdata"], batch["qb.rdata"], strict=True)] == got
