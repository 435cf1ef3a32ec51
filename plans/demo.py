"""``smeflow demo``: a simulated tomography and diffraction experiment, acquired through
the detector firmware into the embedded catalog, then read back and drawn.

What it does: builds the beamline (``devices.Beamline``: stages, rotation stage, shutter,
beam monitor, the detector whose firmware is the SME chain on the compiled backend),
subscribes the embedded Tiled catalog and the live reduction
(:class:`analysis.live.LiveReducer`), runs ``tomo_scan`` of the 3D phantom (darks, flats,
90+ projections) and a ``diffraction_scan`` of a CeO2 powder at a few sample positions
with bluesky's progress bars and live table. While the frames are acquired the live
reduction back-projects every projection (OpenCL filtered back-projection, one slice per
detector row) and integrates every diffraction frame (OpenCL azimuthal integration); its
results are derived runs in the catalog, linked to the raw runs by ``raw_uid``. The
pictures of the reconstruction and of the powder pattern are drawn from those derived
runs, read back through the catalog; the raw projection, sinogram and diffraction frame
from the raw runs. The live reduction's lag behind acquisition is printed for each run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, cast

import numpy as np

from sme.cli import given

Subparsers = Any

DEFAULT_OUTPUT, DEFAULT_DATA, DEFAULT_PROJECTIONS = "out/demo", "smeflow-data", 90
"""``smeflow demo``'s ``-o``, ``--data`` and ``--projections`` when not given (the parser
leaves them None, so that ``--prepare`` can refuse them; ``-q`` too, False when not given)."""
DEMO_PHASES = ("catalog", "beamline", "kernels", "tomography", "diffraction", "pictures")
"""The demo's phases, in order: the catalog opened and the live reduction subscribed; the
beamline built (the firmware loaded); the OpenCL kernels built; each run acquired and
reduced; the pictures drawn from the catalog."""
LOADING_PHASES = ("start", "catalog", "beamline", "kernels")
"""The phases that load the demo's libraries (the command line's imports, then those of
``DEMO_PHASES`` before the scans): at the end of each, ``smeflow demo`` gives back the
pages their loading faulted in (``plans.demo_memory.page_out_libraries``)."""


def _save_png(path: Path, image: np.ndarray, title: str, *, cbar: str,
              xlabel: str = "detector column (pixels)", ylabel: str = "detector row (pixels)",
              **kwargs: Any) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=100)
    finite = image[np.isfinite(image)]
    if finite.size:  # hot pixels must not set the scale
        kwargs.setdefault("vmin", float(np.percentile(finite, 0.5)))
        kwargs.setdefault("vmax", float(np.percentile(finite, 99.5)))
    shown = ax.imshow(image, cmap=kwargs.pop("cmap", "gray"), **kwargs)
    fig.colorbar(shown, ax=ax, label=cbar)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    fig.suptitle(title)  # over the image and its colour bar: a long title is not cut
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _save_plot(path: Path, x: np.ndarray, y: np.ndarray, xlabel: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(x, y, lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("intensity (counts)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_demo(data_dir: Path, out_dir: Path, *, projections: int = 90, backend: str = "compiled",
             quiet: bool = False, zmq: str | None = None,
             on_phase: Callable[[str], object] | None = None) -> dict[str, Any]:
    """Run the demonstration; returns the run uids and the files written.

    ``zmq``: also publish every document to the 0MQ proxy's in-address ``HOST:PORT``
    (``smeflow proxy``), for live consumers in other processes
    (``smeflow reduce --live --zmq``). ``on_phase`` is called with the name of each of
    ``DEMO_PHASES`` as it ends (``smeflow demo`` notes the memory there)."""
    phase_done = on_phase if on_phase is not None else (lambda name: None)
    from bluesky import RunEngine

    from analysis.live import LiveReducer
    from dataflow.catalog import Catalog
    from dataflow.provenance import ProvenanceRecorder
    from devices.beamline import BEAMLINE_NAME, Beamline
    from plans import diffraction_scan, tomo_scan
    from sme.progress import progress_enabled

    out_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(data_dir)
    RE = RunEngine({"beamline": BEAMLINE_NAME, "operator": "demo"})
    catalog.subscribe(RE)
    # digests of every raw and derived file (with the readout counters) go into each run
    recorder = ProvenanceRecorder.for_catalog(catalog)
    recorder.subscribe(RE)
    live = LiveReducer.for_catalog(catalog, extra_callbacks=(recorder,))
    RE.subscribe(live)  # type: ignore[no-untyped-call]
    publisher = None
    if zmq is not None:
        from dataflow.bus import DocumentPublisher

        publisher = DocumentPublisher(zmq)
        RE.subscribe(publisher)  # type: ignore[no-untyped-call]
    phase_done("catalog")
    if not quiet:  # bluesky's table, without BestEffortCallback's matplotlib (demo_table)
        from bluesky.utils import ProgressBarManager

        from plans.demo_table import ScanTable

        RE.subscribe(ScanTable())  # type: ignore[no-untyped-call]
        if progress_enabled():  # bars only for a person at a terminal, not in a log file
            RE.waiting_hook = ProgressBarManager()  # type: ignore[assignment]
    t0 = time.perf_counter()
    print(f"compiling the detector firmware ({backend} backend) and the OpenCL kernels "
          "(cached after the first run, or by `smeflow demo --prepare`)…")
    beamline = Beamline.create(catalog.raw_dir, backend=backend)  # compiles the firmware
    det = beamline.det
    files: dict[str, Path] = {}
    try:
        phase_done("beamline")
        _warm_up(beamline, live)
        phase_done("kernels")
        print(f"  {det.params.height}×{det.params.width} detector ready in "
              f"{time.perf_counter() - t0:.1f} s")

        beamline.use_phantom()
        (tomo_uid,) = cast(tuple[str], RE(tomo_scan(det, beamline.rotation, beamline.sample_x,
                                   beamline.shutter, out_position=20.0, start=0.0, stop=180.0,
                                   num_projections=projections, n_darks=5, n_flats=5,
                                   exposure=0.05, md={"sample": "Shepp-Logan phantom",
                                                      "purpose": "smeflow demo tomography"})))
        # the reconstruction is written at the run's stop: let it finish before the next
        # run, whose frames would otherwise queue behind it (and count it as lag)
        if not live.wait(tomo_uid, timeout=300):
            raise RuntimeError(f"live reduction of run {tomo_uid} did not finish in 300 s")
        phase_done("tomography")
        beamline.use_powder()
        positions = [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5)]
        (diff_uid,) = cast(tuple[str], RE(diffraction_scan(
                                          det, beamline.sample_x, beamline.sample_y,
                                          positions, num=2,
                                          exposure=0.1, shutter=beamline.shutter,
                                          md={"sample": "CeO2 powder",
                                              "purpose": "smeflow demo diffraction",
                                              "geometry":
                                                  beamline.detector_geometry().to_metadata()})))
        if not live.wait(diff_uid, timeout=300):
            raise RuntimeError(f"live reduction of run {diff_uid} did not finish in 300 s")
        phase_done("diffraction")
    finally:
        beamline.close()
        live.close()
        if publisher is not None:
            publisher.close()
        recorder.wait(60)
    live_results = {"tomo": live.results[tomo_uid], "diffraction": live.results[diff_uid]}
    derived: dict[str, str] = {}
    for what, res in live_results.items():
        if res.exit_status != "success" or res.derived_uid is None:
            raise RuntimeError(f"live reduction of the {what} run failed: {res.reason}")
        derived[what] = res.derived_uid

    files.update(_pictures(catalog, tomo_uid, diff_uid, derived, out_dir))
    phase_done("pictures")
    return {"tomo_uid": tomo_uid, "diffraction_uid": diff_uid, "files": files,
            "tomo_derived_uid": derived["tomo"],
            "diffraction_derived_uid": derived["diffraction"],
            "lags": {k: list(r.lags) for k, r in live_results.items()},
            "lag_max": {k: r.lag_max for k, r in live_results.items()},
            "lag_mean": {k: r.lag_mean for k, r in live_results.items()},
            "report": det.firmware.report() if det.firmware else {}}


def _pictures(catalog: Any, tomo_uid: str, diff_uid: str, derived: dict[str, str],
              out_dir: Path) -> dict[str, Path]:
    """The demo's pictures, from the runs read back through the catalog.

    Tiled's client reads arrays through dask, which asks dask.distributed for a client
    before it takes its default scheduler (also when the scheduler is given by name):
    importing it (≈ 10 MB, in the demo's peak) only to find none. The reads are given
    the scheduler dask takes when there is none, as the function it is (its threads)."""
    import dask
    import dask.threaded

    files: dict[str, Path] = {}
    with dask.config.set(scheduler=dask.threaded.get):
        tomo = catalog.run(tomo_uid)
        proj = tomo["primary"]["det_image"]
        row = proj.shape[1] // 2
        mid = proj.shape[0] // 4
        files["projection"] = _save_png(out_dir / "projection.png", np.asarray(proj[mid]),
                                        f"projection {mid} (firmware output)", cbar="counts")
        sino = np.asarray(proj[:, row, :])
        angles = np.asarray(tomo["primary"]["rotation"].read(), dtype=float)
        files["sinogram"] = _save_png(out_dir / "sinogram.png", sino, f"sinogram of row {row}",
                                      cbar="counts", ylabel="rotation (deg)", aspect="auto",
                                      extent=(-0.5, sino.shape[1] - 0.5, angles[-1], angles[0]))
        recon = catalog.run(derived["tomo"])
        rows = [int(r) for r in recon["primary"]["row"].read()]
        slice_ = np.asarray(recon["primary"]["reconstruction"][rows.index(row)])
        files["reconstruction"] = _save_png(out_dir / "reconstruction.png", slice_,
                                            f"reconstruction of row {row} (live OpenCL FBP)",
                                            cbar="attenuation (1/pixel)", xlabel="x (pixels)",
                                            ylabel="y (pixels)", cmap="viridis")

        diff = catalog.run(diff_uid)
        frame = np.asarray(diff["primary"]["det_image"][0])
        files["diffraction"] = _save_png(out_dir / "diffraction.png", np.log1p(frame),
                                         "CeO2 diffraction frame",
                                         cbar="log(1 + counts)", cmap="magma")
        patterns = catalog.run(derived["diffraction"])
        files["pattern"] = _save_plot(out_dir / "pattern.png",
                                      np.asarray(patterns["axis"]["radial"][0]),
                                      np.asarray(patterns["primary"]["intensity"][0]), "2θ (deg)",
                                      "CeO2 powder pattern (live OpenCL azimuthal integration)")
    return files


def _warm_up(beamline: Any, live: Any) -> None:
    """Load the firmware into the detector, build the live reductions' OpenCL kernels."""
    det = beamline.det
    det.stage()
    det.unstage()
    live.warm_up((det.params.height, det.params.width), beamline.geometry)


def prepare_demo(backend: str = "compiled") -> float:
    """Compile and cache everything ``smeflow demo`` compiles — the detector firmware, the
    sensor and sample models, the OpenCL kernels — on a throwaway catalog, without
    running its scans, then build the numba functions it called into native modules
    (``sme.native``: the demo then runs without numba's compiler, ≈ 60 MB less); returns
    the seconds it took. ``make setup`` runs it, so that the first demo finds every
    compiled artefact in the caches."""
    import tempfile

    from analysis.live import LiveReducer
    from dataflow.catalog import Catalog
    from devices.beamline import Beamline
    from sme.native_build import build_native

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="smeflow-prepare-") as tmp:
        catalog = Catalog(Path(tmp) / "data")
        live = LiveReducer.for_catalog(catalog)
        beamline = Beamline.create(catalog.raw_dir, backend=backend)
        det = beamline.det
        try:
            _warm_up(beamline, live)
            beamline.shutter.set("open").wait(10)  # (closed, the samples are not drawn)
            for sample in (beamline.use_phantom, beamline.use_powder):
                sample()
                det.expose(None, 0.05)  # the sensor model and the sample's projection
        finally:
            beamline.close()
            live.close()
            catalog.close()
    for result in build_native():
        if result.error is not None:  # (the demo still runs: on numba's JIT)
            print(f"no native module for {result.name}: {result.error}")
    return time.perf_counter() - t0


class DemoRun(NamedTuple):
    """``smeflow demo``'s run options, resolved once by :func:`check_demo_args` (a default
    put in for each one left out, the folders made absolute) and run as they are."""

    output: Path
    data: Path
    projections: int
    quiet: bool


def check_demo_args(args: argparse.Namespace) -> DemoRun | None:
    """Every argument of ``smeflow demo`` checked before anything is created or run; returns
    the run's options as checked, or None with ``--prepare`` (which takes none of them).

    Raises
    ------
    sme.cli.CliError
        Naming the option and what is wrong with it.
    """
    from dataflow.bus import BusError, parse_address
    from sme.cli import CliError, output_dir

    if args.prepare:  # it only compiles and caches: the run's options would be ignored
        for option, value in (("-o", args.output), ("--data", args.data),
                              ("--projections", args.projections), ("--zmq", args.zmq),
                              ("-q", args.quiet)):  # (no table or bars to leave out)
            if value is not None:
                raise CliError(f"{option}: not with --prepare (which only compiles and "
                               "caches what the demo runs, and runs nothing)")
        return None
    projections = given(args.projections, DEFAULT_PROJECTIONS)
    if not 1 <= projections <= 100_000:
        raise CliError(f"--projections {projections}: expected 1 … 100000 projections")
    output = output_dir(given(args.output, DEFAULT_OUTPUT), "-o")
    given_data = given(args.data, DEFAULT_DATA)
    data = Path(given_data)
    if data.exists() and not data.is_dir():
        raise CliError(f"--data {given_data}: is a file, not a catalog folder")
    if data.is_dir() and any(data.iterdir()) and not (data / "catalog.db").exists():
        raise CliError(f"--data {given_data}: a folder that is not a catalog (no "
                       "catalog.db); give an empty or new folder, or a catalog")
    if args.zmq is not None:
        try:
            parse_address(args.zmq, "--zmq")
        except BusError as exc:
            raise CliError(str(exc)) from None
    return DemoRun(output.resolve(), data.resolve(), projections, given(args.quiet, False))


def cmd_demo(args: argparse.Namespace) -> int:
    """``smeflow demo``."""
    run = check_demo_args(args)
    if run is None:  # --prepare
        took = prepare_demo(args.backend)
        print(f"the demo's firmware, models and OpenCL kernels are compiled and cached "
              f"({took:.0f} s)")
        return 0
    from plans.demo_memory import (
        PeakMemory,
        PhaseMemory,
        cap_malloc_arenas,
        page_out_libraries,
        return_freed_buffers,
    )

    return_freed_buffers()  # frames freed go back to the system (not kept in malloc's arenas)
    cap_malloc_arenas()  # and the threads share two arenas, not one each
    start = time.perf_counter()
    startup = process_age_s()  # interpreter start and imports, before the demo itself
    memory = PeakMemory()  # this process and any it starts (GHDL, a kernel's linker)

    def phase_done(phase: str) -> PhaseMemory:
        mark = memory.mark(phase)
        if phase in LOADING_PHASES:  # what loading libraries faulted in and nothing runs
            page_out_libraries()  # (not during the scans: what they run would be re-read)
        return mark

    phase_done("start")  # the interpreter and the command line's imports
    data_dir = run.data
    try:
        result = run_demo(data_dir, run.output, projections=run.projections,
                          backend=args.backend, quiet=run.quiet, zmq=args.zmq,
                          on_phase=phase_done)
    finally:
        peak_mb = memory.stop()
    wall = time.perf_counter() - start
    print()
    print(f"done in {wall:.0f} s")
    print(f"catalog (Tiled, SQLite) and HDF5 frames: {data_dir}")
    print(f"tomography run {result['tomo_uid']}, diffraction run {result['diffraction_uid']}")
    for what, key in (("tomography", "tomo"), ("diffraction", "diffraction")):
        print(f"  live reduction of the {what} run: derived run {result[key + '_derived_uid']}, "
              f"lag max {result['lag_max'][key]:.3f} s, mean {result['lag_mean'][key]:.3f} s")
    for what, path in result["files"].items():
        print(f"  {what:15s} {path}")
    print("find the tomography run and its reductions again with:")
    print(f"  smeflow catalog search plan_name=tomo_scan --data {data_dir}")
    print(f"  smeflow catalog show {result['tomo_uid'][:8]} --data {data_dir}")
    print(f"demo.startup_s = {startup:.4g}")
    print(f"demo.wall_s = {wall:.4g}")
    print(f"demo.peak_rss_mb = {peak_mb:.4g}")
    print("memory at the end of each phase (MB, resident / peak so far): " + ", ".join(
        f"{m.phase} {m.rss_mb:.0f} / {m.peak_mb:.0f}" for m in memory.phases))
    for mark in memory.phases:  # (README: where the demo's memory goes)
        print(f"demo.rss_mb.{mark.phase} = {mark.rss_mb:.4g}")
    print(f"live.tomo.lag_s.max = {result['lag_max']['tomo']:.4g}")
    print(f"live.diffraction.lag_s.max = {result['lag_max']['diffraction']:.4g}")
    return 0


def process_age_s() -> float:
    """Seconds since this process started (Linux ``/proc``; NaN elsewhere)."""
    import math
    import os

    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return math.nan
    return max(0.0, uptime - started / os.sysconf("SC_CLK_TCK"))


def register_demo(sub: Subparsers) -> None:
    """``smeflow demo``: the beamline demonstration (what ``make demo`` runs)."""
    p = sub.add_parser("demo", help="simulated tomography + diffraction through the firmware "
                       "into the catalog, with pictures")
    p.add_argument("-o", "--output",
                   help=f"folder for the pictures (default {DEFAULT_OUTPUT})")
    p.add_argument("--data", help=f"catalog folder (default ./{DEFAULT_DATA})")
    p.add_argument("--projections", type=int,
                   help=f"tomography projections (default {DEFAULT_PROJECTIONS})")
    p.add_argument("--backend", default="compiled", choices=["compiled", "interp", "ghdl"],
                   help="firmware backend (ghdl only for small frames)")
    p.add_argument("-q", "--quiet", action="store_true", default=None,
                   help="no live table or progress bars")
    p.add_argument("--zmq", metavar="HOST:PORT", help="also publish the documents to this "
                   "0MQ proxy in-address (smeflow proxy), for smeflow reduce --live")
    p.add_argument("--prepare", action="store_true",
                   help="only compile and cache what the demo runs (firmware, models, "
                   "OpenCL kernels), then stop; make setup does this once")
    p.set_defaults(func=cmd_demo)
