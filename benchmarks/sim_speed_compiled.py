"""Compiled-backend figures for ``benchmarks/sim_speed.py`` (the benchmark pipeline).

* ``pipeline.compiled.ticks_per_s`` — batch mode (``Simulator.run_batch``), overflow checks
  on, 10,000,000 ticks: stimulus arrays in, every output signal recorded every tick; the
  stimulus arrays are built before the clock starts (the time of the simulator itself);
* ``…ticks_per_s_100k`` — the same for 100,000 ticks (result checked against DESIGN.md);
* ``pipeline.compiled_nochecks.ticks_per_s`` — 10,000,000 ticks with ``checks=False``;
* ``pipeline.compiled_step.ticks_per_s`` — step mode driven from a Python testbench loop,
  as the interpreter and MyHDL are measured;
* ``sim.step.compiled_vs_interp`` — that step mode over the interpreter's, same loop
  (``Simulator(..., trace=False)``, as MyHDL runs untraced);
* ``sim.step_traced.compiled_vs_interp`` — the same with tracing on (the ``Simulator``
  default: a trace row of every signal per tick), the trace read at the end (compiled
  sessions keep raw copies of their state and make the rows when they are read);
* ``pipeline.compiled.first_compile_s`` / ``cached_start_s`` — a fresh Python process from
  ``import sme`` to a ready simulator, with an empty cache and then with the cache filled;
* ``sim.batch.stimulus_to_sim_time`` — the 10,000,000-tick stimulus given as numpy
  expressions of the tick index (``pipeline.sample_x``/``sample_valid``, evaluated by
  ``run_batch`` chunk by chunk): seconds building it over seconds simulating;
* ``sim.fsm.compiled_vs_interp`` — a generator design (``sme.examples.statebased_counter``,
  two ``on_tick`` generators with ``while``/``for`` loops around ``yield``, lowered to state
  machines) in batch mode, best of three runs each: compiled ticks/s over the
  interpreter's, same stimulus, the two
  runs' outputs equal on the ticks both ran (``sim.fsm.compiled.ticks_per_s`` and
  ``sim.fsm.interp.ticks_per_s`` are the rates).

Run alone: ``python benchmarks/sim_speed_compiled.py [myhdl_ticks_per_s]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sme import Simulator
from sme.examples import pipeline, statebased_counter

_START = """
import sys, time
t = time.perf_counter()
from sme import Simulator
from sme.examples import pipeline
Simulator(pipeline.build(), backend="compiled", trace=False, cache_dir=sys.argv[1])
print(time.perf_counter() - t)
"""


def stimulus_arrays(ticks: int) -> dict[str, np.ndarray]:
    """The DESIGN.md stimulus as batch arrays."""
    i = np.arange(ticks, dtype=np.int64)
    return {"samples.x": pipeline.sample_x(i), "samples.x_valid": pipeline.sample_valid(i)}


def stimulus_figures(ticks: int = 10_000_000) -> dict[str, float]:
    """The pipeline's stimulus given to ``run_batch`` as numpy expressions of the tick index
    (evaluated chunk by chunk): seconds spent building it over seconds simulating."""
    spent = [0.0]

    def timed(f: Any) -> Any:
        def g(i: np.ndarray) -> np.ndarray:
            t = time.perf_counter()
            out = np.asarray(f(i))
            spent[0] += time.perf_counter() - t
            return out
        return g

    sim = Simulator(pipeline.build(), backend="compiled", trace=False)
    start = time.perf_counter()
    out = sim.run_batch({"samples.x": timed(pipeline.sample_x),
                         "samples.x_valid": timed(pipeline.sample_valid)}, ticks)
    total = time.perf_counter() - start
    ref = batch_rate(ticks, 1)
    valid = out["sum_out.sum_valid"]
    if (int(valid.sum()), int(out["sum_out.sum_out"][valid].sum())) != ref[1:]:
        sys.exit("vectorised stimulus: WRONG RESULT")
    return {"sim.batch.stimulus_s": spent[0],
            "sim.batch.stimulus_to_sim_time": spent[0] / (total - spent[0])}


def batch_rate(ticks: int, repeat: int, checks: bool = True) -> tuple[float, int, int]:
    """Best ticks/s of ``repeat`` batch runs, and (valid count, valid sum) of the last."""
    stim = stimulus_arrays(ticks)
    best = 0.0
    count = total = 0
    for _ in range(repeat):
        sim = Simulator(pipeline.build(), backend="compiled", trace=False, checks=checks)
        start = time.perf_counter()
        out = sim.run_batch(stim, ticks)
        secs = time.perf_counter() - start
        best = max(best, ticks / secs)
        valid = out["sum_out.sum_valid"]
        count, total = int(valid.sum()), int(out["sum_out.sum_out"][valid].sum())
    return best, count, total


def step_rate(ticks: int, backend: str = "compiled", trace: bool = False) -> float:
    """Ticks/s in step mode from a Python testbench loop (as the interpreter is measured)."""
    sim = Simulator(pipeline.build(), backend=backend, trace=trace)
    drive, out, step = sim.input("samples"), sim.output("sum_out"), sim.step
    count = total = 0
    start = time.perf_counter()
    for i in range(ticks):
        x, valid = pipeline.sample(i)
        drive.x = x
        drive.x_valid = valid
        step()
        if out.sum_valid:
            count += 1
            total += out.sum_out
    if sim.trace is not None and len(sim.trace.rows) != ticks + 1:  # every row, as values
        sys.exit(f"{backend} step mode: the trace lacks rows")
    secs = time.perf_counter() - start
    if ticks == 100_000 and (count, total) != (pipeline.EXPECTED_VALID_COUNT,
                                              pipeline.EXPECTED_VALID_SUM):
        sys.exit(f"{backend} step mode: WRONG RESULT {count}, {total}")
    return ticks / secs


def fsm_stimulus(ticks: int) -> dict[str, np.ndarray]:
    """Requests to the state-based counters: one every 16 ticks, counting to 1..12."""
    i = np.arange(ticks, dtype=np.int64)
    return {"control.valid": i % 16 == 0, "control.count": (i // 16) % 12 + 1}


def fsm_figures(interp_ticks: int = 20_000, compiled_ticks: int = 2_000_000,
                repeat: int = 3) -> dict[str, float]:
    """Batch ticks/s of the generator-FSM design in the interpreter and compiled (the best
    of ``repeat`` runs each, fresh simulators, as the pipeline's batch figures); the
    compiled outputs must equal the interpreter's on the ticks the interpreter ran."""
    rates: dict[str, float] = {}
    outs: dict[str, dict[str, np.ndarray]] = {}
    for backend, ticks in (("interp", interp_ticks), ("compiled", compiled_ticks)):
        stim = fsm_stimulus(ticks)
        for _ in range(repeat):
            sim = Simulator(statebased_counter.build(), backend=backend, trace=False)
            start = time.perf_counter()
            outs[backend] = sim.run_batch(stim, ticks)
            rates[backend] = max(rates.get(backend, 0.0),
                                 ticks / (time.perf_counter() - start))
    for name, ref in outs["interp"].items():
        if not np.array_equal(ref, outs["compiled"][name][:interp_ticks]):
            sys.exit(f"generator FSM: compiled {name} differs from the interpreter")
    return {"sim.fsm.interp.ticks_per_s": rates["interp"],
            "sim.fsm.compiled.ticks_per_s": rates["compiled"],
            "sim.fsm.compiled_vs_interp": rates["compiled"] / rates["interp"]}


def start_time(cache: Path) -> float:
    """Seconds from a fresh interpreter's ``import sme`` to a ready compiled simulator."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run([sys.executable, "-c", _START, str(cache)], check=True, env=env,
                         capture_output=True, text=True).stdout
    return float(out.split()[-1])


def compiled_figures(myhdl_ticks_per_s: float) -> dict[str, float]:
    """Measure the compiled backend on the pipeline; figures named as in DESIGN.md."""
    rate_100k, count, total = batch_rate(100_000, 5)
    if (count, total) != (pipeline.EXPECTED_VALID_COUNT, pipeline.EXPECTED_VALID_SUM):
        sys.exit(f"compiled: WRONG RESULT {count} valid sums totalling {total}")
    print(f"compiled:    {count} valid sums totalling {total} (100,000 ticks, batch)")
    rate, count, total = batch_rate(10_000_000, 3)
    print(f"compiled:    {count} valid sums totalling {total} (10,000,000 ticks, batch)")
    rate_nochecks, _, _ = batch_rate(10_000_000, 3, checks=False)
    # best of three, fresh simulators, as the batch figures (a single run measures load
    # spikes and, on a cold cache, the first call's compilation)
    step, interp_step, traced_step, traced_interp = (
        max(step_rate(100_000, backend, trace) for _ in range(3))
        for backend, trace in (("compiled", False), ("interp", False), ("compiled", True),
                               ("interp", True)))
    traced = traced_step / traced_interp
    with tempfile.TemporaryDirectory() as tmp:
        first = start_time(Path(tmp))
        cached = min(start_time(Path(tmp)) for _ in range(3))
    return {
        "pipeline.compiled.ticks_per_s": rate,
        "pipeline.compiled.vs_myhdl": rate / myhdl_ticks_per_s,
        "pipeline.compiled.ticks_per_s_100k": rate_100k,
        "pipeline.compiled.vs_myhdl_100k": rate_100k / myhdl_ticks_per_s,
        "pipeline.compiled_nochecks.ticks_per_s": rate_nochecks,
        "pipeline.compiled_step.ticks_per_s": step,
        "pipeline.compiled_step.vs_myhdl": step / myhdl_ticks_per_s,
        "sim.step.compiled_vs_interp": step / interp_step,
        "sim.step_traced.compiled_vs_interp": traced,
        "pipeline.compiled.first_compile_s": first,
        "pipeline.compiled.cached_start_s": cached,
        **fsm_figures(),
        **stimulus_figures(),
    }


if __name__ == "__main__":
    myhdl = float(sys.argv[1]) if len(sys.argv) > 1 else 77_000.0
    for name, value in compiled_figures(myhdl).items():
        print(f"{name} = {value:.4g}")
