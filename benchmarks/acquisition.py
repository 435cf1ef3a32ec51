"""Acquisition speed of the beamline: fly-scan frame rate, step-scan overhead, HDF5 layout.

* ``fly.512.frames_per_s`` — ``fly_tomo_scan`` of the phantom with 512×512 frames: the
  rotation stage turns in real time and triggers the detector faster than it can keep up
  (every ``--exposure`` seconds), so the figure is the sustained rate of the whole detector
  (scene → sensor → firmware on the compiled backend → readout → HDF5), counted from the
  first trigger to the last frame in the file; the run goes into the embedded catalog. The
  firmware is the detector's (``fpga.designs.params.detector_params``: 64 pixels per tick,
  16 before issue 18, then 32; ``--lanes`` builds another width, for all the figures here). The
  end-to-end rate of the plan (open to close of the run, catalog written) is printed too.
  Target ≥ 500 frames/s. The figure cannot pass the trigger rate (``fly.512.trigger_hz``,
  1/exposure), so the default exposure is 1 ms: triggers at 1 kHz, faster than the target,
  make the figure what the pipeline sustains. At 2 ms (500 Hz) a detector that keeps up
  measures just under 500 by construction (599 trigger periods of 2 ms from the first
  trigger to the last, the last frame's latency on top), so 500 could never be shown
  there. ``fly.512.at_2ms.frames_per_s`` is the same scan with 2 ms triggers (twice the
  photons a frame): it shows whether the detector keeps up with a 500 Hz rotation.
* ``fly.512.vs_ophyd_sim`` — that rate over the rate of ophyd's own simulated 2D
  detector (``ophyd.sim.SynSignalWithRegistry`` returning a fixed 512×512 uint16 frame,
  which it saves as one ``.npy`` file per frame) in ``bluesky.plans.count`` into the same
  catalog: ophyd.sim has no fly-capable area detector, and ``count`` is the fastest plan
  that gets frames out of it.
* ``fly.512.cpu_ms.<stage>`` — where a fly-scan frame's time goes: each stage of the
  detector's pipeline run alone on one thread for ``--breakdown-frames`` frames of the
  phantom at angles across 180°, CPU milliseconds per frame: ``flux`` (the phantom's
  projection, drawn into reused buffers as the fly's workers do: ``FluxBuffer``),
  ``sensor`` (Poisson counts, drawn into the link's words as the fly
  acquisition does), ``link`` (a link stream for them: the last one, refilled),
  ``firmware`` (the compiled firmware alone), ``readout`` (decoding and checking the
  packets, the images into a batch array as the fly acquisition does), ``hdf5``
  (appending the frames to a file in batches of 8, as the fly writer does, and closing
  it); ``total``, and ``fly.512.cpu_bound_frames_per_s`` = 2 cores × 1000 / total, the
  most two cores could sustain if the work split perfectly. ``digest`` (the file's
  SHA-256, which the detector takes when the run closes its file, after the last frame)
  is printed apart and left out of ``total``: ``fly.512.frames_per_s`` and
  ``fly.512.plan_cpu_ms`` end at the last frame in the file, before it (counted in
  ``hdf5`` before, it was more than half of that figure).
* ``fly.512.plan_cpu_ms.<part>`` — CPU milliseconds per frame of the fly scan (from the
  plan's start to the last frame in the file, not the file's digest at the run's close
  after it) by thread, as ``benchmarks/endtoend.py``
  groups them (``sensor``: the fly workers' scene and sensor stages, ``firmware``: their
  firmware stage, ``writer``,
  ``run_engine``, ``tiled``, ``other``, ``total``; ``benchmarks/thread_cpu.py``): beside
  the detector's stages, what the RunEngine, the catalog and the rest take. Linux only
  (``/proc``). The plan's ``firmware`` is the fly stage's: the firmware and the readout
  (``fly.512.cpu_ms.firmware`` + ``fly.512.cpu_ms.readout`` alone).
* ``fly.512.window_cpu_ms.<part>`` — the same from the first trigger to the last frame in
  the file, the stretch ``fly.512.frames_per_s`` measures: the CPU that competed with the
  detector for the two cores (500 frames/s allows 4 ms a frame). The plan's figures add
  what runs before the first trigger (staging, the run's start in the catalog, the fly's
  arming: about 0.3 ms a frame of 600), which does not slow the detector. The threads'
  CPU is sampled every 0.1 s, so up to 0.1 s before the first trigger may count too.
* ``fly.512.window_cores_busy`` — that stretch's CPU over its wall time: on a machine
  to itself, 2 when both cores worked all along, less when one idled (on a shared one,
  the other processes' share is missing from it, and ``queued`` below grows).
  ``fly.512.window_worker_ms.<part>`` — the fly workers' wall time in that stretch
  (``WORKERS`` threads, alive all along), per frame and summed over them: ``cpu``,
  ``queued`` (runnable, waiting for a core the other threads or processes held: the
  scheduler's ``schedstat``) and ``blocked`` (the rest: waiting for the GIL, the
  acquisition's lock, or for work).
  ``fly.512.window_cpu_ms.outside`` — what the machine's cores spent in that stretch
  outside this process (``/proc/stat``): other processes, and the kernel's threads, such
  as those writing back the dirty pages of files written before (a benchmark run just
  before this one, or this one's own frames).
* ``step.overhead_ms`` — ``bluesky.plans.count`` with the firmware detector (256×256,
  exposure ``--step-exposure`` waited in real time): wall time per point minus the
  exposure, i.e. what the RunEngine, the readout, the HDF5 file and the catalog add per
  point. Target ≤ 15 ms. Where it goes: ``step.per_run_ms`` (staging, opening and closing
  the run — the catalog's start, descriptor and stop writes — and unstaging, once per
  scan) and ``step.per_point_ms`` (each point's RunEngine messages beyond the exposure:
  trigger, read with the frame's HDF5 write, the event's journal and catalog documents),
  from the time between the RunEngine's messages.
* ``h5.frame_read_mb_per_s``, ``h5.sinogram_read_mb_per_s`` (and the per-frame-chunk
  figures and ratios) — the tomography writer's chunk layout, from
  ``benchmarks/h5_layout.py``.

The fly-scan and step-scan figures are each measured ``--repeat`` times (fresh catalog,
beamline and RunEngine every time) and the best run counts, as the machine is shared; the
load average is printed with every run.

Run: ``python benchmarks/acquisition.py [--frames N] [--repeat R] [--skip-h5] [--only PARTS]``;
``--only fly,breakdown`` measures those parts alone (``SECTIONS``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bluesky import RunEngine
from bluesky import plans as bp
from thread_cpu import ThreadCPU, with_fly_stages

from dataflow.catalog import Catalog
from dataflow.hdf5 import FrameWriter
from dataflow.readout import Readout
from devices.beamline import Beamline
from devices.firmware import Firmware
from devices.fly import BATCH, WORKERS
from devices.samples import FluxBuffer, Pose
from devices.sensor import LinkStream, frame_link
from fpga.designs.params import ChainParams, detector_params
from plans import fly_tomo_scan


def _load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def best_of(repeat: int, measure: Callable[[Path], dict[str, float]], key: str,
            smallest: bool = False) -> dict[str, float]:
    """``measure`` (given a fresh folder) ``repeat`` times; the run whose ``key`` is best."""
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(measure(Path(tmp)))
        print(f"  ({_load()})")
    return (min if smallest else max)(runs, key=lambda run: run[key])


def chain(height: int, width: int, lanes: int | None) -> ChainParams:
    """The detector's firmware (``detector_params``), or one of ``lanes`` pixels per tick."""
    return detector_params(height, width) if lanes is None else ChainParams(height, width, lanes)


def fly_rate(folder: Path, frames: int, exposure: float,
             lanes: int | None = None) -> dict[str, float]:
    """Fly tomography of 512×512 frames into a fresh catalog in ``folder``."""
    catalog = Catalog(folder / "fly")
    RE: Any = RunEngine({})
    catalog.subscribe(RE)
    t0 = time.perf_counter()  # the detector builds its firmware (numba's cache) here
    bl = Beamline.create(catalog.raw_dir, params=chain(512, 512, lanes),
                         backend="compiled", time_scale=1.0)
    try:
        print(f"beamline with 512×512 firmware ({bl.det.params.lanes} lanes) ready in "
              f"{time.perf_counter() - t0:.1f} s")
        bl.use_phantom()
        cpu = ThreadCPU() if os.path.isdir("/proc/self/task") else None
        if cpu is not None:
            cpu.start()
        t0 = time.perf_counter()
        (uid,) = RE(fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter,
                                  out_position=20.0, exposure=exposure, n_darks=0, n_flats=0,
                                  num_projections=frames, start=0.0, stop=180.0))
        wall = time.perf_counter() - t0
        fly = bl.det.fly
        assert fly is not None and len(fly.frames) == frames
        if cpu is not None:  # (to the last frame in the file, as the rate)
            cpu.stop()
        used = (with_fly_stages(cpu.until(fly.frames[-1].done_time), fly.cpu)
                if cpu is not None else {})
        first, last = fly.frames[0].trigger_time, fly.frames[-1].done_time
        raw = cpu.between(first, last) if cpu is not None else {}
        window = with_fly_stages(raw, fly.cpu) if raw else {}
        sustained = frames / (fly.frames[-1].done_time - fly.frames[0].trigger_time)
        shape = catalog.run(uid)["primary"]["det_image"].shape
        assert shape == (frames, 512, 512), shape
        print(f"fly_tomo_scan, {frames} frames of 512×512, triggers every {exposure * 1e3:g} ms: "
              f"{sustained:.0f} frames/s sustained (first trigger → last frame in the file), "
              f"{frames / wall:.0f} frames/s for the whole plan into the catalog "
              f"({wall:.2f} s), detector lag at the end {fly.max_lag:.2f} s")
        figures = {"fly.512.frames_per_s": sustained, "fly.512.plan_frames_per_s": frames / wall,
                   "fly.512.trigger_hz": 1.0 / exposure}
        for span, key, by_thread in (("plan start", "plan", used),
                                     ("first trigger", "window", window)):
            if by_thread:
                print(f"  CPU per frame by thread, {span} → last frame in the file (ms): "
                      + ", ".join(f"{name} {seconds / frames * 1e3:.2f}"
                                  for name, seconds in by_thread.items()))
                figures.update({f"fly.512.{key}_cpu_ms.{name}": seconds / frames * 1e3
                                for name, seconds in by_thread.items()})
        if window:
            assert cpu is not None
            queued = cpu.queued_between(first, last)["fly_workers"]
            parts = {"cpu": raw["fly_workers"], "queued": queued,
                     "blocked": WORKERS * (last - first) - raw["fly_workers"] - queued}
            figures["fly.512.window_cores_busy"] = raw["total"] / (last - first)
            figures.update({f"fly.512.window_worker_ms.{name}": seconds / frames * 1e3
                            for name, seconds in parts.items()})
            print(f"  cores busy {figures['fly.512.window_cores_busy']:.2f} of 2; the {WORKERS} "
                  "fly workers' wall time per frame (ms): "
                  + ", ".join(f"{name} {seconds / frames * 1e3:.2f}"
                              for name, seconds in parts.items()))
            outside = cpu.machine_between(first, last) - raw["total"]
            figures["fly.512.window_cpu_ms.outside"] = outside / frames * 1e3
            print(f"  CPU per frame outside this process meanwhile (other processes, the "
                  f"kernel's threads): {outside / frames * 1e3:.2f} ms")
        return figures
    finally:
        bl.close()
        catalog.close()


def fly_breakdown(folder: Path, frames: int, exposure: float,
                  lanes: int | None = None) -> dict[str, float]:
    """CPU ms per 512×512 frame of each stage of the fly pipeline, each run alone."""
    bl = Beamline.create(folder, params=chain(512, 512, lanes), backend="compiled",
                         time_scale=1.0)
    det = bl.det
    bl.use_phantom()
    sample, shape = det.scene.sample, det.layout.shape
    assert isinstance(det.firmware, Firmware)  # one module
    board = Firmware(det.params, "compiled", shared=det.firmware)  # the detector's twin
    board.configure(det.chain_config(), det.tables)
    readout = Readout(det.params.lanes, shape)
    cpu: dict[str, float] = {}

    def timed(stage: str, work: Callable[..., Any], *args: Any) -> Any:
        t0 = time.thread_time()
        result = work(*args)
        cpu[stage] = cpu.get(stage, 0.0) + time.thread_time() - t0
        return result

    try:
        writer = FrameWriter(folder, "breakdown.h5", det.out_shape(), data_key="det_image")
        images = np.empty((BATCH, *det.out_shape()), np.uint16)  # (as devices.fly decodes)
        batch = 0
        link: LinkStream | None = None
        buffers = [FluxBuffer() for _ in range(WORKERS)]  # (each fly worker its own)
        for k, angle in enumerate(np.linspace(0.0, 180.0, frames + 1)):
            # as the fly workers do: each frame into its worker's buffer
            flux = timed("flux", sample.flux_into, Pose(angle=float(angle)), shape,
                         det.pixel_size, buffers[k % len(buffers)])
            # as the fly acquisition does: the counts drawn into a reused link stream's words
            made = timed("link", frame_link, det.params, link if k else None)
            assert made is not None  # (512 pixels a line: whole words, no padding)
            link, into = made
            timed("sensor", lambda f=flux, o=into: det.sensor.expose(f, exposure, out=o))
            out = timed("firmware", board.simulate, link)
            readout.decode_into(images[batch:])
            (_,) = timed("readout", readout.feed_outputs, out)
            assert readout.decoded_into == 1
            if k == 0:  # a warm-up frame: every compiled function loaded
                cpu.clear()
                continue
            batch += 1
            if batch == BATCH or k == frames:
                timed("hdf5", writer.append_many, images[:batch])
                batch = 0
        timed("hdf5", writer.close_file)
        timed("digest", writer.digest)  # (at the run's close: after the last frame)
    finally:
        board.close()
        bl.close()
    per_frame = {f"fly.512.cpu_ms.{stage}": seconds / frames * 1e3
                 for stage, seconds in cpu.items()}
    total = sum(ms for name, ms in per_frame.items() if not name.endswith(".digest"))
    per_frame["fly.512.cpu_ms.total"] = total
    per_frame["fly.512.cpu_bound_frames_per_s"] = 2 * 1000 / total
    print(f"fly pipeline, CPU per 512×512 frame, each stage alone ({frames} frames): "
          + ", ".join(f"{name.rsplit('.', 1)[1]} {ms:.2f} ms" for name, ms in per_frame.items()
                      if ".cpu_ms." in name)
          + f"; two cores at most {per_frame['fly.512.cpu_bound_frames_per_s']:.0f} frames/s")
    return per_frame


def ophyd_sim_rate(folder: Path, frames: int) -> float:
    """``count`` of ophyd.sim's file-writing 2D detector (512×512 uint16) into a catalog."""
    from ophyd.sim import SynSignalWithRegistry

    catalog = Catalog(folder / "peer")
    RE: Any = RunEngine({})
    catalog.subscribe(RE)
    frame = np.random.default_rng(0).poisson(800, (512, 512)).astype(np.uint16)
    img = SynSignalWithRegistry(func=lambda: frame, name="img",
                                save_path=str(catalog.raw_dir))
    try:
        t0 = time.perf_counter()
        (uid,) = RE(bp.count([img], frames))
        wall = time.perf_counter() - t0
        assert catalog.run(uid)["primary"]["img"].shape == (frames, 512, 512)
        print(f"ophyd.sim SynSignalWithRegistry, count of {frames} frames of 512×512 into the "
              f"catalog: {frames / wall:.0f} frames/s ({wall:.2f} s)")
        return frames / wall
    finally:
        catalog.close()


def step_overhead(folder: Path, points: int, exposure: float,
                  lanes: int | None = None) -> dict[str, float]:
    """Per-point time of ``count`` with the firmware detector beyond its exposure (ms)."""
    catalog = Catalog(folder / "step")
    RE: Any = RunEngine({})
    catalog.subscribe(RE)
    bl = Beamline.create(catalog.raw_dir, params=chain(256, 256, lanes), backend="compiled",
                         exposure_time_scale=1.0)
    try:
        bl.det.exposure.put(exposure)
        RE(bp.count([bl.det], 2))  # warm: firmware compiled, files and catalog opened once
        messages: list[tuple[float, str]] = []
        RE.msg_hook = lambda msg: messages.append((time.perf_counter(), msg.command))
        t0 = time.perf_counter()
        (uid,) = RE(bp.count([bl.det], points))
        wall = time.perf_counter() - t0
        RE.msg_hook = None
        assert catalog.run(uid)["primary"]["det_image"].shape[0] == points
        overhead_ms = (wall / points - exposure) * 1e3
        spent: dict[str, float] = {}  # seconds from each message to the next, by command
        for (t, command), (t_next, _) in zip(messages, [*messages[1:], (t0 + wall, "")],
                                             strict=True):
            spent[command] = spent.get(command, 0.0) + t_next - t
        per_run = sum(spent.pop(c, 0.0) for c in ("stage", "open_run", "close_run", "unstage"))
        per_point_ms = (sum(spent.values()) / points - exposure) * 1e3
        print(f"count, {points} points of 256×256, exposure {exposure * 1e3:g} ms: "
              f"{wall / points * 1e3:.1f} ms per point, {overhead_ms:.1f} ms beyond the exposure "
              f"({per_point_ms:.1f} ms at each point, {per_run * 1e3:.0f} ms per run: "
              f"{per_run / points * 1e3:.1f} ms per point)")
        return {"step.overhead_ms": overhead_ms, "step.per_point_ms": per_point_ms,
                "step.per_run_ms": per_run * 1e3}
    finally:
        bl.close()
        catalog.close()


SECTIONS = ("fly", "breakdown", "peer", "step", "h5")
"""The parts of the benchmark, in the order they run: ``fly`` (``fly.512.frames_per_s``
and the rest of ``fly_rate``'s figures, at ``--exposure`` and at 2 ms), ``breakdown``
(``fly.512.cpu_ms.*``), ``peer`` (ophyd.sim's rate; ``fly.512.vs_ophyd_sim`` with
``fly``), ``step`` (``step.*``) and ``h5`` (the HDF5 layout)."""


def sections(text: str) -> tuple[str, ...]:
    """``--only``'s value: names of :data:`SECTIONS`, separated by commas."""
    names = tuple(name.strip() for name in text.split(","))
    unknown = [name for name in names if name not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"no part {', '.join(map(repr, unknown))}; choose from {', '.join(SECTIONS)}")
    return names


def parser() -> argparse.ArgumentParser:
    """The command line of :func:`main`."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--frames", type=int, default=600, help="fly-scan frames")
    ap.add_argument("--exposure", type=float, default=0.001,
                    help="fly-scan frame time (s); triggers come this often")
    ap.add_argument("--peer-frames", type=int, default=200, help="ophyd.sim frames")
    ap.add_argument("--points", type=int, default=50, help="step-scan points")
    ap.add_argument("--step-exposure", type=float, default=0.05, help="step exposure (s)")
    ap.add_argument("--breakdown-frames", type=int, default=48,
                    help="frames of the per-stage CPU breakdown")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of the fly and step figures (the best counts)")
    ap.add_argument("--skip-h5", action="store_true", help="leave out the HDF5 layout part")
    ap.add_argument("--lanes", type=int, default=None,
                    help="the firmware's pixels per tick (default: the detector's, 64)")
    ap.add_argument("--only", type=sections, default=SECTIONS, metavar="PARTS",
                    help=f"measure only these parts, comma-separated: {', '.join(SECTIONS)} "
                         "(default: all)")
    return ap


def main() -> None:
    """Print the readable lines, then one ``name = value`` line per figure."""
    args = parser().parse_args()
    figures: dict[str, float] = {}
    print(f"({_load()})")
    if "fly" in args.only:
        figures.update(best_of(args.repeat, lambda folder: fly_rate(
            folder, args.frames, args.exposure, args.lanes), "fly.512.frames_per_s"))
        at_2ms = best_of(args.repeat, lambda folder: fly_rate(folder, args.frames, 0.002,
                                                              args.lanes),
                         "fly.512.frames_per_s")
        figures["fly.512.at_2ms.frames_per_s"] = at_2ms["fly.512.frames_per_s"]
    if "breakdown" in args.only:
        with tempfile.TemporaryDirectory() as tmp:
            figures.update(fly_breakdown(Path(tmp), args.breakdown_frames, args.exposure,
                                         args.lanes))
        print(f"  ({_load()})")
    if "peer" in args.only:
        with tempfile.TemporaryDirectory() as tmp:
            peer = ophyd_sim_rate(Path(tmp), args.peer_frames)
        print(f"  ({_load()})")
        figures["fly.512.ophyd_sim.frames_per_s"] = peer
        if "fly.512.frames_per_s" in figures:
            figures["fly.512.vs_ophyd_sim"] = figures["fly.512.frames_per_s"] / peer
    if "step" in args.only:
        figures.update(best_of(args.repeat, lambda folder: step_overhead(
            folder, args.points, args.step_exposure, args.lanes), "step.overhead_ms",
            smallest=True))
    if "h5" in args.only and not args.skip_h5:
        from h5_layout import measure_layouts

        print("HDF5 chunk layout of the tomography writer against per-frame chunks "
              "(181 frames of 512×512, cold reads):")
        figures.update(measure_layouts())
    for name, value in figures.items():
        print(f"{name} = {value:.4g}")


if __name__ == "__main__":
    main()
