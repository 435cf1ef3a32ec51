"""Pass 3, operators: arithmetic, bitwise, shifts, unary operators and comparisons typed
exactly (``sme.lower.typerules``), constants folded, and the conversions of a value for
storing (as Python checks them: ``wrap``/``saturate``/``resize``) or widening. The names
and constants the operands are made of are lowered in ``sme.lower.exprs``."""

from __future__ import annotations

import ast
from typing import Any, cast

from . import typerules as tr
from .context import LowererBase, Marked
from .ir import (
    ArrayT,
    BinOp,
    BoolOp,
    BoolT,
    Compare,
    Const,
    Convert,
    Expr,
    NumT,
    UnaryOp,
    VType,
)

_BINOPS: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%",
    ast.LShift: "<<", ast.RShift: ">>", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
}
_CMPOPS: dict[type, str] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.Is: "==", ast.IsNot: "!=",
}


class OperatorLowering(LowererBase):
    """Lowers operators and store conversions (see the module docstring)."""

    def binop(self, node: ast.BinOp) -> Expr:
        op = _BINOPS.get(type(node.op))
        if op is None:
            if isinstance(node.op, ast.Div):
                raise self.unsupported(node, "true division",
                                       "/ is true division (floats); use // for integers")
            if isinstance(node.op, ast.Pow):
                a, b = self.expr(node.left), self.expr(node.right)
                if isinstance(a, Const) and isinstance(b, Const) and isinstance(
                        a.type, NumT) and isinstance(b.type, NumT) and not a.type.frac:
                    return self.constant(int(a.value) ** int(b.value), node)
                raise self.unsupported(node, "power", "** is only supported on constants")
            name = type(node.op).__name__
            raise self.unsupported(node, name, f"the operator {name} is not supported")
        a, b = self.expr(node.left), self.expr(node.right)
        for side, e in (("left", a), ("right", b)):
            if not isinstance(e.type, NumT):
                raise self.type_error(node, f"the {side} operand of {op} is a {e.type}, not a "
                                      "number" + ("; write int(...) to use a Bool as 0/1"
                                                  if isinstance(e.type, BoolT) else ""))
        at, bt = cast(NumT, a.type), cast(NumT, b.type)
        if op in ("//", "%", "&", "|", "^") and (at.frac or bt.frac):
            raise self.unsupported(node, f"{op} on fixed point",
                                   f"{op} is only supported on integers")
        if op in ("<<", ">>"):
            if bt.frac or bt.lo < 0:
                raise self.type_error(node, f"the shift amount must be a non-negative integer, "
                                      f"not {bt}")
            if at.frac and not isinstance(b, Const):
                raise self.unsupported(node, "variable shift of fixed point",
                                       "a fixed-point value can only be shifted by a constant")
        if op in ("//", "%") and isinstance(b, Const) and b.value == 0:
            raise self.type_error(node, "division by zero")
        if isinstance(a, Const) and isinstance(b, Const):
            raw, frac = tr.fold(op, int(a.value), at.frac, int(b.value), bt.frac)
            return Const(NumT.const(raw, frac), raw)
        rt = _result_type(op, at, bt)
        if rt.width > tr.MAX_BITS:
            raise self.type_error(node, f"{ast.unparse(node)} needs {rt.width} bits; narrow "
                                  "its operands")
        return BinOp(rt, op, a, b)  # type: ignore[arg-type]

    def unaryop(self, node: ast.UnaryOp) -> Expr:
        e = self.expr(node.operand)
        if isinstance(node.op, ast.Not):
            b = self.to_bool(e, node)
            if isinstance(b, Const):
                return Const(BoolT(), not b.value)
            return UnaryOp(BoolT(), "not", b)
        if not isinstance(e.type, NumT):
            raise self.type_error(node, f"unary {ast.unparse(node)[0]} needs a number, not "
                                  f"{e.type}")
        if isinstance(node.op, ast.UAdd):
            return e
        if isinstance(node.op, ast.USub):
            if isinstance(e, Const):
                return Const(NumT.const(-int(e.value), e.type.frac), -int(e.value))
            return UnaryOp(tr.neg(e.type), "-", e)
        if e.type.frac:
            raise self.unsupported(node, "~ on fixed point", "~ is only supported on integers")
        if isinstance(e, Const):
            return Const(NumT.const(~int(e.value)), ~int(e.value))
        return UnaryOp(tr.invert(e.type), "~", e)

    def compare(self, node: ast.Compare) -> Expr:
        parts: list[Expr] = []
        left = self.expr(node.left)
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            op = _CMPOPS.get(type(op_node))
            if op is None:
                raise self.unsupported(node, "in/not in",
                                       "'in' and 'not in' are not supported in on_tick")
            right = self.expr(right_node)
            parts.append(self.compare2(op, left, right, node))
            left = right
        if len(parts) == 1:
            return parts[0]
        if all(isinstance(p, Const) for p in parts):
            return Const(BoolT(), all(cast(Const, p).value for p in parts))
        return BoolOp(BoolT(), "and", tuple(parts))

    def compare2(self, op: str, a: Expr, b: Expr, node: ast.AST) -> Expr:
        if isinstance(a.type, NumT) and isinstance(b.type, NumT):
            if isinstance(a, Const) and isinstance(b, Const):
                x, y = _aligned(a, b)
                return Const(BoolT(), _pycmp(op, x, y))
            return Compare(BoolT(), op, a, b)  # type: ignore[arg-type]
        if tr.join(a.type, b.type) is None or isinstance(a.type, ArrayT):
            raise self.type_error(node, f"cannot compare a {a.type} with a {b.type}")
        if op not in ("==", "!="):
            raise self.type_error(node, f"{op} is not defined on {a.type}")
        if isinstance(a, Const) and isinstance(b, Const):
            return Const(BoolT(), (a.value == b.value) == (op == "=="))
        return Compare(BoolT(), op, a, b)  # type: ignore[arg-type]

    def widen(self, e: Expr, t: VType) -> Expr:
        """``e`` as type ``t`` (a lossless conversion; ``t`` holds every value of ``e``)."""
        if e.type == t:
            return e
        if isinstance(e, Const) and isinstance(t, NumT) and isinstance(e.type, NumT):
            return Const(t, const_raw(e, t), e.name)
        if not isinstance(t, NumT):
            return e
        return Convert(t, e)

    def store_convert(self, e: Expr, t: VType, marked: Marked | None, node: ast.AST) -> Expr:
        """``e`` converted for storing into a ``t`` (checks what Python would reject)."""
        rounding = marked.rounding if marked else "exact"
        overflow = marked.overflow if marked else "error"
        if isinstance(t, NumT):
            if isinstance(e.type, BoolT):
                raise self.type_error(node, f"cannot store a Bool into a {t}: Python raises "
                                      "too; write int(...)")
            if not isinstance(e.type, NumT):
                raise self.type_error(node, f"cannot store a {e.type} into a number")
            if e.type == t and not marked:
                return e
            if isinstance(e, Const) and not marked and tr.fits(e.type, t):
                return Const(t, const_raw(e, t), e.name)
            return Convert(t, e, rounding, overflow)  # type: ignore[arg-type]
        if marked:
            raise self.type_error(node, f"{marked.overflow}() only applies to numbers")
        if isinstance(t, BoolT):
            if isinstance(e.type, BoolT):
                return e
            if isinstance(e.type, NumT) and not e.type.frac:
                if isinstance(e, Const):
                    if e.value not in (0, 1):
                        raise self.type_error(node, f"{e.value} is not a Bool (0 or 1)")
                    return Const(BoolT(), bool(e.value))
                return Convert(BoolT(), e)
            raise self.type_error(node, f"cannot store a {e.type} into a Bool")
        if tr.join(t, e.type) != t or (isinstance(t, ArrayT) and e.type != t):
            raise self.type_error(node, f"cannot store a {e.type} into a {t}")
        return e


def _result_type(op: str, a: NumT, b: NumT) -> NumT:
    if op == "+":
        return tr.add(a, b)
    if op == "-":
        return tr.sub(a, b)
    if op == "*":
        return tr.mul(a, b)
    if op == "//":
        return tr.floordiv(a, b)
    if op == "%":
        return tr.mod(a, b)
    if op == "<<":
        return tr.lshift(a, b)
    if op == ">>":
        if a.frac:
            return NumT(a.lo, a.hi, a.frac + b.lo)
        return tr.rshift(a, b)
    return tr.bitwise(op, a, b)


def _aligned(a: Const, b: Const) -> tuple[int, int]:
    at, bt = cast(NumT, a.type), cast(NumT, b.type)
    f = max(at.frac, bt.frac)
    return int(a.value) << (f - at.frac), int(b.value) << (f - bt.frac)


def _pycmp(op: str, x: int, y: int) -> bool:
    return {"==": x == y, "!=": x != y, "<": x < y, "<=": x <= y, ">": x > y,
            ">=": x >= y}[op]


def const_raw(e: Const, t: NumT) -> Any:
    """The raw value of constant ``e`` as a ``t`` (its fraction bits aligned to ``t``'s)."""
    et = cast(NumT, e.type)
    return int(e.value) << (t.frac - et.frac)


__all__ = ["OperatorLowering", "const_raw"]
