"""State shared by the passes that lower one process class (``sme.lower.frontend``):
the class's declarations, the local variables found so far, the function being lowered
(``on_tick`` or an inlined helper) and how errors point at the Python source.

``LowererBase`` holds that state and declares the operations the expression, call and
statement lowerings use of each other, so that each lives in its own module without an
import circle: ``context`` ← ``calls`` ← ``exprs`` ← ``frontend``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from . import typerules as tr
from .errors import LoweringTypeError, UnsupportedConstructError
from .ir import ConstantIR, EnumT, Expr, HelperIR, Loc, NumT, Stmt, VType
from .parse import ParsedFunction

MAX_FIXPOINT_PASSES = 12
"""Passes of the local-type fixpoint before a growing local is reported."""
MAX_INLINE_DEPTH = 8
"""Helper calls nested deeper than this are refused (recursion)."""


class Marked:
    """``wrap(x)``/``saturate(x)``: only valid as the whole value of a store."""

    def __init__(self, expr: Expr, overflow: str, rounding: str) -> None:
        self.expr, self.overflow, self.rounding = expr, overflow, rounding


@dataclass
class Frame:
    """One function being lowered: ``on_tick`` itself or an inlined helper."""

    parsed: ParsedFunction
    names: dict[str, str]          # Python local name -> IR local name
    result: str | None = None      # IR local receiving ``return`` values (helpers)


class LowererBase:
    """The state of lowering one process class, and the operations every pass shares."""

    def __init__(self, cls: type, local_types: dict[str, VType] | None = None) -> None:
        from ..process import Direction

        self.cls = cls
        self.ports = {n: p for n, p in cls._sme_ports.items()}  # type: ignore[attr-defined]
        self.out_ports = {n for n, p in self.ports.items() if p.direction is Direction.OUT}
        self.registers = cls._sme_registers  # type: ignore[attr-defined]
        self.combinational: bool = cls._sme_combinational  # type: ignore[attr-defined]
        self.generator: bool = cls._sme_generator  # type: ignore[attr-defined]
        self.local_types: dict[str, VType] = dict(local_types or {})
        self.assigned: dict[str, VType] = {}
        self.annotated: dict[str, VType] = {}
        self.local_locs: dict[str, Loc] = {}
        self.constants: dict[str, ConstantIR] = {}
        self.helpers: dict[str, HelperIR] = {}
        self.enums: dict[type, EnumT] = {}
        self.pre: list[Stmt] = []
        self.frames: list[Frame] = []
        self.taken: set[str] = set(self.registers) | set(self.ports)
        self.loop_vars: dict[str, NumT] = {}
        self.ended_loops: dict[str, Loc] = {}
        """Loop variables of finished ``for`` loops that do not yield (not readable)."""
        self.hidden = 0
        """Hidden locals made so far (loop counters and limits)."""

    # -- entry ------------------------------------------------------------------------

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    def loc(self, node: ast.AST) -> Loc:
        return self.frame.parsed.loc(node)

    def unsupported(self, node: ast.AST, construct: str, message: str) -> UnsupportedConstructError:
        return UnsupportedConstructError(self.loc(node), construct, message)

    def type_error(self, node: ast.AST, message: str) -> LoweringTypeError:
        return LoweringTypeError(self.loc(node), message)


    def note_local(self, name: str, t: VType, node: ast.AST) -> None:
        prev = self.assigned.get(name)
        if prev is None:
            self.assigned[name] = t
            self.local_locs.setdefault(name, self.loc(node))
            return
        j = tr.join(prev, t)
        if j is None:
            raise self.type_error(node, f"local '{name}' holds a {prev} elsewhere and a {t} "
                                  "here; a local has one type")
        self.assigned[name] = j


    def local_name(self, py: str, node: ast.AST) -> str:
        """The IR name of the local ``py`` assigned at ``node``. A ``for`` loop's variable
        (a hardware loop counter, gone when its loop ends) assigned again after its loop
        becomes a new local with a new name."""
        frame = self.frame
        mapped = frame.names.get(py)
        if mapped is not None and mapped not in self.ended_loops:
            if mapped in self.loop_vars:
                raise self.unsupported(node, "assignment to a loop variable",
                                       f"the loop variable '{py}' cannot be assigned")
            return mapped
        base = py if len(self.frames) == 1 else f"{frame.parsed.func.__name__}_{py}"
        name, n = base, 1
        while name in self.taken or name.lower() in {t.lower() for t in self.taken}:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        frame.names[py] = name
        return name


    def hidden_local(self, base: str, t: VType, node: ast.AST) -> str:
        """A new local the Python code does not name (``_<base>_<n>``, unique)."""
        self.hidden += 1
        name = f"{base}_{self.hidden}"
        while name.lower() in {n.lower() for n in self.taken}:
            self.hidden += 1
            name = f"{base}_{self.hidden}"
        self.taken.add(name)
        self.note_local(name, t, node)
        self.local_types.setdefault(name, t)
        return name

    # -- implemented by the passes (sme.lower.exprs, sme.lower.frontend) ---------------
    def block(self, stmts: list[ast.stmt]) -> list[Stmt]:
        """Lower a list of statements."""
        raise NotImplementedError

    def expr(self, node: ast.expr) -> Expr:
        """Lower an expression."""
        raise NotImplementedError

    def to_bool(self, e: Expr, node: ast.AST) -> Expr:
        """``e`` as a Bool (numbers compare with 0)."""
        raise NotImplementedError

    def try_static(self, node: ast.expr) -> Any:
        """The module-level object ``node`` names, or ``MISSING``."""
        raise NotImplementedError

    def static_value(self, node: ast.expr) -> Any:
        """Evaluate a name/attribute/subscript chain of module-level objects."""
        raise NotImplementedError

    def constant(self, v: Any, node: ast.AST, name: str | None = None) -> Expr:
        """The IR constant of a Python value."""
        raise NotImplementedError

    def static_type(self, node: ast.expr) -> Any:
        """The signal type ``node`` names."""
        raise NotImplementedError

    def store_convert(self, e: Expr, t: VType, marked: Marked | None, node: ast.AST) -> Expr:
        """``e`` converted for storing into a ``t``."""
        raise NotImplementedError


__all__ = ["MAX_FIXPOINT_PASSES", "MAX_INLINE_DEPTH", "Frame", "LowererBase", "Marked"]
_ = (tr, ConstantIR, EnumT, HelperIR)
