"""The SME C# examples ported to smeflow behave as their C# testers check: the state-based
counter, the stopwatch, the colour binner (whose counts equal numpy's binning of the same
images), the two trend detectors of the simple trader (whose averages and crossings equal
a reference written from the example's description), the generic FIFO
buffer (the C# component tester's checks, and a deque on random traffic) and the MIPS CPU with its program in a RAM (whose memory after the
program halts equals a separately written instruction-level model's)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sme import Network, Simulator, UInt
from sme.examples import colorbin, fifo, mips, statebased_counter, stopwatch, trader


def _column(trace: Any, name: str) -> list[Any]:
    k = trace.names.index(name)
    return [row[k] for row in trace.rows[1:]]


def test_statebased_counter_as_the_csharp_tester_checks() -> None:
    trace = Simulator(statebased_counter.build()).run(
        stimulus=list(statebased_counter.stimulus(12)))
    for bus in ("for_result", "while_result"):
        valid, number = _column(trace, f"{bus}.valid"), _column(trace, f"{bus}.number")
        # the request (count 4) is on the bus at tick 1: numbers 0..3 on ticks 1..4
        assert valid[:1] == [False] and all(valid[1:5])
        assert number[1:5] == [0, 1, 2, 3]


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_counting_to_zero_waits_a_tick_as_csharp(backend: str) -> None:
    """C#'s StateProcess awaits the clock before each OnTickAsync call: a request to count
    to 0 ends the call and the tick, and the next tick waits for a request again. The
    literal port (no yield after the count) does the same."""
    sbc = statebased_counter
    stim = [{"control.valid": True, "control.count": 0}] * 3 + [
        {"control.valid": True, "control.count": 2}] + [{"control.valid": False}] * 3
    net = Network("zero", [sbc.StatebasedCounter(request=sbc.Control(), result=sbc.Result())])
    trace = Simulator(net, backend=backend).run(stimulus=stim)
    assert _column(trace, "result.valid") == [False] * 3 + [True] * 4
    assert _column(trace, "result.number")[3:5] == [0, 1]


def test_stopwatch_as_the_csharp_tester_checks() -> None:
    trace = Simulator(stopwatch.build(), backend="compiled").run(
        stimulus=list(stopwatch.stimulus()))
    running, reset = _column(trace, "watch_output.running"), _column(trace, "watch_output.reset")
    val = _column(trace, "number_output.val")
    # a press shows the same tick: start at 2, stop at 4, start at 6, stop at 8
    assert running[1:10] == [False, True, True, False, False, True, True, False, False]
    assert reset[9:12] == [False, True, False]          # reset pressed at tick 10
    assert running[13:17] == [False, True, True, False]  # a short run, then reset at 18
    assert not any(running[16:22]) and all(running[22:])  # the long run starts at tick 22
    last = len(val) - 1                                 # the counter sees it from tick 23
    assert val[last] == (last - 22) // stopwatch.SKIPS >= 10
    assert val[22 + stopwatch.SKIPS] == 1 and val[21 + stopwatch.SKIPS] == 0


def test_mips_memory_matches_the_reference_model() -> None:
    program = mips.assemble(mips.FIBONACCI)
    expected = mips.reference_run(program)
    fib = [0, 1]
    while len(fib) < mips.N_FIB:
        fib.append(fib[-1] + fib[-2])
    stored = expected[mips.DEPTH - mips.N_FIB:]
    assert stored == fib[::-1]                       # the stack grows down
    assert expected[mips.DEPTH - mips.N_FIB - 1] == sum(fib)  # check's sum, below the stack
    halted = {}
    for backend in ("interp", "compiled"):
        net = mips.build()
        sim = Simulator(net, backend=backend, trace=False)
        status, memin = sim.output("status"), sim.output("memin")
        ticks, stores = 0, []
        while not status.done:
            sim.step()
            ticks += 1
            if memin.we:
                stores.append((memin.addr, memin.wdata))
            assert ticks < 2000, "the CPU did not halt"
        halted[backend] = (ticks, stores)
        if backend == "interp":
            assert list(net.process("ram").mem) == expected
    assert halted["interp"] == halted["compiled"]
    assert halted["interp"][1][-1] == (mips.DEPTH - mips.N_FIB - 1, sum(fib))


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_colorbin_counts_equal_numpy_binning(backend: str) -> None:
    images = colorbin.sample_images(seed=11)
    images.append(np.random.default_rng(5).integers(0, 256, (9, 4, 3), dtype=np.uint8))
    stimulus = list(colorbin.pixel_stream(images, gap=0))  # back to back, no idle tick
    trace = Simulator(colorbin.build(), backend=backend).run(stimulus=stimulus)
    valid = _column(trace, "bins.valid")
    got = [(low, med, high) for v, low, med, high in zip(
        valid, _column(trace, "bins.low"), _column(trace, "bins.medium"),
        _column(trace, "bins.high"), strict=True) if v]
    assert got == [colorbin.expected_bins(im) for im in images]
    # latched at the tick of each image's last pixel (tick 0 is idle), for one tick only
    ends = np.cumsum([im.shape[0] * im.shape[1] for im in images])
    assert [t for t, v in enumerate(valid) if v] == list(ends)
    ramp = colorbin.luminance(images[0]).ravel()
    assert {colorbin.HIGH, colorbin.HIGH + 1, colorbin.MEDIUM, colorbin.MEDIUM + 1} <= set(ramp)


def _trader_reference(stimulus: list[dict[str, Any]]) -> dict[str, list[tuple[Any, ...]]]:
    """(tick, short, long, going_up, going_down) of every report of each core, computed
    from the prices the way the C# example describes its filters."""
    reports: dict[str, list[tuple[Any, ...]]] = {"ewma": [], "fir": []}
    series: dict[str, list[tuple[int, int]]] = {"ewma": [], "fir": []}
    run: list[int] = []
    for t, s in enumerate(stimulus):
        if s["prices.restart"]:
            run, series = [], {"ewma": [], "fir": []}
            continue
        if not s["prices.valid"]:
            continue
        p = s["prices.value"]
        run.append(p)
        taps = [*run[::-1], *[0] * 8]  # newest first, zeros before the run
        series["fir"].append((sum(taps[:4]) // 4, sum(taps[:8]) // 8))
        ewma = series["ewma"]
        if ewma:  # decay 1/4 and 1/8, by shifts
            s0, l0 = ewma[-1]
            ewma.append((p // 4 + s0 // 4 * 3, p // 8 + l0 // 8 * 7))
        else:     # the run's first price seeds both averages
            ewma.append((p, p))
        if len(run) > trader.STARTUP:
            for name, values in series.items():
                (ns, nl), (ps, pl) = values[-1], values[-2]
                reports[name].append((t, ns, nl, nl < ns and pl >= ps, nl > ns and pl <= ps))
    return reports


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_trader_reports_equal_the_reference(backend: str) -> None:
    stimulus = list(trader.stimulus(runs=4, prices_per_run=60, seed=3))
    trace = Simulator(trader.build(), backend=backend).run(stimulus=stimulus)
    expected = _trader_reference(stimulus)
    for core in ("ewma", "fir"):
        got = [(t, short, long, up, down) for t, (v, short, long, up, down) in enumerate(zip(
            *(_column(trace, f"{core}.{s}")
              for s in ("valid", "short", "long", "going_up", "going_down")), strict=True))
               if v]
        assert got == expected[core], core
        assert len(got) == 4 * (60 - trader.STARTUP)
        assert any(r[3] for r in got) and any(r[4] for r in got)  # both crossings occur


@pytest.mark.parametrize("backend", ["interp", "compiled"])
@pytest.mark.parametrize("first", [0, 7, 254])
def test_fifo_as_the_csharp_tester_checks(backend: str, first: int) -> None:
    trace = Simulator(fifo.build(UInt[8], 2), backend=backend).run(
        stimulus=fifo.tester_stimulus(first))
    valid, value = _column(trace, "data.valid"), _column(trace, "data.value")
    filled = _column(trace, "data.filled")
    assert (valid[1], value[1]) == (True, first)                 # ready after one write
    assert (valid[2], value[2], filled[2]) == (True, first, True)  # two written: full
    assert (valid[3], value[3], filled[3]) == (True, first + 1, False)  # one read
    assert not valid[4] and not filled[4]                        # both read: empty


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_fifo_matches_a_queue_on_random_traffic(backend: str) -> None:
    depth = 3
    stimulus = list(fifo.stimulus(400, seed=9))
    trace = Simulator(fifo.build(UInt[8], depth), backend=backend).run(stimulus=stimulus)
    queue: list[int] = []
    expected, dropped = [], 0
    for s in stimulus:
        if s["control.read"] and queue:
            queue.pop(0)
        if s["control.valid"]:
            if len(queue) < depth:
                queue.append(s["control.value"])
            else:
                dropped += 1
        expected.append((bool(queue), queue[0] if queue else None, len(queue) == depth))
    got = [(v, x if v else None, f) for v, x, f in zip(
        _column(trace, "data.valid"), _column(trace, "data.value"),
        _column(trace, "data.filled"), strict=True)]
    assert got == expected
    assert dropped > 0 and sum(not v for v, _, _ in got) > 10  # full and empty both reached


def test_fifo_classes_are_made_once_per_parameters() -> None:
    assert fifo.fifo_buffer(UInt[8], 4) is fifo.fifo_buffer(UInt[8], 4)
    assert fifo.fifo_buffer(UInt[8], 4) is not fifo.fifo_buffer(UInt[12], 4)
    with pytest.raises(ValueError, match="at least one word"):
        fifo.fifo_buffer(UInt[8], 0)
