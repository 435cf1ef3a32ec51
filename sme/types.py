"""Signal types: ``Bool``, ``UInt[n]``, ``Int[n]``, enums, ``UFix[i, f]``, ``SFix[i, f]``,
``Array[T, n]`` (the explicit overflow helpers ``wrap``, ``saturate`` and ``resize`` are in
:mod:`sme.overflow`).

Arithmetic in process bodies is exact (Python integers, exact fixed-point values); a value
is checked when it is stored in a signal or register. A value that does not fit is an
error unless the code asked for wrap-around or saturation, and a fixed-point value that
would lose fractional bits is an error unless the code chose a rounding mode.

This module is how a design names them (``UInt[8]``, ``Array[T, n]``, ``cast``: each type
made once); what each type does with its values is :mod:`sme.signal_types`'.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

from . import srcloc
from .errors import DeclarationError, TypeMisfit
from .fixed import Fixed
from .signal_types import (
    MAX_WIDTH,
    ROUNDINGS,
    ArrayType,
    BoolType,
    EnumType,
    FixedType,
    IntegerType,
    IntType,
    Overflow,
    Rounding,
    SignalType,
    UIntType,
)


def _located(make: Callable[[], _T]) -> _T:
    """``make()``, its ``DeclarationError`` prefixed with the user's ``file:line`` that
    wrote the type (``UInt[256]`` on a bus is refused at import: say where)."""
    try:
        return make()
    except DeclarationError as exc:
        where = srcloc.caller()
        if where is srcloc.UNKNOWN or where.file.startswith("<") or str(exc).startswith(
                f"{where}:"):  # (an evaluated string annotation: declare.py says where)
            raise
        raise DeclarationError(f"{where}: {exc}") from None


class _UIntFactory:
    def __getitem__(self, width: int) -> UIntType:
        return _located(lambda: _cached(("u", width), lambda: UIntType(width)))

    def __repr__(self) -> str:
        return "UInt"


class _IntFactory:
    def __getitem__(self, width: int) -> IntType:
        return _located(lambda: _cached(("s", width), lambda: IntType(width)))

    def __repr__(self) -> str:
        return "Int"


class _FixFactory:
    def __init__(self, signed: bool) -> None:
        self.signed = signed

    def __getitem__(self, bits: tuple[int, int]) -> FixedType:
        return _located(lambda: self._make(bits))

    def _make(self, bits: tuple[int, int]) -> FixedType:
        if not isinstance(bits, tuple) or len(bits) != 2:
            name = "SFix" if self.signed else "UFix"
            raise DeclarationError(f"{name}[...] takes two numbers: {name}[int_bits, frac_bits]")
        i, f = bits
        return _cached(("f", self.signed, i, f), lambda: FixedType(i, f, self.signed))

    def __repr__(self) -> str:
        return "SFix" if self.signed else "UFix"


class BusArrayType:
    """``Array[B, n]`` of a ``Bus`` class ``B``: ``n`` buses of class ``B``, the type of a
    port (``In[Array[B, n]]``, C#'s ``[InputBus] B[] name``), never of a signal."""

    def __init__(self, bus: type, length: int) -> None:
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise DeclarationError(f"Array[{bus.__name__}, {length!r}]: an array of buses holds "
                                   "n >= 1 buses (an int)")
        self.bus, self.length = bus, length

    def __repr__(self) -> str:
        return f"Array[{self.bus.__name__}, {self.length}]"


class _ArrayFactory:
    def __getitem__(self, args: tuple[object, int]) -> ArrayType:
        """``Array[T, n]``; of a Bus class, a ``BusArrayType`` (a port's type only)."""
        return _located(lambda: self._make(args))  # type: ignore[type-var,return-value]

    def _make(self, args: tuple[object, int]) -> ArrayType | BusArrayType:
        if not isinstance(args, tuple) or len(args) != 2:
            raise DeclarationError("Array[...] takes an element type and a length: Array[T, n]")
        if isinstance(args[0], type) and getattr(args[0], "_sme_is_bus", False):
            return BusArrayType(args[0], args[1])
        element, length = cast(args[0]), args[1]
        return _cached(("a", element, length), lambda: ArrayType(element, length))

    def __repr__(self) -> str:
        return "Array"


_CACHE: dict[object, SignalType] = {}


_T = TypeVar("_T", bound=SignalType)


def _cached(key: tuple[object, ...], make: Callable[[], _T]) -> _T:
    # the key holds the argument types too: UInt[True] and UInt[8.0] must not hit UInt[1]/[8]
    key = (*key, *(type(k) for k in key))
    found = _CACHE.get(key)
    if found is None:
        found = _CACHE[key] = make()
    return found  # type: ignore[return-value]


Bool = BoolType()
UInt = _UIntFactory()
Int = _IntFactory()
UFix = _FixFactory(signed=False)
SFix = _FixFactory(signed=True)
Array = _ArrayFactory()


def cast(obj: object) -> SignalType:
    """Turn whatever a user may write as a signal type into a ``SignalType``.

    Accepts ``SignalType`` instances (``UInt[8]``, ``Bool``…), ``Enum`` subclasses and
    Python ``bool``; anything else is a ``DeclarationError`` showing the object.
    """
    if isinstance(obj, SignalType):
        return obj
    if obj is bool:
        return Bool
    if isinstance(obj, type) and issubclass(obj, enum.Enum):
        return _cached(("e", obj), lambda: EnumType(obj))
    if obj is int:
        raise DeclarationError("int cannot be converted to a signal type: it has no width; "
                               "use UInt[n] or Int[n]")
    raise DeclarationError(f"{obj!r} cannot be converted to a signal type")


def is_signal_type(obj: object) -> bool:
    """True when ``cast(obj)`` would succeed."""
    try:
        cast(obj)
    except DeclarationError:
        return False
    return True


__all__ = [
    "MAX_WIDTH", "ROUNDINGS", "Array", "ArrayType", "Bool", "BoolType", "BusArrayType",
    "EnumType", "Fixed", "FixedType", "Int", "IntType", "IntegerType", "Overflow", "Rounding",
    "SFix", "SignalType", "TypeMisfit", "UFix", "UInt", "UIntType", "cast", "is_signal_type",
]
