"""Passes 1 and 2 of the front end: parsing a function's source, and flattening ``return``
statements; plus the table of unsupported constructs and their messages."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import LoweringError, SourceUnavailableError
from .ir import Loc


@dataclass
class ParsedFunction:
    """A function's AST with what is needed to point back at its source."""

    func: Callable[..., Any]
    node: ast.FunctionDef
    file: str
    line0: int
    col0: int

    def loc(self, node: ast.AST) -> Loc:
        """The source location of ``node``."""
        return Loc(self.file, getattr(node, "lineno", 1) + self.line0 - 1,
                   getattr(node, "col_offset", 0) + self.col0)

    @property
    def globals(self) -> dict[str, Any]:
        """The function's module namespace."""
        g: dict[str, Any] = getattr(self.func, "__globals__", {})
        return g

    @property
    def closure(self) -> dict[str, Any]:
        """The names the function takes from enclosing functions (a process class made by
        a factory function reads the factory's parameters), with their current values."""
        code = getattr(self.func, "__code__", None)
        cells = getattr(self.func, "__closure__", None) or ()
        out: dict[str, Any] = {}
        for name, cell in zip(code.co_freevars if code else (), cells, strict=False):
            try:
                out[name] = cell.cell_contents
            except ValueError:  # an empty cell: the name is not bound yet
                continue
        return out


def parse_function(func: Callable[..., Any]) -> ParsedFunction:
    """Parse ``func``'s source (pass 1)."""
    file = inspect.getsourcefile(func) or "<unknown>"
    try:
        lines, line0 = inspect.getsourcelines(func)
    except (OSError, TypeError) as exc:
        code = getattr(func, "__code__", None)
        raise SourceUnavailableError(
            Loc(file, getattr(code, "co_firstlineno", 0)),
            f"the source of {func.__qualname__} is not available ({exc}); define processes "
            "in a Python file") from None
    src = "".join(lines)
    dedented = textwrap.dedent(src)
    col0 = len(lines[0]) - len(lines[0].lstrip()) if dedented != src else 0
    tree = ast.parse(dedented)
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):
        raise LoweringError(Loc(file, line0), f"{func.__qualname__} is not a plain function")
    return ParsedFunction(func, node, file, line0, col0)


def _ends(stmts: list[ast.stmt]) -> bool:
    """Whether every path through ``stmts`` ends in ``return``."""
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, ast.Return):
        return True
    if isinstance(last, ast.If):
        return _ends(last.body) and _ends(last.orelse)
    return False


def _returns(stmts: list[ast.stmt]) -> bool:
    """Whether some path through ``stmts`` returns."""
    return any(isinstance(n, ast.Return) for s in stmts for n in ast.walk(s))


def flatten_returns(stmts: list[ast.stmt]) -> list[ast.stmt]:
    """Pass 2: move the statements after an ``if`` with a ``return`` somewhere inside into
    each of its branches that does not end in ``return`` (recursively, so nested ``elif``
    chains work too), so that ``return`` only ever ends a branch."""
    out: list[ast.stmt] = []
    for i, s in enumerate(stmts):
        if isinstance(s, ast.If):
            rest = stmts[i + 1:]
            if rest and _returns([s]):
                body = s.body if _ends(s.body) else s.body + rest
                orelse = s.orelse if _ends(s.orelse) else s.orelse + rest
                new = ast.If(test=s.test, body=flatten_returns(body),
                             orelse=flatten_returns(orelse))
                ast.copy_location(new, s)
                out.append(new)
                return out
            new = ast.If(test=s.test, body=flatten_returns(s.body),
                         orelse=flatten_returns(s.orelse))
            ast.copy_location(new, s)
            out.append(new)
        elif isinstance(s, (ast.For, ast.While)):
            s.body = flatten_returns(s.body)
            out.append(s)
        elif isinstance(s, ast.Match):
            for c in s.cases:
                c.body = flatten_returns(c.body)
            out.append(s)
        else:
            out.append(s)
    return out


_CONSTRUCTS: dict[type, tuple[str, str]] = {
    ast.While: ("while loop", "while loops are not supported in on_tick (use for over a "
                "constant range)"),
    ast.Try: ("try statement", "try/except is not supported in on_tick"),
    ast.With: ("with statement", "with statements are not supported in on_tick"),
    ast.Raise: ("raise statement", "raise is not supported in on_tick"),
    ast.Assert: ("assert statement", "assert is not supported in on_tick"),
    ast.Delete: ("del statement", "del is not supported in on_tick"),
    ast.Global: ("global statement", "global is not supported in on_tick"),
    ast.Nonlocal: ("nonlocal statement", "nonlocal is not supported in on_tick"),
    ast.Import: ("import statement", "import is not supported in on_tick"),
    ast.ImportFrom: ("import statement", "import is not supported in on_tick"),
    ast.FunctionDef: ("nested function", "nested functions are not supported in on_tick "
                      "(define a module-level helper function)"),
    ast.ClassDef: ("class definition", "class definitions are not supported in on_tick"),
    ast.Break: ("break statement", "break is not supported in on_tick (loops run over a "
                "constant range; use an if inside the loop)"),
    ast.Continue: ("continue statement", "continue is not supported in on_tick (use an if "
                   "inside the loop)"),
    ast.AsyncFunctionDef: ("async function", "async code is not supported in on_tick"),
    ast.Lambda: ("lambda", "lambda is not supported in on_tick (define a module-level helper "
                 "function)"),
    ast.ListComp: ("list comprehension", "comprehensions are not supported in on_tick"),
    ast.GeneratorExp: ("generator expression", "generator expressions are not supported"),
    ast.DictComp: ("dict comprehension", "comprehensions are not supported in on_tick"),
    ast.SetComp: ("set comprehension", "comprehensions are not supported in on_tick"),
    ast.Dict: ("dict", "dicts are not supported in on_tick"),
    ast.Set: ("set", "sets are not supported in on_tick"),
    ast.JoinedStr: ("f-string", "strings are not supported in on_tick"),
    ast.Await: ("await", "await is not supported in on_tick"),
    ast.YieldFrom: ("yield from", "yield from is not supported in on_tick: helpers cannot "
                    "yield; write their waits in on_tick itself (a for loop around a bare "
                    "yield waits that many ticks)"),
    ast.NamedExpr: ("walrus operator", "the := operator is not supported in on_tick"),
    ast.Starred: ("starred expression", "*args are not supported in on_tick"),
    ast.Slice: ("slice", "slices are not supported in on_tick (index one element)"),
}
