"""Pass 3, expressions: names resolved (ports, registers, locals, module and class
constants, enum members), constants and static values; its operators typed exactly and
its stores converted as Python checks them are ``sme.lower.operators``'."""

from __future__ import annotations

import ast
import builtins
import enum
from typing import Any, Literal, cast

from ..declare import MISSING
from ..overflow import saturate, wrap
from ..types import Fixed, SignalType, is_signal_type
from ..types import cast as sme_cast
from . import bus_arrays
from . import typerules as tr
from .calls import lower_call
from .context import Marked
from .errors import LoweringError
from .ir import (
    ArrayT,
    BoolOp,
    BoolT,
    Compare,
    Const,
    ConstantIR,
    EnumT,
    Expr,
    Index,
    LocalRead,
    NumT,
    PortRead,
    RegRead,
    Select,
    VType,
    vtype_of,
)
from .operators import OperatorLowering, const_raw
from .parse import _CONSTRUCTS


class ExprLowering(OperatorLowering):
    """Lowers expressions (see the module docstring)."""

    def condition(self, node: ast.expr) -> Expr:
        e = self.expr(node)
        return self.to_bool(e, node)

    def to_bool(self, e: Expr, node: ast.AST) -> Expr:
        if isinstance(e.type, BoolT):
            return e
        if isinstance(e.type, NumT):
            if isinstance(e, Const):
                return Const(BoolT(), bool(e.value))
            return Compare(BoolT(), "!=", e, Const(NumT.const(0), 0))
        raise self.type_error(node, f"a {e.type} has no truth value here")

    def value(self, node: ast.expr) -> Expr | Marked:
        """An expression that may be wrapped in ``wrap``/``saturate`` (store values)."""
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
            f = self.try_static(node.func)
            if f is wrap or f is saturate:
                if len(node.args) != 1:
                    raise self.type_error(node, f"{f.__name__}() takes one value")
                rounding = "exact"
                for kw in node.keywords:
                    if kw.arg != "rounding":
                        raise self.type_error(kw, f"{f.__name__}() has no argument {kw.arg!r}")
                    rounding = str(self.static_value(kw.value))
                return Marked(self.expr(node.args[0]), f.__name__, rounding)
        return self.expr(node)

    def expr(self, node: ast.expr) -> Expr:
        if isinstance(node, ast.Constant):
            return self.constant(node.value, node)
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.BinOp):
            return self.binop(node)
        if isinstance(node, ast.UnaryOp):
            return self.unaryop(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            ops = tuple(self.to_bool(self.expr(v), v) for v in node.values)
            op: Literal["and", "or"] = "and" if isinstance(node.op, ast.And) else "or"
            if all(isinstance(o, Const) for o in ops):
                vals = [bool(cast(Const, o).value) for o in ops]
                return Const(BoolT(), all(vals) if op == "and" else any(vals))
            return BoolOp(BoolT(), op, ops)
        if isinstance(node, ast.IfExp):
            cond = self.condition(node.test)
            a, b = self.expr(node.body), self.expr(node.orelse)
            t = tr.join(a.type, b.type)
            if t is None:
                raise self.type_error(node, f"the two arms have types {a.type} and {b.type}")
            if isinstance(cond, Const):
                return self.widen(a if cond.value else b, t)
            return Select(t, cond, self.widen(a, t), self.widen(b, t))
        if isinstance(node, ast.Subscript):
            if isinstance(node.slice, ast.Slice):
                raise self.unsupported(node.slice, *_CONSTRUCTS[ast.Slice])
            if bus_arrays.element(self, node) is not None:
                port = ast.unparse(node.value)
                raise self.unsupported(node, "bus used as a value",
                                       f"{ast.unparse(node)} is a bus of the array {port}; "
                                       f"read its signals: {port}[i].<signal>")
            base = self.expr(node.value)
            if not isinstance(base.type, ArrayT):
                raise self.type_error(node, f"{ast.unparse(node.value)} is not an array")
            idx = self.index_expr(node.slice, base.type.length)
            if isinstance(base, Const) and isinstance(idx, Const):
                return Const(base.type.element, base.value[idx.value])
            return Index(base.type.element, base, idx, ast.unparse(node.value))
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Yield):
            raise self.unsupported(node, "yield expression",
                                   "yield must be a statement of its own")
        construct = _CONSTRUCTS.get(type(node))
        if construct is not None:
            raise self.unsupported(node, *construct)
        if isinstance(node, (ast.Tuple, ast.List)):
            values = [self.try_static(e) for e in node.elts]
            if values and all(isinstance(v, (int, Fixed)) and not isinstance(v, bool)
                              for v in values):
                return self.constant(tuple(values), node)  # a constant array
            raise self.unsupported(node, "tuple or list",
                                   "tuple/list values are supported as constants (every "
                                   "element a number) and as the whole value stored into "
                                   "an array")
        name = type(node).__name__
        raise self.unsupported(node, name, f"{name} expressions are not supported in on_tick")

    def index_expr(self, node: ast.expr, length: int | None = None) -> Expr:
        if isinstance(node, ast.Slice):
            raise self.unsupported(node, *_CONSTRUCTS[ast.Slice])
        idx = self.expr(node)
        if not isinstance(idx.type, NumT) or idx.type.frac:
            raise self.type_error(node, f"an array index must be an integer, not {idx.type}")
        if isinstance(idx, Const) and length is not None:
            v = int(idx.value)
            if not 0 <= v < length:  # (no count from the end: see ArrayIndexError)
                raise self.type_error(node, f"index {v} is out of range 0..{length - 1}" + (
                    "; SME arrays have no negative indexes" if v < 0 else ""))
            return Const(NumT.const(v), v)
        return idx

    def constant(self, v: Any, node: ast.AST, name: str | None = None) -> Expr:
        if isinstance(v, bool):
            return Const(BoolT(), v, name)
        if isinstance(v, int):
            return Const(NumT.const(v), v, name)
        if isinstance(v, Fixed):
            if v.frac < 0:
                return Const(NumT.const(v.raw << -v.frac), v.raw << -v.frac, name)
            return Const(NumT.const(v.raw, v.frac), v.raw, name)
        if isinstance(v, enum.Enum):
            et = self.enum_type(type(v))
            return Const(et, v, name)
        if isinstance(v, float):
            raise self.unsupported(node, "float", "float values are not supported in on_tick; "
                                   "use a fixed-point constant such as UFix[2, 6](0.75)")
        if isinstance(v, tuple) and v and all(isinstance(x, (int, Fixed)) for x in v):
            elems = [cast(Const, self.constant(x, node)) for x in v]
            t: VType = elems[0].type
            for e in elems[1:]:
                j = tr.join(t, e.type)
                assert j is not None
                t = j
            assert isinstance(t, NumT)
            raws = tuple(const_raw(e, t) for e in elems)
            return Const(ArrayT(t, len(v)), raws, name)
        if isinstance(v, str):
            raise self.unsupported(node, "string", "strings are not supported in on_tick")
        raise self.unsupported(node, "constant", f"the constant {v!r} cannot be used in on_tick")

    def enum_type(self, cls: type[enum.Enum]) -> EnumT:
        et = self.enums.get(cls)
        if et is None:
            sme_cast(cls)
            et = self.enums[cls] = EnumT(cls)
        return et

    def name(self, node: ast.Name) -> Expr:
        frame = self.frame
        if node.id in frame.names:
            name = frame.names[node.id]
            if name in self.ended_loops:
                raise self.unsupported(node, "loop variable read after its loop",
                                       f"'{node.id}' is the variable of the for loop at line "
                                       f"{self.ended_loops[name].line}, read after the loop "
                                       "ended (a hardware loop counter does not keep its last "
                                       "value); copy it to another local inside the loop")
            t = self.local_types.get(name) or self.assigned.get(name)
            if t is None:
                raise self.type_error(node, f"local '{node.id}' is read before it is assigned")
            return LocalRead(t, name)
        if node.id == "self":
            raise self.unsupported(node, "self", "self can only be used as self.<register> or "
                                   "self.<port>.<signal>")
        v = self.lookup(node.id, node)
        if not isinstance(v, enum.Enum) and isinstance(v, (int, Fixed, tuple)):
            return self.named_constant(node.id, v, node)
        return self.constant(v, node, node.id)

    def named_constant(self, name: str, v: Any, node: ast.AST) -> Expr:
        """A module or class constant used by name (kept as a named constant in the VHDL)."""
        e = self.constant(v, node, name)
        assert isinstance(e, Const)
        known = self.constants.get(name)
        if known is not None and (known.type, known.value) != (e.type, e.value):
            raise self.type_error(node, f"'{name}' names two different constants in this "
                                  "process (a class constant and a module constant?); "
                                  "rename one")
        self.constants.setdefault(name, ConstantIR(name, e.type, e.value))
        return e

    def lookup(self, name: str, node: ast.AST) -> Any:
        closure = self.frame.parsed.closure
        if name in closure:
            return closure[name]
        g = self.frame.parsed.globals
        if name in g:
            return g[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise self.type_error(node, f"name '{name}' is not defined")

    def attribute(self, node: ast.Attribute) -> Expr:
        base = node.value
        if is_self(base):
            if node.attr in self.registers:
                return RegRead(vtype_of(self.registers[node.attr].type), node.attr)
            if node.attr in self.ports:
                if self.ports[node.attr].count is not None:
                    raise self.unsupported(node, "array of buses used as a value",
                                           f"self.{node.attr} is an array of buses; read a "
                                           f"signal of one of them: self.{node.attr}[i]."
                                           f"<signal> (len(self.{node.attr}) is its length)")
                raise self.unsupported(node, "port used as a value",
                                       f"self.{node.attr} is a port; read its signals: "
                                       f"self.{node.attr}.<signal>")
            v = getattr(self.cls, node.attr, None)
            if isinstance(v, (int, Fixed, tuple)) and not isinstance(v, enum.Enum):
                return self.named_constant(node.attr, v, node)
            raise self.unsupported(node, "attribute of self",
                                   f"self.{node.attr} is neither a register, a port nor a "
                                   "class constant (int, fixed point or tuple); method calls "
                                   "and other attributes are not supported")
        element = bus_arrays.element(self, base)
        if element is not None:
            return bus_arrays.read(self, node, *element)
        if (isinstance(base, ast.Attribute) and is_self(base.value)
                and base.attr in self.ports):
            port = base.attr
            bus_t = self.ports[port].bus_type
            if self.ports[port].count is not None:
                raise self.unsupported(node, "signal of an array of buses",
                                       f"self.{port} is an array of buses; read the signal of "
                                       f"one of them: self.{port}[i].{node.attr}")
            spec = bus_t.signals().get(node.attr)
            if spec is None:
                raise self.type_error(node, f"bus {bus_t.__name__} of port '{port}' has no "
                                      f"signal {node.attr!r}; its signals are: "
                                      f"{', '.join(bus_t.signals())}")
            own = port in self.out_ports
            if own and self.combinational:
                raise self.unsupported(node, "read of an own output",
                                       f"combinational process reads its own output "
                                       f"self.{port}.{node.attr}; keep the value in a local")
            for e_cls in _enum_classes(spec.type):
                self.enum_type(e_cls)
            return PortRead(vtype_of(spec.type), port, node.attr, own)
        v = self.static_value(node)
        return self.constant(v, node)

    def try_static(self, node: ast.expr) -> Any:
        try:
            return self.static_value(node)
        except LoweringError:
            return MISSING

    def static_value(self, node: ast.expr) -> Any:
        """Evaluate a name/attribute/subscript chain of module-level objects."""
        if isinstance(node, ast.Name):
            if node.id in self.frame.names or node.id == "self":
                raise self.type_error(node, f"{node.id} is not a constant")
            return self.lookup(node.id, node)
        if isinstance(node, ast.Attribute):
            base = self.static_value(node.value)
            try:
                return getattr(base, node.attr)
            except AttributeError:
                raise self.type_error(node, f"{ast.unparse(node)} does not exist") from None
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Tuple):
            return tuple(self.static_value(e) for e in node.elts)
        if isinstance(node, ast.Subscript):
            return self.static_value(node.value)[self.static_value(node.slice)]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.static_value(node.operand)
        raise self.type_error(node, f"{ast.unparse(node)} is not a constant")

    def static_type(self, node: ast.expr) -> SignalType:
        v = self.static_value(node)
        if not is_signal_type(v):
            raise self.type_error(node, f"{ast.unparse(node)} is not a signal type")
        return sme_cast(v)

    # -- calls (sme.lower.calls) --------------------------------------------------------
    def call(self, node: ast.Call) -> Expr:
        """A call: builtins, ``resize``, signal-type constants, inlined helpers."""
        return lower_call(self, node)



def is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _enum_classes(t: SignalType) -> list[type[enum.Enum]]:
    from ..types import ArrayType, EnumType

    if isinstance(t, EnumType):
        return [t.enum_cls]
    if isinstance(t, ArrayType):
        return _enum_classes(t.element)
    return []



__all__ = ["ExprLowering", "is_self"]
