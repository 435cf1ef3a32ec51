"""The OpenCL side of the integrator: one :class:`Engine` per plan, frames in, sums out.

The engine keeps the plan on the device and chooses a kernel (``analysis/kernels/
azint.cl``):

* ``hist_private`` — no pixel splitting on a CPU device with at most
  :data:`PRIVATE_MAX_BINS` bins: per-work-item histograms over contiguous slices of the
  frame (2 bytes of bin index per pixel); a detector's unsigned 8/16-bit counts are
  summed in one pass of 64-bit integer adds that carry the Poisson variance's count of
  zero pixels in their high bits (exact; 1.8 -> 1.0 ms of CPU per 1 Mpix Poisson
  frame, busy machine, against two passes when the frame has zeros);
* ``split_private`` — bbox/full splitting of 1D patterns on a CPU device: the same, each
  pixel carrying its first bin and coefficients;
* ``csr_sums`` — anything else (GPUs, 2D cakes, many bins): one work-item per bin over
  its CSR row;
* ``csr_azimuthal`` — the "azimuthal" error model (a running variance over each row).

A whole stack is one kernel launch (the second global dimension is the frame) and one
read-back. Pixels that do not count in a frame (not finite, dummy) are listed by the
private kernels — the host takes their share out of the plan's static sums — or summed
apart by ``csr_sums``; when more pixels are listed than fit, the frame is summed again
with ``csr_sums``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis import cl, devarray
from analysis.azint_plan import Divisors, Dummy, Plan, Sums, divisors

#: Largest bin count of the private-histogram kernels (a private array per work-item).
PRIVATE_MAX_BINS = 4096
#: How many private histograms ``hist_private`` alternates over, by bin count (so that
#: they stay in the L1 cache): 4 up to 1024 bins, 2 up to 2048, else 1.
SUMS_BY_BINS = ((1024, 4), (2048, 2))
FRAME_TYPES = {np.dtype(np.uint8): "uchar", np.dtype(np.int8): "char",
               np.dtype(np.uint16): "ushort", np.dtype(np.int16): "short",
               np.dtype(np.uint32): "uint", np.dtype(np.int32): "int",
               np.dtype(np.uint64): "ulong", np.dtype(np.int64): "long",
               np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
#: The signed integer type of each pixel size (vector masks of the frame's type).
_MASK_TYPES = {1: "char", 2: "short", 4: "int", 8: "long"}
KINDS = ("auto", "private", "csr")
#: Pixel types ``hist_private`` sums in packed integers, value and zero count in one add.
_PACKED_TYPES = (np.dtype(np.uint8), np.dtype(np.uint16))
_ArgTypes = list[np.dtype[Any] | None]
_U32, _F32 = np.dtype(np.uint32), np.dtype(np.float32)
_BUF: _ArgTypes = [None]
# npix, chunk, partial, bad_idx, cap, dummy, delta
_PRIVATE_TAIL: _ArgTypes = [_U32, _U32, None, None, _U32, _F32, _F32]
_CSR_ARGS: _ArgTypes = _BUF * 6 + [_U32, _U32, None, _F32, _F32]
#: Each kernel's scalar argument types (None: a buffer), in order.
_SCALAR_ARGS: dict[str, _ArgTypes] = {
    "hist_private": _BUF * 2 + _PRIVATE_TAIL,
    "split_private": _BUF * 7 + _PRIVATE_TAIL,
    "csr_sums": _CSR_ARGS, "csr_azimuthal": _CSR_ARGS}
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Frames:
    """A stack on its way to the kernels: the device buffer, frame count and dtype."""

    buffer: Any
    n: int
    dtype: np.dtype[Any]
    host: npt.NDArray[Any] | None  # kept alive while the device reads it (zero copy)


class Engine:
    """Device buffers and kernels of one :class:`~analysis.azint_plan.Plan`."""

    def __init__(self, rt: cl.Runtime, plan: Plan, kind: str = "auto",
                 width: int | None = None) -> None:
        import pyopencl

        self.rt, self.plan = rt, plan
        self.cpu = bool(rt.device.type & pyopencl.device_type.CPU)
        self.acc = np.dtype(np.float64 if rt.device.double_fp_config else np.float32)
        split = plan.matrix.split
        one_d = plan.matrix.azimuthal is None
        if kind == "private" and plan.nbins > PRIVATE_MAX_BINS:
            raise ValueError(f"kernel 'private' needs at most {PRIVATE_MAX_BINS} bins, got "
                             f"{plan.nbins}; use 'auto' or 'csr'")
        # 2D cakes with splitting have no private kernel: they always go row by row
        private = (self.cpu if kind == "auto" else kind == "private") \
            and plan.nbins <= PRIVATE_MAX_BINS and (split == "no" or one_d)
        self.kind = ("hist" if split == "no" else "split") if private else "csr"
        self.nparts = max(1, int(rt.device.max_compute_units))
        npix = plan.matrix.npix
        self.chunk = ((npix + self.nparts - 1) // self.nparts + 7) // 8 * 8
        self.cap = max(1024, npix // (16 * self.nparts))
        self.max_alloc = int(rt.device.max_mem_alloc_size)
        """The largest buffer the device allocates at once (bytes): a stack whose scratch
        buffers would be larger is summed a part at a time (:meth:`stack_sums`)."""
        self._buffers: dict[str, Any] = {}
        self._kernels: dict[tuple[object, ...], Any] = {}
        self._scratch: dict[str, tuple[int, Any]] = {}
        self._rows: tuple[int, F64, F64, F64] | None = None
        self._divisors: tuple[tuple[int, float], Divisors] | None = None
        if self.kind == "hist":
            self._pixel_bins = plan.pixel_bins()
            self._upload("bins", self._pixel_bins.astype(np.uint16))
        elif self.kind == "split":
            self._pixel_major(width)

    # -- device data ------------------------------------------------------------------

    def _fits(self, nbytes: int, name: str) -> None:
        """``ValueError`` naming the bin count when a buffer is larger than the device can
        allocate at once (OpenCL would only say INVALID_BUFFER_SIZE)."""
        limit = self.max_alloc
        if nbytes > limit:
            raise ValueError(
                f"{self.plan.nbins} bins need a {nbytes / 2**20:.0f} MiB {name!r} buffer on "
                f"the OpenCL device, more than the {limit / 2**20:.0f} MiB it can allocate at "
                "once; use fewer bins")

    def _upload(self, name: str, host: npt.NDArray[Any]) -> Any:
        import pyopencl

        mf = pyopencl.mem_flags
        data = host if host.size else np.zeros(1, host.dtype)
        self._fits(data.nbytes, name)
        buf = pyopencl.Buffer(self.rt.context, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=data)
        self._buffers[name] = buf
        return buf

    def _buffer(self, name: str) -> Any:
        if name not in self._buffers:
            p = self.plan
            if name == "indptr":
                self._upload("indptr", p.indptr.astype(np.uint32))
                self._upload("indices", p.indices.astype(np.uint32))
                self._upload("coefs", p.coefs.astype(np.float32))
            elif name == "norm":
                self._upload("norm", p.norm.astype(np.float32))
                self._upload("dark", np.zeros(1, np.float32) if p.dark is None
                             else p.dark.astype(np.float32))
        return self._buffers[name]

    def _scratch_buffer(self, name: str, nbytes: int) -> Any:
        import pyopencl

        have = self._scratch.get(name)
        if have is None or have[0] < nbytes:
            self._fits(nbytes, name)
            have = (nbytes, pyopencl.Buffer(self.rt.context, pyopencl.mem_flags.READ_WRITE,
                                            max(nbytes, 8)))
            self._scratch[name] = have
        return have[1]

    def _pixel_major(self, width: int | None) -> None:
        """Per pixel its first bin and :attr:`width` coefficients (by default the width
        that holds all the coefficients of 99 % of the pixels, at most 8), plus the list of
        coefficients beyond that width (pixel, bin, coefficient)."""
        p = self.plan
        rows = p.rows()
        order = np.lexsort((rows, p.indices))
        pix, bins, coefs = p.indices[order], rows[order], p.coefs[order]
        npix = p.matrix.npix
        count = np.bincount(pix, minlength=npix)
        start = np.concatenate([[0], np.cumsum(count)])
        has = count > 0
        first = np.full(npix, p.nbins, np.int64)  # no bin: the padding bins, zero weights
        first[has] = bins[start[:-1][has]]
        offset = bins - first[pix]  # a pixel's bins are consecutive in 1D
        reach = np.zeros(npix, np.int64)
        np.maximum.at(reach, pix, offset + 1)
        if width is None:
            width = int(min(8, max(1, np.percentile(reach[has], 99) if has.any() else 1)))
        self.width = width
        inside = offset < self.width
        weights = np.zeros((npix, self.width), np.float32)
        weights[pix[inside], offset[inside]] = coefs[inside]
        self._upload("firsts", first.astype(np.uint16))
        self._upload("weights", weights.ravel())
        out_pix, out_bin, out_coef = pix[~inside], bins[~inside], coefs[~inside]
        part_first = np.minimum(np.arange(self.nparts + 1) * self.chunk, npix)
        self._upload("over_pix", out_pix.astype(np.uint32))
        self._upload("over_bin", out_bin.astype(np.uint16))
        self._upload("over_coef", out_coef.astype(np.float32))
        self._upload("over_start", np.searchsorted(out_pix, part_first).astype(np.uint32))
        self._csc = (count, start, bins, coefs)

    # -- frames -------------------------------------------------------------------------

    def frames(self, stack: Any) -> Frames:
        """``stack`` (numpy or pyopencl, ``(n, rows, cols)`` or one frame) on the device."""
        import pyopencl

        if devarray.is_device(stack):
            n = 1 if stack.ndim == 2 else int(stack.shape[0])
            return Frames(stack.data, n, np.dtype(stack.dtype), None)
        host = np.ascontiguousarray(stack)
        n = 1 if host.ndim == 2 else int(host.shape[0])
        mf = pyopencl.mem_flags
        if self.cpu:  # zero copy: the device reads the host memory
            buf = pyopencl.Buffer(self.rt.context, mf.READ_ONLY | mf.USE_HOST_PTR,
                                  hostbuf=host)
            return Frames(buf, n, host.dtype, host)
        buf = self._scratch_buffer(f"frames/{host.dtype}", host.nbytes)
        pyopencl.enqueue_copy(self.rt.queue, buf, host, is_blocking=False)
        return Frames(buf, n, host.dtype, host)

    # -- sums ---------------------------------------------------------------------------

    def _options(self, dtype: np.dtype[Any], variance: bool, dummy: Dummy | None
                 ) -> tuple[str, ...]:
        double = self.acc == np.float64
        if dtype == np.float64 and not double:
            raise TypeError(f"float64 frames need a device with double precision; "
                            f"{self.rt.name} has none")
        return (f"-DFRAME_T={FRAME_TYPES[dtype]}", f"-DACC_T={'double' if double else 'float'}",
                f"-DACC_IS_DOUBLE={int(double)}", f"-DNBINS={self.plan.nbins}",
                f"-DVARIANCE={int(variance)}", f"-DCHECK_FINITE={int(dtype.kind == 'f')}",
                *_dummy_options(dtype, dummy),
                f"-DWIDE={int(dtype.itemsize == 8)}", f"-DMASK_T={_MASK_TYPES[dtype.itemsize]}",
                f"-DNSUMS={_nsums(self.plan.nbins)}", f"-DPRIVATE_MAX={PRIVATE_MAX_BINS}",
                f"-DPACK_OK={int(self._packs(dtype))}")

    def _packs(self, dtype: np.dtype[Any]) -> bool:
        """Whether ``hist_private`` may sum frames of ``dtype`` in packed integers (the
        kernel's header): unsigned 8/16-bit pixels, fewer than 2^24 in a slice."""
        return dtype in _PACKED_TYPES and (self.plan.matrix.npix + 7) // 8 * 8 < 1 << 24

    def _kernel(self, name: str, dtype: np.dtype[Any], variance: bool, dummy: Dummy | None
                ) -> Any:
        """Kernel ``name`` built for these frames (kept per engine: a dict lookup a call)."""
        # integer frames compare with the dummy's integer range, built into the kernel
        key = (name, dtype, variance, dummy if dtype.kind in "iu" else (
            dummy is None, dummy is not None and dummy.delta == 0))
        k = self._kernels.get(key)
        if k is None:
            opts = self._options(dtype, variance, dummy)
            if name == "split_private":
                opts = (*opts, f"-DWIDTH={self.width}")
            k = self._kernels[key] = devarray.kernel(self.rt, "azint.cl", name, opts)
            # declared scalar types: pyopencl then packs them itself (setting a numpy
            # scalar argument otherwise costs ~9 µs each, most of a call's host time)
            k.set_scalar_arg_dtypes(_SCALAR_ARGS[name])
        return k

    def frame_bytes(self, dtype: np.dtype[Any]) -> int:
        """The largest scratch buffer one frame of ``dtype`` adds to a call: the kernel's
        per-frame outputs, and the frame itself on a device with its own memory."""
        p, acc = self.plan, self.acc.itemsize
        per_frame = [6 * p.nbins * acc]  # row-by-row sums (also the private kernels' fallback)
        if self.kind != "csr":
            per_frame += [self.nparts * (2 * p.nbins + 1) * acc, self.nparts * self.cap * 4]
        if not self.cpu:
            per_frame.append(p.matrix.npix * dtype.itemsize)
        return max(per_frame)

    def frames_per_call(self, dtype: np.dtype[Any]) -> int:
        """How many frames of ``dtype`` one call sums with every scratch buffer within
        :attr:`max_alloc`; at least 1 (one frame too large is :meth:`_fits`'s error)."""
        return max(1, self.max_alloc // self.frame_bytes(dtype))

    def stack_sums(self, stack: Any, error_model: str | None, dummy: Dummy | None) -> Sums:
        """:meth:`sums` of a whole stack (numpy or pyopencl, or one frame), in parts of
        :meth:`frames_per_call` frames when it would not fit the device at once; the parts'
        rows are the rows of a single call."""
        n = 1 if stack.ndim == 2 else int(stack.shape[0])
        step = self.frames_per_call(np.dtype(stack.dtype))
        if n <= step:
            return self.sums(self.frames(stack), error_model, dummy)
        if devarray.is_device(stack):
            raise ValueError(
                f"a stack of {n} frames already on the OpenCL device needs buffers larger than "
                f"the {self.max_alloc / 2**20:.0f} MiB it can allocate at once with "
                f"{self.plan.nbins} bins; pass at most {step} frames per call")
        parts = [self.sums(self.frames(stack[i:i + step]), error_model, dummy)
                 for i in range(0, n, step)]
        joined: dict[str, Any] = {}
        for f in fields(Sums):
            rows = [getattr(part, f.name) for part in parts]
            joined[f.name] = None if rows[0] is None else np.concatenate(rows)
        return Sums(**joined)

    def sums(self, frames: Frames, error_model: str | None, dummy: Dummy | None) -> Sums:
        """Every per-bin sum of every frame (``(n, nbins)`` each)."""
        if error_model == "azimuthal":
            return self._csr(frames, "csr_azimuthal", error_model, dummy)
        if self.kind == "csr":
            return self._csr(frames, "csr_sums", error_model, dummy)
        return self._private(frames, error_model, dummy)

    def _dummy_args(self, dummy: Dummy | None) -> tuple[np.float32, np.float32]:
        if dummy is None:
            return np.float32(0), np.float32(0)
        return np.float32(dummy.value), np.float32(dummy.delta)

    def _private(self, frames: Frames, error_model: str | None, dummy: Dummy | None
                 ) -> Sums:
        import pyopencl

        p, n, q = self.plan, frames.n, self.rt.queue
        variance = error_model == "poisson"
        # a stack of several frames per compute unit: one work-item per whole frame
        # (fewer partial histograms to zero, store and add)
        parts = 1 if self.kind == "hist" and n >= 2 * self.nparts else self.nparts
        chunk = self.chunk if parts == self.nparts else (p.matrix.npix + 7) // 8 * 8
        nbins, slots = p.nbins, n * parts
        acc = self.acc.itemsize
        partial = self._scratch_buffer("partial", slots * (2 * nbins + 1) * acc)
        bad_idx = self._scratch_buffer("bad_idx", slots * self.cap * 4)
        npix = np.uint32(p.matrix.npix)
        dv, dd = self._dummy_args(dummy)
        if self.kind == "hist":
            k = self._kernel("hist_private", frames.dtype, variance, dummy)
            k(q, (parts, n), (1, 1), frames.buffer, self._buffers["bins"], npix,
              np.uint32(chunk), partial, bad_idx, np.uint32(self.cap), dv, dd)
        else:
            k = self._kernel("split_private", frames.dtype, variance, dummy)
            b = self._buffers
            k(q, (self.nparts, n), (1, 1), frames.buffer, b["firsts"], b["weights"],
              b["over_pix"], b["over_bin"], b["over_coef"], b["over_start"], npix,
              np.uint32(self.chunk), partial, bad_idx, np.uint32(self.cap), dv, dd)
        # one read: every slot's histograms, then the slots' bad-pixel counts; the few
        # partial histograms are added here (cheaper than another launch)
        flat = np.empty(slots * (2 * nbins + 1), self.acc)
        pyopencl.enqueue_copy(q, flat, partial)
        host = flat[:slots * 2 * nbins].reshape(n, parts, 2, nbins)
        listed = flat[slots * 2 * nbins:].reshape(n, parts)
        raw = host[:, 0].astype(np.float64)
        for k in range(1, parts):  # (a few parts: faster than a reduction over an axis)
            raw += host[:, k]
        s = raw[:, 0]
        if not variance:
            v = None
        elif self.kind == "hist":
            v = s + raw[:, 1]  # sum max(1, x) = sum x + sum (1 - x) over x < 1
        else:
            v = raw[:, 1]
        if not listed.any():
            return self._combine(s, v, None)
        bad = self._bad_sums(frames, listed.astype(np.int64), bad_idx)
        if bad is None:  # more bad pixels than listed: sum those frames row by row
            return self._csr(frames, "csr_sums", error_model, dummy)
        return self._combine(s, v, bad)

    def _bad_sums(self, frames: Frames, counts: npt.NDArray[np.int64], bad_idx: Any
                  ) -> F64 | None:
        """Per frame and bin: (Σc, Σc·norm, Σ(c·norm)², Σc·dark) of the listed pixels
        (``counts``: how many each slot listed, some), None when more than fit were."""
        import pyopencl

        p = self.plan
        if (counts > self.cap).any():
            return None
        out = np.zeros((frames.n, 4, p.nbins))
        parts = counts.shape[1]
        lists = np.empty((frames.n, parts, self.cap), np.uint32)
        pyopencl.enqueue_copy(self.rt.queue, lists, bad_idx)
        for f in np.flatnonzero(counts.any(axis=1)):
            idx = np.concatenate([lists[f, k, :counts[f, k]] for k in range(parts)]
                                 ).astype(np.int64)
            if self.kind == "hist":
                bins, c = self._pixel_bins[idx], np.ones(idx.size)
                pix = idx
            else:
                count, start, all_bins, coefs = self._csc
                reps = count[idx]
                at = np.repeat(start[idx], reps) + (
                    np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps))
                pix, bins, c = np.repeat(idx, reps), all_bins[at], coefs[at].astype(np.float64)
            w = c * p.norm[pix].astype(np.float64)
            out[f, 0] = np.bincount(bins, c, minlength=p.nbins)[:p.nbins]
            out[f, 1] = np.bincount(bins, w, minlength=p.nbins)[:p.nbins]
            out[f, 2] = np.bincount(bins, w * w, minlength=p.nbins)[:p.nbins]
            if p.dark is not None:
                out[f, 3] = np.bincount(bins, c * p.dark[pix].astype(np.float64),
                                        minlength=p.nbins)[:p.nbins]
        return out

    def _csr(self, frames: Frames, name: str, error_model: str | None, dummy: Dummy | None
             ) -> Sums:
        import pyopencl

        p, n, q = self.plan, frames.n, self.rt.queue
        variance = error_model is not None
        out = self._scratch_buffer("csr_out", n * 6 * p.nbins * self.acc.itemsize)
        dv, dd = self._dummy_args(dummy)
        k = self._kernel(name, frames.dtype, variance, dummy)
        k(q, (p.nbins, n), None, frames.buffer, self._buffer("indptr"),
          self._buffers["indices"], self._buffers["coefs"], self._buffer("norm"),
          self._buffers["dark"], np.uint32(p.matrix.npix), np.uint32(p.dark is not None),
          out, dv, dd)
        host = np.empty((n, 6, p.nbins), self.acc)
        pyopencl.enqueue_copy(q, host, out)
        raw = host.astype(np.float64)
        if name == "csr_azimuthal":  # every sum straight from the kernel
            return Sums(raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3], raw[:, 4])
        return self._combine(raw[:, 0], raw[:, 1] if variance else None,
                             raw[:, 2:6].copy())

    def _combine(self, s: F64, v: F64 | None, bad: F64 | None) -> Sums:
        """Frame sums plus static sums minus the bad pixels' share (None: no bad pixel)."""
        p = self.plan
        n = s.shape[0]
        if bad is None or not bad.any():
            signal = s if p.sum_dark is None else s - p.sum_dark
            return Sums(signal, v, *self._static_rows(n))
        count = p.count - bad[:, 0]
        norm = p.sum_norm - bad[:, 1]
        norm2 = p.sum_norm2 - bad[:, 2]
        signal = s if p.sum_dark is None else s - (p.sum_dark - bad[:, 3])
        # bins whose every pixel dropped out: exactly empty, not a rounding residue
        gone = count <= 1e-9 * np.maximum(p.count, 1e-300)
        if gone.any():
            for a in (count, norm, norm2, signal):
                a[gone] = 0.0
            if v is not None:
                v = np.where(gone, 0.0, v)
        return Sums(signal, v, norm, norm2, count)

    def divisors(self, sums: Sums, normalization_factor: float) -> Divisors | None:
        """The divisors of ``sums`` when its normalisation is the static one (no pixel
        dropped out), computed once per stack size and factor; None otherwise."""
        rows = self._rows
        if rows is None or sums.norm is not rows[1] or sums.norm2 is not rows[2]:
            return None
        key = (rows[0], normalization_factor)
        have = self._divisors
        if have is None or have[0] != key:
            have = self._divisors = (key, divisors(rows[1], rows[2], normalization_factor))
        return have[1]

    def _static_rows(self, n: int) -> tuple[F64, F64, F64]:
        """The static sums (norm, norm², count) as ``n`` read-only rows, shared by every
        frame (kept for the last ``n``: building the views costs more than a frame's
        host work)."""
        have = self._rows
        if have is None or have[0] != n:
            p = self.plan
            norm, norm2, count = (np.broadcast_to(a, (n, a.size))
                                  for a in (p.sum_norm, p.sum_norm2, p.count))
            have = self._rows = (n, norm, norm2, count)
        return have[1], have[2], have[3]


def _dummy_options(dtype: np.dtype[Any], dummy: Dummy | None) -> tuple[str, ...]:
    """The kernel options of the dummy test: float frames compare in float32 with the
    ``dummy``/``delta`` arguments; integer frames with the range of the type's values
    that are the dummy value (:meth:`Dummy.integers`, exact), as constants — no
    conversion on the device, and none at all when no value of the type is."""
    if dummy is None:
        return ("-DCHECK_DUMMY=0", "-DDUMMY_EXACT=0", "-DDUMMY_RANGE=0")
    if dtype.kind == "f":
        return ("-DCHECK_DUMMY=1", f"-DDUMMY_EXACT={int(dummy.delta == 0)}",
                "-DDUMMY_RANGE=0")
    span = dummy.integers(dtype)
    if span is None:
        return ("-DCHECK_DUMMY=0", "-DDUMMY_EXACT=0", "-DDUMMY_RANGE=0")
    # the 64-bit pattern, converted to the frame's type (two's complement)
    lo, hi = (f"((FRAME_T)0x{v & 0xFFFFFFFFFFFFFFFF:x}UL)" for v in span)
    return ("-DCHECK_DUMMY=1", "-DDUMMY_EXACT=0", "-DDUMMY_RANGE=1", f"-DDUMMY_LO={lo}",
            f"-DDUMMY_HI={hi}")


def _nsums(nbins: int) -> int:
    """The number of private histograms for ``nbins`` (see :data:`SUMS_BY_BINS`)."""
    return next((n for most, n in SUMS_BY_BINS if nbins <= most), 1)

