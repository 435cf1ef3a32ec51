"""``Fixed``: the exact fixed-point value of ``UFix``/``SFix`` signals (``raw / 2**frac``),
with exact arithmetic and comparisons; :mod:`sme.types` checks and stores it."""

from __future__ import annotations

from fractions import Fraction

from .errors import TypeMisfit

__all__ = ["Fixed"]


class Fixed:
    """An exact fixed-point value: ``raw / 2**frac``.

    Arithmetic between fixed values and ints is exact (the result has as many fractional
    bits as needed); storing the result in a ``UFix``/``SFix`` signal checks that it fits.
    """

    __slots__ = ("frac", "raw")

    def __init__(self, raw: int, frac: int) -> None:
        self.raw = raw
        self.frac = frac

    @staticmethod
    def _of(value: object) -> Fixed:
        if isinstance(value, Fixed):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return Fixed(value, 0)
        raise TypeError(f"cannot combine a fixed-point value with {value!r}")

    def _align(self, other: object) -> tuple[int, int, int]:
        o = Fixed._of(other)
        f = max(self.frac, o.frac)
        return self.raw << (f - self.frac), o.raw << (f - o.frac), f

    def __add__(self, other: object) -> Fixed:
        a, b, f = self._align(other)
        return Fixed(a + b, f)

    __radd__ = __add__

    def __sub__(self, other: object) -> Fixed:
        a, b, f = self._align(other)
        return Fixed(a - b, f)

    def __rsub__(self, other: object) -> Fixed:
        a, b, f = self._align(other)
        return Fixed(b - a, f)

    def __mul__(self, other: object) -> Fixed:
        o = Fixed._of(other)
        return Fixed(self.raw * o.raw, self.frac + o.frac)

    __rmul__ = __mul__

    def __neg__(self) -> Fixed:
        return Fixed(-self.raw, self.frac)

    def __abs__(self) -> Fixed:
        return Fixed(abs(self.raw), self.frac)

    def __lshift__(self, n: int) -> Fixed:
        return Fixed(self.raw << n, self.frac) if n >= 0 else Fixed(self.raw, self.frac - n)

    def __rshift__(self, n: int) -> Fixed:
        """Exact division by ``2**n`` (adds fractional bits; no bits are lost)."""
        return Fixed(self.raw, self.frac + n)

    def _cmp(self, other: object) -> tuple[int, int] | None:
        if isinstance(other, Fixed) or (isinstance(other, int) and not isinstance(other, bool)):
            a, b, _ = self._align(other)
            return a, b
        return None

    def __eq__(self, other: object) -> bool:
        c = self._cmp(other)
        return c is not None and c[0] == c[1]

    def __hash__(self) -> int:
        return hash(self.as_fraction())

    def __lt__(self, other: object) -> bool:
        a, b, _ = self._align(other)
        return a < b

    def __le__(self, other: object) -> bool:
        a, b, _ = self._align(other)
        return a <= b

    def __gt__(self, other: object) -> bool:
        a, b, _ = self._align(other)
        return a > b

    def __ge__(self, other: object) -> bool:
        a, b, _ = self._align(other)
        return a >= b

    def as_fraction(self) -> Fraction:
        """The exact value."""
        return Fraction(self.raw, 1 << self.frac) if self.frac >= 0 else Fraction(
            self.raw << -self.frac
        )

    def __float__(self) -> float:
        return float(self.as_fraction())

    def rounded(self, frac: int, rounding: str) -> int:
        """The raw value with ``frac`` fractional bits, rounded as asked."""
        shift = self.frac - frac
        if shift <= 0:
            return self.raw << -shift
        dropped = self.raw & ((1 << shift) - 1)
        if rounding == "floor":
            return self.raw >> shift
        if rounding == "nearest":
            return (self.raw + (1 << (shift - 1))) >> shift
        if dropped:
            raise TypeMisfit(
                f"{self} has {self.frac} fractional bits and would lose precision at {frac}; "
                "choose a rounding: resize(value, T, rounding='floor'|'nearest')"
            )
        return self.raw >> shift

    def __repr__(self) -> str:
        return f"Fixed({self.as_fraction()})"

    def __str__(self) -> str:
        return str(float(self)) if self.frac <= 52 else str(self.as_fraction())
