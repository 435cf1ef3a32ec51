"""Typed nodes the compiled backend's code generator consumes.

Every expression carries a ``VT``: what kind of value it is (integer, Bool, enum member
index, fixed-point raw integer) and the exact range its raw integer can take. The ranges
come from the signal types and propagate through the arithmetic, so the generator knows
where a store needs an overflow check and can prove that every intermediate value fits a
64-bit machine integer (Python arithmetic is exact; machine arithmetic must be shown to
be). Nodes are produced from the process bodies by ``sme.compiled.front``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from ..srcloc import SrcLoc
from ..types import SignalType

Kind = Literal["int", "bool", "enum", "fixed"]
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass(frozen=True)
class VT:
    """A value type: kind, inclusive raw range, fractional bits (fixed), enum class."""

    kind: Kind
    lo: int
    hi: int
    frac: int = 0
    enum: type[enum.Enum] | None = None

    def fits_i64(self) -> bool:
        """Whether every value of the range is a signed 64-bit integer."""
        return I64_MIN <= self.lo and self.hi <= I64_MAX


BOOL = VT("bool", 0, 1)


# -- storage ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Slot:
    """A scalar storage place: a generated local variable (bus signal, register, local)."""

    var: str
    vt: VT
    defined: str | None = None  # the variable holding "has a value", when it may not


@dataclass(frozen=True)
class ArraySlot:
    """An array stored in the flat element array ``A`` at ``offset``."""

    offset: int
    length: int
    element: VT
    defined: str | None = None


@dataclass(frozen=True)
class Site:
    """A place that can fail at run time; the Python side rebuilds the interpreter's error.

    ``what`` is ``"store"`` (a value does not fit), ``"undefined"`` (read before any value),
    ``"index"`` (array index out of range), ``"zerodiv"``, or ``"noyield"`` (a generator
    pass that never yields).
    """

    what: str
    loc: SrcLoc
    target_type: SignalType | None = None
    owner: str = ""  # bus or process name
    signal: str = ""
    writer: str = ""  # describe() of the writer / reader for the message
    value_vt: VT | None = None
    overflow: str = "error"
    rounding: str = "exact"
    element: bool = False  # an element write of an array (CheckedArray message)
    register: bool = False
    length: int = 0


# -- expressions --------------------------------------------------------------------------
@dataclass(frozen=True)
class Expr:
    """Base of typed expressions."""

    vt: VT


@dataclass(frozen=True)
class Const(Expr):
    """A constant raw value."""

    value: int


@dataclass(frozen=True)
class Read(Expr):
    """Read a scalar slot; ``site`` is set when it may be undefined."""

    slot: Slot
    site: int | None = None


@dataclass(frozen=True)
class ReadElem(Expr):
    """Read an array element; the index is checked (Python indexing, negatives wrap)."""

    array: ArraySlot
    index: Expr
    site: int
    undefined_site: int | None = None


@dataclass(frozen=True)
class Bin(Expr):
    """``a op b`` on raw integers (operands already aligned for fixed point)."""

    op: str
    a: Expr
    b: Expr
    site: int | None = None  # division by zero


@dataclass(frozen=True)
class Unary(Expr):
    """``-a``, ``~a``, ``not a``, ``abs(a)``."""

    op: str
    a: Expr


@dataclass(frozen=True)
class Compare(Expr):
    """``a op b`` → Bool (operands aligned)."""

    op: str
    a: Expr
    b: Expr


@dataclass(frozen=True)
class BoolOp(Expr):
    """``and`` / ``or`` of Bool-valued operands."""

    op: str
    values: tuple[Expr, ...]


@dataclass(frozen=True)
class IfExp(Expr):
    """``a if test else b``."""

    test: Expr
    a: Expr
    b: Expr


@dataclass(frozen=True)
class MinMax(Expr):
    """``min(...)`` / ``max(...)``."""

    op: str
    values: tuple[Expr, ...]


# -- statements ---------------------------------------------------------------------------
@dataclass
class Stmt:
    """Base of statements; ``loc`` is the user's source line."""

    loc: SrcLoc


@dataclass
class Store(Stmt):
    """Store ``value`` (converted to the target's raw form) into a scalar slot.

    ``shift`` aligns fixed point (positive: shift left; negative: drop bits with
    ``rounding``); ``check`` is the range to enforce (None: proven to fit), ``overflow``
    says what to do outside it; ``fail_always`` marks a store the interpreter always
    rejects (a bool into an integer, say).
    """

    target: Slot
    value: Expr
    site: int
    shift: int = 0
    rounding: str = "exact"
    check: tuple[int, int] | None = None
    overflow: str = "error"
    fail_always: bool = False


@dataclass
class StoreElem(Stmt):
    """Store into one element of an array slot (index checked, value as in ``Store``)."""

    array: ArraySlot
    index: Expr
    index_site: int
    store: Store


@dataclass
class CopyArray(Stmt):
    """Copy a whole array into another of a type that holds every element."""

    dst: ArraySlot
    src: ArraySlot
    src_site: int | None = None


@dataclass
class If(Stmt):
    """``if test: body else: orelse``."""

    test: Expr
    body: list[Stmt]
    orelse: list[Stmt]


@dataclass
class While(Stmt):
    """``while test: body``."""

    test: Expr
    body: list[Stmt]


@dataclass
class ForRange(Stmt):
    """``for var in range(start, stop, step): body``."""

    var: Slot
    start: Expr
    stop: Expr
    step: int
    body: list[Stmt]


@dataclass
class Jump(Stmt):
    """``break``, ``continue``, ``return`` (end of this process's tick), or ``yield``."""

    kind: Literal["break", "continue", "return", "yield"]


@dataclass
class ProcessIR:
    """One process instance lowered: its body and the slots it owns."""

    name: str
    generator: bool
    body: list[Stmt]
    locals: list[Slot] = field(default_factory=list)
