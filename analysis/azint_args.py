"""Arguments of ``integrate1d``/``integrate2d`` as pyFAI takes them, checked and turned
into the integrator's terms: the method (its pixel splitting), units, ranges, the dummy
value and content digests of the mask, dark and flat arrays (so that an array edited in
place between calls is noticed)."""

from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis import devarray
from analysis.azint_engine import FRAME_TYPES
from analysis.azint_method import split_of
from analysis.azint_plan import ERROR_MODELS, Dummy
from geometry import Detector, Unit, azimuthal_unit, radial_unit
from sme.host_memory import MEMORY_FRACTION, available_memory

__all__ = ["FRAME_BYTES_PER_BIN", "MEMORY_FRACTION", "PIXEL_BYTES", "TABLE_BYTES_PER_BIN",
           "UNCHECKED_BYTES", "ContentKeys", "available_memory", "azimuth_range", "bins",
           "check_frames", "check_memory", "digest", "dummy_of", "error_model", "image",
           "mask_image", "memory_estimate", "radial_range", "solid_angle_order", "split_of",
           "units2d"]

def error_model(model: Any) -> str | None:
    """``None``, ``"poisson"`` or ``"azimuthal"`` (pyFAI's spellings, case-insensitive, or
    pyFAI's ``ErrorModel`` enum: its name); pyFAI's other models are named as not offered."""
    given = model
    if isinstance(model, enum.Enum):  # pyFAI's ErrorModel.POISSON
        model = model.name
    if model is None or model is False:
        return None
    name = model.strip().lower() if isinstance(model, str) else None
    if name in ("poisson", "azimuthal"):
        return name
    if name in ("", "no", "none"):
        return None
    valid = ", ".join(repr(m) for m in ERROR_MODELS)
    if name in ("variance", "hybrid"):
        raise ValueError(f"error_model {given!r}: pyFAI's {name!r} error model is not "
                         f"offered; valid: {valid}")
    raise ValueError(f"unknown error_model {given!r}; valid: {valid}")


def solid_angle_order(value: Any) -> float | None:
    """pyFAI's ``correctSolidAngle``: the power of cos(incidence) the signal is divided by
    (pyFAI's ``solidAngleArray(order=...)``), or None for no correction. True is 3 (the
    solid angle of a flat pixel), False, None and 0 are none, any other number > 0 is that
    order (``correctSolidAngle=1`` is pyFAI's cos¹, not True's cos³)."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return 3.0 if value else None
    if isinstance(value, (int, float, np.integer, np.floating)):
        order = float(value)
        if order == 0:
            return None
        if math.isfinite(order) and order > 0:
            return order
    raise ValueError("correctSolidAngle must be True, False or the order of the solid-angle "
                     "correction (a finite number > 0, the power of cos(incidence) as "
                     f"pyFAI's; True is 3), got {value!r}")


def bins(name: str, value: Any) -> int:
    """A bin count: an integer ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


TABLE_BYTES_PER_BIN = 128
"""Host bytes per output bin that a configuration's tables take, whatever the frames: the
CSR row pointers and counts, the plan's static sums and the bin axes (measured: ≈ 60, and
≈ 100 more with ``error_model="azimuthal"``, for 10**6 bins)."""
FRAME_BYTES_PER_BIN = 200
"""Host bytes per output bin and frame: the sums, the finished results and their copies in
the result object (measured: 170–185 for 10**6 bins, 1D and 2D, 4 and 16 frames)."""
PIXEL_BYTES = 64
"""Host bytes per detector pixel that building the integration matrix takes at least (one
coefficient per pixel at ~50 bytes each while it is built, see ``MAX_ENTRIES``). A floor,
not the peak: a first call on a fresh integrator grows the process by 310–390 bytes a pixel
with the default method and 120–225 with ``method="no"`` (npt=1000, 1024² and 2048²
pixels); the per-bin parts are what a caller can make absurd, and a floor here refuses no
detector whose matrix fits."""
UNCHECKED_BYTES = 64 << 20
"""Estimates up to this are not checked: reading ``/proc/meminfo`` takes ~20 µs, a tenth of
a small frame's whole call."""


def memory_estimate(nbins: int, frames: int, shape: tuple[int, int],
                    built: bool = False) -> int:
    """Host bytes a call with ``nbins`` output bins, ``frames`` frames (0: the tables
    alone) and a detector of ``shape`` allocates: ``nbins × (TABLE_BYTES_PER_BIN + frames
    × FRAME_BYTES_PER_BIN) + pixels × PIXEL_BYTES``; ``built`` (the configuration's tables
    and matrix are cached): ``nbins × frames × FRAME_BYTES_PER_BIN`` alone."""
    if built:
        return nbins * frames * FRAME_BYTES_PER_BIN
    return (nbins * (TABLE_BYTES_PER_BIN + frames * FRAME_BYTES_PER_BIN)
            + shape[0] * shape[1] * PIXEL_BYTES)


def check_memory(call: str, npt_rad: int, npt_azim: int | None, frames: int,
                 shape: tuple[int, int], built: bool = False) -> None:
    """``ValueError`` before anything is allocated when :func:`memory_estimate` is more than
    :data:`MEMORY_FRACTION` of :func:`available_memory` (``npt=10**9`` allocated until the
    process was killed), naming what was asked, the estimate and the limit; an estimate of
    at most :data:`UNCHECKED_BYTES` passes unread. ``built``: the call's tables and matrix
    exist already (a cached configuration), so only its frames' sums and results count
    (counting the rest again refused a repeated call once they had taken the memory)."""
    nbins = npt_rad * (npt_azim or 1)
    need = memory_estimate(nbins, frames, shape, built)
    if need <= UNCHECKED_BYTES:
        return
    available = available_memory()
    limit = int(available * MEMORY_FRACTION)
    if need > limit:
        asked = (f"npt={npt_rad}" if npt_azim is None
                 else f"npt_rad={npt_rad} × npt_azim={npt_azim} = {nbins} bins")
        raise ValueError(
            f"{call}: {asked} for {frames} frame(s) of {shape[0]}×{shape[1]} pixels needs "
            f"about {need / 2**30:.1f} GiB of host memory, more than the "
            f"{limit / 2**30:.1f} GiB a call may take ({MEMORY_FRACTION:.0%} of the "
            f"{available / 2**30:.1f} GiB available); use fewer bins or fewer frames per "
            "call")


def _pair(name: str, rng: Any) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in rng)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (min, max), got {rng!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a == b:
        raise ValueError(f"{name} must be two different finite numbers, got {rng!r}")
    return a, b


def radial_range(rng: Any, unit: Unit) -> tuple[float, float] | None:
    """``(min, max)`` in ``unit`` → internal units (pyFAI takes the smaller as min)."""
    if rng is None:
        return None
    a, b = _pair("radial_range", rng)
    return min(a, b) / unit.scale, max(a, b) / unit.scale


def azimuth_range(rng: Any, unit: Unit) -> tuple[float, float] | None:
    """``(start, end)`` in ``unit`` (degrees for chi_deg) → rad within [−π, π].

    Like pyFAI, angles are folded into [−180°, 180°) and an end at or before the start
    goes once round (``(0, 180)`` is ``(0°, 180°)``); a range that would then cross the
    discontinuity at ±180° is refused (pyFAI returns a partial result)."""
    if rng is None:
        return None
    a, b = _pair("azimuth_range", rng)
    lo, hi = (_fold(v / unit.scale) for v in (a, b))
    if hi <= lo:
        hi += 2.0 * math.pi
    if hi > math.pi + 1e-12:
        raise ValueError(f"azimuth_range {rng!r} crosses the χ discontinuity at ±180° "
                         "(χ runs from -180° to 180°): split it in two")
    return lo, min(hi, math.pi)


def _fold(angle: float) -> float:
    """An angle in rad folded into [−π, π), as pyFAI's ``deg2rad``."""
    turn = (angle / math.pi) % 2.0
    return (turn - 2.0 if turn >= 1.0 else turn) * math.pi


def units2d(unit: Any) -> tuple[Unit, Unit]:
    """A radial unit, or a pyFAI 2-tuple ``(radial, azimuthal)``; χ in degrees by default."""
    if isinstance(unit, (tuple, list)) and len(unit) == 2:
        return radial_unit(unit[0]), azimuthal_unit(unit[1])
    return radial_unit(unit), azimuthal_unit("chi_deg")


def dummy_of(dummy: Any, delta_dummy: Any, detector: Detector, dtype: np.dtype[Any]
             ) -> Dummy | None:
    """pyFAI's dummy rule: the caller's ``dummy`` (±``delta_dummy``, exact without it),
    else the named detector's own (e.g. −2 ± 1.5 for Dectris), converted through the
    frame's type as pyFAI does (−2 in ``uint16`` frames is 65534)."""
    for name, value in (("dummy", dummy), ("delta_dummy", delta_dummy)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, (int, float, np.integer, np.floating)) or not math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number or None, got {value!r}")
    if dummy is not None:
        return Dummy(float(np.float32(dummy)),
                     0.0 if delta_dummy is None else float(np.float32(delta_dummy)))
    if detector.dummy is None:
        return None
    value = np.float32(dtype.type(np.int64(detector.dummy))) if dtype.kind in "iu" \
        else np.float32(detector.dummy)
    delta = float(np.finfo(np.float32).eps) if detector.delta_dummy is None \
        else float(np.float32(detector.delta_dummy))
    return Dummy(float(value), delta)


_KEYS: dict[int, npt.NDArray[np.uint64]] = {}


def _words(arr: npt.NDArray[Any]) -> tuple[npt.NDArray[np.uint64], bytes]:
    """A C-contiguous array's bytes as 64-bit words, and the bytes after the last word."""
    raw = arr.reshape(-1).view(np.uint8)
    n8 = raw.size // 8 * 8
    return raw[:n8].view(np.uint64), bytes(raw[n8:])


def digest(a: Any) -> tuple[object, ...] | None:
    """A content digest of an array (dtype, shape and a 64-bit multiply-sum of its bytes),
    so that an array changed in place is not mistaken for the one seen before."""
    if a is None:
        return None
    arr = np.ascontiguousarray(a)
    words, tail = _words(arr)
    keys = _KEYS.get(words.size)
    if keys is None:  # odd random keys, per size (a mask and a dark differ in size)
        rng = np.random.default_rng(words.size)
        keys = rng.integers(0, 2**63, words.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        if len(_KEYS) >= 4:
            _KEYS.pop(next(iter(_KEYS)))
        _KEYS[words.size] = keys
    with np.errstate(over="ignore"):
        h = int(np.einsum("i,i->", words, keys))  # wraps mod 2**64, no temporary
    return (arr.dtype.str, arr.shape, h, tail)


class ContentKeys:
    """Cache keys of per-pixel arrays (mask, dark, flat) passed again and again, perhaps
    edited in place in between: equal keys mean equal contents.

    The array last seen under each name is kept (a private copy, up to :attr:`keep_bytes`;
    larger ones are digested every time); the next one is compared with it word by word —
    exact, and 2–3× faster than digesting it — and gets the same key when it is equal, its
    :func:`digest` otherwise (so that arrays used in turn keep their cached matrices)."""

    #: Largest array kept for comparison (a 16-megapixel float32 image).
    keep_bytes = 64 << 20

    def __init__(self) -> None:
        self._last: dict[str, tuple[npt.NDArray[Any], tuple[object, ...]]] = {}

    def key(self, name: str, a: npt.NDArray[Any] | None) -> tuple[object, ...] | None:
        """The key of ``a``'s contents (None for None)."""
        if a is None:
            return None
        arr = np.ascontiguousarray(a)
        seen = self._last.get(name)
        if seen is not None:
            copy, key = seen
            if copy.dtype == arr.dtype and copy.shape == arr.shape:
                (w0, t0), (w1, t1) = _words(copy), _words(arr)
                if t0 == t1 and bool(np.array_equal(w0, w1)):
                    return key
        new = digest(arr)
        assert new is not None
        if arr.nbytes <= self.keep_bytes:
            self._last[name] = (arr.copy(), new)  # one (copy, key) pair, seen whole
        return new


def image(name: str, a: Any, shape: tuple[int, int]) -> npt.NDArray[Any] | None:
    """A per-pixel array argument (mask, dark, flat) of the detector's shape, or None."""
    if a is None:
        return None
    arr = np.asarray(a)
    if arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, expected {shape} (the detector "
                         "shape)")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return arr


def mask_image(mask: Any, shape: tuple[int, int]) -> npt.NDArray[Any] | None:
    """A mask argument (:func:`image`) whose every value says yes or no: 0 for a pixel
    used, any other whole number for one left out. A fraction or NaN is refused, naming
    the first such pixel: pyFAI reads its mask as int8 (0.5 and NaN count as 0, used),
    a mask of weights is no mask, and which reading was meant cannot be told."""
    arr = image("mask", mask, shape)
    if arr is None or arr.dtype.kind != "f":
        return arr
    bad = ~np.isfinite(arr)
    bad[~bad] = arr[~bad] != np.round(arr[~bad])
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"mask holds {int(bad.sum())} value(s) that are not whole numbers, "
                         f"first {float(arr[row, col])!r} at pixel (row {row}, column {col}); a "
                         "mask is 0 where a pixel is used and non-zero where it is left "
                         "out")
    return arr


def check_frames(data: Any, shape: tuple[int, int], context: Any) -> Any:
    """``data`` if it is one frame ``(rows, cols)`` or a stack ``(n, rows, cols)`` of a
    supported type (numpy, or pyopencl on ``context``), with a clear error otherwise."""
    if devarray.is_device(data):
        if data.context != context:
            raise ValueError("data is a pyopencl array on another OpenCL context than this "
                             "integrator's")
        if not data.flags.c_contiguous:
            raise ValueError("data (pyopencl array) must be C-contiguous")
    elif not isinstance(data, np.ndarray):
        raise TypeError(f"data must be a numpy or pyopencl array, got {type(data).__name__}")
    if isinstance(data, np.ndarray) and not data.dtype.isnative:  # e.g. big-endian files
        data = data.astype(data.dtype.newbyteorder("="))
    dims = tuple(data.shape)
    if len(dims) not in (2, 3) or dims[-2:] != shape:
        raise ValueError(f"data has shape {dims}, expected {shape} (the detector shape) or "
                         f"(n, {shape[0]}, {shape[1]}) for a stack of frames")
    dtype = np.dtype(data.dtype)
    if dtype not in FRAME_TYPES:
        raise TypeError(f"frames of dtype {dtype} are not supported; use one of "
                        + ", ".join(str(d) for d in FRAME_TYPES))
    return data
