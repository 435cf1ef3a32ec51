"""What a compiled session's batch and step calls exchange with Python: stimulus arrays
packed as the compiled loop takes them, the recording plan of a batch and its reused output
buffers, and the Python value (as the interpreter holds it) of a raw state value.

``sme.compiled.session`` uses these; they hold no session state.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..lower.ir import BoolT, EnumT, NumT, VType
from ..types import ArrayType, BoolType, EnumType, Fixed, FixedType, SignalType
from .layout import ArraySlot, SignalPlace

_SCRATCH = threading.local()
"""Each thread's output buffers of ``run_batch`` (see ``scratch_buffer``)."""


@dataclass(frozen=True)
class BatchPlan:
    """A batch call's recording: ``rec`` (the generated ``run``'s column of each signal,
    -1 when not recorded, ``-2 - c`` for column c of ``OUTH``; its last element says
    whether a signal off the output buses is recorded), the columns of ``OUTI`` (numbers),
    ``OUTB`` (Bools) and ``OUTH`` (numbers asked for as ``uint16``), whether every number
    of ``OUTI`` comes out narrower than the state (``narrow``), and each result as
    ``(name, first column, elements or -1 for a scalar, output "i"/"b"/"h", dtype)``."""

    rec: np.ndarray
    rows_i: int
    rows_b: int
    rows_h: int
    narrow: bool
    columns: list[tuple[str, int, int, str, Any]]


def scratch_buffer(shape: tuple[int, int], dtype: Any, slot: str = "outi") -> np.ndarray:
    """An uninitialised ``shape`` buffer of ``dtype``, reused by this thread's next batch
    runs (whose results are copies out of it): a fresh buffer each run made the kernel map
    and zero its pages each time (a P6M module's outputs of four frames as int64 are
    3.2 MB: 800 page faults per module run, a quarter of its time)."""
    n = shape[0] * shape[1]
    buf: np.ndarray | None = getattr(_SCRATCH, slot, None)
    if dtype is object:  # wide mode: Python ints are not kept alive between runs
        return np.empty(shape, dtype=object)
    if buf is None or buf.size < n:
        buf = np.empty(n, dtype=dtype)
        setattr(_SCRATCH, slot, buf)
    return buf[:n].reshape(shape)


def is_bool_signal(t: SignalType) -> bool:
    """Whether a signal of type ``t`` (or its elements) is a Bool (recorded in ``OUTB``)."""
    return isinstance(t.element if isinstance(t, ArrayType) else t, BoolType)


def dummy_input(t: SignalType, int_type: Any = np.int64) -> np.ndarray:
    """A one-tick zero stimulus of type ``t`` (what a step passes for an undriven input)."""
    dt = np.bool_ if is_bool_signal(t) else int_type
    return np.zeros((1, t.length) if isinstance(t, ArrayType) else 1, dtype=dt)


def signal_columns(place: SignalPlace) -> int:
    """The columns a signal takes in a batch's output: its elements, or 1 for a scalar."""
    st = place.storage
    return st.length if isinstance(st, ArraySlot) else 1


def pack_stimulus(t: SignalType, arr: np.ndarray, wide: bool = False) -> np.ndarray:
    """A stimulus array as the compiled loop takes it: contiguous int64 raw values (Bool:
    numpy bool; wide mode: Python ints), with no copy when it already is. Ranges are
    checked in the loop."""
    el = t.element if isinstance(t, ArrayType) else t
    if isinstance(el, BoolType):
        return np.ascontiguousarray(arr if arr.dtype == np.bool_ else arr != 0)
    if wide:
        flat = [int(x) for x in arr.reshape(-1)]
        return np.array(flat, dtype=object).reshape(arr.shape)
    if isinstance(el, EnumType):
        values = np.ascontiguousarray(arr, dtype=np.int64)
        bad = ~np.isin(values, np.array(el.codes, dtype=np.int64))
        if bad.any():
            el.from_raw(int(values[bad][0]))  # raises what the interpreter's batch raises
        return values
    return np.ascontiguousarray(arr, dtype=np.int64)


def py_value(t: VType, v: int) -> Any:
    """A raw value of IR type ``t`` as the Python value the interpreter would hold."""
    if isinstance(t, BoolT):
        return bool(v)
    if isinstance(t, EnumT):
        return EnumType(t.enum_cls).from_raw(v)
    if isinstance(t, NumT) and t.frac:
        return Fixed(v, t.frac)
    return v


def py_of_type(t: SignalType, v: int) -> Any:
    """A raw value held in a signal of type ``t`` as its Python value."""
    if isinstance(t, BoolType):
        return bool(v)
    if isinstance(t, EnumType):
        return t.from_raw(v)
    if isinstance(t, FixedType):
        return Fixed(v, t.frac_bits)
    return v


def py_input(t: SignalType, v: Any) -> Any:
    """A stimulus value of type ``t`` as the Python value a driver is given."""
    if isinstance(t, ArrayType):
        return [py_input(t.element, x) for x in v]
    if isinstance(t, FixedType):
        return Fixed(int(v), t.frac_bits)
    return int(v)
