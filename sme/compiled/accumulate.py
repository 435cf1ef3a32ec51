"""Range facts the typed IR alone does not give: what a local holds when a loop starts,
and so how far a loop's accumulations can reach.

The IR types a local by its declaration (``n: UInt[8]``), so ``n = n + x`` in a loop is
a store that may overflow, checked on every pass. Yet ``n = 0`` right before a loop of 32
passes, each adding at most 1, keeps ``n`` within 0..32: the check can never fail. The
emitter drops such checks (:func:`proven_accumulations`), which also leaves the loop
without a path that raises — what lets LLVM turn a lane loop into vector code (a loop
with a possible exception, or whose sum is not a plain add, stays scalar).

:class:`Known` tracks, statement by statement, the locals whose value is a known
constant (the last assignment to them was a constant, and nothing since could change
them)."""

from __future__ import annotations

from ..lower import ir
from ..lower.ir import NumT


def assigned(stmts: list[ir.Stmt]) -> set[str]:
    """The locals (loop variables included) that ``stmts`` may assign."""
    found: set[str] = set()
    for s in stmts:
        if isinstance(s, ir.Assign) and isinstance(s.target, ir.LocalTarget):
            found.add(s.target.name)
        elif isinstance(s, ir.For):
            found |= {s.var} | assigned(s.body)
        elif isinstance(s, ir.If):
            found |= assigned(s.then) | assigned(s.orelse)
        elif isinstance(s, ir.Match):
            for case in s.cases:
                found |= assigned(case.body)
        elif isinstance(s, ir.While):
            found |= assigned(s.body) | assigned(s.step)
    return found


def constant_store(s: ir.Stmt) -> tuple[str, int] | None:
    """``(name, value)`` when ``s`` stores an integer constant into a whole scalar local."""
    if not (isinstance(s, ir.Assign) and isinstance(s.target, ir.LocalTarget)
            and s.target.index is None):
        return None
    v = s.value
    if isinstance(v, ir.Convert) and isinstance(v.operand, ir.Const):
        src, dst = v.operand.type, v.type
        if not (isinstance(src, NumT) and isinstance(dst, NumT) and src.frac == dst.frac
                and isinstance(v.operand.value, int) and dst.lo <= v.operand.value <= dst.hi):
            return None
        v = v.operand
    if isinstance(v, ir.Const) and isinstance(v.type, NumT) and v.type.frac == 0 \
            and isinstance(v.value, int) and not isinstance(v.value, bool):
        return s.target.name, v.value
    return None


class Known:
    """The locals holding a known constant at the statement being emitted."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def after(self, s: ir.Stmt) -> None:
        """Update for ``s`` having run."""
        for name in assigned([s]):
            self.values.pop(name, None)
        found = constant_store(s)
        if found is not None:
            self.values[found[0]] = found[1]

    def without(self, names: set[str]) -> dict[str, int]:
        """The known values, less ``names`` (what a loop body may change on a pass)."""
        return {k: v for k, v in self.values.items() if k not in names}


def _increment(s: ir.Assign) -> ir.Expr | None:
    """``e`` when ``s`` is ``x = x + e`` (or ``x = e + x``) for a whole scalar local ``x``,
    integers only, stored with an overflow check (the check is what a proof removes)."""
    t, v = s.target, s.value
    if not (isinstance(t, ir.LocalTarget) and t.index is None and isinstance(v, ir.Convert)
            and v.overflow == "error" and isinstance(v.type, NumT) and v.type.frac == 0):
        return None
    op = v.operand
    if not (isinstance(op, ir.BinOp) and op.op == "+" and isinstance(op.type, NumT)
            and op.type.frac == 0):
        return None
    for mine, other in ((op.left, op.right), (op.right, op.left)):
        if isinstance(mine, ir.LocalRead) and mine.name == t.name \
                and isinstance(other.type, NumT) and other.type.frac == 0:
            return other
    return None


def _stores(stmts: list[ir.Stmt], name: str, nested: bool,
            out: list[tuple[ir.Assign, bool]]) -> None:
    """Every assignment to local ``name`` in ``stmts``, with whether it sits in a loop
    nested inside them."""
    for s in stmts:
        if isinstance(s, ir.Assign) and isinstance(s.target, ir.LocalTarget) \
                and s.target.name == name:
            out.append((s, nested))
        elif isinstance(s, ir.If):
            _stores(s.then, name, nested, out)
            _stores(s.orelse, name, nested, out)
        elif isinstance(s, ir.Match):
            for case in s.cases:
                _stores(case.body, name, nested, out)
        elif isinstance(s, (ir.For, ir.While)):
            _stores(s.body, name, True, out)
            if isinstance(s, ir.While):
                _stores(s.step, name, True, out)


def proven_accumulations(loop: ir.For, known: dict[str, int]) -> set[int]:
    """The ids of the assignments in ``loop``'s body whose store check can never fail:
    those of a local ``x`` with a known value ``c`` when the loop starts whose every
    assignment in the body is ``x = x + e`` (outside nested loops) with ``e >= 0``, and
    ``c`` plus the passes times the largest increase of one pass fits ``x``'s type."""
    passes = len(loop.values)
    proven: set[int] = set()
    for name, start in known.items():
        stores: list[tuple[ir.Assign, bool]] = []
        _stores(loop.body, name, False, stores)
        if not stores or any(nested for _, nested in stores):
            continue
        highs: list[int] = []
        for s, _ in stores:
            e = _increment(s)
            if e is None or not isinstance(e.type, NumT) or e.type.lo < 0:
                break
            highs.append(e.type.hi)
        if len(highs) < len(stores):
            continue
        most = start + passes * sum(highs)
        if all(isinstance(s.value.type, NumT) and s.value.type.lo <= start
               and most <= s.value.type.hi for s, _ in stores):
            proven |= {id(s) for s, _ in stores}
    return proven
