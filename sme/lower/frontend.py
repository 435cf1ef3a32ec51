"""From a process class's ``on_tick`` source to typed IR statements.

Passes, in order (each is a function or class that tests can use on its own):

1. ``parse_function`` (``sme.lower.parse``): source + ``ast`` of a function, with its file
   and line offset.
2. ``flatten_returns``: guard clauses (``if c: ...; return``) become ``if/else`` so that a
   ``return`` only ends a branch (not in generators, where ``return`` ends the pass and
   the tick and becomes a jump to its first state at the next tick).
3. ``Lowerer``: names resolved (ports, registers, locals, module constants, enums, helper
   functions inlined, ``wrap``/``saturate``/``resize``), every expression typed exactly
   (``sme.lower.exprs``), loops lowered (``sme.lower.loops``), calls (``sme.lower.calls``).
   Locals are typed by a fixpoint: each pass types every local as the join of the values
   assigned to it in the previous pass, until nothing changes.
4. ``sme.lower.states.build_states`` (generators only): the explicit state machine.
"""

from __future__ import annotations

import ast
import dataclasses

from ..declare import own_annotations
from . import bus_arrays
from .context import Frame, Marked
from .exprs import is_self
from .ir import (
    ArrayT,
    Assign,
    BoolT,
    Break,
    Const,
    Continue,
    EnumT,
    Expr,
    If,
    LocalRead,
    LocalTarget,
    Match,
    MatchCase,
    NumT,
    PortRead,
    PortTarget,
    RegRead,
    RegTarget,
    Return,
    Stmt,
    Target,
    VType,
    Yield,
    vtype_of,
)
from .loops import LoopLowering
from .parse import _CONSTRUCTS, ParsedFunction, flatten_returns, parse_function


class Lowerer(LoopLowering):
    """Pass 3: lowers one process class (see the module docstring)."""

    # -- entry ------------------------------------------------------------------------
    def lower_body(self, parsed: ParsedFunction) -> list[Stmt]:
        """Lower ``on_tick``'s body."""
        frame = Frame(parsed, {})
        self.frames.append(frame)
        body = parsed.node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        try:
            return self.block(list(body) if self.generator else flatten_returns(list(body)))
        finally:
            self.frames.pop()

    # -- statements -------------------------------------------------------------------
    def block(self, stmts: list[ast.stmt]) -> list[Stmt]:
        out: list[Stmt] = []
        for s in stmts:
            saved, self.pre = self.pre, []
            lowered = self.stmt(s)
            out.extend(self.pre)
            out.extend(lowered)
            self.pre = saved
        return out

    def stmt(self, s: ast.stmt) -> list[Stmt]:
        loc = self.loc(s)
        if isinstance(s, ast.Pass):
            return []
        if isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
                return []
            if isinstance(s.value, ast.Yield):
                if s.value.value is not None:
                    raise self.unsupported(s, "yield with a value",
                                           "yield takes no value in on_tick (a bare yield "
                                           "waits one tick)")
                if len(self.frames) > 1:
                    raise self.unsupported(s, "yield in a helper",
                                           "helper functions cannot yield")
                return [Yield(loc)]
            construct = _CONSTRUCTS.get(type(s.value))  # (await x, yield from g(): named)
            if construct is not None:
                raise self.unsupported(s.value, *construct)
            raise self.unsupported(s, "expression statement",
                                   "an expression statement has no effect in hardware; only "
                                   "assignments, if/match/for/while and yield are supported")
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1:
                return self.chained_assign(s)
            return self.assign(s.targets[0], s.value, s)
        if isinstance(s, ast.AnnAssign):
            if not isinstance(s.target, ast.Name):
                raise self.unsupported(s, "annotated attribute",
                                       "annotations are only allowed on local variables")
            t = self.static_type(s.annotation)
            name = self.local_name(s.target.id, s)
            self.annotated[name] = vtype_of(t)
            self.local_types[name] = vtype_of(t)
            if s.value is None:
                return []
            return self.assign(s.target, s.value, s)
        if isinstance(s, ast.AugAssign):
            op = ast.BinOp(left=_as_load(s.target), op=s.op, right=s.value)
            ast.copy_location(op, s)
            return self.assign(s.target, op, s)
        if isinstance(s, ast.If):
            cond = self.condition(s.test)
            then = self.block(s.body)
            orelse = self.block(s.orelse)
            is_elif = len(s.orelse) == 1 and isinstance(s.orelse[0], ast.If) and len(orelse) == 1
            if is_elif and isinstance(orelse[0], If):
                orelse[0].is_elif = True
            return [If(loc, cond, then, orelse)]
        if isinstance(s, ast.Match):
            return [self.match(s)]
        if isinstance(s, ast.For):
            return self.for_loop(s)
        if isinstance(s, ast.While):
            return self.while_loop(s)
        if isinstance(s, ast.Break):
            return [Break(loc)]
        if isinstance(s, ast.Continue):
            return [Continue(loc)]
        if isinstance(s, ast.Return):
            return self.ret(s)
        construct = _CONSTRUCTS.get(type(s))
        if construct is not None:
            raise self.unsupported(s, *construct)
        name = type(s).__name__
        raise self.unsupported(s, name, f"{name} statements are not supported in on_tick")

    def ret(self, s: ast.Return) -> list[Stmt]:
        frame = self.frame
        if frame.result is None:
            if s.value is not None:
                raise self.unsupported(s, "return with a value",
                                       "on_tick returns nothing (return ends the tick)")
            return [Return(self.loc(s))] if self.generator else []
        if s.value is None:
            raise self.unsupported(s, "return without a value",
                                   "a helper function must return a value")
        value = self.expr(s.value)
        self.note_local(frame.result, value.type, s)
        target_t = self.local_types.get(frame.result, value.type)
        return [Assign(self.loc(s), LocalTarget(frame.result),
                       self.store_convert(value, target_t, None, s))]

    def assign(self, target: ast.expr, value_node: ast.expr, s: ast.stmt) -> list[Stmt]:
        loc = self.loc(s)
        if isinstance(target, ast.Tuple):
            raise self.unsupported(s, "tuple assignment",
                                   "tuple unpacking is not supported; assign one value at a time")
        if isinstance(value_node, (ast.List, ast.Tuple)):
            return self.assign_elements(target, value_node, s)
        value = self.value(value_node)
        index: Expr | None = None
        base = target
        if isinstance(target, ast.Subscript):
            base = target.value
            index = self.index_expr(target.slice)
        tgt, ttype = self.target(base, s)
        if index is not None:
            if not isinstance(ttype, ArrayT):
                raise self.type_error(target, f"{ast.unparse(base)} is not an array")
            ttype = ttype.element
            tgt = dataclasses.replace(tgt, index=index)
        elif isinstance(tgt, LocalTarget):
            vt = value.expr.type if isinstance(value, Marked) else value.type
            if tgt.name not in self.annotated:
                if isinstance(value, Marked):
                    raise self.unsupported(value_node, "wrap of a local",
                                           "wrap()/saturate() need a declared type: annotate "
                                           "the local, e.g. `x: UInt[8] = wrap(...)`")
                self.note_local(tgt.name, vt, s)
                ttype = self.local_types.get(tgt.name, vt)
        marked = value if isinstance(value, Marked) else None
        expr = value.expr if isinstance(value, Marked) else value
        return [Assign(loc, tgt, self.store_convert(expr, ttype, marked, value_node))]

    def chained_assign(self, s: ast.Assign) -> list[Stmt]:
        """``a = b = value``: as Python, every target gets the value, left to right, each
        converted (and checked, wrapped, saturated) for its own type. The value is lowered
        once per target, which is the same as evaluating it once because expressions have
        no side effects; a value that reads a target assigned before it in the chain
        (``x = y = x + 1``) would change, so it is refused."""
        out: list[Stmt] = []
        written: list[Target] = []
        for target in s.targets:
            stmts = self.assign(target, s.value, s)
            if any(isinstance(st, Assign) and _reads(st.value, w)
                   for st in stmts for w in written):
                raise self.unsupported(s, "chained assignment reading its target",
                                       f"the value of `{ast.unparse(s)}` reads a target it "
                                       "assigns first; assign it to one target, then copy "
                                       "that target to the others")
            written.extend(st.target for st in stmts if isinstance(st, Assign))
            out.extend(stmts)
        return out

    def assign_elements(self, target: ast.expr, value_node: ast.List | ast.Tuple,
                        s: ast.stmt) -> list[Stmt]:
        """``array = [e0, e1, ...]``: one store per element. Every element is evaluated
        before the first store (as Python builds the list first), through a hidden local
        when it reads the array being written."""
        loc = self.loc(s)
        if isinstance(target, ast.Subscript):
            raise self.type_error(value_node, "a list cannot be stored into one element")
        tgt, ttype = self.target(target, s)
        if not isinstance(ttype, ArrayT):
            hint = (" (annotate the local with its Array type)"
                    if isinstance(tgt, LocalTarget) else "")
            raise self.type_error(value_node, f"{ast.unparse(target)} is not an array, so it "
                                  f"cannot hold a list{hint}")
        if len(value_node.elts) != ttype.length:
            raise self.type_error(value_node, f"{ast.unparse(target)} holds {ttype.length} "
                                  f"elements; the list has {len(value_node.elts)}")
        out: list[Stmt] = []
        values: list[Expr] = []
        for node in value_node.elts:
            if isinstance(node, ast.Starred):
                raise self.unsupported(node, "starred element", "*x in a list is not supported")
            v = self.value(node)
            marked = v if isinstance(v, Marked) else None
            e = self.store_convert(v.expr if isinstance(v, Marked) else v, ttype.element,
                                   marked, node)
            if _reads(e, tgt):
                tmp = self.hidden_local("elem", ttype.element, node)
                out.append(Assign(loc, LocalTarget(tmp), e))
                e = LocalRead(ttype.element, tmp)
            values.append(e)
        for i, e in enumerate(values):
            out.append(Assign(loc, dataclasses.replace(tgt, index=Const(NumT.const(i), i)), e))
        return out

    def target(self, node: ast.expr, s: ast.stmt) -> tuple[Target, VType]:
        if isinstance(node, ast.Name):
            name = self.local_name(node.id, node)
            t = self.local_types.get(name) or self.annotated.get(name)
            return LocalTarget(name), t if t is not None else BoolT()
        if isinstance(node, ast.Attribute) and is_self(node.value):
            if node.attr in self.registers:
                return RegTarget(node.attr), vtype_of(self.registers[node.attr].type)
            if node.attr in self.ports:
                raise self.unsupported(node, "assignment to a port",
                                       f"self.{node.attr} is a port; write its signals: "
                                       f"self.{node.attr}.<signal> = value")
            raise self.unsupported(node, "assignment to an attribute",
                                   f"self.{node.attr} is not a declared register"
                                   + _plain_field_hint(self.cls, node.attr))
        element = bus_arrays.element(self, node.value) if isinstance(node, ast.Attribute) \
            else None
        if element is not None:
            assert isinstance(node, ast.Attribute)
            return bus_arrays.target(self, node, *element)
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and is_self(node.value.value) and node.value.attr in self.ports):
            port = node.value.attr
            if self.ports[port].count is not None:
                raise self.unsupported(node, "signal of an array of buses",
                                       f"self.{port} is an array of buses; write the signal of "
                                       f"one of them: self.{port}[i].{node.attr} = value")
            spec = self.ports[port].bus_type.signals().get(node.attr)
            if spec is None:
                raise self.type_error(node, f"bus {self.ports[port].bus_type.__name__} of port "
                                      f"'{port}' has no signal {node.attr!r}")
            if port not in self.out_ports:
                raise self.unsupported(node, "write to an input port",
                                       f"{self.cls.__qualname__} cannot write self.{port}."
                                       f"{node.attr}: port '{port}' is an In port (a process "
                                       "writes only its Out[...] buses)")
            return PortTarget(port, node.attr), vtype_of(spec.type)
        raise self.unsupported(node, "assignment target",
                               f"cannot assign to {ast.unparse(node)}")

    def match(self, s: ast.Match) -> Stmt:
        subject = self.expr(s.subject)
        if not isinstance(subject.type, EnumT):
            raise self.unsupported(s.subject, "match on a non-enum",
                                   f"match needs an enum value, and {ast.unparse(s.subject)} "
                                   f"is {_spelled(subject.type)}; compare it with if/elif "
                                   "instead")
        et = subject.type
        cases: list[MatchCase] = []
        seen: set[str] = set()
        for c in s.cases:
            if c.guard is not None:
                raise self.unsupported(c.guard, "match guard",
                                       "case guards (case X if ...) are not supported")
            members = self.pattern(c.pattern, et)
            if members is not None:
                members = tuple(m for m in members if m not in seen)
                seen.update(members)
                if not members:
                    continue
            cases.append(MatchCase(members, self.block(c.body), self.loc(c.pattern)))
            if members is None:
                break
        return Match(self.loc(s), subject, cases)

    def pattern(self, p: ast.pattern, et: EnumT) -> tuple[str, ...] | None:
        if isinstance(p, ast.MatchAs) and p.pattern is None and p.name is None:
            return None
        if isinstance(p, ast.MatchOr):
            out: list[str] = []
            for q in p.patterns:
                sub = self.pattern(q, et)
                if sub is None:
                    raise self.unsupported(q, "wildcard in or-pattern", "'_' inside | pattern")
                out.extend(sub)
            return tuple(out)
        if isinstance(p, ast.MatchValue):
            v = self.static_value(p.value)
            if isinstance(v, et.enum_cls):
                return (v.name,)
            raise self.type_error(p, f"case {ast.unparse(p.value)} is not a member of {et.name}")
        raise self.unsupported(p, "match pattern",
                               "only enum members, '|' of members and '_' are supported as "
                               "case patterns")


def _reads(e: object, tgt: Target) -> bool:
    """Whether the expression ``e`` reads the storage ``tgt`` writes."""
    if isinstance(tgt, PortTarget) and isinstance(e, PortRead):
        return (e.port, e.signal) == (tgt.port, tgt.signal)
    if isinstance(tgt, RegTarget) and isinstance(e, RegRead):
        return e.name == tgt.name
    if isinstance(tgt, LocalTarget) and isinstance(e, LocalRead):
        return e.name == tgt.name
    if isinstance(e, Expr):
        return any(_reads(v, tgt) for v in vars(e).values())
    if isinstance(e, tuple):
        return any(_reads(v, tgt) for v in e)
    return False


def _as_load(node: ast.expr) -> ast.expr:
    new = ast.parse(ast.unparse(node), mode="eval").body
    ast.copy_location(new, node)
    for n in ast.walk(new):
        ast.copy_location(n, node)
    return new


__all__ = ["Lowerer", "ParsedFunction", "flatten_returns", "parse_function"]


def _spelled(t: VType) -> str:
    """``t`` as the user's source would name it, for messages (``an integer (UInt[8])``)."""
    if isinstance(t, BoolT):
        return "a Bool"
    if isinstance(t, NumT):
        what = "an integer" if t.frac == 0 else "a fixed-point number"
        if t == NumT.of_width(t.width, t.signed, t.frac):
            name = ("Int" if t.signed else "UInt") if t.frac == 0 else (
                "SFix" if t.signed else "UFix")
            size = t.width if t.frac == 0 else f"{t.width - t.frac}, {t.frac}"
            return f"{what} ({name}[{size}])"
        return what
    if isinstance(t, ArrayT):
        return "an array"
    return f"a {t}"


def _plain_field_hint(cls: type, name: str) -> str:
    """Why ``name`` is no register when the class annotates it with a Python type
    (``count: int = 0``, as C#'s ``int count = 0;``), and how to declare one."""
    ann = own_annotations(cls).get(name)
    if not isinstance(ann, type) or ann not in (int, bool):
        return ""
    example = "Bool = False" if ann is bool else "Int[32] = 0"
    return (f": its annotation {ann.__name__} is not a signal type, so it is a class "
            f"constant; declare a register with one: {name}: {example}")
