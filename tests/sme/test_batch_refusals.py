"""Batch stimulus the backends cannot take as given: the interpreter and the compiled
backend refuse it with the same error — the step mode's ``SignalValueError`` for a value
that does not fit its signal, a ``BackendError`` naming input and tick for a stimulus that
is no list of raw integers — never cast, wrapped, truncated or unmasked into a value the
user did not give."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sme import Array, Bool, Bus, In, Int, Network, Out, Process, Simulator
from sme.errors import BackendError, SignalValueError
from sme.examples import pipeline

TICKS = 20
BACKENDS = ("interp", "compiled")


def stim() -> dict[str, Any]:
    """In-range values for ``samples.x`` (Int[16]) and a valid flag every tick."""
    return {"samples.x": np.arange(TICKS, dtype=np.int64) * 100,
            "samples.x_valid": np.ones(TICKS, bool)}


def failure(backend: str, stimulus: dict[str, Any], make: Callable[[], Network] = pipeline.build,
            **kw: Any) -> tuple[type[BaseException], str, int]:
    """What ``run_batch`` raised: the error's type and message, and the ticks run by then."""
    sim = Simulator(make(), backend=backend, trace=False)
    with pytest.raises(Exception) as info:  # the comparison is of what each backend raises
        sim.run_batch(stimulus, TICKS, **kw)
    return type(info.value), str(info.value), sim.tick


def same_failure(stimulus: dict[str, Any], make: Callable[[], Network] = pipeline.build,
                 **kw: Any) -> tuple[type[BaseException], str, int]:
    got = [failure(b, stimulus, make, **kw) for b in BACKENDS]
    assert got[0] == got[1]
    return got[0]


@pytest.mark.parametrize("chunk", [None, 4])
def test_a_uint64_stimulus_beyond_int64_is_out_of_range_not_wrapped(chunk: int | None) -> None:
    """2**64 - 1 as uint64 was cast to int64 -1 by the compiled backend, which fits Int[16]:
    the run went on with a value the user never gave."""
    x = stim()["samples.x"].astype(np.uint64)
    x[5] = np.uint64(2**64 - 1)
    values: dict[str, Any] = {**stim(), "samples.x": x}
    if chunk is not None:  # a function of the tick index: a chunked run
        values["samples.x"] = lambda i: x[i]
    kind, message, ticks = same_failure(values, **({"chunk": chunk} if chunk else {}))
    assert kind is SignalValueError
    assert message.startswith("samples.x: cannot store 18446744073709551615 "
                              "(18446744073709551615 is out of range); Int[16] allows")
    assert ticks == 5  # the ticks before it ran, as a step-by-step run would


def test_an_object_stimulus_with_an_int_beyond_int64_is_out_of_range() -> None:
    """A Python int no int64 holds (object arrays pass any size for wide signals): the
    compiled backend raised a bare ``OverflowError`` naming no signal."""
    x = stim()["samples.x"].astype(object)
    x[5] = 2**70
    kind, message, ticks = same_failure({**stim(), "samples.x": x})
    assert kind is SignalValueError and f"cannot store {2**70} ({2**70} is out of range)" in message
    assert ticks == 5


@pytest.mark.parametrize("value", [2, -1, 2.0])
def test_a_batch_bool_that_is_not_0_or_1_is_refused_as_in_step_mode(value: float) -> None:
    """``arr != 0`` took 2 and -1 as True in batches; a step refuses them (batch values
    are raw integers: 2.0 is 2)."""
    step_errors = set()
    for backend in BACKENDS:
        with pytest.raises(SignalValueError, match="is not a Bool") as info:
            Simulator(pipeline.build(), backend=backend, trace=False).run(
                stimulus=[{"samples.x": 0, "samples.x_valid": int(value)}])
        step_errors.add(str(info.value).split(" (tick")[0])
    valid = np.ones(TICKS, dtype=type(value))
    valid[4] = value
    kind, message, ticks = same_failure({**stim(), "samples.x_valid": valid})
    assert kind is SignalValueError and step_errors == {message}
    assert ticks == 4


class Flags(Bus):
    on: Array[Bool, 3] = [False] * 3
    n: Array[Int[8], 3] = [0] * 3


class Count(Bus):
    total: Int[16] = 0


class CountFlags(Process):
    inp: In[Flags]
    out: Out[Count]

    def on_tick(self) -> None:
        total: Int[16] = 0
        for k in range(3):
            if self.inp.on[k]:
                total = total + self.inp.n[k]
        self.out.total = total


def flags_net() -> Network:
    inp, out = Flags("flags"), Count("count")
    return Network("flags", [CountFlags(name="c", inp=inp, out=out)], inputs=[inp])


def test_an_array_of_bools_refuses_2_and_an_array_input_takes_its_shape_only() -> None:
    on = np.ones((TICKS, 3), np.int64)
    n = np.ones((TICKS, 3), np.int64)
    good = {b: Simulator(flags_net(), backend=b, trace=False).run_batch(
        {"flags.on": on, "flags.n": n}, TICKS)["count.total"].tolist() for b in BACKENDS}
    assert good["interp"] == good["compiled"] == [3] * TICKS
    on[6, 1] = 2
    kind, message, ticks = same_failure({"flags.on": on, "flags.n": n}, flags_net)
    assert kind is SignalValueError and "is not a Bool" in message and ticks == 6
    kind, message, _ = same_failure({"flags.on": on[:, :2], "flags.n": n}, flags_net)
    assert (kind, message) == (
        BackendError, "run_batch: stimulus 'flags.on' has shape (20, 2) (shape (2,) per tick); "
        "input flags.on (Array[Bool, 3]) takes shape (ticks, 3): 3 values per tick")


def test_a_two_dimensional_stimulus_for_a_scalar_input_names_the_shape_it_takes() -> None:
    """The compiled backend raised numba's "No matching definition for argument type(s)
    ..." naming no input."""
    x = np.stack([stim()["samples.x"]] * 2, axis=1)
    kind, message, ticks = same_failure({**stim(), "samples.x": x})
    assert (kind, message, ticks) == (
        BackendError, "run_batch: stimulus 'samples.x' has shape (20, 2) (shape (2,) per "
        "tick); input samples.x (Int[16]) takes shape (ticks,): one value per tick", 0)


@pytest.mark.parametrize("form", ["array", "function", "iterator"])
def test_a_masked_sample_is_refused_not_driven_with_the_data_under_the_mask(form: str) -> None:
    """A masked array (numpy's and pandas' missing samples): the compiled backend drove
    the hidden data without a word, the interpreter failed with numpy's ``MaskError``."""
    hidden = stim()["samples.x"].copy()
    hidden[13] = 30000
    x = np.ma.masked_array(hidden, mask=np.arange(TICKS) == 13)
    got = []
    for backend in BACKENDS:
        given = {"array": x, "function": lambda i: x[i],
                 "iterator": iter([x[:10], x[10:]])}[form]
        got.append(failure(backend, {**stim(), "samples.x": given},
                           **({} if form == "array" else {"chunk": 4})))
    assert got[0] == got[1]
    kind, message, ticks = got[0]
    assert kind is BackendError
    assert message.startswith("run_batch: stimulus 'samples.x' is masked at tick 13: a "
                              "missing sample has no value to drive")
    # chunks of 4 ticks: the function's chunk of tick 13 comes after 12 ticks; the
    # iterator's array holding it is read for ticks 8..11
    assert ticks == {"array": 0, "function": 12, "iterator": 8}[form]
    unmasked = np.ma.masked_array(hidden, mask=np.zeros(TICKS, bool))  # nothing missing
    for backend in BACKENDS:
        got = Simulator(pipeline.build(), backend=backend, trace=False).run_batch(
            {**stim(), "samples.x": unmasked}, TICKS)
        want = Simulator(pipeline.build(), backend=backend, trace=False).run_batch(
            {**stim(), "samples.x": hidden}, TICKS)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


def test_a_chunked_function_error_names_the_tick_the_function_was_given() -> None:
    """On a session that already ran 20 ticks the function is called with i = 33 for the
    bad value; the error said tick 13 (the run's 13th)."""
    x = np.zeros(2 * TICKS)
    x[33] = 0.5
    for backend in BACKENDS:
        sim = Simulator(pipeline.build(), backend=backend, trace=False)
        sim.run_batch(stim(), TICKS)
        with pytest.raises(BackendError, match=r"holds 0\.5 at tick 33: not a whole number"):
            sim.run_batch({"samples.x": lambda i: x[i],
                           "samples.x_valid": lambda i: np.ones(len(i), bool)}, TICKS, chunk=4)


def test_a_float16_stimulus_of_whole_numbers_runs_without_a_warning() -> None:
    """``np.abs(values) >= 2.0**63`` in float16 warned "overflow encountered in cast" on
    every run (an error under ``-W error``)."""
    x16 = stim()["samples.x"].astype(np.float16)
    for backend in BACKENDS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = Simulator(pipeline.build(), backend=backend, trace=False).run_batch(
                {**stim(), "samples.x": x16}, TICKS)
        want = Simulator(pipeline.build(), backend=backend, trace=False).run_batch(stim(), TICKS)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])
    x16[3] = np.float16(0.5)
    with pytest.raises(BackendError, match=r"holds 0\.5 at tick 3"):
        Simulator(pipeline.build(), backend="interp", trace=False).run_batch(
            {**stim(), "samples.x": x16}, TICKS)
