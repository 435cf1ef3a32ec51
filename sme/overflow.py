"""Values stored with explicit overflow and rounding: ``wrap`` and ``saturate`` mark a value
for a deliberate wrap-around or saturation when a signal or register takes it, ``resize``
converts now; ``store`` is what every store into a typed signal goes through.

Without a marker a value that does not fit its signal's type is an error (see
:mod:`sme.types`), so overflow in a design is always something its author wrote down.
"""

from __future__ import annotations

from typing import Any

from .errors import TypeMisfit
from .types import ROUNDINGS, Overflow, Rounding, SignalType, cast


class Overflowing:
    """A value marked for deliberate overflow handling when it is stored (see ``wrap``)."""

    __slots__ = ("overflow", "rounding", "value")

    def __init__(self, value: object, overflow: Overflow, rounding: Rounding) -> None:
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")
        self.value, self.overflow, self.rounding = value, overflow, rounding

    def __repr__(self) -> str:
        return f"{self.overflow}({self.value!r})"


def wrap(value: Any, rounding: Rounding = "exact") -> Any:
    """Mark ``value`` to wrap around (two's complement) when stored in a narrower signal."""
    return Overflowing(value, "wrap", rounding)


def saturate(value: Any, rounding: Rounding = "exact") -> Any:
    """Mark ``value`` to saturate at the target type's bounds when stored."""
    return Overflowing(value, "saturate", rounding)


def resize(
    value: Any, to: object, rounding: Rounding = "exact", overflow: Overflow = "error"
) -> Any:
    """Convert ``value`` to type ``to`` now, with explicit rounding and overflow handling.

    Raises ``ValueError`` naming the value and the allowed range when it does not fit and
    ``overflow="error"``.
    """
    t = cast(to)
    try:
        return t.coerce(value, rounding, overflow)
    except TypeMisfit as exc:
        raise ValueError(f"resize: {exc}; {t!r} allows {t.describe_range()}") from None


def store(t: SignalType, value: object) -> Any:
    """Coerce ``value`` for storing into a signal of type ``t``, honouring ``wrap``/``saturate``
    markers. Raises ``TypeMisfit`` with the reason when it does not fit."""
    if type(value) is Overflowing:
        return t.coerce(value.value, value.rounding, value.overflow)
    return t.coerce(value)


__all__ = ["Overflowing", "resize", "saturate", "store", "wrap"]
