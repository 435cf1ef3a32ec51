"""Azimuthal integration on OpenCL (1D patterns and 2D "cakes"), without pixel splitting.

:class:`AzimuthalIntegrator` is built from a :class:`geometry.PoniGeometry`.
Everything that depends on the geometry and the configuration (unit, number of bins,
ranges, mask, dark, flat, solid-angle and polarization corrections) is computed once —
the bin of every pixel, the per-bin normalisation, pixel count and dark sums — and the
bin table is kept on the device. Per frame only the frame goes to the device (no copy at
all on a CPU device, or when the caller passes a ``pyopencl.array.Array``) and one kernel
sums it per bin. Results agree with pyFAI's ``("no", "csr", "cython")`` method bin by bin
(same bin edges and positions, same Poisson error model).

A configuration is recognised by its scalar arguments and by the *identity* of the
``mask``/``dark``/``flat`` arrays: after changing one of them in place, pass a new array or
call :meth:`AzimuthalIntegrator.reset`. Float frames must be finite (mask NaN pixels).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis import cl
from analysis._azint_plan import (
    ERROR_MODELS,
    UNITS,
    Plan,
    Sums,
    finish,
    make_plan,
    reference_sums,
    to_unit,
)
from geometry import PoniGeometry

__all__ = ["UNITS", "AzimuthalIntegrator", "Integrate1dResult", "Integrate2dResult"]

FRAME_DTYPES = {np.dtype(np.uint16): "ushort", np.dtype(np.int32): "int",
                np.dtype(np.float32): "float"}
METHODS = ("auto", "private", "gather")
#: Largest bin count handled by the private-histogram kernel (a private array per work-item).
PRIVATE_MAX_BINS = 4096
_KEEP = 8  # configurations kept per integrator


@dataclass(frozen=True)
class Integrate1dResult:
    """A 1D pattern: per-bin radial centres (in ``unit``), intensity, Poisson error
    (``sigma``, None without error model) and the sums it was computed from."""

    radial: npt.NDArray[np.float64]
    intensity: npt.NDArray[np.float64]
    sigma: npt.NDArray[np.float64] | None
    sum_signal: npt.NDArray[np.float64]
    sum_variance: npt.NDArray[np.float64] | None
    sum_normalization: npt.NDArray[np.float64]
    count: npt.NDArray[np.float64]
    unit: str

    def __iter__(self) -> Iterator[npt.NDArray[np.float64]]:
        """Unpacks like pyFAI's result: ``x, I`` or, with an error model, ``x, I, sigma``."""
        yield self.radial
        yield self.intensity
        if self.sigma is not None:
            yield self.sigma


@dataclass(frozen=True)
class Integrate2dResult:
    """A cake: arrays of shape ``(npt_azim, npt_rad)`` as pyFAI returns them; ``radial``
    in ``unit``, ``azimuthal`` (χ) in degrees."""

    radial: npt.NDArray[np.float64]
    azimuthal: npt.NDArray[np.float64]
    intensity: npt.NDArray[np.float64]
    sigma: npt.NDArray[np.float64] | None
    sum_signal: npt.NDArray[np.float64]
    sum_variance: npt.NDArray[np.float64] | None
    sum_normalization: npt.NDArray[np.float64]
    count: npt.NDArray[np.float64]
    unit: str


def _kernel_source() -> str:
    return resources.files("analysis").joinpath("kernels", "azint.cl").read_text()


class _Prepared:
    """One configuration on the device: plan, bin table and built kernels per frame type."""

    def __init__(self, rt: cl.Runtime, plan: Plan, method: str, arrays: tuple[Any, ...]):
        import pyopencl

        self.rt, self.plan, self.method = rt, plan, method
        self.arrays = arrays  # keeps mask/dark/flat alive so their ids stay meaningful
        self.kernels: dict[tuple[str, bool], tuple[Any, ...]] = {}
        dev = rt.device
        self.acc = np.dtype(np.float64 if dev.double_fp_config else np.float32)
        mf = pyopencl.mem_flags
        n = plan.nbins
        if method == "private":
            self.bins = pyopencl.Buffer(rt.context, mf.READ_ONLY | mf.COPY_HOST_PTR,
                                        hostbuf=plan.bins.astype(np.uint16))
            self.nparts = max(1, int(dev.max_compute_units))
            self.chunk = ((plan.bins.size + self.nparts - 1) // self.nparts + 7) // 8 * 8
            self.partial = pyopencl.Buffer(rt.context, mf.READ_WRITE,
                                           self.nparts * 2 * n * self.acc.itemsize)
        else:
            order = np.argsort(plan.bins, kind="stable")
            counts = np.bincount(plan.bins, minlength=n + 1)[:n]
            indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint32)
            indices = order[: int(indptr[-1])].astype(np.uint32)
            self.indptr = pyopencl.Buffer(rt.context, mf.READ_ONLY | mf.COPY_HOST_PTR,
                                          hostbuf=indptr)
            self.indices = pyopencl.Buffer(rt.context, mf.READ_ONLY | mf.COPY_HOST_PTR,
                                           hostbuf=indices if indices.size else
                                           np.zeros(1, np.uint32))
        self.out = pyopencl.Buffer(rt.context, mf.READ_WRITE, 2 * n * self.acc.itemsize)
        self.host_out = np.zeros(2 * n, dtype=self.acc)
        self.frame_buffers: dict[np.dtype[Any], Any] = {}

    def _kernels(self, ctype: str, variance: bool) -> tuple[Any, ...]:
        key = (ctype, variance)
        if key not in self.kernels:
            import pyopencl

            double = self.acc == np.float64
            opts = (f"-DFRAME_T={ctype}", f"-DACC_T={'double' if double else 'float'}",
                    f"-DACC_IS_DOUBLE={int(double)}", f"-DNBINS={self.plan.nbins}",
                    f"-DVARIANCE={int(variance)}")
            prog = cl.build(self.rt, _kernel_source(), opts)
            names = (("azint_private", "azint_reduce") if self.method == "private"
                     else ("azint_gather",))
            self.kernels[key] = tuple(pyopencl.Kernel(prog, name) for name in names)
        return self.kernels[key]

    def _frame_buffer(self, frame: Any) -> tuple[Any, np.dtype[Any]]:
        import pyopencl

        if not isinstance(frame, np.ndarray):  # a pyopencl Array, already checked
            return frame.data, frame.dtype
        mf = pyopencl.mem_flags
        if self.rt.device.type & pyopencl.device_type.CPU:
            # zero copy: the device reads the host memory; we wait for the result below
            return pyopencl.Buffer(self.rt.context, mf.READ_ONLY | mf.USE_HOST_PTR,
                                   hostbuf=frame), frame.dtype
        buf = self.frame_buffers.get(frame.dtype)
        if buf is None:
            buf = self.frame_buffers[frame.dtype] = pyopencl.Buffer(
                self.rt.context, mf.READ_ONLY, frame.nbytes)
        pyopencl.enqueue_copy(self.rt.queue, buf, frame, is_blocking=False)
        return buf, frame.dtype

    def run(self, frame: Any, variance: bool) -> Sums:
        import pyopencl

        buf, dtype = self._frame_buffer(frame)
        kernels = self._kernels(FRAME_DTYPES[np.dtype(dtype)], variance)
        q, n = self.rt.queue, self.plan.nbins
        if self.method == "private":
            k_hist, k_reduce = kernels
            k_hist(q, (self.nparts,), (1,), buf, self.bins, np.uint32(self.plan.bins.size),
                   np.uint32(self.chunk), self.partial)
            k_reduce(q, ((1 + variance) * n,), None, self.partial, np.uint32(self.nparts),
                     self.out)
        else:
            (k_gather,) = kernels
            k_gather(q, (n,), None, buf, self.indptr, self.indices, self.out)
        pyopencl.enqueue_copy(q, self.host_out, self.out)
        raw = self.host_out[:n].astype(np.float64)
        corr = self.host_out[n:].astype(np.float64) if variance else None
        return finish(self.plan, raw, corr)


class AzimuthalIntegrator:
    """pyFAI-like azimuthal integrator running its per-frame work on OpenCL.

    Parameters
    ----------
    geometry
        Detector geometry (PONI convention).
    device
        OpenCL device choice passed to :func:`analysis.cl.runtime` (None: the default).
    method
        ``"private"`` (per-work-item histograms, fastest on CPU devices), ``"gather"``
        (one work-item per bin over a pixel list, for GPUs and large bin counts) or
        ``"auto"`` (private on a CPU device when the bins fit, else gather).
    """

    def __init__(self, geometry: PoniGeometry, device: str | None = None,
                 method: str = "auto") -> None:
        if not isinstance(geometry, PoniGeometry):
            raise TypeError(f"geometry must be a PoniGeometry, got {type(geometry).__name__}")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
        self.geometry = geometry
        self.method = method
        self.rt = cl.runtime(device)
        self._prepared: dict[tuple[Any, ...], _Prepared] = {}

    def reset(self) -> None:
        """Forget all prepared configurations (after changing a mask/dark/flat in place)."""
        self._prepared.clear()

    # -- argument checks ------------------------------------------------------------

    def _check_image(self, name: str, a: Any) -> npt.NDArray[Any] | None:
        if a is None:
            return None
        arr = np.asarray(a)
        if arr.shape != self.geometry.shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {self.geometry.shape} "
                             "(the detector shape)")
        return arr

    def _check_frame(self, frame: Any) -> Any:
        from analysis import devarray

        if devarray.is_device(frame):
            if frame.context != self.rt.context:
                raise ValueError("frame is a pyopencl array on another OpenCL context than "
                                 f"this integrator's ({self.rt.name})")
            arr_shape, dtype = tuple(frame.shape), np.dtype(frame.dtype)
            if not frame.flags.c_contiguous:
                raise ValueError("frame (pyopencl array) must be C-contiguous")
        else:
            if not isinstance(frame, np.ndarray):
                raise TypeError("frame must be a numpy array or a pyopencl array, got "
                                f"{type(frame).__name__}")
            arr_shape, dtype = frame.shape, frame.dtype
        if arr_shape != self.geometry.shape:
            raise ValueError(f"frame has shape {arr_shape}, expected {self.geometry.shape} "
                             "(the detector shape)")
        if dtype not in FRAME_DTYPES:
            raise TypeError(f"frame dtype {dtype} is not supported; use one of "
                            + ", ".join(str(d) for d in FRAME_DTYPES))
        if isinstance(frame, np.ndarray):
            return np.ascontiguousarray(frame)
        return frame

    @staticmethod
    def _host(frame: Any) -> npt.NDArray[Any]:
        return frame if isinstance(frame, np.ndarray) else np.asarray(frame.get())

    @staticmethod
    def _check_npt(name: str, npt_: Any) -> int:
        if isinstance(npt_, bool) or not isinstance(npt_, (int, np.integer)) or npt_ < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {npt_!r}")
        return int(npt_)

    @staticmethod
    def _check_range(name: str, rng: Any) -> tuple[float, float] | None:
        if rng is None:
            return None
        try:
            lo, hi = (float(v) for v in rng)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be (min, max), got {rng!r}") from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"{name} must be finite with min < max, got {rng!r}")
        return lo, hi

    def _configure(self, npt_rad: int, unit: str, radial_range: Any, npt_azim: int | None,
                   azimuth_range: Any, mask: Any, dark: Any, flat: Any,
                   correct_solid_angle: bool, polarization_factor: float | None,
                   error_model: str | None) -> tuple[_Prepared, bool]:
        u = to_unit(unit)
        if error_model not in ERROR_MODELS:
            raise ValueError(f"unknown error_model {error_model!r}; valid: 'poisson', None")
        if polarization_factor is not None and not -1.0 <= float(polarization_factor) <= 1.0:
            raise ValueError("polarization_factor must be in [-1, 1] or None, got "
                             f"{polarization_factor!r}")
        rr = self._check_range("radial_range", radial_range)
        ar = self._check_range("azimuth_range", azimuth_range)
        key = (u.name, npt_rad, rr, npt_azim, ar, id(mask), id(dark), id(flat),
               bool(correct_solid_angle), polarization_factor)
        prepared = self._prepared.get(key)
        if prepared is None:
            m = self._check_image("mask", mask)
            d = self._check_image("dark", dark)
            f = self._check_image("flat", flat)
            plan = make_plan(self.geometry, u, npt_rad, rr, npt_azim, ar,
                             mask=None if m is None else m.astype(bool),
                             dark=None if d is None else d.astype(np.float32),
                             flat=None if f is None else f.astype(np.float32),
                             correct_solid_angle=correct_solid_angle,
                             polarization_factor=polarization_factor)
            method = self.method
            if method == "auto":
                import pyopencl

                cpu = bool(self.rt.device.type & pyopencl.device_type.CPU)
                method = "private" if cpu and plan.nbins <= PRIVATE_MAX_BINS else "gather"
            if method == "private" and plan.nbins > PRIVATE_MAX_BINS:
                raise ValueError(f"method 'private' handles at most {PRIVATE_MAX_BINS} bins, "
                                 f"got {plan.nbins}; use 'gather' or 'auto'")
            if len(self._prepared) >= _KEEP:
                self._prepared.pop(next(iter(self._prepared)))
            prepared = self._prepared[key] = _Prepared(self.rt, plan, method,
                                                       (mask, dark, flat))
        return prepared, error_model == "poisson"

    # -- integration ----------------------------------------------------------------

    def plan1d(self, npt: int, unit: str = "2th_deg", radial_range: Any = None,
               mask: Any = None, dark: Any = None, flat: Any = None,
               correct_solid_angle: bool = True,
               polarization_factor: float | None = None) -> Plan:
        """The frame-independent :class:`~analysis._azint_plan.Plan` of a 1D configuration
        (bins per pixel, per-bin normalisation), as :meth:`integrate1d` uses it."""
        npt = self._check_npt("npt", npt)
        prepared, _ = self._configure(npt, unit, radial_range, None, None, mask, dark, flat,
                                      correct_solid_angle, polarization_factor, None)
        return prepared.plan

    def integrate1d(self, frame: Any, npt: int, unit: str = "2th_deg",
                    radial_range: Any = None, mask: Any = None, dark: Any = None,
                    flat: Any = None, correct_solid_angle: bool = True,
                    polarization_factor: float | None = None,
                    error_model: str | None = None) -> Integrate1dResult:
        """Integrate ``frame`` into ``npt`` radial bins.

        Parameters
        ----------
        frame
            ``uint16``, ``int32`` or ``float32`` image of the detector's shape (numpy, or a
            ``pyopencl.array.Array`` on this integrator's context), or a numpy stack
            ``(n, rows, cols)`` of such frames: then every result array has a leading axis
            of ``n`` (one pattern per frame) and ``radial`` stays ``(npt,)``.
        npt
            Number of bins.
        unit
            ``"2th_deg"``, ``"q_nm^-1"`` or ``"r_mm"``.
        radial_range
            ``(min, max)`` in ``unit``; default: the valid pixels' range.
        mask
            Non-zero where pixels are excluded.
        dark, flat
            Dark image subtracted from the signal; flat image multiplied into the
            normalisation.
        correct_solid_angle, polarization_factor
            Corrections as pyFAI applies them (normalisation × solid angle × polarization).
        error_model
            ``"poisson"`` (variance = max(1, raw counts)) or None (pyFAI's default).
        """
        npt = self._check_npt("npt", npt)
        if isinstance(frame, np.ndarray) and frame.ndim == 3:
            return self._stack1d(frame, npt, unit, radial_range, mask, dark, flat,
                                 correct_solid_angle, polarization_factor, error_model)
        frame = self._check_frame(frame)
        prepared, variance = self._configure(npt, unit, radial_range, None, None, mask, dark,
                                             flat, correct_solid_angle, polarization_factor,
                                             error_model)
        s = prepared.run(frame, variance)
        p = prepared.plan
        return _result1d(p, s, unit)

    def _stack1d(self, frames: npt.NDArray[Any], npt_: int, unit: str, radial_range: Any,
                 mask: Any, dark: Any, flat: Any, correct_solid_angle: bool,
                 polarization_factor: float | None, error_model: str | None
                 ) -> Integrate1dResult:
        """:meth:`integrate1d` of every frame of an ``(n, rows, cols)`` stack."""
        if frames.shape[1:] != self.geometry.shape:
            raise ValueError(f"frames have shape {frames.shape[1:]}, expected "
                             f"{self.geometry.shape} (the detector shape)")
        prepared, variance = self._configure(npt_, unit, radial_range, None, None, mask, dark,
                                             flat, correct_solid_angle, polarization_factor,
                                             error_model)
        sums = [prepared.run(self._check_frame(f), variance) for f in frames]
        p = prepared.plan
        n = len(sums)

        def stack(values: list[Any]) -> Any:
            if not values or values[0] is None:
                return None if values else np.zeros((0, p.nbins))
            return np.stack(values)

        return Integrate1dResult(
            p.radial.centres(), stack([s.intensity for s in sums]),
            stack([s.sigma for s in sums]) if variance else None,
            stack([s.sum_signal for s in sums]),
            stack([s.sum_variance for s in sums]) if variance else None,
            np.broadcast_to(p.sum_normalization, (n, p.nbins)),
            np.broadcast_to(p.count, (n, p.nbins)), unit)

    def integrate2d(self, frame: Any, npt_rad: int, npt_azim: int = 360,
                    unit: str = "2th_deg", radial_range: Any = None,
                    azimuth_range: Any = None, mask: Any = None, dark: Any = None,
                    flat: Any = None, correct_solid_angle: bool = True,
                    polarization_factor: float | None = None,
                    error_model: str | None = None) -> Integrate2dResult:
        """Integrate ``frame`` into a cake of ``npt_rad`` radial × ``npt_azim`` χ bins.

        ``azimuth_range`` is in degrees within [−180, 180]; other arguments as
        :meth:`integrate1d`. Arrays come back with shape ``(npt_azim, npt_rad)``."""
        npt_rad = self._check_npt("npt_rad", npt_rad)
        npt_azim = self._check_npt("npt_azim", npt_azim)
        frame = self._check_frame(frame)
        prepared, variance = self._configure(npt_rad, unit, radial_range, npt_azim,
                                             azimuth_range, mask, dark, flat,
                                             correct_solid_angle, polarization_factor,
                                             error_model)
        return _result2d(prepared.plan, prepared.run(frame, variance), unit)

    def reference1d(self, frame: Any, npt: int, unit: str = "2th_deg",
                    radial_range: Any = None, mask: Any = None, dark: Any = None,
                    flat: Any = None, correct_solid_angle: bool = True,
                    polarization_factor: float | None = None,
                    error_model: str | None = None) -> Integrate1dResult:
        """The numpy reference of :meth:`integrate1d` (``np.bincount``, no OpenCL)."""
        npt = self._check_npt("npt", npt)
        frame = self._host(self._check_frame(frame))
        prepared, variance = self._configure(npt, unit, radial_range, None, None, mask, dark,
                                             flat, correct_solid_angle, polarization_factor,
                                             error_model)
        p = prepared.plan
        s = reference_sums(p, frame, variance)
        return _result1d(p, s, unit)

    def reference2d(self, frame: Any, npt_rad: int, npt_azim: int = 360,
                    unit: str = "2th_deg", radial_range: Any = None,
                    azimuth_range: Any = None, mask: Any = None, dark: Any = None,
                    flat: Any = None, correct_solid_angle: bool = True,
                    polarization_factor: float | None = None,
                    error_model: str | None = None) -> Integrate2dResult:
        """The numpy reference of :meth:`integrate2d`."""
        npt_rad = self._check_npt("npt_rad", npt_rad)
        npt_azim = self._check_npt("npt_azim", npt_azim)
        frame = self._host(self._check_frame(frame))
        prepared, variance = self._configure(npt_rad, unit, radial_range, npt_azim,
                                             azimuth_range, mask, dark, flat,
                                             correct_solid_angle, polarization_factor,
                                             error_model)
        return _result2d(prepared.plan, reference_sums(prepared.plan, frame, variance), unit)


def _result1d(p: Plan, s: Sums, unit: str) -> Integrate1dResult:
    """The 1D result of plan ``p``'s sums ``s`` (OpenCL or reference alike)."""
    return Integrate1dResult(p.radial.centres(), s.intensity, s.sigma, s.sum_signal,
                             s.sum_variance, p.sum_normalization, p.count, unit)


def _result2d(p: Plan, s: Sums, unit: str) -> Integrate2dResult:
    """The cake of plan ``p``'s sums ``s``: bins come radial-major, rows are χ."""
    assert p.azimuthal is not None
    shape = (len(p.radial.centres()), len(p.azimuthal.centres()))

    def cake(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return np.ascontiguousarray(a.reshape(shape).T)

    return Integrate2dResult(
        p.radial.centres(), p.azimuthal.centres(), cake(s.intensity),
        None if s.sigma is None else cake(s.sigma), cake(s.sum_signal),
        None if s.sum_variance is None else cake(s.sum_variance),
        cake(p.sum_normalization), cake(p.count), unit)
