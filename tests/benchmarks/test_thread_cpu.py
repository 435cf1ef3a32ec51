"""The benchmarks' per-thread CPU figures over a stretch of time (``benchmarks/thread_cpu.py``):
a stretch's ends fall between two samples, and the CPU counted must be the stretch's, not
the samples' (figures are divided by the stretch's length: ``window_cores_busy``)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from thread_cpu import ThreadCPU


def sampled(rate: float, every: float = 0.1, n: int = 11) -> ThreadCPU:
    """A ThreadCPU whose samples say one thread (named as the run engine's) used ``rate``
    CPU seconds a second and waited ``rate / 2`` in the run queue, and the machine was busy
    ``2 * rate``, from time 0, sampled every ``every`` seconds."""
    cpu = ThreadCPU(every)
    tid = 7
    cpu._names[tid] = "bluesky-run-engine"
    for k in range(n):
        when = k * every
        cpu._history.append((when, {tid: rate * when}, {tid: rate * when / 2}))
        cpu._machine.append(2 * rate * when)
    cpu._start = dict(cpu._history[0][1])
    cpu._cpu = dict(cpu._history[-1][1])
    return cpu


@pytest.mark.parametrize(("t0", "t1"), [(0.05, 0.29), (0.0, 1.0), (0.31, 0.39), (0.5, 0.5)])
def test_a_stretch_between_samples_counts_its_own_cpu(t0: float, t1: float) -> None:
    cpu = sampled(rate=0.8)
    assert cpu.between(t0, t1)["run_engine"] == pytest.approx(0.8 * (t1 - t0))
    assert cpu.between(t0, t1)["total"] == pytest.approx(0.8 * (t1 - t0))
    assert cpu.queued_between(t0, t1)["run_engine"] == pytest.approx(0.4 * (t1 - t0))
    assert cpu.machine_between(t0, t1) == pytest.approx(1.6 * (t1 - t0))
    assert cpu.until(t1)["run_engine"] == pytest.approx(0.8 * t1)


def test_outside_the_samples_the_nearest_sample_counts() -> None:
    cpu = sampled(rate=1.0)
    cpu._machine = [busy + 46_000.0 for busy in cpu._machine]  # (busy seconds since boot)
    assert cpu.machine_between(-5.0, 0.1) == pytest.approx(0.2)
    assert cpu.machine_between(-5.0, 99.0) == pytest.approx(2.0)
    assert cpu.between(-5.0, 0.0)["total"] == 0.0
    assert cpu.between(0.95, 7.0)["run_engine"] == pytest.approx(0.05)
    assert cpu.until(99.0)["run_engine"] == pytest.approx(1.0)


def test_a_thread_started_between_samples_counts_from_zero() -> None:
    cpu = sampled(rate=1.0)
    cpu._names[8] = "x-fly-writer"
    cpu._history[5][1][8] = 0.3  # (first seen at t = 0.5 with 0.3 s used)
    for when, used, _ in cpu._history[6:]:
        used[8] = 0.3 + (when - 0.5)
    assert cpu.between(0.45, 0.55)["writer"] == pytest.approx(0.15 + 0.05)


def test_a_busy_thread_is_counted_by_the_live_sampler() -> None:
    """The real sampler on a real thread: what ``/proc`` says it used, within its clock
    ticks, is what the thread measured itself."""
    cpu = ThreadCPU(every=0.05)
    used: list[float] = []

    def burn() -> None:
        start = time.thread_time()
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            sum(range(1000))
        used.append(time.thread_time() - start)
        time.sleep(0.3)  # (alive, idle: the sampler reads its total before it ends)

    cpu.start()
    worker = threading.Thread(target=burn, name="bluesky-run-engine-test")
    worker.start()
    worker.join()
    got = cpu.stop()["run_engine"]
    assert used and got == pytest.approx(used[0], abs=0.03)
