"""A picture of a run's main data, for ``smeflow catalog show RUN --plot``.

What is drawn depends on what the run holds (first match):

* a reconstruction (a derived ``tomo_fbp`` run: ``reconstruction`` in ``primary``) — the
  middle slice, and the row it came from;
* azimuthal-integration patterns (a derived ``azint1d`` run: ``intensity`` in
  ``primary``, bin centres ``radial`` in ``axis``) — every pattern, and their mean;
* a tomography run (an image key in ``primary`` with ``dark``/``flat`` streams, or any
  image series with a rotation angle) — the first projection and the sinogram of its
  middle row against the angle;
* any other image series — the first frame;
* only scalars — each hinted (or, failing that, numeric) scalar against the event number.

Every picture has a title naming the run (scan number, plan, uid prefix) and what is
shown, and axes with their units. Written with matplotlib's Agg backend (no display
needed); a run with nothing to draw raises :class:`~dataflow.catalog.CatalogError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .catalog import CatalogError

__all__ = ["draw_run", "plot_run", "plot_target"]

ANGLE_KEYS = ("rotation", "rotation_user_setpoint", "angle", "theta")
UNIT_LABELS = {"2th_deg": "2θ (deg)", "q_nm^-1": "q (1/nm)", "r_mm": "r (mm)",
               "q_A^-1": "q (1/Å)", "2th_rad": "2θ (rad)", "chi_deg": "χ (deg)"}


def _streams(run: Any) -> dict[str, Any]:
    return {name: run[name] for name in run}


def _image_key(stream: Any) -> str | None:
    for key in stream:
        shape = stream[key].shape
        if len(shape) == 3 and min(shape[1:]) > 1:
            return str(key)
    return None


def _robust(image: np.ndarray) -> dict[str, float]:
    finite = image[np.isfinite(image)]
    if not finite.size:
        return {}
    low, high = np.percentile(finite, [0.5, 99.5])  # a few hot pixels must not set the scale
    return {"vmin": float(low), "vmax": float(high)} if high > low else {}


def _title(start: dict[str, Any]) -> str:
    return (f"scan {start.get('scan_id', '?')} · {start.get('plan_name', '?')} · "
            f"{str(start.get('uid', ''))[:8]}")


def plot_target(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """The file :func:`plot_run` writes for ``path``, and its format: ``path`` itself, in
    the format its suffix names (any that matplotlib writes, in any case), PNG when it has
    no suffix (matplotlib alone would write ``path.png`` instead).

    Raises
    ------
    ValueError
        ``path`` is a folder or in a folder that does not exist, or its suffix names no
        format matplotlib writes — naming ``path``.
    """
    from matplotlib.backend_bases import FigureCanvasBase

    out = Path(path)
    if out.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name")
    if not out.parent.resolve().is_dir():
        raise ValueError(f"{path}: folder {out.parent} does not exist")
    fmt = out.suffix[1:].lower() or "png"
    formats = FigureCanvasBase.get_supported_filetypes()
    if fmt not in formats:
        known = ", ".join(["png", *sorted(set(formats) - {"png"})])
        raise ValueError(f"{path}: format {fmt!r} is not one matplotlib writes ({known})")
    return out, fmt


def plot_run(run: Any, path: str | os.PathLike[str]) -> Path:
    """Draw ``run`` (a Tiled node of a bluesky run) into the file ``path`` (PNG, or the
    format its suffix names: :func:`plot_target`); returns it."""
    import matplotlib.pyplot as plt

    out, fmt = plot_target(path)
    fig = draw_run(run)
    try:
        fig.savefig(out, dpi=100, format=fmt)
    finally:
        plt.close(fig)
    return out


def draw_run(run: Any) -> Any:
    """The matplotlib figure of ``run`` (see the module docstring); the caller closes it."""
    import matplotlib

    if not matplotlib.get_backend().lower().startswith(("agg", "module://")):
        matplotlib.use("Agg")  # no display needed; notebooks keep their inline backend
    import matplotlib.pyplot as plt

    start = dict(run.metadata["start"])
    streams = _streams(run)
    primary = streams.get("primary")
    if primary is None:
        raise CatalogError(f"run {start.get('uid')} has no primary stream: nothing to draw")
    title = _title(start)
    if "reconstruction" in primary:
        fig = _reconstruction(plt, primary, title)
    elif "intensity" in primary and "axis" in streams:
        fig = _patterns(plt, primary, streams["axis"], start, title)
    elif (key := _image_key(primary)) is not None:
        angle = next((k for k in ANGLE_KEYS if k in primary), None)
        if angle is not None or {"dark", "flat"} <= set(streams):
            fig = _tomography(plt, primary, key, angle, title)
        else:
            fig = _frame(plt, primary, key, title)
    else:
        fig = _scalars(plt, primary, start, title)
    return fig


def _reconstruction(plt: Any, primary: Any, title: str) -> Any:
    volume = primary["reconstruction"]
    rows = [int(r) for r in primary["row"].read()] if "row" in primary else \
        list(range(volume.shape[0]))
    i = len(rows) // 2
    image = np.asarray(volume[i], dtype=float)
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    shown = ax.imshow(image, cmap="viridis", **_robust(image))
    fig.colorbar(shown, ax=ax, label="attenuation (1/pixel)")
    ax.set(title=f"{title}\nreconstructed slice of detector row {rows[i]} "
           f"({i + 1} of {len(rows)})", xlabel="x (pixels)", ylabel="y (pixels)")
    fig.tight_layout()
    return fig


def _patterns(plt: Any, primary: Any, axis: Any, start: dict[str, Any], title: str) -> Any:
    radial = np.asarray(axis["radial"][0], dtype=float)
    intensity = np.asarray(primary["intensity"].read(), dtype=float)
    unit = str(start.get("unit", "2th_deg"))
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for pattern in intensity:
        ax.plot(radial, pattern, lw=0.6, color="0.7")
    ax.plot(radial, intensity.mean(axis=0), lw=1.4, color="tab:blue",
            label=f"mean of {len(intensity)} patterns")
    ax.legend()
    ax.set(title=f"{title}\nazimuthally integrated patterns",
           xlabel=UNIT_LABELS.get(unit, unit), ylabel="intensity (counts)")
    fig.tight_layout()
    return fig


def _tomography(plt: Any, primary: Any, key: str, angle_key: str | None, title: str) -> Any:
    frames = primary[key]
    n, height, _ = frames.shape
    row = height // 2
    first = np.asarray(frames[0], dtype=float)
    sino = np.asarray(frames[:, row, :], dtype=float)
    angles = np.asarray(primary[angle_key].read(), dtype=float) if angle_key else \
        np.arange(n, dtype=float)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.6))
    shown = ax1.imshow(first, cmap="gray", **_robust(first))
    fig.colorbar(shown, ax=ax1, label="counts")
    ax1.axhline(row, color="tab:orange", lw=1)
    ax1.set(title=f"first projection ({key})", xlabel="detector column (pixels)",
            ylabel="detector row (pixels)")
    extent = (-0.5, sino.shape[1] - 0.5, float(angles[-1]), float(angles[0]))
    shown = ax2.imshow(sino, cmap="gray", aspect="auto", extent=extent, **_robust(sino))
    fig.colorbar(shown, ax=ax2, label="counts")
    ax2.set(title=f"sinogram of row {row}", xlabel="detector column (pixels)",
            ylabel=f"{angle_key} (deg)" if angle_key else "projection number")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _frame(plt: Any, primary: Any, key: str, title: str) -> Any:
    image = np.asarray(primary[key][0], dtype=float)
    fig, ax = plt.subplots(figsize=(5.6, 4.8))
    shown = ax.imshow(image, cmap="magma", **_robust(image))
    fig.colorbar(shown, ax=ax, label="counts")
    ax.set(title=f"{title}\nfirst frame of {primary[key].shape[0]} ({key})",
           xlabel="detector column (pixels)", ylabel="detector row (pixels)")
    fig.tight_layout()
    return fig


def _scalars(plt: Any, primary: Any, start: dict[str, Any], title: str) -> Any:
    hinted = [k for d in start.get("detectors", []) for k in primary if str(k).startswith(d)]
    keys = [k for k in (hinted or list(primary))
            if len(primary[k].shape) == 1 and np.issubdtype(primary[k].dtype, np.number)]
    if not keys:
        raise CatalogError(f"run {start.get('uid')}: no image, pattern or numeric scalar "
                           "in the primary stream to draw")
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for key in keys[:6]:
        values = np.asarray(primary[key].read(), dtype=float)
        ax.plot(np.arange(1, len(values) + 1), values, marker=".", label=str(key))
    ax.legend()
    ax.set(title=f"{title}\nprimary stream", xlabel="event number", ylabel="value")
    fig.tight_layout()
    return fig
