"""Copy loops of the compiled backend (``Layout.trip``): a loop that only stores array
elements — a word copied lane by lane, a whole array assigned, a wide memory read, the
stimulus and recording of an array signal — runs to a trip count the compiler cannot see,
so that it becomes vector code instead of a fully unrolled scalar sequence. These
networks have odd lane counts, loops starting past 0, narrowing copies that may fail and
a wide memory; every signal of every tick is compared with the interpreter, and a failing
element store raises what the interpreter raises."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sme import Array, Bool, Bus, In, Network, Out, Process, SignalValueError, Simulator, UInt
from sme.compiled.codegen import generate
from sme.memory import dual_port_ram, read_data, read_port, write_port

LANES = 5
DEPTH = 256  # DEPTH * LANES >= layout.MEMORY_MIN: the memory gets an array of its own

Ram = dual_port_ram(UInt[10], DEPTH, LANES)
WritePort = write_port(UInt[10], DEPTH, LANES)
ReadPort = read_port(UInt[10], DEPTH, LANES)
ReadData = read_data(UInt[10], DEPTH, LANES)


class Word(Bus):
    valid: Bool = False
    addr: UInt[8] = 0
    data: Array[UInt[10], LANES] = [0] * LANES


class Copies(Bus):
    narrow: Array[UInt[8], LANES] = [0] * LANES
    whole: Array[UInt[10], LANES] = [0] * LANES
    tail: Array[UInt[10], LANES] = [0] * LANES
    mem: Array[UInt[10], LANES] = [0] * LANES


class Copier(Process):
    """Copies its input word in every way a lane loop can: into a register (read back a
    tick later as a whole array), from lane 2 on, narrowed to 8 bits (in valid ticks: a
    lane above 255 fails), and writes it into the memory while reading another word."""

    inp: In[Word]
    ram: In[ReadData]  # type: ignore[valid-type]
    out: Out[Copies]
    wr: Out[WritePort]  # type: ignore[valid-type]
    rd: Out[ReadPort]  # type: ignore[valid-type]
    held: Array[UInt[10], LANES] = [0] * LANES

    def on_tick(self) -> None:
        self.out.whole = self.held
        for j in range(LANES):
            self.held[j] = self.inp.data[j]
        for j in range(2, LANES):
            self.out.tail[j] = self.inp.data[j]
        for j in range(LANES):
            self.out.mem[j] = self.ram.rdata[j]
        if self.inp.valid:
            for j in range(LANES):
                self.out.narrow[j] = self.inp.data[j]
        self.wr.we = self.inp.valid
        self.wr.waddr = self.inp.addr
        for j in range(LANES):
            self.wr.wdata[j] = self.inp.data[j]
        self.rd.addr = DEPTH - 1 - self.inp.addr


def _network() -> Network:
    word, copies = Word("word"), Copies("copies")
    wr, rd, q = WritePort("wr"), ReadPort("rd"), ReadData("q")
    return Network("copies", [
        Copier(name="copier", inp=word, ram=q, out=copies, wr=wr, rd=rd),
        Ram(name="ram", write=wr, read=rd, data=q,
            mem=np.arange(DEPTH * LANES) % 1024)], inputs=[word])


def _stimulus(ticks: int, seed: int, top: int = 256) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"word.valid": rng.random(ticks) < 0.7, "word.addr": rng.integers(0, DEPTH, ticks),
            "word.data": rng.integers(0, top, (ticks, LANES))}


def _rows(stim: dict[str, np.ndarray], ticks: int) -> list[dict[str, object]]:
    return [{"word.valid": bool(stim["word.valid"][t]), "word.addr": int(stim["word.addr"][t]),
             "word.data": [int(x) for x in stim["word.data"][t]]} for t in range(ticks)]


def test_copy_loops_run_to_an_opaque_trip_count() -> None:
    source = generate(_network()).source
    run = source[source.index("def run("):source.index("def reset(")]
    assert re.search(r"_len5 = S\[\d+\]", run)
    for loop in (r"range\(0, _len5, 1\)", r"range\(2, _len5, 1\)", r"range\(_len5\)"):
        assert re.search(loop, run), loop  # lane copies, from lane 2, whole arrays
    # the stimulus's range check ORs every lane from lane 0, the same vector loop as the
    # copy after it (from lane 1 it had remainder loops: 5 % of a P6M module's tick)
    assert re.search(r"_or = 0\n *for _k in range\(_len5\):", run)
    assert "range(1, _len5)" not in run
    assert "range(0, 5, 1)" not in run  # every lane loop of this network only copies


@pytest.mark.parametrize("backend", ["compiled", "compiled-batch"])
def test_copy_loops_equal_the_interpreter_every_tick(backend: str) -> None:
    ticks = 200
    stim = _stimulus(ticks, seed=3)
    ref = Simulator(_network())
    ref.run(stimulus=_rows(stim, ticks))
    assert ref.trace is not None
    names = ["copies.narrow", "copies.whole", "copies.tail", "copies.mem", "wr.wdata", "q.rdata"]
    if backend == "compiled":
        got = Simulator(_network(), backend="compiled")
        got.run(stimulus=_rows(stim, ticks))
        assert got.trace is not None and got.trace.names == ref.trace.names
        assert ref.trace.first_difference(got.trace) is None
        return
    batch = Simulator(_network(), backend="compiled", trace=False)
    out = batch.run_batch(stim, ticks, outputs=names)
    for name in names:  # row t of a batch is the trace's row t + 1 (row 0: reset)
        want = np.array(ref.trace.column(name)[1:])
        assert np.array_equal(out[name], want), name


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_a_narrowing_copy_fails_on_the_interpreters_element(backend: str) -> None:
    ticks = 40
    stim = _stimulus(ticks, seed=5)
    stim["word.valid"][:] = True
    stim["word.data"][17, 3] = 700  # fits the input word, not the 8-bit copy
    with pytest.raises(SignalValueError) as ref:
        Simulator(_network(), trace=False).run_batch(stim, ticks)
    ref_error = str(ref.value)
    assert "copies" in ref_error and "700" in ref_error
    with pytest.raises(SignalValueError) as got:
        Simulator(_network(), backend=backend, trace=False).run_batch(stim, ticks)
    assert str(got.value) == ref_error
