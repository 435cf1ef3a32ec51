"""Pass 4 (generators): turn a body with ``yield`` statements into an explicit state machine.

Each ``yield`` ends a state; the statements after it start a new one. An ``if``/``match``
that contains a ``yield`` ends its state too: its branches continue into a new state that
holds the statements after it. ``while True`` becomes a state that loops to itself. The end
of the body restarts at state 0 in the same tick, as the interpreter restarts the generator.
"""

from __future__ import annotations

from .errors import LoweringError, UnsupportedConstructError
from .ir import For, Goto, If, Loc, Match, MatchCase, StateIR, Stmt, WhileTrue, Yield


def has_yield(stmts: list[Stmt]) -> bool:
    """Whether any statement (at any depth) is a ``Yield`` or ``WhileTrue``."""
    for s in stmts:
        if isinstance(s, (Yield, WhileTrue)):
            return True
        if isinstance(s, If) and (has_yield(s.then) or has_yield(s.orelse)):
            return True
        if isinstance(s, Match) and any(has_yield(c.body) for c in s.cases):
            return True
        if isinstance(s, For) and has_yield(s.body):
            return True
    return False


class _Builder:
    def __init__(self) -> None:
        self.states: list[StateIR] = []
        self.names: set[str] = set()

    def new(self, name: str, loc: Loc) -> int:
        base, n = name, 1
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        self.states.append(StateIR(len(self.states), name, loc, []))
        return len(self.states) - 1

    def state_for(self, rest: list[Stmt], cont: int, loc: Loc) -> int:
        if not rest:
            return cont
        idx = self.new(f"line{loc.line}", loc)
        self.states[idx].body = self.split(rest, cont, loc)
        return idx

    def split(self, stmts: list[Stmt], cont: int, end: Loc) -> list[Stmt]:
        out: list[Stmt] = []
        for i, s in enumerate(stmts):
            rest = stmts[i + 1:]
            if isinstance(s, Yield):
                nxt = self.state_for(rest, cont, rest[0].loc if rest else s.loc)
                out.append(Goto(s.loc, nxt, True))
                return out
            if isinstance(s, WhileTrue):
                head = self.new(f"loop{s.loc.line}", s.loc)
                self.states[head].body = self.split(s.body, head, s.loc)
                out.append(Goto(s.loc, head, False))
                return out
            if isinstance(s, For) and has_yield(s.body):
                raise UnsupportedConstructError(
                    s.loc, "yield in a for loop",
                    "yield inside a for loop is not supported; use while True with a "
                    "counter register",
                )
            if isinstance(s, If) and (has_yield(s.then) or has_yield(s.orelse)):
                r = self.state_for(rest, cont, rest[0].loc if rest else s.loc)
                out.append(If(s.loc, s.cond, self.split(s.then, r, s.loc),
                              self.split(s.orelse, r, s.loc), s.is_elif))
                return out
            if isinstance(s, Match) and any(has_yield(c.body) for c in s.cases):
                r = self.state_for(rest, cont, rest[0].loc if rest else s.loc)
                cases = [MatchCase(c.members, self.split(c.body, r, c.loc), c.loc)
                         for c in s.cases]
                if cases[-1].members is not None:
                    cases.append(MatchCase(None, [Goto(s.loc, r, False)], s.loc))
                out.append(Match(s.loc, s.subject, cases))
                return out
            out.append(s)
        out.append(Goto(end, cont, False))
        return out


def _edges(stmts: list[Stmt]) -> list[int]:
    """States reached from ``stmts`` in the same tick (``Goto`` with ``wait=False``)."""
    out: list[int] = []
    for s in stmts:
        if isinstance(s, Goto) and not s.wait:
            out.append(s.state)
        elif isinstance(s, If):
            out += _edges(s.then) + _edges(s.orelse)
        elif isinstance(s, Match):
            for c in s.cases:
                out += _edges(c.body)
    return out


def build_states(body: list[Stmt], loc: Loc) -> list[StateIR]:
    """The state machine of a generator body (see the module docstring). Raises
    ``LoweringError`` when some pass through the body can run without reaching a yield."""
    b = _Builder()
    entry = b.new("start", loc)
    b.states[entry].body = b.split(body, entry, loc)
    graph = {s.index: _edges(s.body) for s in b.states}
    color: dict[int, int] = {}

    def visit(n: int) -> None:
        color[n] = 1
        for m in graph[n]:
            if color.get(m) == 1:
                st = b.states[m]
                raise LoweringError(
                    st.loc, "on_tick can loop without reaching a yield here (some path through "
                    "the generator never yields); every pass must yield at least once")
            if m not in color:
                visit(m)
        color[n] = 2

    for s in b.states:
        if s.index not in color:
            visit(s.index)
    return b.states


__all__ = ["build_states", "has_yield"]
