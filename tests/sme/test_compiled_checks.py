"""The compiled backend's run-time checks on arrays, word at a time: an element store that
does not fit names its element, an array stimulus value out of range stops the batch
before its tick, and both raise what the interpreter raises."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from sme import Array, BackendError, Bool, In, Network, Out, Process, SignalValueError, Simulator
from sme.bus import Bus
from sme.types import Int, UInt

LANES = 8


class Word(Bus):
    data: Array[UInt[4], LANES] = [0] * LANES
    valid: Bool = False


class Sum(Bus):
    data: Array[UInt[4], LANES] = [0] * LANES


class AddLane(Process):
    """Adds each lane's index to it: lane j overflows when data[j] + j > 15."""

    inp: In[Word]
    out: Out[Sum]

    def on_tick(self) -> None:
        if self.inp.valid:
            for j in range(LANES):
                self.out.data[j] = self.inp.data[j] + j


def _net() -> Network:
    word = Word("word")
    return Network("lanes", [AddLane(inp=word, out=Sum("sum"))], inputs=[word])


def _stimulus(ticks: int) -> dict[str, np.ndarray]:
    data = np.tile(np.arange(LANES, dtype=np.int64) % 8, (ticks, 1))
    return {"word.data": data, "word.valid": np.ones(ticks, dtype=bool)}


def _error(backend: str, stim: dict[str, np.ndarray], ticks: int) -> BaseException:
    sim = Simulator(_net(), backend=backend, trace=False)
    with pytest.raises((SignalValueError, BackendError, ValueError)) as info:
        sim.run_batch(stim, ticks)
    return info.value


@pytest.mark.parametrize("lane", [1, 5, LANES - 1])
def test_element_store_overflow_names_its_element(lane: int) -> None:
    stim = _stimulus(6)
    stim["word.data"][4, lane] = 16 - lane  # lane + its index is 16 at tick 4
    want = _error("interp", stim, 6)
    got = _error("compiled", stim, 6)
    assert type(got) is type(want) and str(got) == str(want)
    assert f"sum.data[{lane}]" in str(got) and "tick 4" in str(got)


# unsigned words are checked by OR-ing the lanes: values whose bits the OR could hide
@pytest.mark.parametrize("value", [-1, 16, 31, 17, -(1 << 40), 1 << 62])
def test_array_stimulus_out_of_range_stops_before_its_tick(value: int) -> None:
    stim = _stimulus(6)
    stim["word.data"][3, 2] = value
    want = _error("interp", stim, 6)
    sim = Simulator(_net(), backend="compiled", trace=False)
    with pytest.raises(type(want)) as info:
        sim.run_batch(stim, 6)
    assert str(info.value) == str(want)
    assert sim.tick == 3  # the three good ticks ran, the bad one did not


def test_word_checks_pass_values_in_range_unchanged() -> None:
    stim = _stimulus(5)
    stim["word.data"][:, 0] = 15  # the top of the range, lane 0 adds nothing
    outs = [Simulator(_net(), backend=b, trace=False).run_batch(stim, 5, outputs=["sum.data"])
            for b in ("interp", "compiled")]
    assert np.array_equal(outs[0]["sum.data"], outs[1]["sum.data"])
    assert outs[1]["sum.data"][-1, 0] == 15


class Addr(Bus):
    base: Int[8] = 0
    valid: Bool = False


class Window(Bus):
    data: Array[UInt[4], 4] = [0] * 4


class ReadWindow(Process):
    """Reads four consecutive elements of a memory from a base the bus gives (a local:
    the loop checks its indices once, before the loop, when it can)."""

    inp: In[Addr]
    out: Out[Window]
    mem: Array[UInt[4], 10] = list(range(10))

    def on_tick(self) -> None:
        if self.inp.valid:
            base = self.inp.base
            for j in range(4):
                self.out.data[j] = self.mem[base + j]


def _window_net() -> Network:
    addr = Addr("addr")
    return Network("window", [ReadWindow(inp=addr, out=Window("win"))], inputs=[addr])


def test_a_window_read_is_checked_once_per_loop() -> None:
    from sme.compiled.codegen import generate

    source = generate(_window_net()).source
    assert "+ 0 >= 0 and" in source and "+ 3 < 10:" in source  # the loop's first and last


def _window(backend: str, bases: list[int]) -> tuple[Any, BaseException | None]:
    sim = Simulator(_window_net(), backend=backend, trace=False)
    stim = {"addr.base": np.array(bases), "addr.valid": np.ones(len(bases), dtype=bool)}
    try:
        return sim.run_batch(stim, len(bases), outputs=["win.data"])["win.data"], None
    except IndexError as exc:
        return None, exc


@pytest.mark.parametrize("bases", [
    [0, 6, 3],            # every window inside
    [3, -4, 2],           # SME arrays have no negative indexes (no count from the end)
    [0, 7, 1],            # the second window runs off the end at its fourth element
    [2, -11, 0],          # and off the start
])
def test_indices_checked_before_the_loop_behave_as_element_wise(bases: list[int]) -> None:
    want, want_exc = _window("interp", bases)
    got, got_exc = _window("compiled", bases)
    if want_exc is None:
        assert got_exc is None and np.array_equal(got, want)
    else:
        assert got_exc is not None and str(got_exc) == str(want_exc)


def test_window_reads_index_unsigned() -> None:
    """Every index the code has proven or checked in range is unsigned (numba then skips
    its negative-index wrap-around); the negative bases above still count from the end."""
    from sme.compiled.codegen import generate

    source = generate(_window_net()).source
    assert "[np.uint64(" in source
    # the checked version, after _ix normalised it
    assert re.search(r"\[np\.uint64\(\d+ \+ _ix\(", source)


class Pair(Bus):
    a: UInt[4] = 0
    b: UInt[4] = 0


class Clamped(Bus):
    diff: UInt[4] = 0
    low: UInt[3] = 0
    high: Int[5] = 0


class MinMax(Process):
    """``max``/``min`` whose operands' ranges overlap the result's: no check needed."""

    inp: In[Pair]
    out: Out[Clamped]

    def on_tick(self) -> None:
        self.out.diff = max(self.inp.a - self.inp.b, 0)
        self.out.low = min(self.inp.a, 7, self.inp.b)
        self.out.high = max(self.inp.b - 15, self.inp.a - self.inp.b)


def _minmax_net() -> Network:
    pair = Pair("pair")
    return Network("minmax", [MinMax(inp=pair, out=Clamped("clamped"))], inputs=[pair])


def test_min_max_need_no_range_check() -> None:
    from sme.compiled.codegen import generate

    source = generate(_minmax_net()).source
    body = source[source.index("# process"):]
    assert "max(" in body and "min(" in body and "_cv(" not in body.split("\n\n")[0]


def test_min_max_equal_the_interpreter() -> None:
    a, b = np.meshgrid(np.arange(16), np.arange(16))
    stim = {"pair.a": a.ravel(), "pair.b": b.ravel()}
    outs = ["clamped.diff", "clamped.low", "clamped.high"]
    want = Simulator(_minmax_net(), trace=False).run_batch(stim, 256, outputs=outs)
    got = Simulator(_minmax_net(), backend="compiled", trace=False).run_batch(stim, 256,
                                                                            outputs=outs)
    for name in outs:
        assert np.array_equal(got[name], want[name]), name
    assert np.array_equal(want["clamped.diff"], np.maximum(a - b, 0).ravel())
    assert np.array_equal(want["clamped.low"], np.minimum(np.minimum(a, 7), b).ravel())


def test_batch_calls_with_other_outputs_and_dtypes_record_what_each_asks() -> None:
    """A session keeps each batch call's recording plan: calls alternating between
    outputs and dtypes still get exactly the columns and dtypes they ask for."""
    a, b = np.meshgrid(np.arange(16), np.arange(16))
    stim = {"pair.a": a.ravel(), "pair.b": b.ravel()}
    want = Simulator(_minmax_net(), trace=False).run_batch(
        stim, 256, outputs=["clamped.diff", "clamped.low", "clamped.high"])
    sim = Simulator(_minmax_net(), backend="compiled", trace=False)
    calls: list[tuple[list[str] | None, dict[str, Any] | None]] = [
        (["clamped.diff"], None), (["clamped.low", "clamped.diff"], {"clamped.low": np.uint8}),
        (["clamped.diff"], None), (None, None), (["clamped.low", "clamped.diff"], None)]
    for outputs, dtypes in calls * 2:
        got = sim.run_batch(stim, 256, outputs=outputs, dtypes=dtypes)
        assert list(got) == (outputs or ["clamped.diff", "clamped.low", "clamped.high"])
        for name, values in got.items():
            assert np.array_equal(values, want[name]), name
            assert values.dtype == np.dtype((dtypes or {}).get(name, np.int64)), name
    with pytest.raises(BackendError, match=r"dtypes names 'pair\.a'"):
        sim.run_batch(stim, 256, outputs=["clamped.diff"], dtypes={"pair.a": np.uint8})


class _Ask(Bus):
    a: UInt[8] = 0
    arr: Array[UInt[8], 7] = [0] * 7


class _Got(Bus):
    y: UInt[8] = 0


class _Reader(Process):
    inp: In[_Ask]
    out: Out[_Got]

    def on_tick(self) -> None:
        self.out.y = self.inp.arr[self.inp.a % 8]


def test_an_input_arrays_index_error_is_the_interpreters() -> None:
    """An index out of range of a network input's array (a tuple in the interpreter) is
    one error naming array, index, bounds, reader, line and tick in both backends, step
    and batch."""
    def error(backend: str, batch: bool) -> str:
        inp, out = _Ask("inp"), _Got("out")
        sim = Simulator(Network("reads", [_Reader(name="p", inp=inp, out=out)], inputs=[inp]),
                        backend=backend, trace=False)
        with pytest.raises(IndexError) as info:
            if batch:
                sim.run_batch({"inp.a": np.array([0, 7]), "inp.arr": np.ones((2, 7), np.int64)}, 2)
            else:
                sim.run(stimulus=[{"inp.a": 0, "inp.arr": [1] * 7}, {"inp.a": 7, "inp.arr": [1] * 7}])
        return str(info.value)

    for batch in (False, True):
        assert error("compiled", batch) == error("interp", batch)
        assert re.match(r"self\.inp\.arr\[7\]: index out of range 0\.\.6 \(read by _Reader 'p' "
                        r"\(created at .*\) at .*test_compiled_checks\.py:\d+\) \(tick 1\)$",
                        error("compiled", batch))
