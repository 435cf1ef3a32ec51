"""Tomography reduction on OpenCL: flat-field normalisation, -log, sinograms, and FBP.

The chain from a scan to slices::

    t = normalize(projections, darks, flats)   # (angles, rows, cols) transmission
    mu = minus_log(t)                          # line integrals of the attenuation
    s = sinograms(mu)                          # (rows, angles, cols)
    slices = fbp(s, angles)                    # (rows, cols, cols), see analysis.fbp

or :func:`absorption` for the first two steps at once. Device arrays stay on the device
through every step; numpy inputs are uploaded once per call.

Conventions:

- darks and flats are stacks ``(n, rows, cols)`` (averaged here) or single frames;
- pixels with a dead flat (``flat <= dark``) or masked ones get transmission ``fill``,
  1.0 by default, i.e. no attenuation, so one dead pixel does not make a whole slice NaN
  through the ramp filter (pass ``fill=nan`` to see them);
- ``-log`` clamps transmissions below ``floor`` (default 1e-6, including zero and
  negative values from noise after dark subtraction) to ``floor``, so opaque pixels give
  ``-log(floor)`` (about 13.8) instead of infinity; NaN stays NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.correct import FlatField
from analysis.devarray import (
    Array,
    ArrayArgumentError,
    check,
    check_shape,
    is_device,
    kernel,
    round_up,
    runtime_for,
    to_device,
)
from analysis.fbp import FilteredBackProjection, fbp, fbp_reference

FRAME_DTYPES: tuple[npt.DTypeLike, ...] = (np.uint16, np.float32)
DEFAULT_FLOOR = 1e-6
_LOCAL = 64

F32 = np.ndarray[Any, np.dtype[np.float32]]


def _pix_option(dtype: np.dtype[Any]) -> tuple[str, ...]:
    return (f"-DPIX_T={'ushort' if dtype == np.uint16 else 'float'}",)


def average(frames: Array, name: str = "frames", *, device: str | None = None) -> Array:
    """The float32 mean frame of a stack ``(n, rows, cols)`` (a single ``(rows, cols)``
    frame is returned as float32); on the device when ``frames`` is there."""
    check(frames, name, dtypes=FRAME_DTYPES, ndims=(2, 3))
    if frames.ndim == 3 and frames.shape[0] == 0:
        raise ArrayArgumentError(f"argument `{name}`: expected at least one frame, got "
                                 f"shape {tuple(frames.shape)}")
    if not is_device(frames):
        return average_reference(frames)
    if frames.ndim == 2:
        return frames.astype(np.float32)
    import pyopencl.array as cla

    rt = runtime_for(frames)
    n, rows, cols = (int(v) for v in frames.shape)
    npix = rows * cols
    out = cla.empty(rt.queue, (rows, cols), np.float32)
    kernel(rt, "tomo.cl", "mean_stack", _pix_option(np.dtype(frames.dtype)))(
        rt.queue, (round_up(npix, _LOCAL),), (_LOCAL,), frames.data, np.uint32(n),
        np.uint32(npix), out.data)
    return out


def average_reference(frames: npt.ArrayLike) -> F32:
    """The numpy definition of :func:`average` (mean in float64, then float32)."""
    a = np.asarray(frames)
    mean = a if a.ndim == 2 else a.mean(axis=0, dtype=np.float64)
    return np.asarray(mean, dtype=np.float32)


def normalize(projections: Array, darks: Array, flats: Array, *, mask: Array | None = None,
              fill: float = 1.0, device: str | None = None) -> Array:
    """Transmission ``(p - dark) / (flat - dark)`` of every projection, float32.

    Parameters
    ----------
    projections
        ``(angles, rows, cols)`` (or one ``(rows, cols)`` frame), uint16 or float32.
    darks, flats
        Stacks ``(n, rows, cols)`` averaged here, or single frames; uint16 or float32.
    mask
        Pixels to exclude where nonzero (``(rows, cols)``), or None.
    fill
        Transmission of excluded and dead pixels (see the module docstring).
    device
        OpenCL device choice when no argument is a device array.
    """
    check(projections, "projections", dtypes=FRAME_DTYPES, ndims=(2, 3))
    rt = runtime_for(projections, darks, flats, mask, device=device)
    frame = tuple(projections.shape[-2:])
    refs = []
    for name, stack in (("darks", darks), ("flats", flats)):
        check(stack, name, dtypes=FRAME_DTYPES, ndims=(2, 3))
        check_shape(stack, name, tuple(stack.shape[:-2]) + frame, "frames like projections'")
        refs.append(average(stack, name))
    correction = FlatField(to_device(rt, refs[0], "darks"), to_device(rt, refs[1], "flats"),
                           mask=mask, fill=fill)
    return correction(projections)


def normalize_reference(projections: npt.ArrayLike, darks: npt.ArrayLike,
                        flats: npt.ArrayLike, mask: npt.ArrayLike | None = None,
                        fill: float = 1.0) -> F32:
    """The numpy definition of :func:`normalize`."""
    from analysis.correct import flat_field_reference

    return flat_field_reference(projections, average_reference(darks),
                                average_reference(flats), mask, fill)


def minus_log(transmission: Array, *, floor: float = DEFAULT_FLOOR,
              in_place: bool = False, device: str | None = None) -> Array:
    """``-log(max(t, floor))`` per pixel of a float32 array (NaN stays NaN).

    ``in_place`` overwrites a device array (numpy inputs are never modified)."""
    check(transmission, "transmission", dtypes=(np.float32,), ndims=(1, 2, 3, 4))
    if not (np.isfinite(floor) and floor > 0):
        raise ArrayArgumentError(f"argument `floor`: expected a finite value > 0, got {floor!r}")
    rt = runtime_for(transmission, device=device)
    device_in = is_device(transmission)
    d = to_device(rt, transmission, "transmission")
    if device_in and not in_place:
        d = d.copy()
    n = int(d.size)
    if n:
        kernel(rt, "tomo.cl", "minus_log", _pix_option(np.dtype(np.float32)))(
            rt.queue, (round_up(n, _LOCAL),), (_LOCAL,), d.data, np.float32(floor),
            np.uint64(n))
    if device_in:
        return d
    result: F32 = d.get()
    return result


def minus_log_reference(transmission: npt.ArrayLike, floor: float = DEFAULT_FLOOR) -> F32:
    """The numpy definition of :func:`minus_log`."""
    t = np.asarray(transmission, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        clamped = np.where(np.isnan(t), t, np.maximum(t, np.float32(floor)))
    return np.asarray(-np.log(clamped), dtype=np.float32)


def absorption(projections: Array, darks: Array, flats: Array, *, mask: Array | None = None,
               fill: float = 1.0, floor: float = DEFAULT_FLOOR,
               device: str | None = None) -> Array:
    """``minus_log(normalize(...))`` with the data kept on the device in between."""
    check(projections, "projections", dtypes=FRAME_DTYPES, ndims=(2, 3))
    rt = runtime_for(projections, darks, flats, mask, device=device)
    d_proj = to_device(rt, projections, "projections")
    t = normalize(d_proj, darks, flats, mask=mask, fill=fill)
    mu = minus_log(t, floor=floor, in_place=True)
    if is_device(projections):
        return mu
    result: F32 = mu.get()
    return result


def sinograms(projections: Array, *, device: str | None = None) -> Array:
    """Reorder a float32 projection stack ``(angles, rows, cols)`` to sinograms
    ``(rows, angles, cols)``, one per detector row (a reconstructed slice)."""
    check(projections, "projections", dtypes=(np.float32,), ndims=(3,))
    if not is_device(projections):
        return sinograms_reference(projections)
    import pyopencl.array as cla

    rt = runtime_for(projections, device=device)
    angles, rows, cols = (int(v) for v in projections.shape)
    out = cla.empty(rt.queue, (rows, angles, cols), np.float32)
    if out.size:
        kernel(rt, "tomo.cl", "to_sinograms", _pix_option(np.dtype(np.float32)))(
            rt.queue, (round_up(cols, _LOCAL), angles, rows), (_LOCAL, 1, 1),
            projections.data, np.uint32(angles), np.uint32(rows), np.uint32(cols), out.data)
    return out


def sinograms_reference(projections: npt.ArrayLike) -> F32:
    """The numpy definition of :func:`sinograms` (a contiguous transposed copy)."""
    return np.ascontiguousarray(np.swapaxes(np.asarray(projections, np.float32), 0, 1))


__all__ = ["DEFAULT_FLOOR", "FRAME_DTYPES", "FilteredBackProjection", "absorption", "average",
           "average_reference", "fbp", "fbp_reference", "minus_log",
           "minus_log_reference", "normalize", "normalize_reference", "sinograms",
           "sinograms_reference"]
