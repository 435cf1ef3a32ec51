"""Which same-tick loops of a generator's state machine are certain to spin forever.

The states of a generator (``sme.lower.states``) are joined by same-tick edges (``Goto``
without waiting). A cycle of such edges runs again and again within one tick unless some
condition on it changes. The values a process reads from its input buses cannot change
during a tick, so a cycle whose every condition depends only on them (and constants) can
never be left once entered: the lowering refuses it (``LoweringError``: a pass that never
yields). A cycle that tests a register or a local may be left (a counter runs out), and a
cycle may be impossible because its conditions contradict each other (``while not b:
yield`` then ``if not b`` in the same tick): both are accepted. The end of a pass (a
``return`` or the end of the body) waits for the next tick, so it is no same-tick edge.

Conditions are tracked as clauses over *atoms* (Bool expressions of input signals only),
with unit propagation; that is enough for the await-style code SME designs use.
"""

from __future__ import annotations

from collections.abc import Iterator

from .errors import LoweringError
from .ir import (
    BoolOp,
    Const,
    Expr,
    Goto,
    If,
    Loc,
    LocalRead,
    Match,
    PortRead,
    RegRead,
    StateIR,
    Stmt,
    UnaryOp,
)

MAX_STEPS = 1_000_000
"""The steps one tick of a generator may take round a loop before the simulation stops it
with ``SimulationError`` (``spin_message``): a loop whose test reads a register or a local
passes the check above and may still never be left. A step is a pass of a ``while`` loop in
the interpreter, a state change in the compiled code, and a visit of a state on a same-tick
cycle (``spin_loops``) in the VHDL."""


def spin_message(who: str, where: str) -> str:
    """The message of a tick stopped after ``MAX_STEPS`` steps in the loop at ``where``."""
    return (f"{who}: on_tick() made {MAX_STEPS:,} steps in one tick without yielding, going "
            f"round the loop at {where} (does its test read a register or a local that "
            "nothing changes within the tick? a loop must reach a yield)")


Literal = tuple[Expr, bool]
Clause = frozenset[Literal]


def _stable(e: object) -> bool:
    """Whether ``e`` only reads input signals and constants (fixed during a tick)."""
    if isinstance(e, PortRead):
        return not e.own_output
    if isinstance(e, Const):
        return True
    if isinstance(e, (LocalRead, RegRead)):
        return False
    if isinstance(e, Expr):
        return all(_stable(v) for v in vars(e).values() if isinstance(v, (Expr, tuple)))
    if isinstance(e, tuple):
        return all(_stable(x) for x in e if isinstance(x, (Expr, tuple)))
    return True


def _clauses(e: Expr, value: bool) -> tuple[list[Clause], bool]:
    """Clauses saying ``e == value`` and whether ``e`` is pure (input atoms only); an
    impure part adds no clause (it is unknown)."""
    if isinstance(e, Const):
        return ([] if bool(e.value) == value else [frozenset()]), True
    if isinstance(e, UnaryOp) and e.op == "not":
        return _clauses(e.operand, not value)
    if isinstance(e, BoolOp):
        parts = [_clauses(o, value) for o in e.operands]
        pure = all(p for _, p in parts)
        if (e.op == "and") == value:  # every operand has ``value``: a conjunction
            return [c for cs, _ in parts for c in cs], pure
        if all(_stable(o) for o in e.operands):  # one operand has ``value``: a disjunction
            atoms = [_atom(o, value) for o in e.operands]
            if all(a is not None for a in atoms):
                return [frozenset(a for a in atoms if a is not None)], pure
        return [], pure
    if _stable(e):
        return [frozenset({(e, value)})], True
    return [], False


def _atom(e: Expr, value: bool) -> Literal | None:
    if isinstance(e, UnaryOp) and e.op == "not":
        return _atom(e.operand, not value)
    if isinstance(e, (BoolOp, Const)):
        return None
    return (e, value)


def _propagate(clauses: frozenset[Clause]) -> frozenset[Clause] | None:
    """Unit propagation; ``None`` on a contradiction."""
    known: dict[Expr, bool] = {}
    changed = True
    current = set(clauses)
    while changed:
        changed = False
        for c in list(current):
            live = [lit for lit in c if known.get(lit[0]) is None]
            if any(known.get(a) == v for a, v in c):
                current.discard(c)
                continue
            if not live:
                return None
            if len(live) == 1:
                atom, v = live[0]
                known[atom] = v
                current.discard(c)
                changed = True
    return frozenset(current) | frozenset(frozenset({(a, v)}) for a, v in known.items())


def _edges(stmts: list[Stmt], facts: frozenset[Clause], pure: bool
           ) -> Iterator[tuple[Goto, frozenset[Clause], bool]]:
    """Same-tick ``Goto``s reachable in ``stmts`` under ``facts``: (goto, facts on that
    path, whether every condition passed on it was pure)."""
    for s in stmts:
        if isinstance(s, Goto):
            if not s.wait:
                yield s, facts, pure
            return
        if isinstance(s, If):
            for branch, value in ((s.then, True), (s.orelse, False)):
                extra, p = _clauses(s.cond, value)
                got = _propagate(facts | frozenset(extra))
                if got is not None:
                    yield from _edges(branch, got, pure and p)
            return
        if isinstance(s, Match):
            p = _stable(s.subject)
            for c in s.cases:
                yield from _edges(c.body, facts, pure and p)
            return


def check_cycles(states: list[StateIR]) -> None:
    """Raise ``LoweringError`` for a same-tick cycle that can never be left (see the module
    docstring)."""
    done: set[tuple[int, frozenset[Clause]]] = set()
    stack: list[tuple[int, bool]] = []  # (state, whether the edge into it was pure)
    on_stack: dict[int, int] = {}

    def visit(n: int, facts: frozenset[Clause]) -> None:
        if (n, facts) in done:
            return
        on_stack[n] = len(stack)
        for goto, f, pure in _edges(states[n].body, facts, True):
            m = goto.state
            if m in on_stack:
                cycle = [*stack[on_stack[m]:], (m, pure)]
                if all(p for _, p in cycle):
                    raise LoweringError(
                        states[m].loc, "on_tick can loop without reaching a yield here "
                        "(some path through the generator never yields, and nothing it reads "
                        "can change within the tick); a loop must reach a yield (or leave on_tick)")
                continue
            stack.append((m, pure))
            visit(m, f)
            stack.pop()
        del on_stack[n]
        done.add((n, facts))

    for s in states:
        visit(s.index, frozenset())


def _jumps(stmts: list[Stmt]) -> Iterator[int]:
    """The states ``stmts`` may go to within the tick (any condition)."""
    for s in stmts:
        if isinstance(s, Goto) and not s.wait:
            yield s.state
        elif isinstance(s, If):
            yield from _jumps(s.then)
            yield from _jumps(s.orelse)
        elif isinstance(s, Match):
            for c in s.cases:
                yield from _jumps(c.body)


def spin_loops(states: list[StateIR]) -> dict[int, Loc]:
    """For each state on a cycle of same-tick edges (where a tick may go round for ever),
    the loop to name when it does: the outermost ``while`` of the states on its cycles
    (``StateIR.loop``), the loop the interpreter's pass counter stops in too."""
    edges = {s.index: set(_jumps(s.body)) for s in states}
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    out: dict[int, Loc] = {}

    def connect(v: int) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: list[int] = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges[v]:
                locs = [states[k].loop or states[k].loc for k in comp]
                outer = min(locs, key=lambda loc: (loc.line, loc.col))
                out.update(dict.fromkeys(comp, outer))

    for s in states:
        if s.index not in index:
            connect(s.index)
    return out


__all__ = ["MAX_STEPS", "check_cycles", "spin_loops", "spin_message"]
