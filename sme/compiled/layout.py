"""Where the flattened network keeps its state, and the places that can fail at run time.

Scalars (bus signals, their next values, registers, defined-flags, program counters,
persistent locals) are generated local variables, saved to and loaded from the int64
array ``S`` at the boundaries of a compiled call. Array elements live in the int64 array
``A``. Every check the generated code makes has a numbered ``Site`` describing the error
the interpreter would raise there, so the Python side can raise exactly that error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..declare import MISSING
from ..lower.ir import ArrayT, BoolT, EnumT, NumT, VType, vtype_of
from ..network import TracedSignal
from ..types import ArrayType, BoolType, FixedType, IntegerType, SignalType

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
I32_MIN, I32_MAX, U32_MAX = -(1 << 31), (1 << 31) - 1, (1 << 32) - 1


@dataclass(frozen=True)
class Slot:
    """A scalar: a generated local variable (and its defined-flag variable, if it may have
    no value)."""

    var: str
    type: VType
    defined: str | None = None


@dataclass(frozen=True)
class ArraySlot:
    """An array stored in ``A[offset : offset + length]`` (a memory: in its own array
    ``array``, from offset 0)."""

    offset: int
    length: int
    element: VType
    defined: str | None = None
    array: str = "A"

    def at(self, index: str) -> str:
        """The generated code of element ``index`` (code) of this array."""
        return f"{self.array}[{self.offset} + {index}]"


MEMORY_MIN = 1024
"""Register arrays of at least this many elements (memories: calibration tables, line
buffers) get an array of their own in the narrowest dtype their values fit
(``memory_dtype``), not int64 words in ``A``: a module's three 32-lane tables (16-bit
dark and gain words, a Bool mask) take 5 bytes a pixel instead of 24, which keeps the 60
modules of a Pilatus 6M in the last-level cache when they run."""


Storage = Slot | ArraySlot


@dataclass(frozen=True)
class Site:
    """A run-time check and the interpreter error it stands for.

    ``what``: ``"store"`` (a value does not fit its signal/register), ``"resize"``,
    ``"undefined"`` (read before any value), ``"undefined_tb"`` (the testbench read it),
    ``"index"``, ``"zerodiv"``, ``"input"`` (a stimulus value does not fit), ``"steps"`` (a
tick went ``MAX_STEPS`` times round the loop at ``where``).
    """

    what: str
    where: str  # file:line
    target_type: SignalType | None = None
    owner: str = ""  # bus or process name
    signal: str = ""
    who: str = ""  # describe() of the writer/reader, for the message
    value_type: VType | None = None
    overflow: str = "error"
    rounding: str = "exact"
    element: bool = False
    register: bool = False
    length: int = 0
    lines: tuple[str, ...] = ()  # "steps" in a process of several loops: each state's loop


@dataclass(frozen=True)
class Workspace:
    """Where a compiled session keeps its state, in one int64 array ``W`` (one array
    argument is the cheapest call into compiled code): ``S`` at ``W[s:a]``, ``A`` at
    ``W[a:e]``, ``E`` (8 words) at ``W[e:e + 8]`` and the tick counter at ``W[tick]``."""

    s: int
    a: int
    e: int
    tick: int
    size: int

    @classmethod
    def of(cls, layout: Layout) -> Workspace:
        """The workspace of ``layout`` (complete: every variable allocated)."""
        a = len(layout.s_vars)
        e = a + max(1, len(layout.a_init))
        return cls(0, a, e, e + 8, e + 9)

    def new(self, layout: Layout) -> np.ndarray:
        """A fresh ``W`` in the reset state of ``layout``, tick 0."""
        W = np.zeros(self.size, dtype=np.int64)
        W[self.s:self.a] = layout.s_init
        W[self.a:self.a + len(layout.a_init)] = layout.a_init
        return W


@dataclass
class SignalPlace:
    """Where a traced signal lives."""

    signal: TracedSignal
    storage: Storage
    s_index: int = -1
    d_index: int = -1
    monitor_site: int = 0


@dataclass
class Layout:
    """The state of a flattened network: ``S`` variables and their initial values, ``A``'s
    initial contents, the failure sites and where each traced signal lives."""

    s_vars: list[str] = field(default_factory=list)
    s_init: list[int] = field(default_factory=list)
    a_init: list[int] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    places: list[SignalPlace] = field(default_factory=list)
    inputs: list[SignalPlace] = field(default_factory=list)
    memories: list[tuple[str, str, np.ndarray]] = field(default_factory=list)
    """The memories (name, numpy dtype, initial raw values), see ``MEMORY_MIN``."""
    wide: bool = False
    """Python ints (the generated code runs uncompiled): every array in ``A``."""

    def scalar(self, var: str, init: int) -> int:
        """Add an ``S`` variable; returns its index."""
        self.s_vars.append(var)
        self.s_init.append(init)
        return len(self.s_vars) - 1

    def trip(self, n: int) -> str:
        """A variable holding ``n`` that the compiler cannot see through (an ``S``
        variable, loaded at the start of a call): the trip count of a copy loop, which
        then stays a loop that the loop vectoriser turns into vector code. A loop of
        constant trip count (a 32-lane word) with a short body is fully unrolled first,
        into scalar code (LLVM's SLP vectoriser, which would take it, is off in numba)."""
        var = f"_len{n}"
        if var not in self.s_vars:
            self.scalar(var, n)
        return var

    def site(self, site: Site) -> int:
        """Add a failure site; returns its number (1-based: 0 means none)."""
        self.sites.append(site)
        return len(self.sites)

    def storage(self, prefix: str, t: SignalType, initial: Any) -> Storage:
        """Allocate a signal's or register's storage, holding ``initial`` (a Python value of
        ``t``, or ``MISSING``)."""
        defined = None
        if initial is MISSING:
            defined = f"{prefix}_d"
            self.scalar(defined, 0)
        vt = vtype_of(t)
        if isinstance(t, ArrayType):
            assert isinstance(vt, ArrayT)
            off = len(self.a_init)
            values = initial if initial is not MISSING else t.zero()  # zero until written
            self.a_init += raws(t.element, values)
            return ArraySlot(off, t.length, vt.element, defined)
        self.scalar(prefix, raw(t, initial) if initial is not MISSING else 0)
        return Slot(prefix, vt, defined)

    def memory(self, prefix: str, t: SignalType, initial: Any) -> Storage:
        """A register's storage: a memory of its own (``M<k>``, see ``MEMORY_MIN``) when it
        is a big array with an initial value and narrow elements, else as ``storage``."""
        vt = vtype_of(t)
        dtype = memory_dtype(vt.element) if isinstance(vt, ArrayT) else None
        if (self.wide or dtype is None or not isinstance(t, ArrayType)
                or t.length < MEMORY_MIN or initial is MISSING):
            return self.storage(prefix, t, initial)
        assert isinstance(vt, ArrayT)
        name = f"M{len(self.memories)}"
        self.memories.append((name, dtype, np.array(raws(t.element, initial), dtype=dtype)))
        return ArraySlot(0, t.length, vt.element, None, name)

    def new_memories(self) -> list[np.ndarray]:
        """Fresh memories in their reset state (a session's own)."""
        return [init.copy() for _, _, init in self.memories]

    def array(self, length: int, element: VType) -> ArraySlot:
        """Scratch array storage (local arrays), zero-filled."""
        off = len(self.a_init)
        self.a_init += [0] * length
        return ArraySlot(off, length, element)


def raws(t: SignalType, values: Sequence[Any]) -> list[int]:
    """``[raw(t, v) for v in values]``, with the conversion chosen once for the type (a
    megapixel calibration memory holds millions of elements)."""
    if isinstance(t, FixedType):
        return [v.raw for v in values]
    if isinstance(t, IntegerType | BoolType):  # ints, and Bools (0/1 as ints)
        return list(map(int, values))
    return [raw(t, v) for v in values]


def raw(t: SignalType, value: Any) -> int:
    """A Python value of type ``t`` as the raw integer the compiled code holds."""
    if isinstance(value, bool):
        return int(value)
    return t.to_raw(value)


def memory_dtype(t: VType) -> str | None:
    """The narrowest numpy dtype below int64 holding every raw value of ``t``: unsigned
    when no value is negative (a 16-bit calibration word takes 2 bytes, not 4), else
    signed. The generated code reads an unsigned memory's element as int64
    (``np.int64(M[i])``), because numba computes with unsigned operands in uint64 (and
    with uint64 and int64 in float64)."""
    if isinstance(t, BoolT):
        return "int8"
    if not isinstance(t, NumT):
        return None
    for bits in (8, 16, 32):
        if t.lo >= 0 and t.hi < 1 << bits:
            return f"uint{bits}"
        if -(1 << (bits - 1)) <= t.lo and t.hi < 1 << (bits - 1):
            return f"int{bits}"
    return None


def stimulus_dtype(t: SignalType) -> np.dtype[Any]:
    """The dtype in which the compiled loop takes the stimulus of an input of type ``t``
    (not wide): ``bool`` for Bools; for an array of numbers whose raw values fit 32 bits,
    ``uint32`` (none negative) or ``int32``, else ``int64``. A link word of 20-bit pixel
    counts then streams half the bytes a tick from memory (the P6M firmware's 60 modules
    read their link words once each, from memory: 5-8 % less CPU time). Scalars stay
    ``int64`` (one value a tick). The generated code reads an unsigned stimulus element as
    ``np.int64(...)`` (see ``memory_dtype`` for why)."""
    el = t.element if isinstance(t, ArrayType) else t
    if isinstance(el, BoolType):
        return np.dtype(np.bool_)
    if isinstance(t, ArrayType) and isinstance(el, IntegerType | FixedType):
        rt = el.raw_type if isinstance(el, FixedType) else el
        assert isinstance(rt, IntegerType)
        if rt.lo >= 0 and rt.hi <= U32_MAX:
            return np.dtype(np.uint32)
        if rt.lo >= I32_MIN and rt.hi <= I32_MAX:
            return np.dtype(np.int32)
    return np.dtype(np.int64)


def fits_i64(t: VType) -> bool:
    """Whether the raw values of ``t`` are signed 64-bit integers."""
    if isinstance(t, NumT):
        return t.lo >= I64_MIN and t.hi <= I64_MAX
    if isinstance(t, ArrayT):
        return fits_i64(t.element)
    return isinstance(t, (BoolT, EnumT))
