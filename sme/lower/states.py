"""Pass 4 (generators): turn a body with ``yield`` statements into an explicit state machine.

Each ``yield`` ends a state; the statements after it start a new one. A statement that
contains a ``yield``, a ``return``, a ``while`` loop, or the ``break``/``continue`` of an
enclosing ``while`` (an ``if``, a ``match``, a loop) ends its state too: its branches
continue into a new state that holds the statements after it. A ``while`` loop is a head
state testing its condition (the body continues into the loop's step, then back to the
head; ``break`` goes to the statements after the loop, ``continue`` to the step); a loop
whose first pass always runs tests its condition after the step instead, so nested
counted loops need no state that could skip every ``yield``.
``return`` and the end of the body end the tick: the next tick starts a fresh pass at state
0 (a ``Goto`` of state 0 that waits), as C#'s ``StateProcess.Run`` (``while (true) { await
ClockAsync(); await OnTickAsync(); }``) and the interpreter do. A pass may so return without
ever yielding (a one-tick pass). The body's end is an ``end`` state that only waits for
state 0: a same-tick edge into it becomes that wait, and a ``yield`` just before the end
waits into it, so that the next tick does nothing but end the pass (C#'s ``await`` just
before returning costs that tick too). A cycle of same-tick edges that can never be left
is refused (``sme.lower.cycles``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .cycles import check_cycles
from .errors import LoweringError
from .ir import (
    Break,
    Const,
    Continue,
    For,
    Goto,
    If,
    Loc,
    Match,
    MatchCase,
    Return,
    StateIR,
    Stmt,
    While,
    Yield,
)


def has_yield(stmts: list[Stmt]) -> bool:
    """Whether ``stmts`` must be split into states: a ``Yield``, ``While`` or ``Return`` at
    any depth, or a ``Break``/``Continue`` outside a ``For`` (so of a ``While``)."""
    for s in stmts:
        if isinstance(s, (Yield, While, Return, Break, Continue)):
            return True
        if isinstance(s, If) and (has_yield(s.then) or has_yield(s.orelse)):
            return True
        if isinstance(s, Match) and any(has_yield(c.body) for c in s.cases):
            return True
        if isinstance(s, For) and _yields_in(s.body):
            return True
    return False


def _yields_in(stmts: list[Stmt]) -> bool:
    """A ``For`` body that would need states (the front end never makes one)."""
    for s in stmts:
        if isinstance(s, (Yield, While, Return)):
            return True
        if isinstance(s, If) and (_yields_in(s.then) or _yields_in(s.orelse)):
            return True
        if isinstance(s, Match) and any(_yields_in(c.body) for c in s.cases):
            return True
        if isinstance(s, For) and _yields_in(s.body):
            return True
    return False


def _breaks(stmts: list[Stmt]) -> bool:
    """Whether ``stmts`` hold a ``Break`` of the loop they are the body of."""
    for s in stmts:
        if isinstance(s, Break):
            return True
        if isinstance(s, If) and (_breaks(s.then) or _breaks(s.orelse)):
            return True
        if isinstance(s, Match) and any(_breaks(c.body) for c in s.cases):
            return True
    return False


@dataclass(frozen=True)
class _Loop:
    """Where ``break`` and ``continue`` of the innermost ``While`` go."""

    exit: int
    next: int
    loc: Loc


class _Builder:
    def __init__(self) -> None:
        self.states: list[StateIR] = []
        self.names: set[str] = set()

    def new(self, name: str, loc: Loc, loop: _Loop | Loc | None) -> int:
        """A new state (``loop``: the innermost ``while`` it is in, or that loop's loc)."""
        base, n = name, 1
        while name in self.names:
            n += 1
            name = f"{base}_{n}"
        self.names.add(name)
        at = loop.loc if isinstance(loop, _Loop) else loop
        self.states.append(StateIR(len(self.states), name, loc, [], at))
        return len(self.states) - 1

    def state_for(self, rest: list[Stmt], cont: int, loc: Loc, loop: _Loop | None) -> int:
        """The state that runs ``rest`` then continues at ``cont`` (``cont`` itself when
        ``rest`` is empty)."""
        if not rest:
            return cont
        idx = self.new(f"line{loc.line}", loc, loop)
        self.states[idx].body = self.split(rest, cont, loc, loop)
        return idx

    def split(self, stmts: list[Stmt], cont: int, end: Loc, loop: _Loop | None
              ) -> list[Stmt]:
        """``stmts`` of one state; their end continues at ``cont`` (same tick)."""
        out: list[Stmt] = []
        for i, s in enumerate(stmts):
            rest = stmts[i + 1:]
            after_loc = rest[0].loc if rest else s.loc
            if isinstance(s, Yield):
                out.append(Goto(s.loc, self.state_for(rest, cont, after_loc, loop), True))
                return out
            if isinstance(s, Return):
                out.append(Goto(s.loc, 0, True))
                return out
            if isinstance(s, (Break, Continue)):
                if loop is None:
                    raise LoweringError(s.loc, "break/continue outside a loop")
                out.append(Goto(s.loc, loop.exit if isinstance(s, Break) else loop.next,
                                False))
                return out
            if isinstance(s, While):
                forever = isinstance(s.cond, Const) and s.cond.value is True
                # after `while True` without a break, nothing runs: no state for it
                after = (self.state_for(rest, cont, after_loc, loop)
                         if not forever or _breaks(s.body) else cont)
                head = self.new(f"loop{s.loc.line}", s.loc, s.loc)
                nxt = head
                if s.step or not s.test_first:
                    nxt = self.new(f"next{s.loc.line}", s.loc, s.loc)
                    again = ([Goto(s.loc, head, False)] if s.test_first else
                             [If(s.loc, s.cond, [Goto(s.loc, head, False)],
                                 [Goto(s.loc, after, False)])])
                    self.states[nxt].body = [*s.step, *again]
                body = self.split(s.body, nxt, s.loc, _Loop(after, nxt, s.loc))
                self.states[head].body = body if forever or not s.test_first else [
                    If(s.loc, s.cond, body, [Goto(s.loc, after, False)])]
                out.append(Goto(s.loc, head, False))
                return out
            if isinstance(s, If) and (has_yield(s.then) or has_yield(s.orelse)):
                r = self.state_for(rest, cont, after_loc, loop)
                out.append(If(s.loc, s.cond, self.split(s.then, r, s.loc, loop),
                              self.split(s.orelse, r, s.loc, loop), s.is_elif))
                return out
            if isinstance(s, Match) and any(has_yield(c.body) for c in s.cases):
                r = self.state_for(rest, cont, after_loc, loop)
                cases = [MatchCase(c.members, self.split(c.body, r, c.loc, loop), c.loc)
                         for c in s.cases]
                if cases[-1].members is not None:
                    cases.append(MatchCase(None, [Goto(s.loc, r, False)], s.loc))
                out.append(Match(s.loc, s.subject, cases))
                return out
            if isinstance(s, For) and _yields_in(s.body):
                raise LoweringError(s.loc, "internal: a for loop that yields was not "
                                    "lowered to a while loop")
            out.append(s)
        out.append(Goto(end, cont, False))
        return out


def build_states(body: list[Stmt], loc: Loc) -> list[StateIR]:
    """The state machine of a generator body (see the module docstring). Raises
    ``LoweringError`` when some pass through the body can run without reaching a yield."""
    b = _Builder()
    entry = b.new("start", loc, None)
    end = b.new("end", loc, None)
    b.states[end].body = [Goto(loc, entry, True)]
    b.states[entry].body = b.split(body, end, loc, None)
    states = _thread(b.states)
    check_cycles(states)
    return states


def _retarget(stmts: list[Stmt], where: dict[int, int], ends: set[int]) -> list[Stmt]:
    out: list[Stmt] = []
    for s in stmts:
        if isinstance(s, Goto):
            if not s.wait and s.state in ends:  # the pass ends: wait for a fresh one
                out.append(Goto(s.loc, where[0], True))
            else:
                out.append(Goto(s.loc, where[s.state], s.wait))
        elif isinstance(s, If):
            out.append(If(s.loc, s.cond, _retarget(s.then, where, ends),
                          _retarget(s.orelse, where, ends), s.is_elif))
        elif isinstance(s, Match):
            out.append(Match(s.loc, s.subject, [MatchCase(
                c.members, _retarget(c.body, where, ends), c.loc) for c in s.cases]))
        else:
            out.append(s)
    return out


def _thread(states: list[StateIR]) -> list[StateIR]:
    """Drop the states that only jump on (``Goto`` without waiting) and the states nothing
    reaches, so that the VHDL ``case`` lists only states that do something. A same-tick
    jump into a state that only waits for state 0 (the end of the pass) is that wait."""
    def final(i: int) -> int:
        seen: set[int] = set()
        while i not in seen:
            seen.add(i)
            body = states[i].body
            if i == 0 or len(body) != 1 or not isinstance(body[0], Goto) or body[0].wait:
                return i
            i = body[0].state
        return i

    jump = {s.index: final(s.index) for s in states}
    ends = {i for i, j in jump.items() if j != 0 and _ends(states[j].body)}
    reached, todo = {0}, [0]
    while todo:
        for m in _targets(states[todo.pop()].body, ends):
            if jump[m] not in reached:
                reached.add(jump[m])
                todo.append(jump[m])
    kept = [s for s in states if s.index in reached]
    number = {s.index: k for k, s in enumerate(kept)}
    where = {i: number[j] for i, j in jump.items() if j in number}
    return [StateIR(number[s.index], s.name, s.loc, _retarget(s.body, where, ends), s.loop)
            for s in kept]


def _ends(body: list[Stmt]) -> bool:
    """Whether a state only waits for state 0 (the end of the pass)."""
    return len(body) == 1 and isinstance(body[0], Goto) and body[0].wait \
        and body[0].state == 0


def _targets(stmts: list[Stmt], ends: set[int]) -> list[int]:
    """The states ``stmts`` go to (state 0 for a same-tick jump to the end)."""
    out: list[int] = []
    for s in stmts:
        if isinstance(s, Goto):
            out.append(0 if not s.wait and s.state in ends else s.state)
        elif isinstance(s, If):
            out += _targets(s.then, ends) + _targets(s.orelse, ends)
        elif isinstance(s, Match):
            for c in s.cases:
                out += _targets(c.body, ends)
    return out


__all__ = ["build_states", "has_yield"]
