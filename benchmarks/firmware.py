"""Frames per second of the whole detector firmware (``fpga/designs``), simulated
cycle-accurately: sensor link words in, packets out, every packet word recorded.

* ``firmware.1024.compiled.frames_per_s`` — 1024×1024 frames, 16 pixels per tick, compiled
  backend with its run-time checks on, batch mode, steady state (the one-off compile and
  the cached start are reported apart). Target ≥ 100 frames/s (a 100 Hz megapixel
  detector in real time), floor 20.
* ``firmware.1024.compiled_nochecks.frames_per_s`` — the same with ``checks=False``.
* ``firmware.1024.lanes64.frames_per_s`` — the same as the first at 64 pixels per tick,
  the detector's datapath (``fpga.designs.params.detector_params``; the figures above keep
  16 lanes, comparable with their history).
* ``firmware.256.interp.frames_per_s`` — 256×256 frames on the reference interpreter.
* ``firmware.1024.readout.frames_per_s`` / ``firmware.1024.reference.frames_per_s`` —
  the readout backend decoding those packets and the numpy reference model, for scale.
* ``firmware.p6m.*`` — the Pilatus 6M: 60 module boards simulated in parallel; see
  ``benchmarks/firmware_p6m.py`` (``firmware.p6m.frames_per_s``: target ≥ 100, floor 25).

There is no peer: no other open simulator runs this firmware. The link stimulus is built
before the clock starts; frames are Poisson counts of a ring pattern (sensor model).

Run: ``python benchmarks/firmware.py [--frames N] [--p6m-frames N] [--workers N]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from firmware_p6m import p6m_figures

from dataflow.readout import Readout
from devices.sensor import SensorModel, link_stream
from fpga.designs.chain import build
from fpga.designs.params import ChainParams, detector_params
from fpga.designs.reference import reference_frame
from sme import Simulator


def frames_for(p: ChainParams, n: int, distinct: int = 4) -> list[np.ndarray]:
    """``n`` count frames (``distinct`` different ones, repeated)."""
    yy, xx = np.mgrid[0:p.height, 0:p.width]
    r = np.hypot(yy - p.height / 2, xx - p.width / 2)
    flux = 1e4 * (1 + np.cos(r / (p.width / 25)) ** 2)
    made = SensorModel(p, dead_pixels=10, hot_pixels=5, seed=1).frames(flux, 1.0, distinct)
    return [made[i % distinct] for i in range(n)]


def firmware_rate(p: ChainParams, backend: str, n: int, repeat: int = 3,
                  **options: object) -> tuple[float, float, dict[str, np.ndarray]]:
    """(best frames/s, seconds to a ready simulator, outputs of the last run)."""
    link = link_stream(frames_for(p, n), p)
    stim = link.stimulus()
    t0 = time.perf_counter()
    sim = Simulator(build(p), backend=backend, trace=False, **options)  # type: ignore[arg-type]
    ready = time.perf_counter() - t0
    sim.run_batch(stim, link.ticks)  # warm-up: the first call's one-off costs
    best = float("inf")
    out: dict[str, np.ndarray] = {}
    for _ in range(repeat):
        t = time.perf_counter()
        out = sim.run_batch(stim, link.ticks)
        best = min(best, time.perf_counter() - t)
    return n / best, ready, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=40, help="1024×1024 frames per run")
    ap.add_argument("--p6m-frames", type=int, default=4, help="Pilatus 6M frames per run")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                    help="threads (and processes) simulating the P6M's modules")
    args = ap.parse_args()
    big, small = ChainParams(1024, 1024, 16), ChainParams(256, 256, 16)

    fps, ready, out = firmware_rate(big, "compiled", args.frames)
    print(f"compiled, 1024×1024: {fps:.1f} frames/s "
          f"({fps * big.words_per_frame / 1e6:.2f} M ticks/s), ready in {ready:.1f} s")
    fps_nc, _, _ = firmware_rate(big, "compiled", args.frames, checks=False)
    print(f"compiled without checks, 1024×1024: {fps_nc:.1f} frames/s")
    wide = detector_params(big.height, big.width)
    fps_w, ready_w, _ = firmware_rate(wide, "compiled", args.frames)
    print(f"compiled, 1024×1024, {wide.lanes} lanes (the detector's): {fps_w:.1f} frames/s "
          f"({fps_w * wide.words_per_frame / 1e6:.2f} M ticks/s), ready in {ready_w:.1f} s")
    fps_i, _, _ = firmware_rate(small, "interp", 2, repeat=1)
    print(f"interpreter, 256×256: {fps_i:.2f} frames/s")

    readout = Readout(big.lanes, (big.height, big.width), first_frame=None)
    t = time.perf_counter()
    got = readout.feed_outputs(out)
    fps_r = len(got) / (time.perf_counter() - t)
    print(f"readout backend: {len(got)} frames decoded and checked, {fps_r:.0f} frames/s")
    raw = frames_for(big, 1)[0]
    t = time.perf_counter()
    for _ in range(3):
        reference_frame(raw, big)
    fps_ref = 3 / (time.perf_counter() - t)
    print(f"numpy reference model: {fps_ref:.1f} frames/s")

    p6m = p6m_figures(args.p6m_frames, args.workers)

    print(f"firmware.1024.compiled.frames_per_s = {fps:.4g}")
    print(f"firmware.1024.compiled.ready_s = {ready:.3g}")
    print(f"firmware.1024.compiled_nochecks.frames_per_s = {fps_nc:.4g}")
    print(f"firmware.1024.lanes{wide.lanes}.frames_per_s = {fps_w:.4g}")
    print(f"firmware.256.interp.frames_per_s = {fps_i:.4g}")
    print(f"firmware.1024.readout.frames_per_s = {fps_r:.4g}")
    print(f"firmware.1024.reference.frames_per_s = {fps_ref:.4g}")
    for name, value in p6m.items():
        print(f"{name} = {value:.4g}")


if __name__ == "__main__":
    main()
