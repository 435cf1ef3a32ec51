"""The per-tick path of a compiled simulation: ``sim.input``/``sim.output`` views and
``sim.step()`` with tracing off, the way MyHDL and cocotb testbenches drive and read every
tick. It must give what batch mode and the interpreter give, refuse what they refuse
(with their messages), and fall back to the full step when something observes the ticks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sme import Network, Simulator, SmeError
from sme.backend import batch_rows, to_array
from sme.errors import BackendError, PortDirectionError, SignalValueError, UnknownSignalError
from sme.examples import pipeline

from . import _compiled_nets as nets
from .test_compiled_equivalence import NETWORKS, _batch_stimulus

pytestmark = pytest.mark.usefixtures("compiled_cache")


def _step_through(sim: Simulator, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Drive every input and read every traced signal after each tick, through the views."""
    net = sim.network
    signals = net.traced_signals()
    inputs = {t.name: (sim.input(t.bus), t.spec.name) for t in signals if t.is_input}
    outputs = [(t, sim.output(t.bus), t.spec.name) for t in signals]
    got: dict[str, list[Any]] = {t.name: [] for t in signals}
    for row in rows:
        for name, value in row.items():
            view, sig = inputs[name]
            setattr(view, sig, value)
        sim.step()
        for t, view, sig in outputs:
            got[t.name].append(getattr(view, sig))
    return {t.name: to_array(t, got[t.name]) for t in signals}


@pytest.mark.parametrize(("name", "build", "stimulus"), NETWORKS, ids=[n[0] for n in NETWORKS])
def test_stepping_equals_batch_and_interpreter(name: str, build: Callable[[], Network],
                                               stimulus: Callable[..., Any]) -> None:
    ticks = 300
    net = build()
    every = [s.name for s in net.traced_signals()]
    stim = _batch_stimulus(net, ticks, seed=7 + len(name))
    rows = batch_rows(net, stim, ticks)
    outcomes = []
    for backend, how in (("compiled", "step"), ("compiled", "batch"), ("interp", "step")):
        sim = Simulator(build(), backend=backend, trace=False)
        try:
            if how == "step":
                outcomes.append(_step_through(sim, rows))
            else:
                outcomes.append(sim.run_batch(stim, ticks, every))
        except SmeError as exc:  # random stimulus may break a design: then alike everywhere
            # (the message names the tick; sim.tick differs by design: a failed compiled
            # batch keeps the scalar state, and tick, of the start of the call)
            outcomes.append((type(exc), str(exc)))
    first = outcomes[0]
    for other in outcomes[1:]:
        if isinstance(first, tuple) or isinstance(other, tuple):
            assert first == other
            continue
        for key in every:
            np.testing.assert_array_equal(first[key], other[key], err_msg=key)


def _pair() -> list[Simulator]:
    return [Simulator(pipeline.build(), backend=b, trace=False) for b in ("interp", "compiled")]


@pytest.mark.parametrize(("signal", "value"), [
    ("x", 40_000), ("x", -32_769), ("x", 1.5), ("x", "7"), ("x", None), ("x", True),
    ("x_valid", 2), ("x_valid", "yes"), ("x_valid", 1.0),
])
def test_bad_values_are_refused_at_the_assignment(signal: str, value: Any) -> None:
    errors = []
    for sim in _pair():
        drive = sim.input("samples")
        drive.x = -12
        drive.x_valid = True
        sim.step()
        try:
            setattr(drive, signal, value)
        except SmeError as exc:
            errors.append((type(exc), str(exc)))
        else:
            errors.append(None)
        # a refused value leaves the input as it was
        assert (drive.x, drive.x_valid) == (-12, True) or errors[-1] is None
    assert errors[0] == errors[1]
    if errors[0] is not None:
        assert errors[0][0] is SignalValueError


def test_numpy_and_python_values_drive_alike() -> None:
    results = []
    for sim in _pair():
        drive, out = sim.input("samples"), sim.output("scaled")
        seen = []
        for value, valid in ((np.int16(-7), np.bool_(True)), (np.int64(12), False), (3, 1)):
            drive.x = value
            drive.x_valid = valid
            sim.step()
            seen.append((out.p1, out.v1, type(out.p1), type(out.v1)))
        results.append(seen)
    assert results[0] == results[1]
    assert results[1][0][2:] == (int, bool)


def test_unknown_names_and_writes_to_monitors() -> None:
    for sim in _pair():
        with pytest.raises(UnknownSignalError, match="has no signal 'xx'; its signals are: x, "
                                                     "x_valid"):
            sim.input("samples").xx = 1
        with pytest.raises(UnknownSignalError, match="has no signal 'xx'"):
            sim.output("sum_out").xx  # noqa: B018
    with pytest.raises(PortDirectionError, match=r"cannot write sum_out\.sum_out"):
        _pair()[1].output("sum_out").sum_out = 3


def test_a_failing_step_is_the_interpreters_error_and_keeps_the_tick() -> None:
    errors = []
    for backend in ("interp", "compiled"):
        sim = Simulator(nets.single(nets.Overflowing), backend=backend, trace=False)
        sim.input("num").v = 200
        with pytest.raises(SmeError) as info:
            for _ in range(10):
                sim.step()
        errors.append((type(info.value), str(info.value), getattr(info.value, "__notes__", None),
                       sim.tick))
    assert errors[0] == errors[1]
    assert errors[1][3] == 5  # ticks 0..4 ran; tick 5 failed and did not count


def test_observers_added_later_see_every_tick() -> None:
    sim = Simulator(pipeline.build(), backend="compiled", trace=False)
    sim.step()
    seen: list[int] = []
    sim.on_tick(lambda s: seen.append(s.tick))
    sim.step()
    sim.step(2)
    assert seen == [2, 3, 4]


def test_tick_counts_across_step_and_batch() -> None:
    sim = Simulator(pipeline.build(), backend="compiled", trace=False)
    sim.step()
    sim.step(3)
    stim = {"samples.x": np.arange(5), "samples.x_valid": np.ones(5, dtype=bool)}
    sim.run_batch(stim, 5)
    sim.step()
    assert sim.tick == 10
    ref = Simulator(pipeline.build(), trace=False)
    ref.step(4)
    ref.run_batch(stim, 5)
    ref.step()
    assert [sim.peek(f"scaled.{s}") for s in ("p1", "v1")] == [
        ref.peek(f"scaled.{s}") for s in ("p1", "v1")]


def test_traced_steps_take_the_full_path() -> None:
    sim = Simulator(pipeline.build(), backend="compiled")
    for i in range(20):
        sim.poke("samples.x", pipeline.sample(i)[0])
        sim.step()
    ref = Simulator(pipeline.build())
    for i in range(20):
        ref.poke("samples.x", pipeline.sample(i)[0])
        ref.step()
    assert sim.trace is not None and ref.trace is not None
    assert len(sim.trace.rows) == 21
    assert ref.trace.differences(sim.trace) == []


def test_batch_rows_without_arrays_needs_ticks() -> None:
    net = pipeline.build()
    assert batch_rows(net, {}, 3) == [{}, {}, {}]
    with pytest.raises(BackendError, match=r"no stimulus arrays .* pass ticks="):
        batch_rows(net, {})


def test_traced_rows_keep_their_order_across_reads_and_observers() -> None:
    """Compiled traced steps keep raw state copies; reading the trace mid-run and adding an
    observer (the full step path) must still give the interpreter's rows in order."""
    traces = []
    for backend in ("interp", "compiled"):
        sim = Simulator(nets.build_fsm(), backend=backend)
        stim = list(nets.fsm_stimulus(60))
        for row in stim[:20]:
            sim.apply(row)
            sim.step()
        assert sim.trace is not None and len(sim.trace.rows) == 21  # read mid-run
        for row in stim[20:40]:
            sim.apply(row)
            sim.step()
        seen: list[int] = []
        sim.on_tick(lambda s, seen=seen: seen.append(s.tick))  # type: ignore[misc]
        for row in stim[40:]:
            sim.apply(row)
            sim.step()
        assert seen == list(range(41, 61))
        traces.append(sim.trace)
    ref, got = traces
    assert ref is not None and got is not None
    assert ref.differences(got) == []
    assert got.rows == ref.rows


def test_trace_defer_converts_when_read() -> None:
    from sme.trace import Trace

    trace = Trace("t", [], [("reset",)])
    record = trace.defer(lambda raws: [(f"raw {r}",) for r in raws])
    record(1)
    record(2)
    assert trace.rows == [("reset",), ("raw 1",), ("raw 2",)]
    record(3)
    trace.rows.append(("direct",))  # converts 3 first: the order is kept
    record(4)
    assert trace.rows[-3:] == [("raw 3",), ("direct",), ("raw 4",)]
    assert trace.ticks == 5
