"""The compiled loop takes an array input of narrow numbers (a link word of 20-bit pixel
counts) as 32-bit words (``sme.compiled.layout.stimulus_dtype``): such words pass without
a copy, any other integer stimulus gives the interpreter's outputs, and a value that 32
bits do not hold is refused with the interpreter's error at its tick — never cast into
the value it wraps to."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sme import Array, Bus, In, Int, Network, Out, Process, Simulator, UInt
from sme.compiled.batch_io import pack_stimulus
from sme.compiled.layout import stimulus_dtype
from sme.errors import SignalValueError
from sme.types import ArrayType

TICKS = 20


class Words(Bus):
    data: Array[UInt[20], 4] = [0] * 4
    signed: Array[Int[8], 4] = [0] * 4


class Total(Bus):
    total: UInt[24] = 0
    low: Int[16] = 0


class SumWords(Process):
    inp: In[Words]
    out: Out[Total]

    def on_tick(self) -> None:
        total: UInt[24] = 0
        low: Int[16] = 0
        for k in range(4):
            total = total + self.inp.data[k]
            low = low + self.inp.signed[k]
        self.out.total = total
        self.out.low = low


def words_net() -> Network:
    inp, out = Words("words"), Total("total")
    return Network("words", [SumWords(name="s", inp=inp, out=out)], inputs=[inp])


def words(dtype: Any = np.int64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"words.data": rng.integers(0, 1 << 20, (TICKS, 4)).astype(dtype),
            "words.signed": rng.integers(-128, 128, (TICKS, 4)).astype(dtype)}


def test_the_loop_takes_arrays_of_narrow_numbers_as_32_bit_words() -> None:
    types = {s.name: s.type for s in Words.signals().values()}
    assert isinstance(types["data"], ArrayType)
    assert stimulus_dtype(types["data"]) == np.uint32
    assert stimulus_dtype(types["signed"]) == np.int32
    assert stimulus_dtype(Array[UInt[32], 2]) == np.uint32
    assert stimulus_dtype(Array[UInt[33], 2]) == np.int64       # 32 bits do not hold it
    assert stimulus_dtype(Array[Int[33], 2]) == np.int64
    assert stimulus_dtype(UInt[8]) == np.int64                  # scalars: one value a tick
    link = words(np.uint32)["words.data"]
    assert pack_stimulus(types["data"], link) is link            # no copy


@pytest.mark.parametrize("dtype", [np.int64, np.uint32, np.int32, np.uint64, object])
def test_every_integer_dtype_gives_the_interpreters_outputs(dtype: Any) -> None:
    ref = Simulator(words_net(), trace=False).run_batch(words(), TICKS)
    got = Simulator(words_net(), backend="compiled", trace=False).run_batch(
        {k: v if k == "words.signed" and np.dtype(dtype).kind == "u" else v.astype(dtype)
         for k, v in words().items()}, TICKS)
    assert int(ref["total.total"].max()) > 1 << 20          # words near 20 bits were added
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)


@pytest.mark.parametrize(("signal", "value", "lane"), [
    ("words.data", 2**32 + 7, 2),     # wraps to 7 in 32 bits, which fits UInt[20]
    ("words.data", -(2**32) + 7, 2),
    ("words.data", -1, 2),            # 4294967295 as uint32: out of range in the loop too
    ("words.data", 1 << 20, 2),       # fits 32 bits, not UInt[20]: caught in the loop
    ("words.data", 1 << 20, 0),       # (the loop's OR of the lanes starts at lane 0)
    ("words.data", 1 << 20, 3),       # (its last lane)
    ("words.signed", 2**32 + 3, 2),   # wraps to 3 in int32, which fits Int[8]
])
def test_a_word_beyond_its_type_is_out_of_range_in_both_backends(signal: str, value: int,
                                                                  lane: int) -> None:
    errors = []
    for backend in ("interp", "compiled"):
        stim = words()
        stim[signal][5, lane] = value
        sim = Simulator(words_net(), backend=backend, trace=False)
        with pytest.raises(SignalValueError) as info:
            sim.run_batch(stim, TICKS)
        errors.append((str(info.value), sim.tick))
    assert errors[0] == errors[1]
    message, ticks = errors[0]
    assert message.startswith(f"{signal}: cannot store [") and ticks == 5
    assert f"(element [{lane}]: {value} is out of range)" in message
