"""The Pilatus 6M's firmware: 60 module chains simulated in parallel (part of
``benchmarks/firmware.py``, which prints these figures; run alone with
``python benchmarks/firmware_p6m.py [--frames N]``).

* ``firmware.p6m.frames_per_s`` — 2527 × 2463 frames through the 60 module boards
  (``devices.modular.ModularFirmware``, 195 × 487 pixels and 64 lanes each, compiled
  backend with its checks on) on ``--workers`` threads (default: every CPU): the firmware
  alone, link words built before the clock starts, as ``firmware.1024``. Target ≥ 100
  frames/s on 2 cores (620 Mpixel/s), floor 25. Its packets are checked equal, bit for
  bit, to a single-threaded run's.
* ``firmware.p6m.single_thread.frames_per_s`` and ``firmware.p6m.thread_speedup`` — one
  thread, timed in turn with the threads' runs (each after its warm-up run, as many
  repeats), so a change of the machine's load between them does not skew the ratio;
  ``firmware.p6m.single_thread.ns_per_module_tick``: its time per tick of one module's
  chain (a tick moves 64 pixels; 100 frames/s on 2 cores needs about 213 ns).
* ``firmware.p6m.cpu_ms_per_frame`` and ``firmware.p6m.single_thread.cpu_ns_per_module_tick``
  — the same runs in process CPU time (the parallel run's per frame, all threads; one
  thread's per module tick): steady on a busy machine, where the wall-clock figures
  measure the machine's load (100 frames/s on 2 cores needs at most 20 ms CPU a frame).
* ``firmware.p6m.threads.*`` — why the thread speed-up falls short of ``--workers``, from
  the parallel runs (the scheduler's ``schedstat`` per thread): ``running``, ``queued``
  (runnable, waiting for a core that another thread or process held) and ``blocked``
  (neither: waiting for the GIL, or for the other threads' last modules) as shares of
  the threads' wall time; ``outside_cores``, the cores other processes kept busy
  meanwhile (``/proc/stat``); ``cpu_vs_one_thread``, the parallel run's CPU per frame
  over one thread's: above 1 when a thread's work costs more while the others run (the
  cores' shared caches, memory and clock), which no scheduling of the modules removes;
  ``core_cpu_vs_one_thread``, the same for work that stays in each core's own caches
  (``benchmarks/core_scaling.py``): the cores' own part of it (hyper-threads, clock).
* ``firmware.p6m.compiled_nochecks.frames_per_s`` — the same without the run-time checks.
* ``firmware.p6m.acquire_frames_per_s`` — link words, firmware, readout (CRC and checks of
  every module packet) and assembly of the frame: what a detector does per frame.
* ``firmware.p6m.processes.acquire_frames_per_s`` and ``firmware.p6m.threads_vs_processes``
  — the same work on as many processes, each owning a share of the modules, frames in and
  out through shared memory (``multiprocessing.shared_memory``): the alternative to
  threads, measured to choose (ours ÷ theirs, above 1 means threads win).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
from core_scaling import core_scaling
from thread_cpu import machine_busy_s, thread_times

from devices.firmware import Firmware
from devices.modular import ModularFirmware
from devices.sensor import SensorModel, link_stream
from fpga.designs.layout import PILATUS_6M
from fpga.designs.reference import ChainConfig

LAYOUT = PILATUS_6M


def p6m_counts(n: int, distinct: int = 2) -> list[np.ndarray]:
    """``n`` count frames of a ring pattern over the whole detector (``distinct`` drawn,
    repeated)."""
    h, w = LAYOUT.shape
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    flux = 1e4 * (1 + np.cos(r / (w / 25)) ** 2)
    made = SensorModel(LAYOUT, dead_pixels=240, hot_pixels=120, seed=1).frames(flux, 1.0,
                                                                                distinct)
    return [made[i % distinct] for i in range(n)]


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Shortest wall time of ``repeat`` calls, and the last result."""
    t_best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, result


def thread_rates(counts: Sequence[np.ndarray], workers: Sequence[int], repeat: int,
                 checks: bool = True) -> list[dict[str, Any]]:
    """Firmware-only and whole-acquisition rates of ``ModularFirmware`` on each number of
    ``workers`` threads, with its packet outputs and frames. The configurations are timed
    in turn within each repeat (after a warm-up run of each, from reset: the outputs the
    runs compare), so a machine whose load changes weighs on all of them alike."""
    fws = [ModularFirmware(LAYOUT, "compiled", workers=w, checks=checks) for w in workers]
    for fw in fws:
        fw.configure(ChainConfig())
    links = fws[0].link(counts)
    assert links is not None
    outputs = [fw.simulate(links) for fw in fws]
    t_sim = [float("inf")] * len(fws)
    cpu_sim = [float("inf")] * len(fws)
    spent = [dict.fromkeys(("wall", "running", "queued", "outside"), 0.0) for _ in fws]
    for _ in range(repeat):
        for k, fw in enumerate(fws):
            before, busy = thread_times(), machine_busy_s()
            t, cpu = time.perf_counter(), time.process_time()
            fw.simulate(links)
            wall, used = time.perf_counter() - t, time.process_time() - cpu
            t_sim[k] = min(t_sim[k], wall)
            cpu_sim[k] = min(cpu_sim[k], used)
            after, zero = thread_times(), (0.0, 0.0)
            ran = sum(v[0] - before.get(tid, zero)[0] for tid, v in after.items())
            spent[k]["wall"] += wall
            spent[k]["running"] += ran
            spent[k]["queued"] += sum(v[1] - before.get(tid, zero)[1]
                                      for tid, v in after.items())
            spent[k]["outside"] += max(machine_busy_s() - busy - ran, 0.0)
    t_acq = [float("inf")] * len(fws)
    frames: list[list[Any]] = [[] for _ in fws]
    for fw in fws:
        fw.configure(ChainConfig())
        fw.acquire(counts[:1])
    for _ in range(repeat):
        for k, fw in enumerate(fws):
            frames[k] = []  # (a detector has passed on and dropped the frames it made)
            t = time.perf_counter()
            frames[k] = fw.acquire(counts)
            t_acq[k] = min(t_acq[k], time.perf_counter() - t)
    for fw in fws:
        fw.close()
    n = len(counts)
    ticks = sum(stream.ticks for stream in links.streams)
    return [{"sim": n / ts, "acquire": n / ta, "outputs": out, "frames": fr,
             "ns_per_tick": ts / ticks * 1e9, "cpu_ms": cs / n * 1e3,
             "cpu_ns_per_tick": cs / ticks * 1e9, "threads": _shares(sp, w)}
            for ts, cs, ta, out, fr, sp, w in zip(t_sim, cpu_sim, t_acq, outputs, frames,
                                                  spent, workers, strict=True)]


def _shares(spent: dict[str, float], workers: int) -> dict[str, float]:
    """Where the ``workers`` threads' wall time of the firmware runs went: ``running``,
    ``queued`` (runnable, waiting for a core), ``blocked`` (neither: the GIL, waiting for
    the other threads' last modules), as shares of ``workers`` × the wall time; and
    ``outside_cores``, the cores other processes kept busy meanwhile."""
    total = workers * spent["wall"]
    running, queued = spent["running"] / total, spent["queued"] / total
    return {"running": running, "queued": queued,
            "blocked": max(1.0 - running - queued, 0.0),
            "outside_cores": spent["outside"] / spent["wall"]}


def _worker(modules: list[int], names: tuple[str, str], n: int, conn: Connection) -> None:
    """A process owning ``modules``: frames from shared memory in, module images out."""
    counts_shm, out_shm = SharedMemory(names[0]), SharedMemory(names[1])
    try:
        counts = np.ndarray((n, *LAYOUT.shape), np.uint32, counts_shm.buf)
        out = np.ndarray((n, *LAYOUT.shape), np.uint16, out_shm.buf)
        first = Firmware(LAYOUT.module, "compiled")
        boards = {m: (first if i == 0 else Firmware(LAYOUT.module, "compiled", shared=first))
                  for i, m in enumerate(modules)}
        for board in boards.values():
            board.configure(ChainConfig())
        h, w = LAYOUT.module.height, LAYOUT.module.width
        origins = LAYOUT.origins()
        conn.send("ready")
        while conn.recv() == "run":
            for m, board in boards.items():
                y0, x0 = origins[m]
                mine = list(counts[:, y0:y0 + h, x0:x0 + w])
                frames = board.acquire(mine, allow_loss=True,
                                       links=[link_stream(mine, LAYOUT.module)])
                for i, frame in enumerate(frames):
                    out[i, y0:y0 + h, x0:x0 + w] = frame.image
            conn.send("done")
    finally:
        counts_shm.close()
        out_shm.close()


def process_rate(counts: Sequence[np.ndarray], workers: int, repeat: int
                 ) -> tuple[float, np.ndarray]:
    """Whole-acquisition rate of ``workers`` processes sharing the modules; the frames."""
    n = len(counts)
    nbytes = n * LAYOUT.shape[0] * LAYOUT.shape[1]
    counts_shm = SharedMemory(create=True, size=4 * nbytes)
    out_shm = SharedMemory(create=True, size=2 * nbytes)
    ctx = mp.get_context("spawn")
    procs, conns = [], []
    try:
        np.ndarray((n, *LAYOUT.shape), np.uint32, counts_shm.buf)[:] = np.stack(counts)
        shares = [list(range(LAYOUT.modules))[k::workers] for k in range(workers)]
        for share in shares:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(share, (counts_shm.name, out_shm.name),
                                                     n, child), daemon=True)
            proc.start()
            procs.append(proc)
            conns.append(parent)
        for conn in conns:
            if conn.recv() != "ready":
                raise RuntimeError("a firmware process did not start")

        def run() -> None:
            for conn in conns:
                conn.send("run")
            for conn in conns:
                conn.recv()

        run()  # warm-up
        t, _ = best(run, repeat)
        frames = np.ndarray((n, *LAYOUT.shape), np.uint16, out_shm.buf).copy()
        return n / t, frames
    finally:
        for conn in conns:
            conn.send("stop")
        for proc in procs:
            proc.join(30)
        counts_shm.close()
        counts_shm.unlink()
        out_shm.close()
        out_shm.unlink()


def p6m_figures(frames: int, workers: int, repeat: int = 3) -> dict[str, float]:
    """Every ``firmware.p6m.*`` figure, printing what a person wants to read."""
    counts = p6m_counts(frames)
    print(f"Pilatus 6M: {LAYOUT.modules} modules of {LAYOUT.module.height}×"
          f"{LAYOUT.module.width}, {LAYOUT.module.lanes} lanes, {frames} frames of "
          f"{LAYOUT.shape[0]}×{LAYOUT.shape[1]}, {workers} worker(s) on "
          f"{len(os.sched_getaffinity(0))} CPU(s), load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} before the runs")
    par, one = thread_rates(counts, [workers, 1], repeat)
    same = all(np.array_equal(a[k], b[k]) for a, b in zip(par["outputs"], one["outputs"],
                                                           strict=True) for k in a)
    same = same and all(np.array_equal(a.image, b.image)
                        for a, b in zip(par["frames"], one["frames"], strict=True))
    if not same:
        raise SystemExit("the parallel firmware run differs from the single-threaded one")
    (nochecks,) = thread_rates(counts, [workers], repeat, checks=False)
    proc_fps, proc_frames = process_rate(counts, workers, repeat)
    if not all(np.array_equal(a.image, b) for a, b in zip(par["frames"], proc_frames,
                                                          strict=True)):
        raise SystemExit("the processes' frames differ from the threads'")
    mpix = LAYOUT.pixels / 1e6
    print(f"  firmware, {workers} threads: {par['sim']:.1f} frames/s "
          f"({par['sim'] * mpix:.0f} Mpixel/s), 1 thread {one['sim']:.1f} frames/s, "
          f"bit-exact: yes; without checks {nochecks['sim']:.1f} frames/s")
    shares = par["threads"]
    cpu_ratio = par["cpu_ms"] / one["cpu_ms"]
    cores = core_scaling(workers)
    print(f"  {workers} threads' wall time: running {shares['running']:.1%}, waiting for a "
          f"core {shares['queued']:.1%}, blocked {shares['blocked']:.1%} (other processes "
          f"kept {shares['outside_cores']:.2f} cores busy meanwhile); CPU per frame "
          f"{cpu_ratio:.2f}× one thread's (work in each core's own caches: {cores:.2f}×)")
    print(f"  acquisition (link, firmware, readout, assembly): threads "
          f"{par['acquire']:.1f} frames/s, processes {proc_fps:.1f} frames/s")
    return {
        "firmware.p6m.frames_per_s": par["sim"],
        "firmware.p6m.single_thread.frames_per_s": one["sim"],
        "firmware.p6m.single_thread.ns_per_module_tick": one["ns_per_tick"],
        "firmware.p6m.cpu_ms_per_frame": par["cpu_ms"],
        "firmware.p6m.single_thread.cpu_ns_per_module_tick": one["cpu_ns_per_tick"],
        "firmware.p6m.thread_speedup": par["sim"] / one["sim"],
        "firmware.p6m.threads.cpu_vs_one_thread": cpu_ratio,
        "firmware.p6m.threads.core_cpu_vs_one_thread": cores,
        **{f"firmware.p6m.threads.{name}": value for name, value in shares.items()},
        "firmware.p6m.compiled_nochecks.frames_per_s": nochecks["sim"],
        "firmware.p6m.mpixel_per_s": par["sim"] * mpix,
        "firmware.p6m.acquire_frames_per_s": par["acquire"],
        "firmware.p6m.processes.acquire_frames_per_s": proc_fps,
        "firmware.p6m.threads_vs_processes": par["acquire"] / proc_fps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=4, help="P6M frames per run")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    for name, value in p6m_figures(args.frames, args.workers).items():
        print(f"{name} = {value:.4g}")


if __name__ == "__main__":
    main()

