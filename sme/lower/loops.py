"""Pass 3, loops: ``for`` over ``range(...)`` or an array, ``while`` in generators, and
``break``/``continue``.

A ``for`` loop that does not yield becomes a ``For`` with static bounds, which both
backends turn into a loop of the same shape (VHDL ``for … loop`` with ``exit``/``next``).
Its ``stop`` may be read from a bus or register (``range(self.cfg.n)``): the static bounds
then cover every value the stop's type allows, and a guard ends the loop at the value read
(captured once before the loop, as Python evaluates ``range`` once).

In a generator, a ``for`` loop that yields (or returns) becomes a ``While`` over a hidden
counter: ``k = start; while k < stop: i = k; body; k += step`` (``continue`` runs the
increment), which ``sme.lower.states`` turns into states. A ``while`` loop is only
accepted in a generator and must yield: a loop that may run without yielding would be
unbounded logic in one clock tick.
"""

from __future__ import annotations

import ast
from typing import Literal

from .exprs import ExprLowering
from .ir import (
    ArrayT,
    Assign,
    BinOp,
    BoolOp,
    BoolT,
    Compare,
    Const,
    Convert,
    Expr,
    For,
    Index,
    LocalRead,
    LocalTarget,
    NumT,
    PortRead,
    RegRead,
    Stmt,
    While,
)

MAX_GUARDED_PASSES = 4096
"""A ``for`` loop that does not yield and whose stop is read at run time may make at most
this many passes (the hardware holds one copy of the body per pass)."""


def _contains(nodes: list[ast.stmt], kinds: tuple[type, ...]) -> bool:
    return any(isinstance(n, kinds) for s in nodes for n in ast.walk(s))


def _builtin_call(node: ast.expr, name: str) -> bool:
    """Whether ``node`` is a call of the builtin ``name`` (by name, as ``range`` is)."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == name)


class LoopLowering(ExprLowering):
    """Lowers loops (see the module docstring)."""

    def for_loop(self, s: ast.For) -> list[Stmt]:
        """``for name in range(...)``, ``for name in <array>``, ``for i, name in
        enumerate(<array>)``, ``reversed(...)`` of a constant range or of an array."""
        if s.orelse:
            raise self.unsupported(s, "for-else", "for ... else is not supported")
        index: str | None = None
        if _builtin_call(s.iter, "enumerate"):
            assert isinstance(s.iter, ast.Call)
            pair = s.target
            if (len(s.iter.args) != 1 or s.iter.keywords or not isinstance(pair, ast.Tuple)
                    or len(pair.elts) != 2
                    or not all(isinstance(e, ast.Name) for e in pair.elts)):
                raise self.unsupported(s.iter, "enumerate", "enumerate is supported as "
                                       "`for i, e in enumerate(<array>)` (no start)")
            index = pair.elts[0].id  # type: ignore[attr-defined]
            s = ast.For(target=pair.elts[1], iter=s.iter.args[0], body=s.body, orelse=[])
            ast.copy_location(s, s.target)
        if not isinstance(s.target, ast.Name):
            raise self.unsupported(s.target, "for target", "the for target must be one name "
                                   "(or `i, e` with enumerate)")
        fsm = self.generator and len(self.frames) == 1 and _contains(
            s.body, (ast.Yield, ast.Return))
        if not fsm and _contains(s.body, (ast.Return,)):
            raise self.unsupported(s, "return inside a loop",
                                   "return inside a for loop is not supported here; end the "
                                   "loop with break and test a flag after it")
        it = s.iter
        backwards = _builtin_call(it, "reversed")
        if backwards:
            assert isinstance(it, ast.Call)
            if len(it.args) != 1 or it.keywords:
                raise self.type_error(it, "reversed() takes one range or array")
            it = it.args[0]
            if index is not None:
                raise self.unsupported(s.iter, "enumerate of reversed",
                                       "enumerate(reversed(...)) is not supported; loop "
                                       "with `for i in range(n)` and read a[n - 1 - i]")
        element: Expr | None = None
        if _builtin_call(it, "range") and 1 <= len(it.args) <= 3:  # type: ignore[attr-defined]
            assert isinstance(it, ast.Call)
            start, stop, step, limit = self._range(it)
            if backwards and limit is not None:
                raise self.unsupported(it, "reversed range read at run time",
                                       "reversed(range(...)) needs constant bounds; count "
                                       "down with range(n - 1, -1, -1) over a constant n")
        else:
            if index is not None and _builtin_call(it, "range"):
                raise self.unsupported(it, "enumerate of a range",
                                       "enumerate takes an array here; over a range, the "
                                       "index is the loop variable")
            element = self.expr(it)
            if not isinstance(element.type, ArrayT):
                raise self.unsupported(it, "for over a non-range",
                                       "for loops run over range(...) or over an array")
            start, stop, step, limit = 0, element.type.length, 1, None
        r = range(start, stop, step)
        if backwards:
            r = r[::-1]
        if len(r) == 0:
            return []
        vt = NumT(min(r[0], r[-1]), max(r[0], r[-1]))
        if fsm:
            return self._fsm_for(s, r, vt, limit, element, index)
        if limit is not None and len(r) > MAX_GUARDED_PASSES:
            raise self.unsupported(it, "for over a wide run-time range",
                                   f"this loop may make {len(r)} passes in one tick (its stop "
                                   f"is a {limit.type}); bound it, e.g. range(min(n, 64)), or "
                                   "yield inside it")
        py = s.target.id
        counter = None
        if index is not None:
            counter = self.loop_var_name(index, s)
        elif element is not None:
            counter = self.hidden_local(f"{py}_index", vt, s)
        var = counter if counter is not None else self.loop_var_name(py, s.target)
        self.local_types[var] = vt
        self.loop_vars[var] = vt
        self.ended_loops.pop(var, None)
        pre, guard = self._guard(s, var, vt, step, limit)
        body: list[Stmt] = []
        if element is not None:
            name = self.local_name(py, s.target)
            assert isinstance(element.type, ArrayT)
            self.note_local(name, element.type.element, s)
            t = self.local_types.get(name, element.type.element)
            value = Index(element.type.element, element, LocalRead(vt, var))
            body.append(Assign(self.loc(s), LocalTarget(name), self.store_convert(
                value, t, None, s)))
        body += self.block(s.body)
        self.ended_loops[var] = self.loc(s)
        return [*pre, For(self.loc(s), var, r.start, r.stop, r.step, vt, body, guard)]

    def loop_var_name(self, py: str, node: ast.AST) -> str:
        """A new IR name for the hardware loop counter ``py`` (a VHDL ``for`` variable,
        which exists only inside its loop), never shared with a local of the same Python
        name assigned before or after the loop."""
        self.frame.names.pop(py, None)
        return self.local_name(py, node)

    def _range(self, it: ast.Call) -> tuple[int, int, int, Expr | None]:
        """``start, stop, step`` of ``range(...)``; a stop read at run time is returned as
        the limit expression, with the static stop covering every value it can have."""
        args = it.args
        stop_at = 0 if len(args) == 1 else 1
        values: list[int] = []
        limit: Expr | None = None
        for k, a in enumerate(args):
            e = self.expr(a)
            if isinstance(e, Const) and isinstance(e.type, NumT) and e.type.frac == 0:
                values.append(int(e.value))
            elif k == stop_at and isinstance(e.type, NumT) and e.type.frac == 0:
                limit = e
                values.append(0)
            else:
                raise self.unsupported(a, "for over a non-constant range",
                                       "range(...) start and step must be constants; the stop "
                                       "may be an integer read from a bus or register")
        start, stop, step = (0, values[0], 1) if len(values) == 1 else (
            values[0], values[1], values[2] if len(values) == 3 else 1)
        if step == 0:
            raise self.type_error(it, "range() step must not be zero")
        if limit is not None:
            lt = limit.type
            assert isinstance(lt, NumT)
            stop = lt.hi if step > 0 else lt.lo
        return start, stop, step, limit

    def _stable(self, limit: Expr) -> bool:
        """Whether ``limit`` keeps its value during the tick (a constant or an input)."""
        return isinstance(limit, Const) or (isinstance(limit, PortRead)
                                            and not limit.own_output)

    def _guard(self, s: ast.For, var: str, vt: NumT, step: int, limit: Expr | None
               ) -> tuple[list[Stmt], Expr | None]:
        """Statements capturing the run-time stop before the loop, and the loop's guard."""
        if limit is None:
            return [], None
        pre: list[Stmt] = []
        if not self._stable(limit):
            name = self.hidden_local(f"{var}_stop", limit.type, s)
            pre.append(Assign(self.loc(s), LocalTarget(name), limit))
            limit = LocalRead(limit.type, name)
        return pre, Compare(BoolT(), "<" if step > 0 else ">", LocalRead(vt, var), limit)

    def _fsm_for(self, s: ast.For, r: range, vt: NumT, limit: Expr | None,
                 element: Expr | None, index: str | None = None) -> list[Stmt]:
        """A generator's ``for`` that yields: a ``While`` over a hidden counter (and, for
        ``enumerate``, the index local ``index`` set from it on each pass)."""
        assert isinstance(s.target, ast.Name)
        loc = self.loc(s)
        last = r[-1] + r.step
        kt = NumT(min(r[0], last), max(r[0], last))
        k = self.hidden_local(f"{s.target.id}_count", kt, s)
        pre: list[Stmt] = [Assign(loc, LocalTarget(k), Const(kt, r.start))]
        bound: Expr = Const(NumT.const(r.stop), r.stop)
        if limit is not None:  # read once at the loop's start (the bus changes as it yields)
            name = self.hidden_local(f"{s.target.id}_stop", limit.type, s)
            pre.append(Assign(loc, LocalTarget(name), limit))
            limit = LocalRead(limit.type, name)
            bound = limit
        op: Literal["<", ">"] = "<" if r.step > 0 else ">"
        cond: Expr = Compare(BoolT(), op, LocalRead(kt, k), bound)
        if limit is not None:  # the counter's type ends at the static bound too
            static = Compare(BoolT(), op, LocalRead(kt, k), Const(NumT.const(r.stop), r.stop))
            cond = BoolOp(BoolT(), "and", (static, cond))
        if element is not None and not isinstance(element, RegRead):
            # Python iterates over the value read at the loop's start (a bus holds a new
            # one at the next tick); a register array is iterated live, as a list is.
            items = self.hidden_local(f"{s.target.id}_items", element.type, s)
            pre.append(Assign(loc, LocalTarget(items), element))
            element = LocalRead(element.type, items)
        head: list[Stmt] = []
        if element is None:
            var = self.local_name(s.target.id, s.target)
            self.note_local(var, vt, s)
            t = self.local_types.get(var, vt)
            head.append(Assign(loc, LocalTarget(var), self.store_convert(
                Convert(vt, LocalRead(kt, k)), t, None, s)))
        else:
            assert isinstance(element.type, ArrayT)
            var = self.local_name(s.target.id, s.target)
            self.note_local(var, element.type.element, s)
            t = self.local_types.get(var, element.type.element)
            idx = Convert(vt, LocalRead(kt, k))
            head.append(Assign(loc, LocalTarget(var), self.store_convert(
                Index(element.type.element, element, idx), t, None, s)))
            if index is not None:
                ivar = self.local_name(index, s)
                self.note_local(ivar, vt, s)
                it = self.local_types.get(ivar, vt)
                head.append(Assign(loc, LocalTarget(ivar), self.store_convert(
                    Convert(vt, LocalRead(kt, k)), it, None, s)))
        body = head + self.block(s.body)
        total = NumT(kt.lo + r.step, kt.hi + r.step)
        inc = Convert(kt, BinOp(total, "+", LocalRead(kt, k), Const(NumT.const(r.step),
                                                                     r.step)))
        return [*pre, While(loc, cond, body, [Assign(loc, LocalTarget(k), inc)],
                            test_first=limit is not None)]

    def while_loop(self, s: ast.While) -> list[Stmt]:
        """``while cond:`` in a generator; the body must yield."""
        if s.orelse:
            raise self.unsupported(s, "while-else", "while ... else is not supported")
        if not self.generator or len(self.frames) > 1:
            raise self.unsupported(s, "while loop",
                                   "while loops are supported in generator processes (an "
                                   "on_tick that yields), where each pass yields; here use "
                                   "for over a range")
        if not _contains(s.body, (ast.Yield,)):
            raise self.unsupported(s, "while loop without yield",
                                   "a while loop that does not yield would run without bound "
                                   "in one clock tick; yield inside it, or use for over a "
                                   "range")
        cond = self.condition(s.test)
        return [While(self.loc(s), cond, self.block(s.body))]


__all__ = ["MAX_GUARDED_PASSES", "LoopLowering"]
