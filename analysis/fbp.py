"""Filtered back-projection (parallel beam) on OpenCL, with a numpy reference.

The algorithm and geometry are those of ``skimage.transform.iradon(filter_name="ramp",
interpolation="linear", circle=True)``, so results can be compared with it directly:

- each projection is zero-padded to the next power of two ``>= 2 * width`` and filtered
  in the frequency domain with the ramp filter built from the band-limited spatial ramp
  (Kak & Slaney, ch. 3, eq. 61: ``h[0] = 1/4``, ``h[n] = -1/(pi n)^2`` for odd ``n``,
  0 for even ``n``), which avoids the DC bias of a sampled ``|f|``. The filter runs on
  the host with numpy's FFT (small next to the back-projection); device inputs are
  fetched for it.
- back-projection on the device: output pixel ``(i, j)`` of an ``N x N`` image
  (``N`` = detector width) sits at ``x = i - N//2``, ``y = j - N//2`` and adds, for each
  angle ``theta``, the filtered projection at detector position
  ``t = y cos(theta) - x sin(theta) + centre`` (default ``centre = width // 2``),
  interpolated linearly and zero beyond the detector's edges; the sum is scaled by
  ``pi / (2 * n_angles)`` (angles evenly spread over 180 or 360 degrees).
- with ``circle=True`` pixels outside the inscribed circle
  (``x^2 + y^2 > (N//2)^2``) are 0.

Sinograms are ``(angles, width)`` or stacks ``(rows, angles, width)`` (see
:func:`analysis.tomo.sinograms`). One sinogram runs ``kernels/fbp.cl`` (a run of pixels
of a row per work-item, computed as one vector). A stack runs ``kernels/fbp_stack.cl``:
its slices are reconstructed in groups of ``SPI`` that share the geometry, stored
interleaved (``[group, angle, position, 2 * SPI]``: the values then the slopes of the
group's filtered projections at one detector position), so one position of a whole
group is one contiguous load and one ``SPI``-wide multiply-add per pixel and angle —
a stack costs less per slice than a single sinogram. The same kernel adds into an
existing sum (:meth:`FilteredBackProjection.backproject`), which is what
:mod:`analysis.tomo_stream` does with each projection as it arrives.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis import cl
from analysis.devarray import (
    Array,
    ArrayArgumentError,
    check,
    is_device,
    kernel,
    round_up,
    runtime_for,
    to_device,
)

SINOGRAM_DTYPES: tuple[npt.DTypeLike, ...] = (np.float32, np.float64)
_LOCAL = 4
_VW = 16
_PPW = 8
"""Pixels per work-item of the stack kernel (along a row)."""

F64 = np.ndarray[Any, np.dtype[np.float64]]


def padded_size(width: int) -> int:
    """The filter's FFT length for ``width`` detector pixels: the next power of two
    ``>= 2 * width`` (enough zero padding that the circular convolution is a linear one)."""
    return 1 << max(1, int(2 * width - 1).bit_length())


def ramp_filter(size: int) -> F64:
    """The ramp filter for an FFT of length ``size``, as ``size // 2 + 1`` real factors
    for ``numpy.fft.rfft`` spectra (twice the transform of the spatial ramp, see the
    module docstring)."""
    if size < 2 or size % 2:
        raise ArrayArgumentError(f"argument `size`: expected an even length >= 2, got {size}")
    dist = np.minimum(np.arange(size), size - np.arange(size))
    h = np.zeros(size)
    h[0] = 0.25
    odd = dist % 2 == 1
    h[odd] = -1.0 / (np.pi * dist[odd]) ** 2
    return np.asarray(2.0 * np.fft.rfft(h).real, dtype=np.float64)


def filter_sinograms(sinograms: npt.ArrayLike) -> F64:
    """Ramp-filtered projections ``(..., angles, width + 1)`` in float64.

    Sample ``width`` (one past the detector) is the filter's response there, which
    interpolation reaches on the rim of the reconstruction circle."""
    s = np.asarray(sinograms, dtype=np.float64)
    width = s.shape[-1]
    size = padded_size(width)
    spectrum = np.fft.rfft(s, n=size, axis=-1) * ramp_filter(size)
    return np.asarray(np.fft.irfft(spectrum, n=size, axis=-1)[..., :width + 1])


def slices_per_group(n: int) -> int:
    """Slices per group of the stack kernel for a stack of ``n``: more share the geometry
    (faster per slice), but the stack is padded with empty slices to a multiple of it."""
    if n >= 64 or (n >= 16 and n % 16 == 0):
        return 16
    return 8 if n > 4 else 4


def pack_stack(filtered: npt.NDArray[np.floating], spi: int) -> npt.NDArray[np.float32]:
    """Filtered projections ``(slices, angles, width + 1)`` in the stack kernel's layout
    ``(groups, angles, width + 3, 2 * spi)`` float32 (see ``kernels/fbp_stack.cl``),
    padded with zero slices to whole groups."""
    n, angles, w1 = filtered.shape
    groups = -(-n // spi)
    stride = w1 + 2
    p = np.zeros((groups * spi, angles, stride + 1), np.float32)
    p[:n, :, 1:w1 + 1] = filtered
    out = np.empty((groups, angles, stride, 2 * spi), np.float32)
    grouped = p.reshape(groups, spi, angles, stride + 1)
    out[..., :spi] = np.moveaxis(grouped[..., :-1], 1, -1)
    out[..., spi:] = np.moveaxis(grouped[..., 1:], 1, -1)
    out[..., spi:] -= out[..., :spi]
    return out


@functools.lru_cache(maxsize=8)
def circle_rows(size: int) -> npt.NDArray[np.int32]:
    """Where each row ``i`` of a ``size × size`` circle reconstruction begins in its
    packed form (``kernels/fbp_stack.cl``, ``PACKED``: the pixels inside the circle,
    row after row): ``(size + 1, 2)`` int32, row ``i`` its first column inside the
    circle and that pixel's index among the inside pixels; row ``size`` is
    ``(0, inside pixels)``. Inside is the kernel's test, ``x² + y² <= (size//2)²``."""
    r = size // 2
    out = np.zeros((size + 1, 2), np.int32)
    at = 0
    for i in range(size):
        half = math.isqrt(r * r - (i - r) ** 2)  # |y| <= half: (never empty, y = 0 is in)
        lo, hi = r - half, min(r + half, size - 1)
        out[i] = lo, at
        at += hi - lo + 1
    out[size] = 0, at
    out.flags.writeable = False  # (cached)
    return out


@functools.lru_cache(maxsize=8)
def circle_pixels(size: int) -> npt.NDArray[np.intp]:
    """The flat indices ``i * size + j`` of the pixels inside the circle, in the packed
    order of :func:`circle_rows`."""
    rows = circle_rows(size)
    counts = np.diff(rows[:, 1])
    i = np.repeat(np.arange(size), counts)
    j = np.arange(int(rows[size, 1])) - rows[:-1, 1][i] + rows[:-1, 0][i]
    out = np.asarray(i * size + j, dtype=np.intp)
    out.flags.writeable = False  # (cached)
    return out


def _angles(angles: npt.ArrayLike, n: int, degrees: bool) -> F64:
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim != 1 or len(a) != n:
        raise ArrayArgumentError(f"argument `angles`: expected {n} angles (one per "
                                 f"projection of the sinogram), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ArrayArgumentError("argument `angles`: expected finite angles")
    return np.deg2rad(a) if degrees else a


class OutputBuffers:
    """A reduction's output arrays (device and host), kept for its chunks to reuse.

    A stack's volume is tens of MiB; allocated afresh per chunk, each such array gets
    its own mmap and every page of it faults on first touch (about half the CPU of a
    reduction). Given to :meth:`FilteredBackProjection.__call__` it holds one device
    array and one host array per shape; each call overwrites them, so a result from
    the host array is valid only until the next call with these buffers.
    ``generation`` counts the host array's hand-outs, so that a holder of an earlier
    result can tell it was overwritten since (:meth:`holds`,
    :func:`analysis.reduce_chunks.tomo_combine`).
    """

    def __init__(self) -> None:
        self._device: Any = None
        self._host: npt.NDArray[np.float32] | None = None
        self.generation = 0

    def device(self, rt: cl.Runtime, shape: tuple[int, ...]) -> Any:
        """A device float32 array of ``shape`` on ``rt``'s queue (the kept one if it fits)."""
        import pyopencl.array as cla

        d = self._device
        if d is None or tuple(d.shape) != shape or d.context != rt.context:
            d = self._device = cla.empty(rt.queue, shape, np.float32)
        return d

    def host(self, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """A host float32 array of ``shape`` (the kept one if it fits)."""
        h = self._host
        if h is None or h.shape != shape:
            h = self._host = np.empty(shape, np.float32)
        self.generation += 1
        return h

    def holds(self, array: npt.NDArray[Any]) -> bool:
        """Whether ``array`` is (a view of) the host array these buffers hand out."""
        return self._host is not None and np.shares_memory(array, self._host)


class FilteredBackProjection:
    """Reconstruction of sinograms of one geometry, prepared once.

    Parameters
    ----------
    angles
        Projection angles, one per sinogram row.
    width
        Detector width in pixels; the reconstruction is ``width x width``.
    degrees
        Whether ``angles`` are in degrees (as scikit-image's) or radians.
    circle
        Zero the pixels outside the inscribed circle (as ``iradon(circle=True)``).
    centre
        Detector position of the rotation axis in pixels; default ``width // 2``.
    device
        OpenCL device choice (see :func:`analysis.cl.runtime`) for numpy inputs.
    """

    def __init__(self, angles: npt.ArrayLike, width: int, *, degrees: bool = True,
                 circle: bool = True, centre: float | None = None,
                 device: str | None = None) -> None:
        if isinstance(width, bool) or not isinstance(width, int | np.integer) or width < 2:
            raise ArrayArgumentError(f"argument `width`: expected an int >= 2, got {width!r}")
        self.width = int(width)
        theta = np.asarray(angles, dtype=np.float64)
        if theta.ndim != 1 or theta.size == 0:
            raise ArrayArgumentError(f"argument `angles`: expected a 1-D sequence of at least "
                                     f"one angle, got shape {theta.shape}")
        self.theta = _angles(theta, theta.size, degrees)
        self.circle = bool(circle)
        self.centre = float(width // 2 if centre is None else centre)
        if not np.isfinite(self.centre):
            raise ArrayArgumentError(f"argument `centre`: expected a finite position, "
                                     f"got {centre!r}")
        self._device = device
        self._trig: dict[int, Any] = {}
        self._rows: dict[int, Any] = {}

    @property
    def n_angles(self) -> int:
        """Number of projections per sinogram."""
        return len(self.theta)

    def _trig_on(self, rt: cl.Runtime, theta: F64) -> Any:
        """(cos, sin) of ``theta`` on the device (the plan's own angles cached)."""
        own = theta is self.theta
        d = self._trig.get(id(rt.context)) if own else None
        if d is None:
            cs = np.stack([np.cos(theta), np.sin(theta)], axis=1)
            d = to_device(rt, cs.astype(np.float32), "angles")
            if own:
                self._trig[id(rt.context)] = d
        return d

    def _rows_on(self, rt: cl.Runtime) -> Any:
        """:func:`circle_rows` of this width on the device (cached)."""
        d = self._rows.get(id(rt.context))
        if d is None:
            d = to_device(rt, circle_rows(self.width), "rows")
            self._rows[id(rt.context)] = d
        return d

    def __call__(self, sinograms: Array, *, buffers: OutputBuffers | None = None) -> Array:
        """Reconstruct ``(angles, width)`` to ``(width, width)`` or ``(rows, angles, width)``
        to ``(rows, width, width)``, float32; on the device when ``sinograms`` is there.
        With ``buffers`` a stack is reconstructed into them (the result then lasts until
        their next use)."""
        check(sinograms, "sinograms", dtypes=SINOGRAM_DTYPES, ndims=(2, 3))
        want = (self.n_angles, self.width)
        if tuple(sinograms.shape[-2:]) != want:
            raise ArrayArgumentError(f"argument `sinograms`: expected (..., angles, width) = "
                                     f"(..., {want[0]}, {want[1]}), got "
                                     f"{tuple(sinograms.shape)}")
        rt = runtime_for(sinograms, device=self._device)
        host = sinograms.get() if is_device(sinograms) else np.asarray(sinograms)
        stack = host.reshape((-1, *want))
        n = stack.shape[0]
        scale = np.pi / (2 * self.n_angles)
        if n == 1:
            out = self._single(rt, stack[0], scale)
        else:
            out = self.backproject(stack, self.theta, scale=scale, rt=rt, buffers=buffers)
        shape = (*tuple(sinograms.shape[:-2]), self.width, self.width)
        if is_device(sinograms):
            return (out if out.shape[0] == n else out[:n]).reshape(shape)
        got = out.get() if buffers is None or n == 1 else \
            out.get(ary=buffers.host(tuple(out.shape)))
        result: np.ndarray[Any, np.dtype[np.float32]] = got[:n].reshape(shape)
        return result

    def _single(self, rt: cl.Runtime, sinogram: npt.NDArray[Any], scale: float) -> Any:
        """One sinogram with the row-vector kernel; the device array ``(1, W, W)``."""
        import pyopencl.array as cla

        stride = self.width + 3
        p = np.zeros((1, self.n_angles, stride + 1), np.float32)
        p[:, :, 1:self.width + 2] = filter_sinograms(sinogram[None])
        filt = np.empty((1, self.n_angles, stride, 2), np.float32)
        filt[..., 0] = p[:, :, :-1]
        filt[..., 1] = p[:, :, 1:] - p[:, :, :-1]
        d_filt = cla.to_device(rt.queue, filt)
        size = self.width
        out = cla.empty(rt.queue, (1, size, size), np.float32)
        runs = round_up(-(-size // _VW), _LOCAL)
        kernel(rt, "fbp.cl", "backproject", ("-DSPI=1", f"-DVW={_VW}"))(
            rt.queue, (runs, size, 1), (_LOCAL, 1, 1),
            d_filt.data, self._trig_on(rt, self.theta).data, np.uint32(self.n_angles),
            np.uint32(stride), np.float32(self.centre), np.uint32(size),
            np.int32(self.circle), np.float32(scale), out.data)
        return out

    def backproject(self, sinograms: npt.ArrayLike, theta: npt.ArrayLike, *,
                    scale: float, into: Any = None, interleaved: bool = False,
                    packed: bool = False, rt: cl.Runtime | None = None,
                    buffers: OutputBuffers | None = None) -> Any:
        """Filter and back-project sinograms ``(slices, k, width)`` at angles ``theta``
        (radians, ``k`` of them) with the stack kernel, times ``scale``; added to the
        device array ``into`` (from an earlier call with as many slices and the same
        ``interleaved`` and ``packed``) when given, else into a new one. Returns the
        device array: ``(groups * SPI, W, W)`` whose first ``slices`` planes are the
        slices, or with ``interleaved`` ``(groups, W, W, SPI)`` (see
        :func:`deinterleave`), the layout that a sum updated again and again reads and
        writes fastest; with ``packed`` too (a ``circle`` plan), ``(groups, inside, SPI)``,
        only the pixels inside the circle (:func:`circle_rows`, :func:`circle_pixels`):
        the same values, without the zeros around them (a 21 % smaller sum). Without
        ``into``, ``buffers`` gives the device array to overwrite."""
        import pyopencl.array as cla

        if packed and not (interleaved and self.circle):
            raise ArrayArgumentError("argument `packed`: needs interleaved=True and a plan "
                                     "with circle=True")
        s = np.asarray(sinograms)
        th = np.asarray(theta, dtype=np.float64)
        n, k = int(s.shape[0]), int(s.shape[1])
        spi = slices_per_group(n)
        groups = -(-n // spi)
        if rt is None:
            rt = runtime_for(into, device=self._device)
        size = self.width
        accumulate = into is not None
        rows = self._rows_on(rt)
        shape = (groups, int(circle_rows(size)[size, 1]), spi) if packed else \
            (groups, size, size, spi) if interleaved else (groups * spi, size, size)
        if into is None:
            into = cla.empty(rt.queue, shape, np.float32) if buffers is None else \
                buffers.device(rt, shape)
        elif tuple(into.shape) != shape:
            raise ArrayArgumentError(f"argument `into`: expected a sum of shape {shape}, "
                                     f"got {tuple(into.shape)}")
        d_filt = cla.to_device(rt.queue, pack_stack(filter_sinograms(s), spi))
        options = (f"-DSPI={spi}", f"-DPPW={_PPW}",
                   *(("-DINTERLEAVED",) if interleaved else ()),
                   *(("-DPACKED",) if packed else ()))
        kernel(rt, "fbp_stack.cl", "backproject_stack", options)(
            rt.queue, (round_up(-(-size // _PPW), _LOCAL), size, groups), (_LOCAL, 1, 1),
            d_filt.data, self._trig_on(rt, th).data, np.uint32(k), np.uint32(size + 3),
            np.float32(self.centre), np.uint32(size), np.int32(self.circle),
            np.float32(scale), np.int32(accumulate), into.data, rows.data)
        return into


def deinterleave(summed: npt.NDArray[np.float32], slices: int) -> npt.NDArray[np.float32]:
    """The ``(slices, W, W)`` planes of an interleaved sum ``(groups, W, W, SPI)``."""
    g, h, w, spi = summed.shape
    planes = np.moveaxis(summed, 3, 1).reshape(g * spi, h, w)
    return np.ascontiguousarray(planes[:slices])


def fbp(sinograms: Array, angles: npt.ArrayLike, *, degrees: bool = True, circle: bool = True,
        centre: float | None = None, device: str | None = None) -> Array:
    """Reconstruct one sinogram ``(angles, width)`` or a stack ``(rows, angles, width)``;
    see :class:`FilteredBackProjection`."""
    check(sinograms, "sinograms", dtypes=SINOGRAM_DTYPES, ndims=(2, 3))
    _angles(angles, int(sinograms.shape[-2]), degrees)
    plan = FilteredBackProjection(angles, int(sinograms.shape[-1]), degrees=degrees,
                                  circle=circle, centre=centre, device=device)
    return plan(sinograms)


def fbp_reference(sinogram: npt.ArrayLike, angles: npt.ArrayLike, *, degrees: bool = True,
                  circle: bool = True, centre: float | None = None) -> F64:
    """The numpy definition (float64) that :func:`fbp` implements, for one sinogram."""
    s = np.asarray(sinogram, dtype=np.float64)
    if s.ndim != 2:
        raise ArrayArgumentError(f"argument `sinogram`: expected 2 dimensions (angles, "
                                 f"width), got shape {s.shape}")
    n_angles, width = s.shape
    theta = _angles(angles, n_angles, degrees)
    c = float(width // 2 if centre is None else centre)
    filtered = filter_sinograms(s)
    padded = np.zeros((n_angles, width + 3))
    padded[:, 1:width + 2] = filtered
    grid = np.arange(width + 3, dtype=np.float64)
    r = width // 2
    x, y = np.mgrid[:width, :width] - r
    image = np.zeros((width, width))
    for row, a in zip(padded, theta, strict=True):
        t = y * np.cos(a) - x * np.sin(a) + c + 1.0
        image += np.interp(t, grid, row, left=0.0, right=0.0)
    if circle:
        image[x * x + y * y > r * r] = 0.0
    return np.asarray(image * np.pi / (2 * n_angles))
