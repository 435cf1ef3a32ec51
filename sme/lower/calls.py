"""Calls in process bodies: builtins (``int``, ``bool``, ``abs``, ``min``, ``max``,
``len``, ``sum``, ``any``, ``all``), ``resize``, constants built by calling a signal
type, and helper functions, which are inlined (their parameters and result become locals
of the process)."""

from __future__ import annotations

import ast
import inspect
import types
from typing import Any, cast

from ..declare import MISSING
from ..overflow import resize, saturate, wrap
from ..types import Fixed, is_signal_type
from ..types import cast as sme_cast
from . import typerules as tr
from .context import MAX_INLINE_DEPTH, Frame, LowererBase
from .ir import (
    ArrayT,
    Assign,
    BoolT,
    Compare,
    Const,
    Convert,
    Expr,
    HelperIR,
    LocalRead,
    LocalTarget,
    NumT,
    Select,
    UnaryOp,
    raw_of,
    vtype_of,
)
from .parse import _CONSTRUCTS, _ends, flatten_returns, parse_function


# ------------------------------------------------------------------------
def lower_call(lw: LowererBase, node: ast.Call) -> Expr:
    for arg in [*node.args, *(k.value for k in node.keywords)]:
        for sub in ast.walk(arg):
            construct = _CONSTRUCTS.get(type(sub))
            if construct is not None:
                raise lw.unsupported(sub, *construct)
    f = lw.try_static(node.func)
    if f is MISSING:
        raise lw.unsupported(node, "method call",
                               f"cannot call {ast.unparse(node.func)}: only module-level "
                               "helper functions, resize, int, bool, abs, min, max, len, sum, "
                               "any, all "
                               "and "
                               "signal types are supported")
    if f is wrap or f is saturate:
        raise lw.unsupported(node, f"{f.__name__} inside an expression",
                               f"{f.__name__}(...) must be the whole value stored into a "
                               "signal, register or annotated local")
    if any(kw.arg is None for kw in node.keywords):
        raise lw.unsupported(node, "**kwargs", "**kwargs is not supported")
    if f is resize:
        return _call_resize(lw, node)
    if f in (int, bool, abs, min, max, len):
        return _call_builtin(lw, f, node)
    if f in (sum, any, all):
        return _call_reduce(lw, f, node)
    if is_signal_type(f) and not isinstance(f, type):
        t = sme_cast(f)
        if len(node.args) != 1 or node.keywords:
            raise lw.type_error(node, f"{f!r}(value) takes one constant")
        v = t.coerce(lw.static_value(node.args[0]))
        return Const(vtype_of(t), raw_of(v, vtype_of(t)))
    if f is Fixed:
        return _call_fixed(lw, node)
    if isinstance(f, types.FunctionType):
        return _inline(lw, f, node)
    raise lw.unsupported(node, "call", f"cannot call {ast.unparse(node.func)} in on_tick")

def _call_fixed(lw: LowererBase, node: ast.Call) -> Expr:
    """``Fixed(raw, frac)`` with constant integer arguments: a fixed-point constant."""
    args = [lw.static_value(a) for a in node.args]
    kw = {k.arg: lw.static_value(k.value) for k in node.keywords if k.arg is not None}
    try:
        v = Fixed(*args, **kw)
    except TypeError as exc:
        raise lw.type_error(node, f"Fixed(raw, frac): {exc}") from None
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (v.raw, v.frac)):
        raise lw.type_error(node, "Fixed(raw, frac) takes two constant integers")
    return lw.constant(v, node)

def _call_resize(lw: LowererBase, node: ast.Call) -> Expr:
    args = list(node.args)
    kw = {k.arg: k.value for k in node.keywords}
    if len(args) < 2:
        if "to" not in kw or len(args) != 1:
            raise lw.type_error(node, "resize(value, T, rounding=..., overflow=...)")
        args.append(kw.pop("to"))
    value = lw.expr(args[0])
    t = vtype_of(lw.static_type(args[1]))
    names = ("rounding", "overflow")
    opts = {n: str(lw.static_value(v)) for n, v in zip(names, args[2:], strict=False)}
    for k, v in kw.items():
        if k not in names:
            raise lw.type_error(node, f"resize() has no argument {k!r}")
        opts[str(k)] = str(lw.static_value(v))
    if not isinstance(t, NumT) or not isinstance(value.type, NumT):
        raise lw.type_error(node, "resize() converts numbers only")
    return Convert(t, value, opts.get("rounding", "exact"),  # type: ignore[arg-type]
                   opts.get("overflow", "error"), origin="resize")  # type: ignore[arg-type]

def _call_builtin(lw: LowererBase, f: Any, node: ast.Call) -> Expr:
    if node.keywords:
        raise lw.type_error(node, f"{f.__name__}() keyword arguments are not supported")
    if f is len and len(node.args) == 1:
        from .bus_arrays import length

        found = length(lw, node.args[0])
        if found is not None:
            return found
    args = [lw.expr(a) for a in node.args]
    if f is len:
        if len(args) != 1 or not isinstance(args[0].type, ArrayT):
            raise lw.type_error(node, "len() takes one array")
        n = args[0].type.length
        return Const(NumT.const(n), n)
    if f in (int, bool, abs) and len(args) != 1:
        raise lw.type_error(node, f"{f.__name__}() takes one argument")
    if f is int:
        a = args[0]
        if isinstance(a.type, BoolT):
            if isinstance(a, Const):
                return Const(NumT.const(int(a.value)), int(a.value))
            return Convert(NumT(0, 1), a)
        if isinstance(a.type, NumT) and not a.type.frac:
            return a
        raise lw.type_error(node, f"int() of a {a.type} is not supported")
    if f is bool:
        return lw.to_bool(args[0], node)
    if len(args) < 1 or any(not isinstance(a.type, NumT) for a in args):
        raise lw.type_error(node, f"{f.__name__}() takes numbers")
    if f is abs:
        a = args[0]
        at = cast(NumT, a.type)
        if at.lo >= 0:
            return a
        negt = tr.neg(at)
        t = tr.num_join(NumT(max(at.lo, 0), at.hi, at.frac) if at.hi >= 0 else negt, negt)
        t = NumT(max(0, t.lo), t.hi, t.frac)
        cond = Compare(BoolT(), "<", a, Const(NumT.const(0), 0))
        return Select(t, cond, Convert(t, UnaryOp(negt, "-", a)), Convert(t, a))
    if len(args) < 2:
        raise lw.type_error(node, f"{f.__name__}() takes two or more numbers")
    acc = args[0]
    for b in args[1:]:
        at, bt = cast(NumT, acc.type), cast(NumT, b.type)
        j = tr.num_join(at, bt)
        if f is min:
            t = NumT(min(tr.align(at, j.frac).lo, tr.align(bt, j.frac).lo),
                     min(tr.align(at, j.frac).hi, tr.align(bt, j.frac).hi), j.frac)
            cond = Compare(BoolT(), "<", b, acc)
        else:
            t = NumT(max(tr.align(at, j.frac).lo, tr.align(bt, j.frac).lo),
                     max(tr.align(at, j.frac).hi, tr.align(bt, j.frac).hi), j.frac)
            cond = Compare(BoolT(), ">", b, acc)
        acc = Select(t, cond, Convert(t, b, "exact", "error"),
                     Convert(t, acc, "exact", "error"))
    return acc

def _call_reduce(lw: LowererBase, f: Any, node: ast.Call) -> Expr:
    """``sum(a)`` / ``sum(a, start)``, ``any(a)``, ``all(a)`` of an array (a bus or register
    ``Array``, or a tuple constant). The length is known, so they are written out over
    ``a[0] .. a[n-1]`` and lowered as such: ``sum`` an adder tree (exact, as Python's
    left-to-right sum; Bool elements count as 0/1), ``any``/``all`` an ``or``/``and`` of
    ``bool(a[i])``."""
    name = f.__name__
    if node.keywords or not 1 <= len(node.args) <= (2 if f is sum else 1):
        raise lw.type_error(node, f"{name}() takes an array" + (
            " and an optional start value" if f is sum else ""))
    arr = lw.expr(node.args[0])
    if not isinstance(arr.type, ArrayT):
        raise lw.type_error(node, f"{name}() takes an array; {ast.unparse(node.args[0])} "
                            "is not one")
    terms: list[ast.expr] = []
    for i in range(arr.type.length):
        term: ast.expr = ast.Subscript(value=node.args[0], slice=ast.Constant(i),
                                       ctx=ast.Load())
        if f is not sum or isinstance(arr.type.element, BoolT):
            conv = "int" if f is sum else "bool"
            term = ast.Call(func=ast.Name(conv, ast.Load()), args=[term], keywords=[])
        terms.append(term)
    total: ast.expr
    if f is sum:
        while len(terms) > 1:  # pairwise: a shallow tree, each sum sized for its inputs
            pairs: list[ast.expr] = [ast.BinOp(left=a, op=ast.Add(), right=b)
                                     for a, b in zip(terms[::2], terms[1::2], strict=False)]
            terms = [*pairs, terms[-1]] if len(terms) % 2 else pairs
        total = terms[0] if terms else ast.Constant(0)
        if len(node.args) == 2:
            total = ast.BinOp(left=node.args[1], op=ast.Add(), right=total)
    elif len(terms) < 2:
        total = terms[0] if terms else ast.Constant(f is all)
    else:
        total = ast.BoolOp(op=ast.Or() if f is any else ast.And(), values=terms)
    for sub in ast.walk(total):
        if not hasattr(sub, "lineno"):
            ast.copy_location(sub, node)
    return lw.expr(total)

def _inline(lw: LowererBase, f: types.FunctionType, node: ast.Call) -> Expr:
    if len(lw.frames) > MAX_INLINE_DEPTH or any(fr.parsed.func is f for fr in lw.frames):
        raise lw.unsupported(node, "recursion", f"{f.__name__} is recursive; helper "
                               "functions cannot call themselves")
    if inspect.isgeneratorfunction(f):
        raise lw.unsupported(node, "generator helper", f"{f.__name__} is a generator")
    try:
        parsed = parse_function(f)
    except (OSError, TypeError):
        raise lw.unsupported(node, "call", f"the source of {f.__name__} is not "
                               "available") from None
    fn = parsed.node
    params = [a.arg for a in fn.args.args]
    if fn.args.vararg or fn.args.kwarg or fn.args.kwonlyargs or fn.args.defaults:
        raise lw.unsupported(node, "helper signature", f"{f.__name__}: helpers take "
                               "plain positional parameters only")
    if len(node.args) != len(params) or node.keywords:
        raise lw.type_error(node, f"{f.__name__}() takes {len(params)} positional "
                              "arguments")
    args = [lw.expr(a) for a in node.args]
    loc = parsed.loc(fn)
    lw.helpers.setdefault(f.__qualname__, HelperIR(f.__qualname__, loc,
                                                     inspect.getdoc(f)))
    frame = Frame(parsed, {})
    lw.frames.append(frame)
    try:
        for p, a in zip(params, args, strict=True):
            name = lw.local_name(p, fn)
            lw.note_local(name, a.type, fn)
            t = lw.local_types.get(name, a.type)
            lw.pre.append(Assign(loc, LocalTarget(name), lw.store_convert(a, t, None,
                                                                             node)))
        frame.result = lw.local_name("result", fn)
        body = fn.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value,
                                                                 ast.Constant):
            body = body[1:]
        body = flatten_returns(list(body))
        if not _ends(body):
            raise lw.unsupported(fn, "helper without return",
                                   f"{f.__name__} must end in return on every path")
        lw.pre.extend(lw.block(body))
        result = frame.result
    finally:
        lw.frames.pop()
    rt = lw.local_types.get(result) or lw.assigned.get(result)
    assert rt is not None
    return LocalRead(rt, result)
