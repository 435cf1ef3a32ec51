"""CPU time of this process's threads over a stretch of time, by what they do (Linux
``/proc``): what ``benchmarks/endtoend.py`` and ``benchmarks/acquisition.py`` print as
``….cpu_ms.<part>`` per frame."""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Mapping


class ThreadCPU:
    """CPU seconds of this process's threads over a stretch of time, by thread name
    (Linux ``/proc``): sampled every ``every`` seconds, so a thread that ends is counted
    up to its last sample (at most ``every`` short). ``stop()`` gives the totals since
    ``start()``; ``until(t)`` those up to the wall-clock time ``t`` (``time.time()``,
    interpolated between the samples around it: a stretch that ends before the work its
    caller waited for, such as a file's digest at the run's close after its last frame)."""

    GROUPS = (("fly_workers", "-fly-worker"), ("writer", "-fly-writer"),
              ("live_reducer", "smeflow-live-reducer"), ("run_engine", "bluesky-run-engine"),
              ("tiled", "asyncio-portal"))
    """Figure name → what the thread's name contains (the rest is ``other``); the fly
    workers' time goes to the stages they ran with :func:`with_fly_stages`."""

    def __init__(self, every: float = 0.1) -> None:
        self.every = every
        self._tick = os.sysconf("SC_CLK_TCK")
        self._cpu: dict[int, float] = {}
        self._names: dict[int, str] = {}
        self._start: dict[int, float] = {}
        self._queued: dict[int, float] = {}
        self._files: dict[int, tuple[int, int]] = {}
        """Thread id → descriptors of its ``/proc`` stat and schedstat files."""
        self._history: list[tuple[float, dict[int, float], dict[int, float]]] = []
        """(wall time, CPU seconds, seconds runnable waiting for a CPU, by thread id) of
        every sample."""
        self._machine: list[float] = []
        """The machine's busy CPU seconds (every core, every process: ``/proc/stat``) at
        each sample of ``_history``."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="endtoend-cpu", daemon=True)

    def _sample(self) -> None:
        for t in threading.enumerate():
            if t.native_id is not None:
                self._names[t.native_id] = t.name
        for tid in map(int, os.listdir("/proc/self/task")):
            if tid not in self._files:  # (kept open: a sample is then a read per thread)
                try:
                    stat = os.open(f"/proc/self/task/{tid}/stat", os.O_RDONLY)
                except OSError:  # (the thread ended)
                    continue
                try:
                    sched = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
                except OSError:
                    os.close(stat)
                    continue
                self._files[tid] = (stat, sched)
        for tid, (stat, sched) in list(self._files.items()):
            try:
                fields = os.pread(stat, 1024, 0).rsplit(b")", 1)[1].split()
                queued = int(os.pread(sched, 256, 0).split()[1]) / 1e9
            except (OSError, IndexError):  # (the thread ended)
                for fd in self._files.pop(tid):
                    os.close(fd)
                continue
            self._cpu[tid] = (int(fields[11]) + int(fields[12])) / self._tick
            self._queued[tid] = queued
        self._history.append((time.time(), dict(self._cpu), dict(self._queued)))
        self._machine.append(_machine_busy() / self._tick)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def start(self) -> None:
        """Take the baseline and start sampling."""
        self._sample()
        self._start = dict(self._cpu)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        """CPU seconds since ``start`` by group (``GROUPS``, ``other``, ``total``)."""
        self._stop.set()
        self._thread.join()
        self._sample()
        for fds in self._files.values():
            for fd in fds:
                os.close(fd)
        self._files.clear()
        return self._grouped(self._cpu)

    def until(self, t: float) -> dict[str, float]:
        """``stop()``'s figures up to the wall-clock time ``t`` (after ``stop()``;
        interpolated between the samples around it, ``_at``)."""
        return self._grouped(self._at(t))

    def between(self, t0: float, t1: float) -> dict[str, float]:
        """``stop()``'s figures from ``t0`` to ``t1`` (wall-clock, ``time.time()``), each end
        interpolated between the samples around it (``_at``): a stretch inside the measured
        one, such as a fly acquisition's first trigger to its last frame (the CPU that
        competed with it)."""
        return self._grouped(self._at(t1), self._at(t0))

    def queued_between(self, t0: float, t1: float) -> dict[str, float]:
        """As ``between``, the seconds the threads were runnable but waiting for a CPU (the
        scheduler's run queue, ``/proc``'s ``schedstat``): with a thread's CPU, what is left
        of its wall time is the time it was blocked (a lock, the GIL, a wait for work)."""
        return self._grouped(self._at(t1, queued=True), self._at(t0, queued=True))

    def machine_between(self, t0: float, t1: float) -> float:
        """The CPU seconds every core of the machine was busy from ``t0`` to ``t1`` (each
        end as in ``between``): minus ``between``'s total, what other processes and the
        kernel's own threads (writing dirty pages back, say) took from the same cores."""
        when, machine = self._when(), [{0: busy} for busy in self._machine]
        first = machine[0] if machine else {0: 0.0}
        return _interpolated(when, machine, t1, first)[0] \
            - _interpolated(when, machine, t0, first)[0]

    def _when(self) -> list[float]:
        return [when for when, _, _ in self._history]

    def _at(self, t: float, queued: bool = False) -> dict[int, float]:
        """CPU seconds (run-queue seconds with ``queued``) by thread id at the wall-clock
        time ``t``, interpolated linearly between the samples before and after it. (The
        last sample at or before ``t`` would count a stretch up to ``every`` short at
        either end, and a figure divided by the stretch's exact length reads low.)"""
        values = [waited if queued else cpu for _, cpu, waited in self._history]
        first = self._start if not queued else values[0] if values else {}
        return _interpolated(self._when(), values, t, first)

    def _grouped(self, cpu: dict[int, float],
                 since: dict[int, float] | None = None) -> dict[str, float]:
        base = self._start if since is None else since
        out = dict.fromkeys([name for name, _ in self.GROUPS] + ["other"], 0.0)
        for tid, seconds in cpu.items():
            used = seconds - base.get(tid, self._start.get(tid, 0.0))
            thread = self._names.get(tid, "")
            group = next((name for name, part in self.GROUPS if part in thread), "other")
            out[group] += used
        out["total"] = sum(out.values())
        return out


def _interpolated(when: list[float], values: list[dict[int, float]], t: float,
                  before_first: dict[int, float]) -> dict[int, float]:
    """``values`` (cumulative seconds by key, sampled at the times ``when``) at time ``t``:
    linear between the samples around ``t``; ``before_first`` before the first sample, the
    last sample after it. A key the earlier sample lacks (a thread started between them)
    counts from 0."""
    after = bisect.bisect_right(when, t)
    if after == 0:
        return before_first
    if after == len(when):
        return values[-1]
    t0, t1 = when[after - 1], when[after]
    a, b = values[after - 1], values[after]
    w = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
    return {key: a.get(key, 0.0) + w * (v - a.get(key, 0.0)) for key, v in b.items()}


def thread_times() -> dict[int, tuple[float, float]]:
    """Seconds each thread of this process has run on a CPU and waited runnable for one
    (the scheduler's ``schedstat``, in nanoseconds: precise where ``ThreadCPU``'s clock
    ticks and 0.1 s samples are too coarse, for a stretch of a few tens of ms), by
    thread id; a thread that ends while being read is left out."""
    out = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        try:
            with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
                ran, waited = f.read().split()[:2]
        except (OSError, ValueError):  # (the thread ended)
            continue
        out[tid] = (int(ran) / 1e9, int(waited) / 1e9)
    return out


def machine_busy_s() -> float:
    """CPU seconds every core of the machine has been busy since boot (``/proc/stat``)."""
    return _machine_busy() / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> int:
    """Clock ticks every core spent busy since boot (``/proc/stat``'s first line: all but
    idle and iowait; guest time is part of user time)."""
    with open("/proc/stat", "rb") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq + steal


def with_fly_stages(used: dict[str, float], stages: Mapping[str, float]) -> dict[str, float]:
    """``used`` (``ThreadCPU``'s figures) with the fly workers' CPU seconds given to the
    stages they ran (``devices.fly.FlyAcquisition.cpu``): ``scene`` and ``sensor`` to
    ``sensor``, ``firmware`` (with the readout) to ``firmware``, the rest of their time
    (choosing the next job) to ``other``: each worker thread runs every stage."""
    out = dict(used)
    workers = out.pop("fly_workers", 0.0)
    sensor = stages.get("scene", 0.0) + stages.get("sensor", 0.0)
    firmware = stages.get("firmware", 0.0)
    split = {"sensor": sensor, "firmware": firmware}
    rest = max(workers - sensor - firmware, 0.0)
    ordered = {**split, **{k: v for k, v in out.items() if k not in ("other", "total")}}
    ordered["other"] = out.get("other", 0.0) + rest
    ordered["total"] = sum(ordered.values())
    return ordered
