"""Batch outputs: every recorded signal (scalars and arrays side by side) comes out of the
compiled backend as from the interpreter, and ``dtypes`` narrows chosen results."""

from __future__ import annotations

import numpy as np
import pytest

from sme import Array, Bool, Bus, In, Network, Out, Process, Simulator, UFix, UInt
from sme.errors import BackendError

LANES = 5


class Words(Bus):
    valid: Bool = False
    word: Array[UInt[12], LANES] = [0] * LANES


class Sums(Bus):
    total: UInt[16] = 0
    gain: UFix[2, 6] = UFix[2, 6](0)
    copy: Array[UInt[12], LANES] = [0] * LANES
    odd: Array[Bool, LANES] = [False] * LANES


class Sum(Process):
    inp: In[Words]
    out: Out[Sums]

    def on_tick(self) -> None:
        total: UInt[16] = 0
        for j in range(LANES):
            total = total + self.inp.word[j]
            self.out.copy[j] = self.inp.word[LANES - 1 - j]
            self.out.odd[j] = (self.inp.word[j] & 1) == 1
        self.out.total = total
        self.out.gain = UFix[2, 6](1.5) if self.inp.valid else UFix[2, 6](0.25)


def _net() -> Network:
    return Network("sums", [Sum(inp=Words("w"), out=Sums("s"))])


def _stimulus(ticks: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(ticks)
    return {"w.valid": rng.random(ticks) < 0.5,
            "w.word": rng.integers(0, 4096, (ticks, LANES))}


def test_compiled_outputs_equal_the_interpreters() -> None:
    stim = _stimulus(300)
    want = Simulator(_net(), backend="interp").run_batch(stim, 300)
    got = Simulator(_net(), backend="compiled").run_batch(stim, 300)
    assert set(got) == set(want) == {"s.total", "s.gain", "s.copy", "s.odd"}
    for name, values in want.items():
        assert got[name].dtype == values.dtype and np.array_equal(got[name], values), name
    assert np.array_equal(got["s.copy"], stim["w.word"][:, ::-1])
    assert got["s.copy"].flags.c_contiguous and got["s.odd"].shape == (300, LANES)


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_dtypes_narrow_the_results_they_name(backend: str) -> None:
    stim = _stimulus(200)
    plain = Simulator(_net(), backend=backend).run_batch(stim, 200)
    sim = Simulator(_net(), backend=backend)
    narrow = sim.run_batch(stim, 100, dtypes={"s.copy": np.uint16, "s.total": "int32",
                                              "s.gain": np.uint8})
    rest = {name: values[100:] for name, values in stim.items()}
    narrow2 = sim.run_batch(rest, 100, dtypes={"s.copy": np.uint16, "s.total": "int32",
                                               "s.gain": np.uint8})  # reused buffers
    assert [narrow[n].dtype.name for n in ("s.copy", "s.total", "s.gain")] == [
        "uint16", "int32", "uint8"]
    assert narrow["s.odd"].dtype == np.bool_
    for name in plain:
        assert np.array_equal(np.concatenate([narrow[name], narrow2[name]]), plain[name])
    assert not np.shares_memory(narrow["s.copy"], narrow2["s.copy"])


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_uint16_results_side_by_side(backend: str) -> None:
    """A scalar and an array asked for as uint16 (the compiled loop records them straight
    into a uint16 buffer, side by side), a number left int64 and Bools between them."""
    stim = _stimulus(150)
    plain = Simulator(_net(), backend=backend).run_batch(stim, 150)
    sim = Simulator(_net(), backend=backend)
    asked = {"s.total": np.uint16, "s.copy": np.uint16}
    first = sim.run_batch({n: v[:70] for n, v in stim.items()}, 70, dtypes=asked)
    second = sim.run_batch({n: v[70:] for n, v in stim.items()}, 80, dtypes=asked)
    for name, values in plain.items():
        got = np.concatenate([first[name], second[name]])
        assert got.dtype == (np.uint16 if name in asked else values.dtype), name
        assert np.array_equal(got, values), name
    assert first["s.total"].max() > 255  # values that need the high byte
    assert not np.shares_memory(first["s.total"], second["s.total"])


@pytest.mark.parametrize(("dtypes", "message"), [
    ({"s.nothing": np.uint16}, r"dtypes names 's\.nothing', not one of the outputs"),
    ({"s.total": np.uint8}, r"dtypes\['s\.total'\] = uint8 cannot hold every value"),
    ({"s.copy": np.int8}, r"dtypes\['s\.copy'\] = int8 cannot hold"),
    ({"s.gain": np.float32}, r"dtypes\['s\.gain'\] = float32 cannot hold"),
    ({"s.odd": np.uint8}, r"dtypes\['s\.odd'\] = uint8 cannot hold"),
    ({"s.total": "no such dtype"}, r"dtypes\['s\.total'\]: data type"),
])
@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_bad_dtypes(backend: str, dtypes: dict[str, object], message: str) -> None:
    sim = Simulator(_net(), backend=backend)
    with pytest.raises(BackendError, match=message):
        sim.run_batch(_stimulus(10), 10, dtypes=dtypes)  # type: ignore[arg-type]
    assert sim.tick == 0  # checked before any tick runs


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def test_a_dropped_uint16_result_lends_its_memory_to_the_next_run() -> None:
    """The one uint16 result is recorded in memory of an earlier run's result once nothing
    uses that any more (no page faults for fresh memory each run), and never while the
    result, or any view of it, is alive: what a caller holds keeps its values."""
    stim = _stimulus(120)
    sim = Simulator(_net(), backend="compiled")
    asked = {"s.copy": np.uint16}
    want = Simulator(_net(), backend="interp").run_batch(stim, 120)["s.copy"]
    first = sim.run_batch({n: v[:60] for n, v in stim.items()}, 60, dtypes=asked)["s.copy"]
    where = _address(first)
    tail = first[50:, 1:3]  # a view alone keeps the memory in use
    del first
    second = sim.run_batch({n: v[60:] for n, v in stim.items()}, 60, dtypes=asked)["s.copy"]
    assert not np.shares_memory(second, tail) and _address(second) != where
    assert np.array_equal(tail, want[50:60, 1:3])
    assert np.array_equal(second, want[60:])
    del tail
    interloper = np.empty_like(second)  # (would take freed memory of that size first)
    third = sim.run_batch({n: v[:60] for n, v in stim.items()}, 60, dtypes=asked)["s.copy"]
    assert _address(third) == where  # the first run's memory, free again
    assert np.array_equal(second, want[60:])  # held: not overwritten by the third run
    smaller = sim.run_batch({n: v[:10] for n, v in stim.items()}, 10, dtypes=asked)["s.copy"]
    assert smaller.shape == (10, LANES) and not np.shares_memory(smaller, third)
    assert not np.shares_memory(interloper, third)


def test_repeated_batches_follow_their_arguments_as_they_change() -> None:
    """The compiled session keeps the last call's plan and each set of driven inputs'
    flags: a batch that drives other inputs (an undriven one keeps its value), or whose
    ``outputs`` list or ``dtypes`` dict was changed in place since the last call, still
    comes out as the interpreter's."""
    sims = {b: Simulator(_net(), backend=b) for b in ("interp", "compiled")}
    outputs = ["s.total", "s.gain"]
    dtypes: dict[str, object] = {}
    stim = _stimulus(60)  # (in the dtypes the compiled loop takes as they are)
    stim["w.word"] = stim["w.word"].astype(np.uint32)
    word = {"w.word": stim["w.word"]}
    valid = {"w.valid": stim["w.valid"]}
    steps = [(stim, 60), (stim, 60), (word, 40), (word, 40), (valid, 30), (stim, 20),
             (valid, 30)]
    for i, (s, ticks) in enumerate(steps):
        if i == 3:
            outputs.append("s.copy")  # (the same list object, changed in place)
        if i == 5:
            dtypes["s.total"] = np.uint16
        got = {b: sim.run_batch(s, ticks, outputs=outputs, dtypes=dtypes)  # type: ignore[arg-type]
               for b, sim in sims.items()}
        assert set(got["compiled"]) == set(got["interp"]) == set(outputs), i
        for name, values in got["interp"].items():
            assert got["compiled"][name].dtype == values.dtype, (i, name)
            assert np.array_equal(got["compiled"][name], values), (i, name)
