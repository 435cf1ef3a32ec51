"""``smeflow demo``: a simulated tomography and diffraction experiment, acquired through
the detector firmware into the embedded catalog, then read back and drawn.

What it does: builds the beamline (``devices.Beamline``: stages, rotation stage, shutter,
beam monitor, the detector whose firmware is the SME chain on the compiled backend),
subscribes the embedded Tiled catalog, runs ``tomo_scan`` of the 3D phantom (darks,
flats, 90+ projections) and a ``diffraction_scan`` of a CeO2 powder at a few sample
positions with bluesky's progress bars and live table, reads the frames back through the
catalog, reconstructs a slice (OpenCL filtered back-projection) and integrates a
diffraction frame (OpenCL azimuthal integration), and writes PNG pictures.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, cast

import numpy as np

Subparsers = Any


def _save_png(path: Path, image: np.ndarray, title: str, **kwargs: Any) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.2), dpi=100)
    finite = image[np.isfinite(image)]
    if finite.size:  # hot pixels must not set the scale
        kwargs.setdefault("vmin", float(np.percentile(finite, 0.5)))
        kwargs.setdefault("vmax", float(np.percentile(finite, 99.5)))
    shown = ax.imshow(image, cmap=kwargs.pop("cmap", "gray"), **kwargs)
    fig.colorbar(shown, ax=ax)
    ax.set_title(title)
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
    ax.set_ylabel("intensity")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_demo(data_dir: Path, out_dir: Path, *, projections: int = 90, backend: str = "compiled",
             quiet: bool = False) -> dict[str, Any]:
    """Run the demonstration; returns the run uids and the files written."""
    from bluesky import RunEngine
    from bluesky.callbacks.best_effort import BestEffortCallback
    from bluesky.utils import ProgressBarManager

    from dataflow.catalog import Catalog
    from devices.beamline import Beamline
    from plans import diffraction_scan, tomo_scan

    out_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog(data_dir)
    RE = RunEngine({"beamline": "smeflow-sim", "operator": "demo"})
    catalog.subscribe(RE)
    if not quiet:
        bec = BestEffortCallback()  # type: ignore[no-untyped-call]
        bec.disable_plots()  # type: ignore[no-untyped-call]
        RE.subscribe(bec)  # type: ignore[no-untyped-call]
        RE.waiting_hook = ProgressBarManager()  # type: ignore[assignment]
    beamline = Beamline.create(catalog.raw_dir, backend=backend)
    det = beamline.det
    files: dict[str, Path] = {}
    try:
        t0 = time.perf_counter()
        print(f"compiling the detector firmware ({det.params.height}×{det.params.width}, "
              f"{backend} backend; cached after the first run)…")
        det.stage()
        det.unstage()
        print(f"  ready in {time.perf_counter() - t0:.1f} s")

        beamline.use_phantom()
        (tomo_uid,) = cast(tuple[str], RE(tomo_scan(det, beamline.rotation, beamline.sample_x,
                                   beamline.shutter, out_position=20.0, start=0.0, stop=180.0,
                                   num_projections=projections, n_darks=5, n_flats=5,
                                   exposure=0.05, md={"sample": "Shepp-Logan phantom",
                                                      "purpose": "smeflow demo tomography"})))
        beamline.use_powder()
        positions = [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5)]
        (diff_uid,) = cast(tuple[str], RE(diffraction_scan(
                                          det, beamline.sample_x, beamline.sample_y,
                                          positions, num=2,
                                          exposure=0.1, shutter=beamline.shutter,
                                          md={"sample": "CeO2 powder",
                                              "purpose": "smeflow demo diffraction",
                                              "geometry": beamline.geometry.to_metadata()})))
    finally:
        beamline.close()

    tomo = catalog.run(tomo_uid)
    proj = tomo["primary"]["det_image"]
    row = proj.shape[1] // 2
    mid = proj.shape[0] // 4
    files["projection"] = _save_png(out_dir / "projection.png", np.asarray(proj[mid]),
                                    f"projection {mid} (firmware output, counts)")
    sino = np.asarray(proj[:, row, :])
    files["sinogram"] = _save_png(out_dir / "sinogram.png", sino,
                                  f"sinogram of row {row}", aspect="auto")
    from analysis.fbp import fbp
    from analysis.tomo import absorption

    rows = slice(row, row + 1)
    mu = absorption(np.asarray(proj[:, rows, :]), np.asarray(tomo["dark"]["det_image"][:, rows, :]),
                    np.asarray(tomo["flat"]["det_image"][:, rows, :]))
    angles = np.asarray(tomo.metadata["start"]["angles"], dtype=float)
    slice_ = fbp(np.ascontiguousarray(mu[:, 0, :]), angles)
    files["reconstruction"] = _save_png(out_dir / "reconstruction.png", np.asarray(slice_),
                                        f"reconstruction of row {row} (OpenCL FBP)",
                                        cmap="viridis")

    diff = catalog.run(diff_uid)
    frame = np.asarray(diff["primary"]["det_image"][0])
    files["diffraction"] = _save_png(out_dir / "diffraction.png", np.log1p(frame),
                                     "CeO2 diffraction frame, log(1 + counts)",
                                     cmap="magma")
    from analysis.azint import AzimuthalIntegrator

    result = AzimuthalIntegrator(beamline.geometry).integrate1d(frame, 500, unit="2th_deg")
    files["pattern"] = _save_plot(out_dir / "pattern.png", np.asarray(result.radial),
                                  np.asarray(result.intensity), "2θ (deg)",
                                  "CeO2 powder pattern (OpenCL azimuthal integration)")
    return {"tomo_uid": tomo_uid, "diffraction_uid": diff_uid, "files": files,
            "report": det.firmware.report() if det.firmware else {}}


def cmd_demo(args: argparse.Namespace) -> int:
    """``smeflow demo``."""
    start = time.perf_counter()
    data_dir, out_dir = Path(args.data).resolve(), Path(args.output).resolve()
    result = run_demo(data_dir, out_dir, projections=args.projections, backend=args.backend,
                      quiet=args.quiet)
    print()
    print(f"done in {time.perf_counter() - start:.0f} s")
    print(f"catalog (Tiled, SQLite) and HDF5 frames: {data_dir}")
    print(f"tomography run {result['tomo_uid']}, diffraction run {result['diffraction_uid']}")
    for what, path in result["files"].items():
        print(f"  {what:15s} {path}")
    print("find the tomography run again with:")
    print(f"  smeflow catalog search plan_name=tomo_scan --data {data_dir}")
    return 0


def register_demo(sub: Subparsers) -> None:
    """``smeflow demo``: the beamline demonstration (what ``make demo`` runs)."""
    p = sub.add_parser("demo", help="simulated tomography + diffraction through the firmware "
                       "into the catalog, with pictures")
    p.add_argument("-o", "--output", default="out/demo", help="folder for the pictures")
    p.add_argument("--data", default="smeflow-data", help="catalog folder (default ./smeflow-data)")
    p.add_argument("--projections", type=int, default=90, help="tomography projections")
    p.add_argument("--backend", default="compiled", choices=["compiled", "interp", "ghdl"],
                   help="firmware backend (ghdl only for small frames)")
    p.add_argument("-q", "--quiet", action="store_true", help="no live table or progress bars")
    p.set_defaults(func=cmd_demo)
