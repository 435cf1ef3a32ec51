"""IR expressions → VHDL expressions with exact widths (``signed``/``unsigned`` only).

Numbers are emitted in their IR type's representation (``NumT.width`` bits, signed when the
range has negatives); every operator first converts its operands to the representation the
IR says the result has, so no intermediate value is ever truncated. Bool expressions are
VHDL ``boolean``; stored Bools are ``std_logic``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sme.lower import typerules as tr
from sme.lower.ir import (
    ArrayT,
    BinOp,
    BoolOp,
    BoolT,
    Compare,
    Const,
    Convert,
    EnumT,
    Expr,
    Index,
    LocalRead,
    NumT,
    PortRead,
    RegRead,
    Select,
    UnaryOp,
    VType,
)

from .names import TypeNames, num_literal


class EmitError(Exception):
    """An IR construct the VHDL back end cannot express."""


@dataclass
class Scope:
    """How names are spelled inside one process's VHDL."""

    port_signal: Callable[[str, str], str]
    own_output: Callable[[str, str], str]
    var: Callable[[str], str]
    """The variable of a register or local."""
    const: Callable[[str], str]
    """The constant of a named module or class constant."""
    types: TypeNames
    loop_vars: dict[str, tuple[int, int]] = field(default_factory=dict)
    constants: dict[str, VType] = field(default_factory=dict)


def _is_pow2(v: int) -> bool:
    return v > 0 and v & (v - 1) == 0


class ExprEmitter:
    """Emits expressions of one process (see the module docstring)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    # -- numbers ----------------------------------------------------------------------
    def raw(self, code: str, src: NumT, dst: NumT) -> str:
        """Re-width ``code`` (of ``src``'s representation) to ``dst``'s, raw bits unchanged
        in value (sign/zero extension, or wrap-around when narrower)."""
        if src.width == dst.width and src.signed == dst.signed:
            return code
        fn = "to_s" if dst.signed else "to_u"
        return f"{fn}({code}, {dst.width})"

    def conv(self, code: str, src: NumT, dst: NumT, rounding: str = "exact") -> str:
        """Convert a value to ``dst`` (fraction alignment, then width); the value fits."""
        if dst.frac > src.frac:
            d = dst.frac - src.frac
            return f"shift_left({self.raw(code, src, dst)}, {d})"
        if dst.frac < src.frac:
            d = src.frac - dst.frac
            if rounding == "nearest":
                wide = NumT.of_width(src.width + 1, src.signed, src.frac)
                half = num_literal(1 << (d - 1), wide)
                code = f"({self.raw(code, src, wide)} + {half})"
                src = wide
            return self.raw(f"shift_right({code}, {d})", src.full(), dst)
        return self.raw(code, src, dst)

    def num(self, e: Expr, want: NumT | None = None) -> str:
        """``e`` (a number) in ``want``'s representation (its own when ``want`` is None)."""
        assert isinstance(e.type, NumT), e
        t = e.type
        if isinstance(e, Const):
            target = want or t
            raw = int(e.value) << (target.frac - t.frac) if target.frac >= t.frac else (
                int(e.value) >> (t.frac - target.frac))
            if e.name is not None and self.scope.constants.get(e.name) == t and (
                    want is None or want.frac == t.frac):
                return self.raw(self.scope.const(e.name), t, target)
            return num_literal(raw, target.full())
        if isinstance(e, LocalRead) and e.name in self.scope.loop_vars:
            target = want or t
            fn = "to_signed" if target.signed else "to_unsigned"
            return f"{fn}({self.intexpr(e)}, {target.width})"
        code = self.num_own(e)
        return code if want is None else self.conv(code, t, want)

    def num_own(self, e: Expr) -> str:
        t = e.type
        assert isinstance(t, NumT)
        if isinstance(e, (PortRead, RegRead, LocalRead, Index)):
            return self.name(e)
        if isinstance(e, BinOp):
            return self.binop(e)
        if isinstance(e, UnaryOp):
            if e.op == "-":
                # same fraction as the operand and the result (negation keeps it)
                s = NumT.of_width(max(e.operand.type.width, t.width) + 1, True, t.frac)
                return self.raw(f"-{self.num(e.operand, s)}", s, t)
            j = tr.num_join(e.operand.type, t)  # type: ignore[arg-type]
            j = NumT.of_width(j.width, True)
            return self.raw(f"(not {self.num(e.operand, j)})", j, t)
        if isinstance(e, Select):
            return f"sel({self.cond(e.cond)}, {self.num(e.if_true, t)}, " \
                   f"{self.num(e.if_false, t)})"
        if isinstance(e, Convert):
            return self.convert(e)
        raise EmitError(f"cannot emit {type(e).__name__} as a number")

    def convert(self, e: Convert) -> str:
        t = e.type
        assert isinstance(t, NumT)
        src = e.operand.type
        if isinstance(src, BoolT):
            return f"to_u({self.cond(e.operand)}, {t.width})" if not t.signed else \
                f"signed(to_u({self.cond(e.operand)}, {t.width}))"
        assert isinstance(src, NumT)
        if e.overflow == "saturate":
            if t.frac >= src.frac:
                aligned = tr.align(src, t.frac)
            else:  # the rounded range: "nearest" may carry into a new bit
                d = src.frac - t.frac
                half = 1 << (d - 1) if e.rounding == "nearest" else 0
                aligned = NumT((src.lo + half) >> d, (src.hi + half) >> d, t.frac)
            j = tr.num_join(aligned, t).full()
            inner = self.conv(self.num(e.operand), src, j, e.rounding)
            lo, hi = num_literal(t.lo, j), num_literal(t.hi, j)
            return self.raw(f"clamp({inner}, {lo}, {hi})", j, t)
        if t.frac < src.frac:
            return self.conv(self.num(e.operand), src, t, e.rounding)
        return self.num(e.operand, t)

    def bit_operand(self, x: Expr, t: NumT, op: str) -> str:
        """An operand of ``&``/``|``/``^`` in ``t``; a constant mask wider than an unsigned
        ``&`` result keeps only the bits that can matter (no truncation warning)."""
        if op == "&" and isinstance(x, Const) and not t.signed and t.frac == 0:
            return num_literal(int(x.value) & ((1 << t.width) - 1), t)
        return self.num(x, t)

    def binop(self, e: BinOp) -> str:
        t = e.type
        assert isinstance(t, NumT)
        a, b = e.left, e.right
        at, bt = a.type, b.type
        assert isinstance(at, NumT) and isinstance(bt, NumT)
        op = e.op
        if op in ("+", "-"):
            return f"({self.num(a, t)} {op} {self.num(b, t)})"
        if op in ("&", "|", "^"):
            word = {"&": "and", "|": "or", "^": "xor"}[op]
            return f"({self.bit_operand(a, t, op)} {word} {self.bit_operand(b, t, op)})"
        if op == "*":
            if not at.signed and not bt.signed:
                code = f"({self.num(a)} * {self.num(b)})"
                return self.raw(code, NumT.of_width(at.width + bt.width, False), t)
            sa = NumT.of_width(at.width + (0 if at.signed else 1), True, at.frac)
            sb = NumT.of_width(bt.width + (0 if bt.signed else 1), True, bt.frac)
            code = f"({self.num(a, sa)} * {self.num(b, sb)})"
            return self.raw(code, NumT.of_width(sa.width + sb.width, True), t)
        if op == "<<":
            if isinstance(b, Const):
                return f"shift_left({self.num(a, NumT(t.lo, t.hi, at.frac))}, {b.value})"
            return f"shift_left({self.num(a, NumT(t.lo, t.hi, at.frac))}, {self.intexpr(b)})"
        if op == ">>":
            if at.frac:
                return self.raw(self.num(a), at, NumT(t.lo, t.hi, at.frac))
            amount = str(b.value) if isinstance(b, Const) else self.intexpr(b)
            return self.raw(f"shift_right({self.num(a)}, {amount})", at, t)
        if op in ("//", "%"):
            if isinstance(b, Const) and _is_pow2(int(b.value)):
                k = int(b.value).bit_length() - 1
                if op == "//":
                    return self.raw(f"shift_right({self.num(a)}, {k})", at, t)
                if k == 0:  # x % 1: always 0 (keeping the low 0 bits has no VHDL width)
                    return num_literal(0, t)
                if not at.signed:
                    return self.raw(self.num(a), at, t)
            if not at.signed and not bt.signed:
                w = NumT.of_width(max(at.width, bt.width), False)
                vop = "/" if op == "//" else "mod"
                return self.raw(f"({self.num(a, w)} {vop} {self.num(b, w)})", w, t)
            w = NumT.of_width(max(at.width, bt.width, t.width) + 1, True)
            if op == "//":
                return self.raw(f"floor_div({self.num(a, w)}, {self.num(b, w)})", w, t)
            return self.raw(f"({self.num(a, w)} mod {self.num(b, w)})", w, t)
        raise EmitError(f"operator {op}")

    def intexpr(self, e: Expr) -> str:
        """``e`` as a VHDL ``integer`` (loop variables, indexes, shift amounts)."""
        if isinstance(e, Const):
            return str(int(e.value))
        if isinstance(e, LocalRead) and e.name in self.scope.loop_vars:
            start, step = self.scope.loop_vars[e.name]
            var = self.scope.var(e.name)
            if step in (1, -1):
                return var
            return f"({start} + {var} * {step})"
        assert isinstance(e.type, NumT)
        return f"to_integer({self.num(e)})"

    # -- names ------------------------------------------------------------------------
    def name(self, e: Expr) -> str:
        if isinstance(e, PortRead):
            if e.own_output:
                return self.scope.own_output(e.port, e.signal)
            return self.scope.port_signal(e.port, e.signal)
        if isinstance(e, (RegRead, LocalRead)):
            return self.scope.var(e.name)
        if isinstance(e, Index):
            base = e.base
            b = self.scope.const(base.name) if isinstance(base, Const) and base.name \
                else self.name(base)
            return f"{b}({self.intexpr(e.index)})"
        raise EmitError(f"{type(e).__name__} is not a name")

    # -- Bool and other values -----------------------------------------------------------
    def cond(self, e: Expr) -> str:
        """A Bool expression as a VHDL ``boolean``."""
        assert isinstance(e.type, BoolT), e
        if isinstance(e, Const):
            return "true" if e.value else "false"
        if isinstance(e, (PortRead, RegRead, LocalRead, Index)):
            return f"{self.name(e)} = '1'"
        if isinstance(e, UnaryOp):
            return f"not ({self.cond(e.operand)})"
        if isinstance(e, BoolOp):
            return "(" + f" {e.op} ".join(f"({self.cond(o)})" for o in e.operands) + ")"
        if isinstance(e, Compare):
            return self.compare(e)
        if isinstance(e, Select):
            return f"sel({self.cond(e.cond)}, {self.cond(e.if_true)}, {self.cond(e.if_false)})"
        if isinstance(e, Convert):
            src = e.operand.type
            assert isinstance(src, NumT)
            return f"{self.num(e.operand)} /= 0"
        raise EmitError(f"cannot emit {type(e).__name__} as a condition")

    def compare(self, e: Compare) -> str:
        op = {"==": "=", "!=": "/="}.get(e.op, e.op)
        a, b = e.left, e.right
        at, bt = a.type, b.type
        if isinstance(at, NumT) and isinstance(bt, NumT):
            for x, y, flip in ((a, b, False), (b, a, True)):
                xt, yt = x.type, y.type
                assert isinstance(xt, NumT) and isinstance(yt, NumT)
                if (isinstance(y, Const) and not isinstance(x, Const) and xt.frac == yt.frac
                        and -(2**31) < int(y.value) < 2**31
                        and (xt.signed or int(y.value) >= 0)
                        and not (isinstance(x, LocalRead) and x.name in self.scope.loop_vars)):
                    lhs, rhs = self.num(x), str(int(y.value))
                    return f"{rhs} {op} {lhs}" if flip else f"{lhs} {op} {rhs}"
            c = tr.num_join(at, bt).full()
            return f"{self.num(a, c)} {op} {self.num(b, c)}"
        if isinstance(at, BoolT):
            return f"({self.cond(a)}) {op} ({self.cond(b)})"
        return f"{self.value(a)} {op} {self.value(b)}"

    def value(self, e: Expr, want: VType | None = None) -> str:
        """``e`` as a stored value of type ``want`` (or its own type): numbers in their
        representation, Bool as ``std_logic``, enums and arrays as themselves."""
        t = want or e.type
        if isinstance(t, NumT):
            return self.num(e, t)
        if isinstance(t, BoolT):
            if isinstance(e, Const):
                return "'1'" if e.value else "'0'"
            if isinstance(e, (PortRead, RegRead, LocalRead, Index)):
                return self.name(e)
            if isinstance(e, Select):
                return f"sel({self.cond(e.cond)}, {self.value(e.if_true, t)}, " \
                       f"{self.value(e.if_false, t)})"
            return f"to_sl({self.cond(e)})"
        if isinstance(t, EnumT):
            if isinstance(e, Const):
                return self.scope.types.enum_literal(t, e.value.name)
            if isinstance(e, Select):
                return f"sel({self.cond(e.cond)}, {self.value(e.if_true)}, " \
                       f"{self.value(e.if_false)})"
            return self.name(e)
        if isinstance(t, ArrayT):
            if isinstance(e, Const):
                return self.scope.const(e.name) if e.name else self.scope.types.literal(e.value, t)
            return self.name(e)
        raise EmitError(f"cannot emit a {t}")
