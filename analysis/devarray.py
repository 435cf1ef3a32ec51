"""Host or device arrays for the OpenCL kernels: checks, transfers and kernel sources.

The reduction functions accept numpy arrays or ``pyopencl.array.Array`` and answer in
kind: numpy in, numpy out; device in, device out (no round trip through the host). The
checks here give one error per bad argument, naming it with the expected and actual
dtype or shape.
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis import cl

Array = Any
"""A numpy array or a ``pyopencl.array.Array`` (pyopencl ships no type stubs)."""


class ArrayArgumentError(ValueError):
    """An array argument has the wrong dtype, shape, layout or device."""


def _cla() -> Any:
    import pyopencl.array

    return pyopencl.array


def is_device(a: object) -> bool:
    """Whether ``a`` is a ``pyopencl.array.Array``."""
    try:
        return isinstance(a, _cla().Array)
    except ImportError:  # pragma: no cover - pyopencl is a dependency
        return False


def kernel_source(name: str) -> str:
    """The text of ``analysis/kernels/<name>``."""
    return (resources.files("analysis") / "kernels" / name).read_text(encoding="utf-8")


_KERNELS: dict[tuple[int, str, tuple[str, ...], str], Any] = {}
_KERNELS_LOCK = threading.Lock()


def kernel(rt: cl.Runtime, source: str, name: str, options: tuple[str, ...] = ()) -> Any:
    """Kernel ``name`` of ``analysis/kernels/<source>`` built on ``rt`` with ``options``.

    Kernel objects are kept (pyopencl creates a new one on every attribute access of a
    program, at a cost); calls with the same kernel must not overlap across threads."""
    key = (id(rt.context), source, options, name)
    with _KERNELS_LOCK:
        k = _KERNELS.get(key)
        if k is None:
            import pyopencl

            prog = cl.build(rt, kernel_source(source), options)
            k = _KERNELS[key] = pyopencl.Kernel(prog, name)
        return k


def dtype_names(dtypes: tuple[npt.DTypeLike, ...]) -> str:
    """``"uint16 or float32"`` for error messages."""
    return " or ".join(np.dtype(d).name for d in dtypes)


def check(a: object, name: str, *, dtypes: tuple[npt.DTypeLike, ...],
          ndims: tuple[int, ...]) -> Array:
    """``a`` itself if it is a numpy or device array of one of ``dtypes`` and ``ndims``.

    Raises
    ------
    ArrayArgumentError
        Naming ``name`` with the expected and actual type, dtype or number of dimensions.
    """
    if not (isinstance(a, np.ndarray) or is_device(a)):
        raise ArrayArgumentError(f"argument `{name}`: expected a numpy or pyopencl array, "
                                 f"got {type(a).__name__}")
    arr: Any = a
    if np.dtype(arr.dtype) not in [np.dtype(d) for d in dtypes]:
        raise ArrayArgumentError(f"argument `{name}`: expected dtype {dtype_names(dtypes)}, "
                                 f"got {np.dtype(arr.dtype).name}")
    if arr.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ArrayArgumentError(f"argument `{name}`: expected {want} dimensions, got "
                                 f"{arr.ndim} (shape {tuple(arr.shape)})")
    if is_device(arr) and not arr.flags.c_contiguous:
        raise ArrayArgumentError(f"argument `{name}`: device array must be C-contiguous")
    return arr


def check_shape(a: Array, name: str, expected: tuple[int, ...], why: str) -> None:
    """Raise ``ArrayArgumentError`` unless ``a.shape == expected`` (``why`` says whose)."""
    if tuple(a.shape) != tuple(expected):
        raise ArrayArgumentError(f"argument `{name}`: expected shape {tuple(expected)} "
                                 f"({why}), got {tuple(a.shape)}")


def runtime_for(*arrays: object, device: str | None = None) -> cl.Runtime:
    """The runtime of the first device array among ``arrays`` (so results stay in its
    context and queue), else ``cl.runtime(device)``."""
    for a in arrays:
        if is_device(a):
            arr: Any = a
            return cl.Runtime(arr.context, arr.queue, arr.queue.device)
    return cl.runtime(device)


def to_device(rt: cl.Runtime, a: Array, name: str, dtype: npt.DTypeLike | None = None) -> Any:
    """``a`` as a device array in ``rt``'s context (converted to ``dtype`` when given).

    A device array from another context is an error: copying it silently through the host
    would hide a slow path."""
    cla = _cla()
    if is_device(a):
        if a.context != rt.context:
            raise ArrayArgumentError(f"argument `{name}`: device array belongs to another "
                                     "OpenCL context than the other arguments")
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    host = np.ascontiguousarray(a if dtype is None else np.asarray(a, dtype=dtype))
    return cla.to_device(rt.queue, host)


def round_up(n: int, m: int) -> int:
    """The smallest multiple of ``m`` that is ``>= n``."""
    return -(-n // m) * m
