"""Annotated locals and array indexes checked in the interpreter, as the other backends
check them.

A local with a signal type (``n: UInt[3] = 0``) is a promise about its range: the compiled
backend and the VHDL translation give it that type, and a value that does not fit is an
error unless ``wrap``/``saturate`` says the overflow is meant. The interpreter runs the
process's own ``on_tick``, where Python ignores a local's annotation, so it would go on
with a value no other backend can hold. :func:`checked_on_tick` gives it a copy of
``on_tick`` that checks: after every statement that binds an annotated local, the local
goes through :func:`store_local` (what the compiled backend does for such a store, with
its very error), at the statement's own line.

Python also counts a negative index from the end of a list; an SME array has no such
index (the VHDL stops on it). So every index read, ``a[i]``, becomes
``a[check_index(a, i, self, "a", "file:line")]``: :func:`check_index` raises the compiled
backend's ``ArrayIndexError`` for an index outside ``0..len(a)-1``. (Writes are checked by
the arrays a process writes, ``sme.bus.CheckedArray``.)

A generator's ``while`` loop whose test reads a register or a local passes the front end's
check (``sme.lower.cycles``) and may still never reach a yield within a tick, and a
``simulation_only`` process (any Python, run by the interpreter alone) may loop without
end, generator or not; the process's own code would then spin for ever. So each ``while``
loop (and a ``simulation_only`` process's ``for`` over an iterable without a length, such
as ``itertools.count()``) counts its passes (in a local set to 0 where the loop is entered
and after every ``yield`` in it), and the ``cycles.MAX_STEPS``-th pass within one tick
raises the ``SimulationError`` the compiled backend raises (:func:`spin`), naming the
loop's ``file:line``: one addition and one comparison per loop pass. A ``for`` over a
range, a list or an array ends, however long, and is not stopped.
"""

from __future__ import annotations

import ast
import copy
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ArrayIndexError, SimulationError
from .overflow import Overflowing, resize
from .srcloc import SrcLoc

CHECK = "__sme_store_local__"
"""The name the rewritten ``on_tick`` calls its check by (a cell of its closure)."""
INDEX = "__sme_check_index__"
"""The name the rewritten ``on_tick`` calls ``check_index`` by."""
SPIN = "__sme_spin__"
"""The name the rewritten ``on_tick`` calls :func:`spin` by."""
STEPS = "__sme_steps_"
"""The prefix of the locals counting a generator's loop passes (one per loop)."""
_OUTER = "__sme_checked_locals__"


def store_local(t: Any, value: Any, name: str = "", proc: Any = None, where: str = "") -> Any:
    """``value`` as stored into the local ``name`` annotated ``t`` (in ``proc``, at
    ``where``): converted, wrapped or saturated when it is so marked, else the
    ``ValueError`` of :func:`local_misfit` when it does not fit."""
    try:
        if type(value) is Overflowing:
            return resize(value.value, t, value.rounding, value.overflow)
        return resize(value, t)
    except ValueError as exc:
        if not name:
            raise
        who = proc.describe() if hasattr(proc, "describe") else "on_tick"
        raise local_misfit(name, exc, who, at_line(where)) from None


def at_line(where: str) -> str:
    """``file:line`` as errors name the line of a store (``SrcLoc``: relative to the
    working folder when inside it), in every backend."""
    file, _, line = where.rpartition(":")
    return str(SrcLoc(file, int(line))) if file and line.isdigit() else where


def local_misfit(name: str, exc: ValueError, who: str, where: str) -> ValueError:
    """The error of a value that does not fit the annotated local ``name`` (``exc``:
    ``resize``'s), naming the local, the process and the ``file:line`` of the store, in
    every backend."""
    text = str(exc).removeprefix("resize: ")
    hint = ("; if the overflow is deliberate, write wrap(...) or saturate(...)"
            if "out of range" in text else "")
    return ValueError(f"local {name}: {text}; stored by {who} at {where}{hint}")


def check_index(array: Any, index: Any, proc: Any, text: str, where: str) -> Any:
    """``index``, when it is one of ``array``'s (``0..len(array)-1``); else the
    ``ArrayIndexError`` the compiled backend raises for it. Anything but a list or a tuple
    (a type such as ``UInt[8]``, an array without a value yet) passes as it is."""
    if isinstance(array, list | tuple) and not 0 <= index < len(array):
        raise ArrayIndexError(index_message(text, index, len(array), proc.describe(), where))
    return index


def spin(proc: Any, where: str) -> None:
    """Stop a tick that went ``MAX_STEPS`` times round the loop at ``where``."""
    from .lower.cycles import spin_message

    raise SimulationError(spin_message(proc.describe(), where))


def index_message(text: str, index: int, length: int, who: str, where: str) -> str:
    """The message of an index read outside an array, in every backend."""
    return f"{text}[{index}]: index out of range 0..{length - 1} (read by {who} at {where})"


def checked_on_tick(func: Callable[..., Any], loops_only: bool = False
                    ) -> Callable[..., Any] | None:
    """``func`` (a process's ``on_tick``) with its annotated locals and index reads
    checked, or None when it has neither. Raises the front end's ``LoweringError`` when its
    source cannot be read.

    ``loops_only`` (a ``simulation_only`` process: any Python, which no other backend runs,
    so neither its locals' annotations nor its indexes are SME's) only counts the passes of
    its ``while`` and ``for`` loops (a ``for`` over an endless iterator), generator or not:
    a loop that is never left stops the tick with the error of :func:`spin` instead of
    hanging the interpreter."""
    from .lower.parse import parse_function  # (the front end is loaded when a design is)

    parsed = parse_function(func)
    own = _own_nodes(parsed.node.body)
    annotations = {} if loops_only else {
        node.target.id: node.annotation for node in own
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    kinds: tuple[type[ast.While | ast.For], ...] = \
        (ast.While, ast.For) if loops_only else (ast.While,)  # (any iterator: endless)
    loops = any(isinstance(n, kinds) for n in own) \
        and (loops_only or any(isinstance(n, ast.Yield | ast.YieldFrom) for n in own))
    if not annotations and not loops and (
            loops_only or not any(isinstance(n, ast.Subscript) for n in own)):
        return None
    node = parsed.node
    if node.args.args:  # (a method's first parameter: the process, for the message)
        proc = node.args.args[0].arg
        if not loops_only:
            indexes = _Indexes(proc, parsed.file, parsed.line0)
            node.body = [indexes.visit(s) for s in node.body]
        if loops:
            node.body = _counted(node.body, proc, parsed.file, parsed.line0, kinds=kinds)
    proc_arg = node.args.args[0].arg if node.args.args else None
    node.body = _checked(node.body, annotations, _Where(proc_arg, parsed.file, parsed.line0))
    node.decorator_list = []
    code = getattr(func, "__code__", None)
    free = list(code.co_freevars) if code else []
    if "__class__" in free:  # super(): the copy, outside the class, must keep that cell
        node.body.insert(0, ast.Expr(ast.Name(id="__class__", ctx=ast.Load())))
    outer = ast.FunctionDef(
        name=_OUTER, args=ast.arguments(posonlyargs=[], args=[ast.arg(arg=n) for n in
                                                              [*free, CHECK, INDEX, SPIN]],
                                        kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=[node, ast.Return(value=ast.Name(id=node.name, ctx=ast.Load()))],
        decorator_list=[], returns=None)
    module = ast.Module(body=[outer], type_ignores=[])
    ast.copy_location(outer, node)
    ast.fix_missing_locations(module)
    ast.increment_lineno(module, parsed.line0 - 1)
    scratch: dict[str, Any] = {}
    exec(compile(module, parsed.file, "exec"), scratch)
    inner = scratch[_OUTER](*([None] * (len(free) + 3)))
    cells = dict(zip(free, getattr(func, "__closure__", None) or (), strict=False))
    cells[CHECK] = types.CellType(store_local)
    cells[INDEX] = types.CellType(check_index)
    cells[SPIN] = types.CellType(spin)
    checked = types.FunctionType(inner.__code__, func.__globals__, inner.__name__,
                                 getattr(func, "__defaults__", None),
                                 tuple(cells[n] for n in inner.__code__.co_freevars))
    checked.__qualname__ = func.__qualname__
    return checked


class _Indexes(ast.NodeTransformer):
    """Rewrites every index read ``a[i]`` of a function body as
    ``a[check_index(a, i, <process>, "a", "file:line of the statement")]``."""

    def __init__(self, proc: str, file: str, line0: int) -> None:
        self.proc, self.file, self.line0 = proc, file, line0
        self.line = line0

    def visit(self, node: ast.AST) -> Any:
        if not isinstance(node, ast.stmt):
            return super().visit(node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return node  # (another scope: not run as the process's body)
        outer, self.line = self.line, node.lineno + self.line0 - 1
        try:
            return super().visit(node)
        finally:
            self.line = outer

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AnnAssign:
        node.target = self.visit(node.target)  # (the annotation is a type: not an index)
        if node.value is not None:
            node.value = self.visit(node.value)
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.Lambda:
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.Subscript:
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load) and not isinstance(node.slice, ast.Slice):
            args: list[ast.expr] = [
                copy.deepcopy(node.value), node.slice, ast.Name(id=self.proc, ctx=ast.Load()),
                ast.Constant(ast.unparse(node.value)), ast.Constant(f"{self.file}:{self.line}")]
            node.slice = ast.copy_location(
                ast.Call(func=ast.Name(id=INDEX, ctx=ast.Load()), args=args, keywords=[]),
                node.slice)
        return node


def _counted(stmts: list[ast.stmt], proc: str, file: str, line0: int,
             counters: list[str] | None = None,
             kinds: tuple[type[ast.While | ast.For], ...] = (ast.While,)
             ) -> list[ast.stmt]:
    """``stmts`` with every loop of ``kinds`` (``while``; ``for`` too) counting its passes
    (from 0 where the loop is entered, and again after each yield inside it), stopping the
    tick at the ``MAX_STEPS``-th pass (nested bodies too; not in nested functions or
    classes). A ``for`` whose iterable has a length (evaluated once, before the loop, as
    Python does) is not counted: it ends."""
    from .lower.cycles import MAX_STEPS

    enclosing = counters if counters is not None else []
    out: list[ast.stmt] = []
    for s in stmts:
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.append(s)
            continue
        inside = enclosing
        if isinstance(s, kinds):
            counter = f"{STEPS}{s.lineno}_{s.col_offset}"
            inside = [*enclosing, counter]
            if isinstance(s, ast.For):
                # A for over a sized iterable (a range, a list, a frame) ends, however long:
                # its counter starts at -inf, so it never reaches the limit.
                over = f"{STEPS}iter{s.lineno}_{s.col_offset}"
                out.append(_at(ast.Assign(targets=[ast.Name(id=over, ctx=ast.Store())],
                                          value=s.iter), s))
                s.iter = ast.copy_location(ast.Name(id=over, ctx=ast.Load()), s)
                out.append(_at(ast.parse(f"{counter} = float('-inf') if hasattr({over}, "
                                         "'__len__') else 0").body[0], s))
            else:
                out.append(_at(ast.parse(f"{counter} = 0").body[0], s))
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(s, field, None)
            if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                setattr(s, field, _counted(inner, proc, file, line0,
                                           inside if field == "body" else enclosing, kinds))
        for handler in getattr(s, "handlers", []):
            handler.body = _counted(handler.body, proc, file, line0, enclosing, kinds)
        for case in getattr(s, "cases", []):
            case.body = _counted(case.body, proc, file, line0, enclosing, kinds)
        if isinstance(s, kinds):
            where = f"{file}:{s.lineno + line0 - 1}"
            count = ast.parse(f"{inside[-1]} += 1\nif {inside[-1]} > {MAX_STEPS}: "
                              f"{SPIN}({proc}, {where!r})").body
            s.body = [_at(c, s) for c in count] + s.body
        out.append(s)
        if enclosing and not isinstance(s, ast.While | ast.For | ast.If | ast.Match | ast.Try
                                        | ast.With) \
                and any(isinstance(n, ast.Yield | ast.YieldFrom) for n in _own_nodes([s])):
            for c in enclosing:  # (min: a sized for's -inf stays)
                out.append(_at(ast.parse(f"{c} = min({c}, 0)").body[0], s))
    return out


def _at(stmt: ast.stmt, at: ast.AST) -> ast.stmt:
    """``stmt`` (and everything in it) placed at ``at``'s line and column."""
    for n in ast.walk(stmt):
        if "lineno" in n._attributes:
            ast.copy_location(n, at)
    return stmt


def _own_nodes(stmts: list[ast.stmt]) -> list[ast.AST]:
    """Every node of ``stmts`` outside nested functions, lambdas and classes."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = list(stmts)
    while todo:
        n = todo.pop()
        out.append(n)
        if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            todo.extend(ast.iter_child_nodes(n))
    return out


def _bound(targets: list[ast.expr], annotations: dict[str, ast.expr]) -> list[str]:
    """The annotated locals a statement's ``targets`` bind, in order."""
    names: list[str] = []
    for target in targets:
        for n in ast.walk(target):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) \
                    and n.id in annotations and n.id not in names:
                names.append(n.id)
    return names


@dataclass(frozen=True)
class _Where:
    """What a check names: the process parameter (``self``), the file and its first line."""

    proc: str | None
    file: str
    line0: int


def _check(name: str, annotations: dict[str, ast.expr], at: ast.AST, where: _Where
           ) -> ast.stmt:
    """``name = CHECK(<its annotation>, name, "name", self, "file:line")`` at ``at``'s
    line."""
    line = getattr(at, "lineno", 1) + where.line0 - 1
    args = [copy.deepcopy(annotations[name]), ast.Name(id=name, ctx=ast.Load())]
    if where.proc is not None:
        args += [ast.Constant(name), ast.Name(id=where.proc, ctx=ast.Load()),
                 ast.Constant(f"{where.file}:{line}")]
    call = ast.Call(func=ast.Name(id=CHECK, ctx=ast.Load()), args=args, keywords=[])
    return ast.copy_location(ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())],
                                        value=call), at)


def _checked(stmts: list[ast.stmt], annotations: dict[str, ast.expr], where: _Where
             ) -> list[ast.stmt]:
    """``stmts`` with a check after each binding of an annotated local (nested bodies too;
    a loop's target is checked as its body starts)."""
    out: list[ast.stmt] = []
    for s in stmts:
        nested_scope = isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(s, field, None)
            if not nested_scope and isinstance(inner, list) and inner \
                    and isinstance(inner[0], ast.stmt):
                setattr(s, field, _checked(inner, annotations, where))
        for handler in getattr(s, "handlers", []):
            handler.body = _checked(handler.body, annotations, where)
        for case in getattr(s, "cases", []):
            case.body = _checked(case.body, annotations, where)
        out.append(s)
        if isinstance(s, ast.For | ast.AsyncFor):
            s.body = [_check(n, annotations, s, where) for n in _bound([s.target], annotations)] \
                + s.body
        elif isinstance(s, ast.Assign):
            out += [_check(n, annotations, s, where) for n in _bound(s.targets, annotations)]
        elif isinstance(s, ast.AugAssign | ast.AnnAssign) and getattr(s, "value", None):
            out += [_check(n, annotations, s, where) for n in _bound([s.target], annotations)]
        elif isinstance(s, ast.With | ast.AsyncWith):
            targets = [i.optional_vars for i in s.items if i.optional_vars is not None]
            s.body = [_check(n, annotations, s, where)
                      for n in _bound(targets, annotations)] + s.body
    return out
