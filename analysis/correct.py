"""Detector frame corrections on OpenCL: dark/flat field and dark/gain, with numpy references.

Flat-field correction turns raw counts into a response relative to the open beam:
``(raw - dark) / (flat - dark)``. Dark/gain correction is ``(raw - dark) * gain`` for a
measured per-pixel gain map. Both take ``uint16`` (or ``float32``) frames, one ``(H, W)``
or a stack ``(N, H, W)``, and give ``float32`` frames of the same shape.

Invalid pixels get ``fill`` (default NaN, so that later sums can skip them, see
:mod:`analysis.stats`): pixels where ``mask`` is nonzero (pyFAI's convention: nonzero =
excluded), dead or unlit flat pixels (``flat - dark <= 0`` or not a number), and pixels
whose gain is not finite.

The device division is correctly rounded (``-cl-fp32-correctly-rounded-divide-sqrt``), so
the kernels give the same float32 values as the numpy references below.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from analysis import cl
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

RAW_DTYPES: tuple[npt.DTypeLike, ...] = (np.uint16, np.float32)
REF_DTYPES: tuple[npt.DTypeLike, ...] = (np.uint16, np.float32, np.float64)
MASK_DTYPES: tuple[npt.DTypeLike, ...] = (np.bool_, np.uint8, np.int8)
_LOCAL = 64
_OPTIONS = ("-cl-fp32-correctly-rounded-divide-sqrt",)


def _kernel(rt: cl.Runtime, name: str, raw_dtype: np.dtype[Any]) -> Any:
    raw_t = "ushort" if raw_dtype == np.uint16 else "float"
    return kernel(rt, "correct.cl", name, (*_OPTIONS, f"-DRAW_T={raw_t}"))


def _mask_on_device(rt: cl.Runtime, mask: Array | None, shape: tuple[int, ...]) -> Any:
    """The mask as a ``uint8`` device array (1 byte placeholder when there is none)."""
    if mask is None:
        return to_device(rt, np.zeros(1, np.uint8), "mask")
    check(mask, "mask", dtypes=MASK_DTYPES, ndims=(2,))
    check_shape(mask, "mask", shape, "one frame")
    if is_device(mask):
        return to_device(rt, mask, "mask", np.uint8)
    return to_device(rt, np.asarray(mask != 0, dtype=np.uint8), "mask")


class _Correction:
    """Per-pixel references on the device, applied to frames of one shape."""

    _kernel_name = ""

    def __init__(self, rt: cl.Runtime, frame_shape: tuple[int, int], dark: Any, ref: Any,
                 fill: float) -> None:
        self.rt = rt
        self.frame_shape = frame_shape
        self.fill = float(fill)
        self._dark = dark
        self._ref = ref

    def __call__(self, raw: Array, out: Array | None = None) -> Array:
        """Correct ``raw`` (``(H, W)`` or ``(N, H, W)``, uint16 or float32) to float32.

        ``out`` (a device array of the result's shape, float32) is written in place when
        given; otherwise a new array is returned, on the device when ``raw`` is one."""
        check(raw, "raw", dtypes=RAW_DTYPES, ndims=(2, 3))
        if tuple(raw.shape[-2:]) != self.frame_shape:
            raise ArrayArgumentError(f"argument `raw`: expected frames of shape "
                                     f"{self.frame_shape} (the references'), got "
                                     f"{tuple(raw.shape)}")
        import pyopencl.array as cla

        d_raw = to_device(self.rt, raw, "raw")
        if out is None:
            d_out = cla.empty(self.rt.queue, tuple(raw.shape), np.float32)
        else:
            check(out, "out", dtypes=(np.float32,), ndims=(raw.ndim,))
            check_shape(out, "out", tuple(raw.shape), "the shape of raw")
            d_out = (to_device(self.rt, out, "out") if is_device(out)
                     else cla.empty(self.rt.queue, tuple(raw.shape), np.float32))
        npix = self.frame_shape[0] * self.frame_shape[1]
        frames = 1 if raw.ndim == 2 else int(raw.shape[0])
        if frames:
            _kernel(self.rt, self._kernel_name, np.dtype(raw.dtype))(
                self.rt.queue, (round_up(npix, _LOCAL), frames), (_LOCAL, 1), d_raw.data,
                self._dark.data, self._ref.data, np.float32(self.fill), np.uint32(npix),
                d_out.data)
        if is_device(raw) or (out is not None and is_device(out)):
            return d_out
        host: np.ndarray[Any, np.dtype[np.float32]] = d_out.get()
        if out is not None:
            out[...] = host
            return out
        return host


def _references(dark: Array, other: Array, other_name: str, mask: Array | None,
                device: str | None) -> tuple[cl.Runtime, tuple[int, int], Any, Any, Any]:
    check(dark, "dark", dtypes=REF_DTYPES, ndims=(2,))
    check(other, other_name, dtypes=REF_DTYPES, ndims=(2,))
    check_shape(other, other_name, tuple(dark.shape), "the shape of dark")
    rt = runtime_for(dark, other, mask, device=device)
    shape = (int(dark.shape[0]), int(dark.shape[1]))
    return (rt, shape, to_device(rt, dark, "dark", np.float32),
            to_device(rt, other, other_name, np.float32), _mask_on_device(rt, mask, shape))


class FlatField(_Correction):
    """Flat-field correction ``(raw - dark) / (flat - dark)`` prepared once for many frames.

    Parameters
    ----------
    dark, flat
        One frame each (``(H, W)``; uint16, float32 or float64, e.g. averages of stacks),
        kept on the device as float32.
    mask
        Pixels to exclude where nonzero (``(H, W)``, bool or uint8), or None.
    fill
        Value of excluded pixels, of dead flat pixels (``flat <= dark``) and of pixels
        whose references are NaN. NaN by default.
    device
        OpenCL device choice (see :func:`analysis.cl.runtime`) when no argument is a device
        array; device arrays fix the context and queue.
    """

    _kernel_name = "flat_field"

    def __init__(self, dark: Array, flat: Array, *, mask: Array | None = None,
                 fill: float = float("nan"), device: str | None = None) -> None:
        rt, shape, d_dark, d_flat, d_mask = _references(dark, flat, "flat", mask, device)
        import pyopencl.array as cla

        npix = shape[0] * shape[1]
        den = cla.empty(rt.queue, shape, np.float32)
        _kernel(rt, "flat_denominator", np.dtype(np.uint16))(
            rt.queue, (round_up(npix, _LOCAL),), (_LOCAL,), d_dark.data, d_flat.data,
            d_mask.data, np.int32(mask is not None), np.uint32(npix), den.data)
        super().__init__(rt, shape, d_dark, den, fill)


class DarkGain(_Correction):
    """Dark subtraction and gain map ``(raw - dark) * gain`` prepared once for many frames.

    Parameters are as for :class:`FlatField`, with ``gain`` (``(H, W)``) in place of
    ``flat``; pixels with a non-finite gain are excluded like masked ones.
    """

    _kernel_name = "dark_gain"

    def __init__(self, dark: Array, gain: Array, *, mask: Array | None = None,
                 fill: float = float("nan"), device: str | None = None) -> None:
        rt, shape, d_dark, d_gain, d_mask = _references(dark, gain, "gain", mask, device)
        import pyopencl.array as cla

        npix = shape[0] * shape[1]
        valid = cla.empty(rt.queue, shape, np.float32)
        _kernel(rt, "gain_validate", np.dtype(np.uint16))(
            rt.queue, (round_up(npix, _LOCAL),), (_LOCAL,), d_gain.data, d_mask.data,
            np.int32(mask is not None), np.uint32(npix), valid.data)
        super().__init__(rt, shape, d_dark, valid, fill)


def flat_field(raw: Array, dark: Array, flat: Array, *, mask: Array | None = None,
               fill: float = float("nan"), device: str | None = None) -> Array:
    """``(raw - dark) / (flat - dark)`` as float32; see :class:`FlatField` for the rules."""
    return FlatField(dark, flat, mask=mask, fill=fill, device=device)(raw)


def dark_gain(raw: Array, dark: Array, gain: Array, *, mask: Array | None = None,
              fill: float = float("nan"), device: str | None = None) -> Array:
    """``(raw - dark) * gain`` as float32; see :class:`DarkGain` for the rules."""
    return DarkGain(dark, gain, mask=mask, fill=fill, device=device)(raw)


def flat_field_reference(raw: npt.ArrayLike, dark: npt.ArrayLike, flat: npt.ArrayLike,
                         mask: npt.ArrayLike | None = None,
                         fill: float = float("nan")) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The numpy definition that :func:`flat_field` implements (float32 arithmetic)."""
    r = np.asarray(raw).astype(np.float32)
    d = np.asarray(dark).astype(np.float32)
    den = np.asarray(flat).astype(np.float32) - d
    with np.errstate(invalid="ignore"):
        bad = ~(den > 0)
    if mask is not None:
        bad |= np.asarray(mask) != 0
    safe = np.where(bad, np.float32(1), den)
    return np.where(bad, np.float32(fill), (r - d) / safe).astype(np.float32)


def dark_gain_reference(raw: npt.ArrayLike, dark: npt.ArrayLike, gain: npt.ArrayLike,
                        mask: npt.ArrayLike | None = None,
                        fill: float = float("nan")) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The numpy definition that :func:`dark_gain` implements (float32 arithmetic)."""
    r = np.asarray(raw).astype(np.float32)
    d = np.asarray(dark).astype(np.float32)
    g = np.asarray(gain).astype(np.float32)
    bad = ~np.isfinite(g)
    if mask is not None:
        bad |= np.asarray(mask) != 0
    return np.where(bad, np.float32(fill), (r - d) * np.where(bad, np.float32(0), g)
                    ).astype(np.float32)
