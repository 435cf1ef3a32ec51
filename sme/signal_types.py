"""What a signal type is: ``SignalType`` and its kinds (Bool, unsigned and signed
integers, enums, fixed point, arrays), each checking and converting the values it holds
(``coerce``: exact, or with the rounding and overflow the code asked for), its zero, and
its text and raw-bit forms (traces, VHDL). The names a design writes them with (``UInt[8]``,
``Array[T, n]``, ``cast``) are :mod:`sme.types`'; it re-exports these classes.
"""

from __future__ import annotations

import enum
import math
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any, Literal

from .errors import DeclarationError, TypeMisfit
from .fixed import Fixed

Rounding = Literal["exact", "floor", "nearest"]
Overflow = Literal["error", "wrap", "saturate"]
ROUNDINGS: tuple[str, ...] = ("exact", "floor", "nearest")
MAX_WIDTH = 128


class SignalType(ABC):
    """The type of a signal or register: its width, its values, and how values are written."""

    width: int

    @abstractmethod
    def coerce(self, value: object, rounding: str = "exact", overflow: str = "error") -> Any:
        """Return ``value`` as this type's canonical Python value or raise ``TypeMisfit``."""

    @abstractmethod
    def describe_range(self) -> str:
        """Human-readable set of allowed values, for error messages."""

    @abstractmethod
    def zero(self) -> Any:
        """The value a register of this type holds when nothing else is said."""

    @abstractmethod
    def to_text(self, value: Any) -> str:
        """Encode a value for the CSV trace."""

    @abstractmethod
    def from_text(self, text: str) -> Any:
        """Decode a CSV trace cell."""

    def to_raw(self, value: Any) -> int:
        """The value as an integer (bit pattern read as signed or unsigned)."""
        return int(value)

    def __call__(self, value: object, rounding: Rounding = "exact") -> Any:
        """Build a checked value of this type, e.g. ``UFix[2, 6](0.75)``."""
        return self.coerce(value, rounding)


class BoolType(SignalType):
    """A single bit, held as Python ``bool``."""

    width = 1

    def coerce(self, value: object, rounding: str = "exact", overflow: str = "error") -> bool:
        if type(value) is bool:
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):
            return bool(value)  # numpy.bool_, e.g. an element of a boolean array
        raise TypeMisfit(f"{value!r} is not a Bool")

    def describe_range(self) -> str:
        return "False/True (or 0/1)"

    def zero(self) -> bool:
        return False

    def to_text(self, value: Any) -> str:
        return "1" if value else "0"

    def from_text(self, text: str) -> bool:
        if text not in ("0", "1"):
            raise ValueError(f"{text!r} is not a Bool (expected 0 or 1)")
        return text == "1"

    def __repr__(self) -> str:
        return "Bool"


class IntegerType(SignalType):
    """Common part of ``UInt[n]`` and ``Int[n]``: a range of Python ints."""

    signed: bool
    lo: int
    hi: int

    def __init__(self, width: int) -> None:
        if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= MAX_WIDTH:
            raise DeclarationError(
                f"{type(self).__name__[:-4]}[{width!r}]: width must be an int in 1..{MAX_WIDTH}"
            )
        self.width = width

    def coerce(self, value: object, rounding: str = "exact", overflow: str = "error") -> int:
        if type(value) is int:
            v = value
        elif isinstance(value, Fixed):
            v = value.rounded(0, rounding)
        elif isinstance(value, bool):
            raise TypeMisfit(f"{value!r} is a bool, not an integer; use int(...) to convert")
        elif isinstance(value, int) or hasattr(value, "__index__"):
            v = int(value)  # numpy integers
        else:
            raise TypeMisfit(f"{value!r} is not an integer")
        if self.lo <= v <= self.hi:
            return v
        if overflow == "wrap":
            return self.wrap_int(v)
        if overflow == "saturate":
            return min(max(v, self.lo), self.hi)
        raise TypeMisfit(f"{v} is out of range")

    def wrap_int(self, v: int) -> int:
        """Two's-complement wrap-around of ``v`` into this type."""
        v &= (1 << self.width) - 1
        if self.signed and v > self.hi:
            v -= 1 << self.width
        return v

    def describe_range(self) -> str:
        return f"{self.lo}..{self.hi}"

    def zero(self) -> int:
        return 0

    def to_text(self, value: Any) -> str:
        return str(int(value))

    def from_text(self, text: str) -> int:
        return self.coerce(int(text))


class UIntType(IntegerType):
    """Unsigned integer of ``width`` bits."""

    signed = False

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.lo, self.hi = 0, (1 << width) - 1

    def __repr__(self) -> str:
        return f"UInt[{self.width}]"


class IntType(IntegerType):
    """Two's-complement signed integer of ``width`` bits."""

    signed = True

    def __init__(self, width: int) -> None:
        super().__init__(width)
        self.lo, self.hi = -(1 << (width - 1)), (1 << (width - 1)) - 1

    def __repr__(self) -> str:
        return f"Int[{self.width}]"


class EnumType(SignalType):
    """A Python ``Enum`` subclass used as a signal type.

    Members are encoded by their *value* when every value is a non-negative ``int``
    (``IDLE = 0, RUN = 4, DONE = 9`` is 4 bits: 0, 4, 9 on the wires), else by their
    position in the class (string or ``object()`` values, say). ``codes`` holds each
    member's encoding; the width is that of the largest code.
    """

    def __init__(self, enum_cls: type[enum.Enum]) -> None:
        self.enum_cls = enum_cls
        self.members: tuple[enum.Enum, ...] = tuple(enum_cls)
        if not self.members:
            raise DeclarationError(f"enum {enum_cls.__qualname__} has no members")
        values = [m.value for m in self.members]
        self.by_value = all(type(v) is int and v >= 0 for v in values)
        self.codes: tuple[int, ...] = tuple(values) if self.by_value else tuple(
            range(len(self.members)))
        self.width = max(1, max(self.codes).bit_length())
        self._index = dict(zip(self.members, self.codes, strict=True))
        self._member = dict(zip(self.codes, self.members, strict=True))

    @property
    def positional(self) -> bool:
        """Whether the codes are the positions ``0 .. n-1`` in order (an enumeration type
        in VHDL encodes exactly so)."""
        return self.codes == tuple(range(len(self.codes)))

    def from_raw(self, code: int) -> Any:
        """The member encoded as ``code``; ``ValueError`` for a code no member has."""
        member = self._member.get(int(code))
        if member is None:
            raise ValueError(f"{code} is not the code of a member of {self.enum_cls.__name__} "
                             f"(codes: {', '.join(map(str, self.codes))})")
        return member

    def coerce(self, value: object, rounding: str = "exact", overflow: str = "error") -> Any:
        if isinstance(value, self.enum_cls):
            return value
        raise TypeMisfit(f"{value!r} is not a member of {self.enum_cls.__name__}")

    def describe_range(self) -> str:
        return ", ".join(f"{self.enum_cls.__name__}.{m.name}" for m in self.members)

    def zero(self) -> Any:
        return self.members[0]

    def to_raw(self, value: Any) -> int:
        return self._index[value]

    def to_text(self, value: Any) -> str:
        return str(value.name)

    def from_text(self, text: str) -> Any:
        try:
            return self.enum_cls[text]
        except KeyError:
            raise ValueError(f"{text!r} is not a member of {self.enum_cls.__name__}") from None

    def __repr__(self) -> str:
        return self.enum_cls.__name__


class FixedType(SignalType):
    """``UFix[i, f]`` / ``SFix[i, f]``: ``i`` integer bits (sign included for SFix), ``f``
    fractional bits; values are ``Fixed`` and the step is ``2**-f``."""

    def __init__(self, int_bits: int, frac_bits: int, signed: bool) -> None:
        name = "SFix" if signed else "UFix"
        ok = all(isinstance(b, int) and not isinstance(b, bool) for b in (int_bits, frac_bits))
        if not ok or frac_bits < 0 or int_bits < (1 if signed else 0):
            raise DeclarationError(
                f"{name}[{int_bits!r}, {frac_bits!r}]: need integer bits >= "
                f"{1 if signed else 0} and fractional bits >= 0"
            )
        self.int_bits, self.frac_bits, self.signed = int_bits, frac_bits, signed
        self.width = int_bits + frac_bits
        if not 1 <= self.width <= MAX_WIDTH:
            raise DeclarationError(
                f"{name}[{int_bits}, {frac_bits}]: total width must be 1..{MAX_WIDTH}")
        self.raw_type: IntegerType = IntType(self.width) if signed else UIntType(self.width)

    def coerce(self, value: object, rounding: str = "exact", overflow: str = "error") -> Fixed:
        if isinstance(value, Fixed):
            raw = value.rounded(self.frac_bits, rounding)
        elif isinstance(value, bool):
            raise TypeMisfit(f"{value!r} is a bool, not a number")
        elif isinstance(value, int) or (
            hasattr(value, "__index__") and not isinstance(value, float)
        ):
            raw = int(value) << self.frac_bits
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise TypeMisfit(f"{value!r} is not a finite number")
            fr = Fraction(value)
            scaled = fr * (1 << self.frac_bits)
            if scaled.denominator == 1:
                raw = int(scaled)
            elif rounding == "floor":
                raw = math.floor(scaled)
            elif rounding == "nearest":
                raw = math.floor(scaled + Fraction(1, 2))
            else:
                raise TypeMisfit(
                    f"{value!r} is not a multiple of 2**-{self.frac_bits}; choose a rounding"
                )
        else:
            raise TypeMisfit(f"{value!r} is not a fixed-point number")
        try:
            raw = self.raw_type.coerce(raw, overflow=overflow)
        except TypeMisfit:
            raise TypeMisfit(f"{Fixed(raw, self.frac_bits)} is out of range") from None
        if isinstance(value, Fixed) and value.frac == self.frac_bits and value.raw == raw:
            return value  # (values are immutable: a memory's words can share one object)
        return Fixed(raw, self.frac_bits)

    def describe_range(self) -> str:
        lo = Fixed(self.raw_type.lo, self.frac_bits)
        hi = Fixed(self.raw_type.hi, self.frac_bits)
        return f"{lo}..{hi} in steps of 2**-{self.frac_bits}"

    def zero(self) -> Fixed:
        return Fixed(0, self.frac_bits)

    def to_raw(self, value: Any) -> int:
        return int(value.raw)

    def to_text(self, value: Any) -> str:
        return str(value.raw)

    def from_text(self, text: str) -> Fixed:
        return Fixed(self.raw_type.coerce(int(text)), self.frac_bits)

    def __repr__(self) -> str:
        return f"{'SFix' if self.signed else 'UFix'}[{self.int_bits}, {self.frac_bits}]"


def _shared(arr: Any, make: Callable[[int], Any]) -> tuple[Any, ...]:
    """The elements of integer array ``arr`` as ``make(value)``, one object per distinct
    value (values are immutable): a calibration memory's words repeat few values, and a
    Python number per element cost a megapixel memory tens of MB."""
    import numpy as np

    lo, hi = int(arr.min()), int(arr.max())
    if hi - lo <= 1 << 16:  # (16-bit words: a table of every value in range, no sort)
        table = [make(v) for v in range(lo, hi + 1)]
        return tuple(map(table.__getitem__, (arr.astype(np.int64) - lo).tolist()))
    distinct, where = np.unique(arr, return_inverse=True)
    objects = [make(v) for v in distinct.tolist()]
    return tuple(map(objects.__getitem__, where.tolist()))


def _shared_ints(arr: Any) -> tuple[int, ...]:
    """:func:`_shared` for ints where it pays: values in a 16-bit range beyond the ints
    Python keeps one object of anyway (-5 to 256); wider ones as ``tolist`` gives them."""
    lo, hi = int(arr.min()), int(arr.max())
    if (lo >= -5 and hi <= 256) or hi - lo > 1 << 16:
        return tuple(arr.tolist())
    return _shared(arr, int)


class ArrayType(SignalType):
    """``Array[T, n]``: a fixed-length array of ``n`` elements of type ``T``."""

    def __init__(self, element: SignalType, length: int) -> None:
        if isinstance(element, ArrayType):
            raise DeclarationError("Array of Array is not supported; flatten it")
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise DeclarationError(f"Array[{element!r}, {length!r}]: length must be an int >= 1")
        self.element, self.length = element, length
        self.width = element.width * length

    def coerce(
        self, value: object, rounding: str = "exact", overflow: str = "error"
    ) -> tuple[Any, ...]:
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise TypeMisfit(f"{value!r} is not a sequence")
        whole = self._coerce_numpy(value)
        if whole is not None:
            return whole
        items = list(value)
        if len(items) != self.length:
            raise TypeMisfit(f"has {len(items)} elements, expected {self.length}")
        out = []
        for i, item in enumerate(items):
            try:
                out.append(self.element.coerce(item, rounding, overflow))
            except TypeMisfit as exc:
                raise TypeMisfit(f"element [{i}]: {exc}") from None
        if isinstance(value, tuple) and all(map(operator.is_, out, value)):
            return value  # (already stored as it would be: kept, not copied)
        return tuple(out)

    def _coerce_numpy(self, value: object) -> tuple[Any, ...] | None:
        """A flat numpy array of integers (or of Bools, for a Bool element) whose values
        all fit, converted at once — the contents of a megapixel calibration memory are a
        million elements — as the element-wise conversion would give; ``None`` for
        anything else (which that conversion then checks and explains)."""
        if type(value).__module__ != "numpy" or type(value).__name__ != "ndarray":
            return None
        arr: Any = value
        kind = arr.dtype.kind
        if arr.ndim != 1 or arr.shape[0] != self.length:
            return None
        el = self.element
        if isinstance(el, BoolType):
            return tuple(arr.tolist()) if kind == "b" else None
        if kind not in "iu":
            return None
        if isinstance(el, IntegerType):
            lo, hi, shift = el.lo, el.hi, 0
        elif isinstance(el, FixedType):
            lo, hi, shift = el.raw_type.lo, el.raw_type.hi, el.frac_bits
        else:
            return None
        if int(arr.min()) << shift < lo or int(arr.max()) << shift > hi:
            return None
        if isinstance(el, IntegerType):
            return _shared_ints(arr)
        if lo >= -(1 << 63) and hi < 1 << 63:  # the raw values fit int64: shifted at once
            return _shared(arr.astype("int64") << shift, lambda v: Fixed(v, shift))
        return tuple(Fixed(v << shift, shift) for v in arr.tolist())

    def describe_range(self) -> str:
        return f"{self.length} elements, each {self.element.describe_range()}"

    def zero(self) -> tuple[Any, ...]:
        return (self.element.zero(),) * self.length

    def to_raw(self, value: Any) -> int:
        raise TypeError("an array has no single raw value")

    def to_text(self, value: Any) -> str:
        return " ".join(self.element.to_text(v) for v in value)

    def from_text(self, text: str) -> tuple[Any, ...]:
        cells = text.split()
        if len(cells) != self.length:
            raise ValueError(f"has {len(cells)} elements, expected {self.length}")
        return tuple(self.element.from_text(t) for t in cells)

    def __repr__(self) -> str:
        return f"Array[{self.element!r}, {self.length}]"


__all__ = ["MAX_WIDTH", "ROUNDINGS", "ArrayType", "BoolType", "EnumType", "FixedType",
           "IntType", "IntegerType", "Overflow", "Rounding", "SignalType", "UIntType"]
