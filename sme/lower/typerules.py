"""Exact result types of the operators on ``NumT`` ranges (the width-inference rules).

Every rule returns the smallest range that holds the exact Python result for all operand
values in the operand ranges, so generated code sized by these types never overflows.
"""

from __future__ import annotations

from .ir import ArrayT, BoolT, EnumT, NumT, VType

MAX_BITS = 256
"""Intermediate values wider than this are rejected (a variable shift, most likely)."""


def align(t: NumT, frac: int) -> NumT:
    """``t`` with its raw range scaled to ``frac`` fractional bits (``frac >= t.frac``)."""
    d = frac - t.frac
    return NumT(t.lo << d, t.hi << d, frac)


def num_join(a: NumT, b: NumT) -> NumT:
    """The smallest range holding the values of both."""
    f = max(a.frac, b.frac)
    x, y = align(a, f), align(b, f)
    return NumT(min(x.lo, y.lo), max(x.hi, y.hi), f)


def join(a: VType, b: VType) -> VType | None:
    """The common type of two types, or ``None`` when they do not combine."""
    if isinstance(a, NumT) and isinstance(b, NumT):
        return num_join(a, b)
    if isinstance(a, ArrayT) and isinstance(b, ArrayT) and a.length == b.length:
        e = join(a.element, b.element)
        return None if e is None else ArrayT(e, a.length)
    if a == b:
        return a
    if isinstance(a, BoolT) and isinstance(b, BoolT):
        return a
    if isinstance(a, EnumT) and isinstance(b, EnumT) and a.enum_cls is b.enum_cls:
        return a
    return None


def fits(value: NumT, target: NumT) -> bool:
    """Whether every value of ``value`` is exactly representable in ``target``."""
    if value.frac > target.frac:
        return False
    v = align(value, target.frac)
    return target.lo <= v.lo and v.hi <= target.hi


def add(a: NumT, b: NumT) -> NumT:
    """``a + b``."""
    f = max(a.frac, b.frac)
    x, y = align(a, f), align(b, f)
    return NumT(x.lo + y.lo, x.hi + y.hi, f)


def sub(a: NumT, b: NumT) -> NumT:
    """``a - b``."""
    f = max(a.frac, b.frac)
    x, y = align(a, f), align(b, f)
    return NumT(x.lo - y.hi, x.hi - y.lo, f)


def mul(a: NumT, b: NumT) -> NumT:
    """``a * b``."""
    c = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    return NumT(min(c), max(c), a.frac + b.frac)


def neg(a: NumT) -> NumT:
    """``-a``."""
    return NumT(-a.hi, -a.lo, a.frac)


def invert(a: NumT) -> NumT:
    """``~a`` = ``-a - 1`` (integers)."""
    return NumT(-a.hi - 1, -a.lo - 1, 0)


def floordiv(a: NumT, b: NumT) -> NumT:
    """``a // b`` (integers; a zero divisor is Python's error at run time)."""
    if b.lo > 0 or b.hi < 0:
        c = [a.lo // b.lo, a.lo // b.hi, a.hi // b.lo, a.hi // b.hi]
        return NumT(min(c), max(c))
    m = max(abs(a.lo), abs(a.hi))
    return NumT(-m, m)


def mod(a: NumT, b: NumT) -> NumT:
    """``a % b`` (integers; the result has the sign of the divisor)."""
    if b.lo > 0:
        if a.lo >= 0 and a.hi < b.lo:
            return NumT(a.lo, a.hi)
        return NumT(0, b.hi - 1)
    if b.hi < 0:
        return NumT(b.lo + 1, 0)
    return NumT(min(0, b.lo + 1), max(0, b.hi - 1))


def lshift(a: NumT, n: NumT) -> NumT:
    """``a << n`` (``n >= 0``)."""
    c = [a.lo << n.lo, a.lo << n.hi, a.hi << n.lo, a.hi << n.hi]
    return NumT(min(c), max(c), a.frac)


def rshift(a: NumT, n: NumT) -> NumT:
    """``a >> n`` on integers (floor; ``n >= 0``)."""
    return NumT(min(a.lo >> n.lo, a.lo >> n.hi), max(a.hi >> n.lo, a.hi >> n.hi))


def bitwise(op: str, a: NumT, b: NumT) -> NumT:
    """``a & b``, ``a | b``, ``a ^ b`` on integers (Python's infinite two's complement)."""
    if op == "&":
        if a.lo >= 0 and b.lo >= 0:
            return NumT(0, min(a.hi, b.hi))
        if a.lo >= 0:
            return NumT(0, a.hi)
        if b.lo >= 0:
            return NumT(0, b.hi)
    if a.lo >= 0 and b.lo >= 0:
        return NumT(0, (1 << max(a.width, b.width)) - 1)
    w = max(a.full().width + (0 if a.signed else 1), b.full().width + (0 if b.signed else 1))
    return NumT.of_width(w, True)


def fold(op: str, a: int, af: int, b: int, bf: int) -> tuple[int, int]:
    """Evaluate ``op`` on two constant raw values with fractions; returns (raw, frac)."""
    if op in ("+", "-"):
        f = max(af, bf)
        x, y = a << (f - af), b << (f - bf)
        return (x + y if op == "+" else x - y), f
    if op == "*":
        return a * b, af + bf
    if op == "//":
        return a // b, 0
    if op == "%":
        return a % b, 0
    if op == "<<":
        return a << b, af
    if op == ">>":
        return (a, af + b) if af else (a >> b, 0)
    if op == "&":
        return a & b, 0
    if op == "|":
        return a | b, 0
    if op == "^":
        return a ^ b, 0
    raise ValueError(op)
