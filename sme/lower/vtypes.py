"""The value types of the lowering IR (``sme.lower.ir``): exact ranges, not just widths.

* ``NumT(lo, hi, frac)``: a number whose *raw* integer lies in ``lo..hi`` and whose value is
  ``raw * 2**-frac`` (integers have ``frac == 0``, ``UFix``/``SFix`` values ``frac > 0``).
* ``BoolT``: ``False``/``True``.
* ``EnumT``: a Python ``Enum`` member, encoded by ``sme.types.EnumType``'s codes.
* ``ArrayT``: a fixed-length sequence of ``element`` values.
"""

from __future__ import annotations

import enum
import functools
import operator
from dataclasses import dataclass
from typing import Any

from ..types import ArrayType, BoolType, EnumType, FixedType, IntegerType, SignalType


class VType:
    """Base class of IR value types."""

    @property
    def width(self) -> int:
        """Number of bits of the value's representation."""
        raise NotImplementedError


def _bits_signed(lo: int, hi: int) -> int:
    return max(1, (hi).bit_length() + 1, (-lo - 1).bit_length() + 1)


@dataclass(frozen=True)
class NumT(VType):
    """An integer or fixed-point number: raw value in ``lo..hi``, value ``raw * 2**-frac``."""

    lo: int
    hi: int
    frac: int = 0

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"NumT({self.lo}, {self.hi}): empty range")
        if self.frac < 0:
            raise ValueError(f"NumT: negative frac {self.frac}")

    @property
    def signed(self) -> bool:
        """Whether the representation is two's complement (some value may be negative)."""
        return self.lo < 0

    @property
    def width(self) -> int:
        if self.signed:
            return _bits_signed(self.lo, self.hi)
        return max(1, self.hi.bit_length())

    @staticmethod
    def of_width(width: int, signed: bool, frac: int = 0) -> NumT:
        """The full range of a ``width``-bit (un)signed raw value."""
        if signed:
            return NumT(-(1 << (width - 1)), (1 << (width - 1)) - 1, frac)
        return NumT(0, (1 << width) - 1, frac)

    @staticmethod
    def const(raw: int, frac: int = 0) -> NumT:
        """The type of the single value ``raw``."""
        return NumT(raw, raw, frac)

    def full(self) -> NumT:
        """The full range of this type's representation (``width`` bits, same signedness)."""
        return NumT.of_width(self.width, self.signed, self.frac)

    def __str__(self) -> str:
        kind = "s" if self.signed else "u"
        f = f".{self.frac}" if self.frac else ""
        return f"{kind}{self.width}{f}[{self.lo}..{self.hi}]"


@dataclass(frozen=True)
class BoolT(VType):
    """A single bit."""

    @property
    def width(self) -> int:
        return 1

    def __str__(self) -> str:
        return "bool"


@dataclass(frozen=True)
class EnumT(VType):
    """A Python ``Enum``; members are encoded by ``sme.types.EnumType``'s codes (their
    values when every value is a non-negative int, else their positions)."""

    enum_cls: type[enum.Enum]

    @property
    def name(self) -> str:
        """The enum class's name."""
        return self.enum_cls.__name__

    @property
    def members(self) -> tuple[str, ...]:
        """Member names in declaration order."""
        return tuple(m.name for m in self.enum_cls)

    @property
    def codes(self) -> tuple[int, ...]:
        """Each member's encoding, in declaration order."""
        return _enum_type(self.enum_cls).codes

    @property
    def positional(self) -> bool:
        """Whether the codes are the positions ``0 .. n-1``."""
        return _enum_type(self.enum_cls).positional

    def code(self, member: enum.Enum | str) -> int:
        """The encoding of a member."""
        name = member if isinstance(member, str) else member.name
        return self.codes[self.members.index(name)]

    @property
    def width(self) -> int:
        return _enum_type(self.enum_cls).width

    def __str__(self) -> str:
        return self.name


@functools.cache
def _enum_type(cls: type[enum.Enum]) -> EnumType:
    return EnumType(cls)


@dataclass(frozen=True)
class ArrayT(VType):
    """A fixed-length array."""

    element: VType
    length: int

    @property
    def width(self) -> int:
        return self.element.width * self.length

    def __str__(self) -> str:
        return f"{self.element}[{self.length}]"


def vtype_of(t: SignalType) -> VType:
    """The IR type of a signal/register type (its full range)."""
    if isinstance(t, BoolType):
        return BoolT()
    if isinstance(t, IntegerType):
        return NumT(t.lo, t.hi, 0)
    if isinstance(t, FixedType):
        return NumT(t.raw_type.lo, t.raw_type.hi, t.frac_bits)
    if isinstance(t, EnumType):
        return EnumT(t.enum_cls)
    if isinstance(t, ArrayType):
        return ArrayT(vtype_of(t.element), t.length)
    raise TypeError(f"no IR type for {t!r}")


def raw_of(value: Any, t: VType) -> Any:
    """A Python value of a signal of IR type ``t`` as the IR's constant form: ints and
    ``Fixed`` → raw int, bool → bool, enum → member, arrays → tuple of element forms."""
    if isinstance(t, ArrayT):
        raws = tuple(raw_of(v, t.element) for v in value)
        # (an integer memory's words are their own raw forms: one tuple, not two)
        return value if isinstance(value, tuple) and all(map(operator.is_, raws, value)) \
            else raws
    if isinstance(t, NumT):
        return int(value.raw) if hasattr(value, "raw") else int(value)
    if isinstance(t, BoolT):
        return bool(value)
    return value



__all__ = ["ArrayT", "BoolT", "EnumT", "NumT", "VType", "raw_of", "vtype_of"]
