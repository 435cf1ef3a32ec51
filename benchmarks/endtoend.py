"""End to end: a megapixel diffraction scan through the firmware into HDF5 and the catalog,
reduced live, and how far the reduction falls behind.

* ``endtoend.1024.frames_per_s`` — a fly diffraction scan (the CeO2 powder turning on the
  rotation stage, as in diffraction tomography) of ``--frames`` 1024 × 1024 frames,
  triggered every ``--period`` seconds: scene → sensor → firmware (compiled; the
  detector's, ``fpga.designs.params.detector_params``: 64 pixels per tick, 16 before
  issue 18, then 32, ``--lanes`` another width) → readout → HDF5 → Tiled catalog, each frame
  integrated to a 1D pattern by the live reducer
  (:class:`analysis.live.LiveReducer`, OpenCL) whose patterns go into the catalog as
  a derived run. The rate counts from the first trigger to the last pattern written.
  Target ≥ 100 frames/s, floor 50. The triggers come at 111 Hz (``--period`` 0.009 s,
  each frame's exposure): the figure cannot pass the trigger rate, and at 100 Hz a
  pipeline that keeps up measures just under 100 (the last frame's latency counts), so
  the rate asked must be above the target for the figure to show it is met; the lag
  figures then say whether it kept up.
* ``endtoend.lag_s.max`` / ``endtoend.lag_s.p99`` — per frame, the time its pattern was
  emitted minus the frame's trigger (everything in between: exposure simulation,
  firmware, file, the scan's periodic collection, the reduction). Target max < 1 s.
* ``endtoend.lag_s.<part>.max`` / ``.mean`` — the lag by where a frame waits: ``detector``
  (trigger → frame in the file), ``announce`` (→ its event received: the plan collects
  every ``flush_period``) and ``reduce`` (→ its pattern emitted). A start-up cost shows as
  a large ``detector`` lag at frame 0 that the pipeline then works off
  (``endtoend.lag_s.detector.first``).
* ``endtoend.1024.detector_frames_per_s`` — the detector alone (first trigger → last
  frame in the file).
* ``endtoend.1024.cpu_ms.<part>`` — CPU milliseconds per frame over the scan (from
  before the plan to the last pattern) of the process's threads by what they do:
  ``sensor``, ``firmware`` and ``writer`` (the fly acquisition's stages: scene and
  counts, firmware and readout, HDF5), ``live_reducer``,
  ``run_engine``, ``tiled`` (the in-process Tiled server), ``other`` (the main thread,
  OpenCL's and the HDF5/catalog helpers'), ``total``; and
  ``endtoend.1024.cpu_bound_frames_per_s`` = 2 cores × 1000 / total, the most frames/s two
  cores could sustain if the work split perfectly. Linux only (``/proc``).
* ``endtoend.1024.pyfai.frames_per_s`` and ``endtoend.1024.reduce_vs_pyfai`` — the peer:
  pyFAI's ``integrate1d`` (CSR, cython, one thread of CPU; the method pyFAI's
  documentation recommends for CPUs) of the same frames read back from the run's file,
  the rate a pyFAI callback would reduce at, against our reducer's rate over the same
  frames (``endtoend.1024.reduce_frames_per_s``, derived patterns written per second of
  reduction work).
* ``live.tomo.lag_s.max`` (and ``demo.wall_s``, ``demo.peak_rss_mb``) — ``smeflow demo``
  run in a subprocess, its figures taken from the lines it prints: the live
  tomography reconstruction's lag behind acquisition. Target < 1 s. ``--skip-demo``
  leaves it out.

Run: ``python benchmarks/endtoend.py [--frames N] [--period S] [--skip-demo]``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from bluesky import RunEngine
from thread_cpu import ThreadCPU, with_fly_stages

from analysis.live import LiveReducer
from dataflow.catalog import Catalog
from devices.beamline import Beamline
from fpga.designs.params import ChainParams, detector_params
from plans import fly_tomo_scan

SHAPE = (1024, 1024)


class _Times:
    """Per raw ``seq_num``: the frame's trigger time (raw events) and when its pattern
    was emitted (derived events)."""

    def __init__(self, det: str) -> None:
        self.key = f"{det}_trigger_time"
        self.trigger: dict[int, float] = {}
        self.received: dict[int, float] = {}
        """When each frame's event reached the callbacks (wall clock)."""
        self.pattern: dict[int, float] = {}
        self._lock = threading.Lock()

    def raw(self, name: str, doc: dict[str, Any]) -> None:
        """RunEngine callback: the trigger time of every frame event."""
        if name == "event_page" and self.key in doc["data"]:
            now = time.time()
            with self._lock:
                self.trigger.update(zip(doc["seq_num"], doc["data"][self.key], strict=True))
                self.received.update((seq, now) for seq in doc["seq_num"])

    def derived(self, name: str, doc: dict[str, Any]) -> None:
        """Live reducer callback: the emission time of every pattern (a page of them
        per reduced chunk, ``DerivedRun.emit_patterns``)."""
        if name == "event_page" and "raw_seq_num" in doc["data"]:
            with self._lock:
                self.pattern.update(zip((int(s) for s in doc["data"]["raw_seq_num"]),
                                        (float(t) for t in doc["time"]), strict=True))

    def parts(self, frames: list[Any]) -> dict[str, float]:
        """The lag's parts (module docstring) from the fly's frame records: the k-th
        event of the stream is the k-th frame in the file (frames lost on the link have
        a trigger index but no event)."""
        written = sorted(frames, key=lambda frame: frame.index)
        with self._lock:
            seqs = sorted(self.trigger)
            if len(seqs) != len(written):
                raise SystemExit(f"{len(seqs)} frame events for {len(written)} frames written")
            done = {s: frame.done_time for s, frame in zip(seqs, written, strict=True)}
            trigger = {s: frame.trigger_time for s, frame in zip(seqs, written, strict=True)}
            parts = {
                "detector": [done[s] - trigger[s] for s in seqs],
                "announce": [self.received[s] - done[s] for s in seqs],
                "reduce": [self.pattern[s] - self.received[s] for s in seqs],
            }
        out = {f"endtoend.lag_s.{name}.{stat}": float(fn(values))
               for name, values in parts.items()
               for stat, fn in (("max", np.max), ("mean", np.mean))}
        out["endtoend.lag_s.detector.first"] = parts["detector"][0]
        return out

    def lags(self) -> np.ndarray:
        """Pattern time minus trigger time, per frame (seq order)."""
        with self._lock:
            missing = set(self.trigger) ^ set(self.pattern)
            if missing:
                raise SystemExit(f"{len(missing)} frames without both a trigger and a "
                                 f"pattern (e.g. seq {min(missing)})")
            return np.array([self.pattern[s] - self.trigger[s] for s in sorted(self.trigger)])


def endtoend(folder: Path, frames: int, period: float,
             lanes: int | None = None) -> dict[str, float]:
    """The fly diffraction scan with live integration; its figures. The firmware is the
    detector's (``detector_params``) or one of ``lanes`` pixels per tick."""
    catalog = Catalog(folder / "catalog")
    RE = RunEngine({})
    catalog.subscribe(RE)
    params = detector_params(*SHAPE) if lanes is None else ChainParams(*SHAPE, lanes)
    bl = Beamline.create(catalog.raw_dir, params=params, time_scale=1.0)
    times = _Times(bl.det.name)
    live = LiveReducer.for_catalog(catalog, extra_callbacks=(times.derived,))
    RE.subscribe(live)  # type: ignore[no-untyped-call]
    RE.subscribe(times.raw)  # type: ignore[no-untyped-call]
    try:
        t0 = time.perf_counter()
        bl.det.stage()
        bl.det.unstage()
        for out in (None, np.empty(SHAPE, np.int64)):  # the counting passes compiled/loaded
            bl.det.sensor.expose(np.zeros(SHAPE), period, out=out)  # (int64: fly frames)
        live.warm_up(SHAPE, bl.geometry)
        print(f"1024×1024 firmware ({params.lanes} lanes), sensor and OpenCL kernels ready in "
              f"{time.perf_counter() - t0:.1f} s")
        bl.use_powder()
        cpu = ThreadCPU() if os.path.isdir("/proc/self/task") else None
        if cpu is not None:
            cpu.start()
        (uid,) = RE(fly_tomo_scan(
            bl.det, bl.rotation, bl.sample_x, bl.shutter, out_position=20.0,
            exposure=period, n_darks=0, n_flats=0, num_projections=frames, start=0.0,
            stop=180.0,  # (the plan's default flush_period: the users' path)
            md={"geometry": bl.geometry.to_metadata(), "purpose": "end-to-end benchmark"}))
        if not live.wait(uid, timeout=600):
            raise SystemExit("the live reduction did not finish in 600 s")
        if cpu is not None:
            cpu.stop()
        result = live.results[uid]
        if result.exit_status != "success" or result.derived_uid is None:
            raise SystemExit(f"live reduction failed: {result.reason}")
        fly = bl.det.fly
        assert fly is not None and len(fly.frames) == frames
        lags = times.lags()
        first_trigger = min(times.trigger.values())
        last_pattern = max(times.pattern.values())
        # (up to the last pattern: not the raw file's digest at the run's close after it)
        used = with_fly_stages(cpu.until(last_pattern), fly.cpu) if cpu is not None else {}
        detector = frames / (fly.frames[-1].done_time - fly.frames[0].trigger_time)
        patterns = catalog.run(result.derived_uid)["primary"]["intensity"]
        if patterns.shape[0] != frames:
            raise SystemExit(f"{patterns.shape[0]} patterns in the catalog for {frames} frames")
        raw = catalog.run(uid)["primary"]["det_image"]
        sample = np.asarray(raw[:min(frames, 20)])
        pattern0 = np.asarray(patterns[0])
        figures = {
            "endtoend.1024.frames_per_s": frames / (last_pattern - first_trigger),
            "endtoend.lag_s.max": float(lags.max()),
            "endtoend.lag_s.p99": float(np.percentile(lags, 99)),
            "endtoend.lag_s.mean": float(lags.mean()),
            "endtoend.1024.detector_frames_per_s": detector,
            "endtoend.live_reducer_lag_s.max": result.lag_max,
            **times.parts(fly.frames),
        }
        print(f"fly diffraction scan, {frames} frames of 1024×1024 triggered every "
              f"{period * 1e3:g} ms: {figures['endtoend.1024.frames_per_s']:.1f} frames/s "
              f"trigger → pattern in the catalog (detector alone {detector:.1f} frames/s); "
              f"lag max {lags.max():.3f} s, p99 {np.percentile(lags, 99):.3f} s, mean "
              f"{lags.mean():.3f} s; dropped reductions {result.dropped_frames}")
        figures.update({f"endtoend.1024.cpu_ms.{name}": seconds / frames * 1e3
                        for name, seconds in used.items()})
        if used:
            figures["endtoend.1024.cpu_bound_frames_per_s"] = 2000 / (used["total"] / frames
                                                                      * 1e3)
            print("CPU per frame by thread (ms): " + ", ".join(
                f"{name} {seconds / frames * 1e3:.1f}" for name, seconds in used.items()))
        figures.update(peer_rate(bl, sample, pattern0))
        return figures
    finally:
        bl.close()
        live.close()
        catalog.close()


def peer_rate(bl: Beamline, frames: np.ndarray, ours_first: np.ndarray) -> dict[str, float]:
    """pyFAI's integrate1d of the run's frames (read back), and ours on the same frames."""
    import logging

    from analysis.azint import AzimuthalIntegrator
    from analysis.reduce import AzintParams, azint_chunk

    sys.path.insert(0, str(Path(__file__).parent))
    from azint import pyfai_of

    logging.getLogger("pyFAI").setLevel(logging.ERROR)
    params = AzintParams()
    mask = bl.det.pixel_mask_array() != 0
    theirs = pyfai_of(bl.geometry)
    kwargs = {"unit": params.unit, "mask": mask, "method": ("no", "csr", "cython"),
              "error_model": params.error_model}
    theirs.integrate1d(frames[0], params.bins, **kwargs)  # builds its sparse matrix
    t = time.perf_counter()
    for frame in frames:
        res = theirs.integrate1d(frame, params.bins, **kwargs)
    pyfai = len(frames) / (time.perf_counter() - t)
    ours = AzimuthalIntegrator(bl.geometry)
    azint_chunk(frames[:1], ours, params, mask=mask)
    t = time.perf_counter()
    for frame in frames:
        azint_chunk(frame[None], ours, params, mask=mask)
    mine = len(frames) / (time.perf_counter() - t)
    has = res.count > 0 if res.count is not None else np.ones(params.bins, bool)
    worst = float(np.max(np.abs(ours_first[has] - theirs.integrate1d(frames[0], params.bins,
                                                                      **kwargs).intensity[has])
                         / np.maximum(np.abs(ours_first[has]), 1e-12)))
    print(f"the same frames reduced one by one: ours {mine:.1f} frames/s, pyFAI integrate1d "
          f"(no splitting, CSR, cython) {pyfai:.1f} frames/s; first pattern agrees to "
          f"{worst:.1e} relative")
    return {"endtoend.1024.reduce_frames_per_s": mine,
            "endtoend.1024.pyfai.frames_per_s": pyfai,
            "endtoend.1024.reduce_vs_pyfai": mine / pyfai}


def demo_figures(folder: Path) -> dict[str, float]:
    """``smeflow demo -q`` in a subprocess; the ``name = value`` figures it prints."""
    cmd = [sys.executable, "-m", "sme", "demo", "-q", "--data", str(folder / "demo-data"),
           "-o", str(folder / "demo-out")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "SMEFLOW_PROGRESS": "0"})
    if done.returncode:
        raise SystemExit(f"smeflow demo failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found = dict(re.findall(r"^([\w.]+) = ([-+0-9.eE]+|nan)$", done.stdout, re.M))
    want = ("demo.wall_s", "demo.peak_rss_mb", "live.tomo.lag_s.max")
    if not all(k in found for k in want):
        raise SystemExit(f"smeflow demo did not print {', '.join(want)}:\n{done.stdout[-2000:]}")
    return {k: float(v) for k, v in found.items()}


def main() -> None:
    """Print the readable lines, then one ``name = value`` line per figure."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--frames", type=int, default=1000, help="frames of the scan")
    ap.add_argument("--period", type=float, default=0.009,
                    help="seconds between triggers (0.009: 111 frames/s asked)")
    ap.add_argument("--skip-demo", action="store_true", help="leave out smeflow demo")
    ap.add_argument("--lanes", type=int, default=None,
                    help="the firmware's pixels per tick (default: the detector's, 64)")
    args = ap.parse_args()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        figures.update(endtoend(folder, args.frames, args.period, args.lanes))
        if not args.skip_demo:
            figures.update(demo_figures(folder))
    for name, value in figures.items():
        print(f"{name} = {value:.4g}")


if __name__ == "__main__":
    main()
