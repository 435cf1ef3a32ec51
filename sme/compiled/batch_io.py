"""What a compiled session's batch and step calls exchange with Python: stimulus arrays
packed as the compiled loop takes them, the recording plan of a batch and its reused output
buffers, and the Python value (as the interpreter holds it) of a raw state value.

``sme.compiled.session`` uses these; they hold no session state.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..lower.ir import BoolT, EnumT, NumT, VType
from ..types import ArrayType, BoolType, EnumType, Fixed, FixedType, SignalType
from .layout import ArraySlot, SignalPlace, stimulus_dtype

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

    @cached_property
    def own_h(self) -> bool:
        """Whether one signal alone is recorded into ``OUTH`` (its result is then that
        buffer, made for the run: no copy)."""
        return sum(1 for column in self.columns if column[3] == "h") == 1


class AsIsStimulus:
    """The stimulus arrays a session's ``run_batch`` can hand to the compiled loop as they
    are, recognised by what was already checked: an input's (dtype, per-tick shape) that
    passed every check once, in the dtype the loop takes, the same stimulus again needs none
    of them (whole values, masks, unfit values: all follow from the dtype). A board that
    runs the same batch shape each acquisition then skips their Python (a tenth of a P6M
    module's call, with the GIL held). Length and contiguity are checked each call; any
    other array takes the checked path."""

    def __init__(self, inputs: dict[str, tuple[SignalType, int]], wide: bool) -> None:
        """``inputs``: each input's type and its slot in the loop's stimulus arguments."""
        self._slots = {name: k for name, (_, k) in inputs.items()}
        # (enums: codes checked each call; wide: Python ints) never pass as they are
        self._dtypes = {} if wide else {
            name: stimulus_dtype(t) for name, (t, _) in inputs.items()
            if not isinstance(t.element if isinstance(t, ArrayType) else t, EnumType)}
        self._seen: set[tuple[str, np.dtype[Any], int, tuple[int, ...]]] = set()

    def take(self, stimulus: Mapping[str, Any], ticks: int
             ) -> list[tuple[int, np.ndarray]] | None:
        """Each array's slot and its first ``ticks`` values, when every one is of a kind
        seen checked (``remember``), holds ``ticks`` values and is contiguous, aligned and
        writeable (``_loop_ready``); else None."""
        out = []
        seen = self._seen
        for name, arr in stimulus.items():
            if type(arr) is not np.ndarray \
                    or (name, arr.dtype, arr.ndim, arr.shape[1:]) not in seen \
                    or len(arr) < ticks or not _loop_ready(arr):
                return None
            out.append((self._slots[name], arr[:ticks]))
        return out

    def remember(self, stimulus: Mapping[str, Any]) -> None:
        """Remember the kinds of ``stimulus``'s arrays that the loop takes as they are;
        call only once all of it passed every check."""
        for name, arr in stimulus.items():
            if type(arr) is np.ndarray and arr.ndim >= 1 and arr.dtype == self._dtypes.get(name):
                self._seen.add((name, arr.dtype, arr.ndim, arr.shape[1:]))


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


def dummy_input(t: SignalType, wide: bool = False) -> np.ndarray:
    """A one-tick zero stimulus of type ``t`` (what a step passes for an undriven input)."""
    dt = object if wide and not is_bool_signal(t) else stimulus_dtype(t)
    return np.zeros((1, t.length) if isinstance(t, ArrayType) else 1, dtype=dt)


def signal_columns(place: SignalPlace) -> int:
    """The columns a signal takes in a batch's output: its elements, or 1 for a scalar."""
    st = place.storage
    return st.length if isinstance(st, ArraySlot) else 1


_INT64_MAX = np.iinfo(np.int64).max


def _outside_int64(v: Any) -> bool:
    return not -_INT64_MAX - 1 <= v <= _INT64_MAX


def first_unfit(t: SignalType, arr: np.ndarray, wide: bool = False) -> int | None:
    """The first tick (row of ``arr``) whose stimulus value of type ``t`` ``pack_stimulus``
    cannot pass on as it is, or None: a Bool that is not 0 or 1 (step mode refuses 2 as a
    Bool, so a batch does not take it as True), or a number the loop's stimulus dtype
    (``stimulus_dtype``: int64, or 32 bits for an array of narrow words) does not hold (a
    uint64 of 2**63 or more, a Python int beyond, a link word of 2**32 given as int64: a
    cast would wrap it to another number). The session stores that value as a step
    would, to raise the interpreter's error."""
    el = t.element if isinstance(t, ArrayType) else t
    if isinstance(el, BoolType):
        if arr.dtype == np.bool_:
            return None
        bad = np.asarray((arr != 0) & (arr != 1), dtype=bool)
    elif wide or isinstance(el, EnumType):  # (enum codes: checked by pack_stimulus)
        return None
    elif (narrow := stimulus_dtype(t)) != np.int64 and arr.dtype != narrow and arr.size:
        info = np.iinfo(narrow)  # a value the loop's (32-bit) dtype cannot hold
        if arr.dtype.kind == "O":
            bad = np.frompyfunc(lambda v: not info.min <= v <= info.max, 1, 1)(arr).astype(bool)
        else:
            bad = (arr < info.min) | (arr > info.max)
    elif arr.dtype.kind == "u" and arr.dtype.itemsize >= 8:
        bad = arr > _INT64_MAX
    elif arr.dtype.kind == "O" and arr.size:
        bad = np.frompyfunc(_outside_int64, 1, 1)(arr).astype(bool)
    else:
        return None
    rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1)) if bad.size else bad
    return int(rows[0]) if len(rows) else None


def _loop_ready(arr: np.ndarray) -> bool:
    """Whether the compiled loop takes ``arr`` as it is: C-contiguous, aligned and
    writeable. The loop's compiled signatures are of writeable aligned arrays (numba
    types a read-only one, e.g. ``np.load(mmap_mode="r")`` or ``np.frombuffer`` of
    bytes, as another type and finds no definition for it), though it never writes
    the stimulus."""
    flags = arr.flags
    return flags.c_contiguous and flags.aligned and flags.writeable


def _for_loop(arr: np.ndarray, dtype: Any) -> np.ndarray:
    """``arr`` as a plain ndarray of ``dtype``, copied once when the loop cannot take it
    (``_loop_ready``)."""
    return np.require(arr, dtype, ("C", "A", "W", "E"))


def pack_stimulus(t: SignalType, arr: np.ndarray, wide: bool = False) -> np.ndarray:
    """A stimulus array as the compiled loop takes it: contiguous, aligned, writeable raw
    values in ``stimulus_dtype(t)`` (int64, 32-bit words for an array of narrow numbers,
    numpy bool for Bools; wide mode: Python ints), with no copy when it already is.
    Ranges are checked in the loop; values ``first_unfit`` finds must not be passed."""
    el = t.element if isinstance(t, ArrayType) else t
    if isinstance(el, BoolType):
        return _for_loop(arr if arr.dtype == np.bool_ else arr != 0, np.bool_)
    if wide:
        flat = [int(x) for x in arr.reshape(-1)]
        return np.array(flat, dtype=object).reshape(arr.shape)
    if isinstance(el, EnumType):
        codes = set(el.codes)
        for v in np.unique(arr).tolist():  # (Python ints: a uint64 is not wrapped)
            if int(v) not in codes:
                el.from_raw(int(v))  # raises what the interpreter's batch raises
        return _for_loop(arr, np.int64)
    return _for_loop(arr, stimulus_dtype(t))


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
