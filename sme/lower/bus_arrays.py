"""Arrays of buses in a process body: ``self.<port>[i].<signal>`` of a port declared
``In[Array[B, n]]`` or ``Out[Array[B, n]]`` (C#'s ``[InputBus] B[] port``).

The IR sees such a port as a port whose signals are arrays of ``n`` elements, element ``k``
being the signal of bus ``k``: ``self.ins[i].value`` reads ``Index(PortRead(ins.value), i)``
and ``self.outs[i].value = v`` writes ``PortTarget("outs", "value", index=i)``, so the
backends index it as they index an Array signal (in VHDL, ports of array type, as C#'s
``_ARRAY`` ports). ``len(self.ins)`` is the constant ``n``. A bus of an array of buses has
scalar signals only (an Array signal would make an array of arrays).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..types import ArrayType
from .context import LowererBase
from .ir import ArrayT, Const, EnumT, Expr, Index, NumT, PortRead, PortTarget, VType, vtype_of

if TYPE_CHECKING:
    from .exprs import ExprLowering


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def length(lw: LowererBase, node: ast.expr) -> Expr | None:
    """``len(self.<port>)`` of an array of buses: its length, a constant (else None)."""
    if isinstance(node, ast.Attribute) and _is_self(node.value) and node.attr in lw.ports:
        n = lw.ports[node.attr].count
        if n is not None:
            return Const(NumT.const(n), n)
    return None


def element(lw: ExprLowering, node: ast.expr) -> tuple[str, Expr] | None:
    """``(port, index)`` when ``node`` is ``self.<port>[index]``, a bus of an array of
    buses, else None."""
    if not (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
            and _is_self(node.value.value) and node.value.attr in lw.ports
            and lw.ports[node.value.attr].count is not None):
        return None
    port = node.value.attr
    spec = lw.ports[port]
    arrays = [n for n, s in spec.bus_type.signals().items() if isinstance(s.type, ArrayType)]
    if arrays:
        raise lw.unsupported(node, "array of buses with Array signals",
                             f"self.{port} is an array of {spec.bus_type.__name__} buses, "
                             f"whose signal {arrays[0]!r} is an Array: an array of arrays is "
                             "not supported; give the buses scalar signals")
    return port, lw.index_expr(node.slice, spec.count)


def signal_type(lw: ExprLowering, node: ast.Attribute, port: str) -> VType:
    """The type of signal ``node.attr`` of the buses of ``port`` (an error naming the
    signals when they have none of that name)."""
    bus_t = lw.ports[port].bus_type
    spec = bus_t.signals().get(node.attr)
    if spec is None:
        raise lw.type_error(node, f"bus {bus_t.__name__} of port '{port}' has no signal "
                            f"{node.attr!r}; its signals are: {', '.join(bus_t.signals())}")
    return vtype_of(spec.type)


def read(lw: ExprLowering, node: ast.Attribute, port: str, index: Expr) -> Expr:
    """``self.<port>[index].<signal>``: element ``index`` of the port's array signal."""
    et = signal_type(lw, node, port)
    own = port in lw.out_ports
    if own and lw.combinational:
        raise lw.unsupported(node, "read of an own output",
                             f"combinational process reads its own output "
                             f"self.{port}[i].{node.attr}; keep the value in a local")
    if isinstance(et, EnumT):
        lw.enum_type(et.enum_cls)
    count = lw.ports[port].count
    assert count is not None
    return Index(et, PortRead(ArrayT(et, count), port, node.attr, own), index, f"self.{port}")


def target(lw: ExprLowering, node: ast.Attribute, port: str, index: Expr
           ) -> tuple[PortTarget, VType]:
    """``self.<port>[index].<signal> = ...``: a store into element ``index`` of the port's
    array signal, and the element's type."""
    et = signal_type(lw, node, port)
    if port not in lw.out_ports:
        raise lw.unsupported(node, "write to an input port",
                             f"{lw.cls.__qualname__} cannot write self.{port}[i].{node.attr}: "
                             f"port '{port}' is an In port (a process writes only its "
                             "Out[...] buses)")
    return PortTarget(port, node.attr, index), et
