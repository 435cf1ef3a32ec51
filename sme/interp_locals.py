"""Annotated locals checked in the interpreter, as the other backends check them.

A local with a signal type (``n: UInt[3] = 0``) is a promise about its range: the compiled
backend and the VHDL translation give it that type, and a value that does not fit is an
error unless ``wrap``/``saturate`` says the overflow is meant. The interpreter runs the
process's own ``on_tick``, where Python ignores a local's annotation, so it would go on
with a value no other backend can hold. :func:`checked_on_tick` gives it a copy of
``on_tick`` that checks: after every statement that binds an annotated local, the local
goes through :func:`store_local` (what the compiled backend does for such a store, with
its very error), at the statement's own line.
"""

from __future__ import annotations

import ast
import copy
import types
from collections.abc import Callable
from typing import Any

from .overflow import Overflowing, resize

CHECK = "__sme_store_local__"
"""The name the rewritten ``on_tick`` calls its check by (a cell of its closure)."""
_OUTER = "__sme_checked_locals__"


def store_local(t: Any, value: Any) -> Any:
    """``value`` as stored into a local annotated ``t``: converted, wrapped or saturated
    when it is so marked, else ``resize``'s ``ValueError`` when it does not fit."""
    if type(value) is Overflowing:
        return resize(value.value, t, value.rounding, value.overflow)
    return resize(value, t)


def checked_on_tick(func: Callable[..., Any]) -> Callable[..., Any] | None:
    """``func`` (a process's ``on_tick``) with its annotated locals checked, or None when it
    has none. Raises the front end's ``LoweringError`` when its source cannot be read."""
    from .lower.parse import parse_function  # (the front end is loaded when a design is)

    parsed = parse_function(func)
    annotations = {node.target.id: node.annotation for node in _own_nodes(parsed.node.body)
                   if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    if not annotations:
        return None
    node = parsed.node
    node.body = _checked(node.body, annotations)
    node.decorator_list = []
    code = getattr(func, "__code__", None)
    free = list(code.co_freevars) if code else []
    outer = ast.FunctionDef(
        name=_OUTER, args=ast.arguments(posonlyargs=[], args=[ast.arg(arg=n) for n in
                                                              [*free, CHECK]],
                                        kwonlyargs=[], kw_defaults=[], defaults=[]),
        body=[node, ast.Return(value=ast.Name(id=node.name, ctx=ast.Load()))],
        decorator_list=[], returns=None)
    module = ast.Module(body=[outer], type_ignores=[])
    ast.copy_location(outer, node)
    ast.fix_missing_locations(module)
    ast.increment_lineno(module, parsed.line0 - 1)
    scratch: dict[str, Any] = {}
    exec(compile(module, parsed.file, "exec"), scratch)
    inner = scratch[_OUTER](*([None] * (len(free) + 1)))
    cells = dict(zip(free, getattr(func, "__closure__", None) or (), strict=False))
    cells[CHECK] = types.CellType(store_local)
    checked = types.FunctionType(inner.__code__, func.__globals__, inner.__name__,
                                 getattr(func, "__defaults__", None),
                                 tuple(cells[n] for n in inner.__code__.co_freevars))
    checked.__qualname__ = func.__qualname__
    return checked


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


def _check(name: str, annotations: dict[str, ast.expr], at: ast.AST) -> ast.stmt:
    """``name = CHECK(<its annotation>, name)`` at ``at``'s line."""
    call = ast.Call(func=ast.Name(id=CHECK, ctx=ast.Load()),
                    args=[copy.deepcopy(annotations[name]), ast.Name(id=name, ctx=ast.Load())],
                    keywords=[])
    return ast.copy_location(ast.Assign(targets=[ast.Name(id=name, ctx=ast.Store())],
                                        value=call), at)


def _checked(stmts: list[ast.stmt], annotations: dict[str, ast.expr]) -> list[ast.stmt]:
    """``stmts`` with a check after each binding of an annotated local (nested bodies too;
    a loop's target is checked as its body starts)."""
    out: list[ast.stmt] = []
    for s in stmts:
        nested_scope = isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(s, field, None)
            if not nested_scope and isinstance(inner, list) and inner \
                    and isinstance(inner[0], ast.stmt):
                setattr(s, field, _checked(inner, annotations))
        for handler in getattr(s, "handlers", []):
            handler.body = _checked(handler.body, annotations)
        for case in getattr(s, "cases", []):
            case.body = _checked(case.body, annotations)
        out.append(s)
        if isinstance(s, ast.For | ast.AsyncFor):
            s.body = [_check(n, annotations, s) for n in _bound([s.target], annotations)] \
                + s.body
        elif isinstance(s, ast.Assign):
            out += [_check(n, annotations, s) for n in _bound(s.targets, annotations)]
        elif isinstance(s, ast.AugAssign | ast.AnnAssign) and getattr(s, "value", None):
            out += [_check(n, annotations, s) for n in _bound([s.target], annotations)]
        elif isinstance(s, ast.With | ast.AsyncWith):
            targets = [i.optional_vars for i in s.items if i.optional_vars is not None]
            s.body = [_check(n, annotations, s) for n in _bound(targets, annotations)] + s.body
    return out
