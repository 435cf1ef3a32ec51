"""Vectorised batch stimulus (``sme.batch``): functions of the tick index and iterators of
arrays give the same outputs as prebuilt arrays, in chunks, in every backend."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from sme import Simulator
from sme.errors import BackendError
from sme.examples import pipeline

TICKS = 1000


def arrays(ticks: int) -> dict[str, np.ndarray]:
    samples = [pipeline.sample(i) for i in range(ticks)]
    return {"samples.x": np.array([x for x, _ in samples]),
            "samples.x_valid": np.array([v for _, v in samples])}


def chunks(values: np.ndarray, sizes: tuple[int, ...]) -> Iterator[np.ndarray]:
    k = 0
    while k < len(values):
        for n in sizes:
            yield values[k:k + n]
            k += n


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_functions_and_iterators_equal_arrays(backend: str) -> None:
    ref = Simulator(pipeline.build(), backend=backend, trace=False).run_batch(
        arrays(TICKS), TICKS)
    assert int(ref["sum_out.sum_valid"].sum()) > 0
    stim = arrays(TICKS)
    for chunk in (7, 1000, 1 << 20):
        got = Simulator(pipeline.build(), backend=backend, trace=False).run_batch(
            {"samples.x": pipeline.sample_x, "samples.x_valid": chunks(stim["samples.x_valid"], (3, 50, 1))},
            TICKS, chunk=chunk)
        assert got.keys() == ref.keys()
        for name in ref:
            np.testing.assert_array_equal(got[name], ref[name], err_msg=f"{name} {chunk}")


def test_the_tick_index_continues_across_runs() -> None:
    sim = Simulator(pipeline.build(), backend="compiled", trace=False)
    seen: list[np.ndarray] = []

    def valid(i: np.ndarray) -> np.ndarray:
        seen.append(i.copy())
        return pipeline.sample_valid(i)

    first = sim.run_batch({"samples.x": pipeline.sample_x, "samples.x_valid": valid}, 300, chunk=128)
    second = sim.run_batch({"samples.x": pipeline.sample_x, "samples.x_valid": valid}, 700, chunk=128)
    assert [len(s) for s in seen] == [128, 128, 44, 128, 128, 128, 128, 128, 60]
    assert np.array_equal(np.concatenate(seen), np.arange(1000))
    ref = Simulator(pipeline.build(), backend="compiled", trace=False).run_batch(
        arrays(TICKS), TICKS)
    for name, arr in ref.items():
        np.testing.assert_array_equal(np.concatenate([first[name], second[name]]), arr)


def test_a_scalar_holds_for_every_tick() -> None:
    got = Simulator(pipeline.build(), backend="compiled", trace=False).run_batch(
        {"samples.x": lambda i: 5, "samples.x_valid": lambda i: True}, 64, chunk=10)
    ref = Simulator(pipeline.build(), backend="compiled", trace=False).run_batch(
        {"samples.x": np.full(64, 5), "samples.x_valid": np.ones(64, bool)}, 64)
    for name, arr in ref.items():
        np.testing.assert_array_equal(got[name], arr)


def test_bad_vectorised_stimulus() -> None:
    sim = Simulator(pipeline.build(), backend="compiled", trace=False)
    with pytest.raises(BackendError, match=r"iterator for 'samples\.x' ended after 30 values"):
        sim.run_batch({"samples.x": iter([np.zeros(30, int)]), "samples.x_valid": lambda i: True},
                      50)
    with pytest.raises(BackendError, match=r"function for 'samples\.x' returned 3 values for "
                       r"50 ticks"):
        sim.run_batch({"samples.x": lambda i: np.zeros(3, int)}, 50)
    with pytest.raises(BackendError, match=r"chunk must be >= 1, not 0"):
        sim.run_batch({"samples.x": lambda i: 0}, 10, chunk=0)
    with pytest.raises(BackendError, match=r"'samples\.nope' is not a top-level input"):
        sim.run_batch({"samples.nope": lambda i: 0}, 10)


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_a_stimulus_of_fractions_is_refused_not_truncated(backend: str) -> None:
    """Batch values are raw integers: 1.5 was read as 1 (for a fixed-point input, raw 1
    = 1/16 where the user meant one and a half). Floats holding whole numbers (what
    ``np.zeros(n)`` gives) are taken as before; the rest get one error naming the tick."""
    stim = arrays(20)
    whole = Simulator(pipeline.build(), backend=backend, trace=False).run_batch(stim, 20)
    floats = {k: v.astype(np.float64) for k, v in stim.items()}
    same = Simulator(pipeline.build(), backend=backend, trace=False).run_batch(floats, 20)
    for name in whole:
        np.testing.assert_array_equal(same[name], whole[name])
    for bad in (1.5, np.nan, np.inf):
        x = floats["samples.x"].copy()
        x[7] = bad
        sim = Simulator(pipeline.build(), backend=backend, trace=False)
        with pytest.raises(BackendError, match=rf"stimulus 'samples\.x' holds {bad!r} at tick "
                                               r"7: not a whole number in the 64-bit range"):
            sim.run_batch({**floats, "samples.x": x}, 20)
    for bad_object in (1.5, 2.0 ** 63, "3", None):  # object arrays (a mixed pandas column)
        x = stim["samples.x"].astype(object)
        x[4] = bad_object
        sim = Simulator(pipeline.build(), backend=backend, trace=False)
        with pytest.raises(BackendError, match=r"'samples\.x' holds .* at tick 4: not a whole"):
            sim.run_batch({**stim, "samples.x": x}, 20)
    x = floats["samples.x"].copy()
    x[3] = 2.0 ** 63  # (whole, but no int64 holds it: the compiled cast would wrap it)
    with pytest.raises(BackendError, match=r"holds 9\.223372036854776e\+18 at tick 3"):
        Simulator(pipeline.build(), backend=backend, trace=False).run_batch(
            {**floats, "samples.x": x}, 20)
    # chunked runs name the run's tick, not the chunk's
    x = floats["samples.x"].copy()
    x[13] = 0.5
    with pytest.raises(BackendError, match=r"holds 0\.5 at tick 13"):
        Simulator(pipeline.build(), backend=backend, trace=False).run_batch(
            {**floats, "samples.x": lambda i: x[i]}, 20, chunk=4)
    with pytest.raises(BackendError, match=r"'samples\.x' has dtype complex128"):
        Simulator(pipeline.build(), backend=backend, trace=False).run_batch(
            {**stim, "samples.x": stim["samples.x"] + 0j}, 20)
