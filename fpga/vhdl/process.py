"""One VHDL entity per process class (template for ``<Class>.vhd``).

A clocked process is a ``process (clk)``: registers and locals are variables, every output
signal has a ``<port>_<signal>_next`` variable (what the process last wrote: reading its own
output sees it, as in the Python semantics) copied to the port after the body. A
combinational process is a ``process (all)`` writing its ports directly (an output it does
not write on every path holds its value, set to the initial value during reset so that row 0
matches Python's reset evaluation). A generator becomes
a ``case`` over its states inside a loop that runs until a state ends the tick; a state on
a cycle of same-tick edges counts a step and asserts that the tick has not made
``MAX_STEPS`` of them (a loop that never reaches a yield would otherwise hang GHDL:
simulated time stops with it, and so does the testbench's watchdog), with the message the
Python backends raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from sme.lower.cycles import MAX_STEPS, spin_loops, spin_message
from sme.lower.ir import (
    Assign,
    BoolT,
    Break,
    Const,
    Continue,
    For,
    Goto,
    If,
    LocalTarget,
    Match,
    PortTarget,
    ProcessIR,
    RegTarget,
    Stmt,
    VType,
)

from .expr import EmitError, ExprEmitter, Scope
from .regions import ProcessNames

IND = "  "


@dataclass
class StmtEmitter:
    """Emits the statements of one process body."""

    ir: ProcessIR
    ex: ExprEmitter
    names: ProcessNames
    lines: list[str] = field(default_factory=list)

    def emit(self, stmts: list[Stmt], depth: int) -> None:
        for s in stmts:
            self.stmt(s, depth)

    def put(self, depth: int, text: str, where: Stmt | None = None) -> None:
        comment = f"  -- {where.loc.short}" if where is not None else ""
        self.lines.append(f"{IND * depth}{text}{comment}")

    def target_type(self, s: Assign) -> VType:
        return s.value.type

    def stmt(self, s: Stmt, d: int) -> None:
        ex = self.ex
        if isinstance(s, Assign):
            t = s.target
            value = ex.value(s.value)
            idx = "" if t.index is None else f"({ex.intexpr(t.index)})"
            if isinstance(t, PortTarget):
                if self.ir.combinational:
                    self.put(d, f"{self.names.port(t.port, t.signal)}{idx} <= {value};", s)
                else:
                    self.put(d, f"{self.names.next(t.port, t.signal)}{idx} := {value};", s)
            elif isinstance(t, (RegTarget, LocalTarget)):
                self.put(d, f"{self.names.var(t.name)}{idx} := {value};", s)
            return
        if isinstance(s, If):
            self.put(d, f"if {ex.cond(s.cond)} then", s)
            self.emit(s.then, d + 1)
            orelse = s.orelse
            while len(orelse) == 1 and isinstance(orelse[0], If) and orelse[0].is_elif:
                el = orelse[0]
                self.put(d, f"elsif {ex.cond(el.cond)} then", el)
                self.emit(el.then, d + 1)
                orelse = el.orelse
            if orelse:
                self.put(d, "else")
                self.emit(orelse, d + 1)
            self.put(d, "end if;")
            return
        if isinstance(s, Match):
            et = s.subject.type
            self.put(d, f"case {ex.value(s.subject)} is", s)
            covered: set[str] = set()
            has_default = False
            for c in s.cases:
                if c.members is None:
                    has_default = True
                    self.put(d + 1, "when others =>", None)
                else:
                    covered.update(c.members)
                    choices = " | ".join(self.names.types.enum_literal(et, m)  # type: ignore[arg-type]
                                         for m in c.members)
                    self.put(d + 1, f"when {choices} =>")
                self.emit(c.body, d + 2)
                if not c.body:
                    self.put(d + 2, "null;")
            if not has_default and (covered != set(et.members)  # type: ignore[attr-defined]
                                    or not et.positional):  # type: ignore[attr-defined]
                self.put(d + 1, "when others =>")
                self.put(d + 2, "null;")
            self.put(d, "end case;")
            return
        if isinstance(s, For):
            var = self.names.var(s.var)
            if s.step == 1:
                rng = f"{s.start} to {s.stop - 1}"
            elif s.step == -1:
                rng = f"{s.start} downto {s.stop + 1}"
            else:
                rng = f"0 to {len(s.values) - 1}"
            self.ex.scope.loop_vars[s.var] = (s.start, s.step)
            self.put(d, f"for {var} in {rng} loop", s)
            if s.guard is not None:
                self.put(d + 1, f"exit when not ({ex.cond(s.guard)});")
            self.emit(s.body, d + 1)
            self.put(d, "end loop;")
            return
        if isinstance(s, Break):
            self.put(d, "exit;", s)
            return
        if isinstance(s, Continue):
            self.put(d, "next;", s)
            return
        if isinstance(s, Goto):
            assert self.ir.states is not None
            target = self.names.state(s.state)
            if s.wait:
                self.put(d, f"tick_state := {target};", s)
                self.put(d, "exit tick_loop;")
            else:
                self.put(d, f"tick_state := {target};", s)
            return
        raise EmitError(f"{s.loc}: cannot emit {type(s).__name__}")


def _used_constants(ir: ProcessIR) -> set[str]:
    """Names of the module constants that the emitted code refers to by name."""
    found: set[str] = set()

    def walk(obj: object) -> None:
        if isinstance(obj, Const) and obj.name is not None:
            found.add(obj.name)
        if isinstance(obj, list | tuple):
            for x in obj:
                walk(x)
        elif hasattr(obj, "__dataclass_fields__") and not isinstance(obj, VType):
            for f in fields(obj):  # type: ignore[arg-type]
                walk(getattr(obj, f.name))

    walk(ir.body)
    walk(ir.states or [])
    return found


def written_on_every_path(stmts: list[Stmt]) -> set[tuple[str, str]]:
    """The ``(port, signal)`` outputs that ``stmts`` write whole on every path."""
    done: set[tuple[str, str]] = set()
    for s in stmts:
        if isinstance(s, Assign):
            t = s.target
            if isinstance(t, PortTarget) and t.index is None:
                done.add((t.port, t.signal))
        elif isinstance(s, If):
            done |= written_on_every_path(s.then) & written_on_every_path(s.orelse)
        elif isinstance(s, Match):
            members = set(s.subject.type.members)  # type: ignore[attr-defined]
            covered: set[str] = set()
            for c in s.cases:
                covered |= members if c.members is None else set(c.members)
            if covered >= members and s.cases:
                sets = [written_on_every_path(c.body) for c in s.cases]
                done |= set.intersection(*sets)
        elif (isinstance(s, For) and len(s.values) > 0 and s.guard is None
              and not _leaves(s.body)):
            done |= written_on_every_path(s.body)
    return done


def _leaves(stmts: list[Stmt]) -> bool:
    """Whether a loop body can end a pass early (``break``/``continue`` of that loop)."""
    for s in stmts:
        if isinstance(s, (Break, Continue)):
            return True
        if isinstance(s, If) and (_leaves(s.then) or _leaves(s.orelse)):
            return True
        if isinstance(s, Match) and any(_leaves(c.body) for c in s.cases):
            return True
    return False


def _comment_block(text: str | None, depth: int = 0) -> list[str]:
    if not text:
        return []
    return [f"{IND * depth}-- {ln}".rstrip() for ln in text.splitlines()]


def _string(text: str) -> str:
    """``text`` inside a VHDL string literal (quotes doubled, ASCII only)."""
    return text.replace('"', '""').encode("ascii", "replace").decode()


def emit_process(ir: ProcessIR, names: ProcessNames, pkg: str) -> str:
    """The VHDL file of one process class (entity ``names.entity``)."""
    entity, types = names.entity, names.types
    scope = Scope(port_signal=names.port,
                  own_output=names.next if not ir.combinational else names.port,
                  var=names.var, const=names.const, types=types,
                  constants={c.name: c.type for c in ir.constants})
    ex = ExprEmitter(scope)
    vtype, initial = types.vtype, types.initial
    out: list[str] = []
    out += [f"-- {ir.name} ({ir.loc.short}), generated by smeflow from {ir.loc.file}"]
    out += _comment_block(ir.doc)
    kind = "combinational" if ir.combinational else "clocked"
    if ir.is_generator:
        kind += " state machine (generator)"
    out += [f"-- Kind: {kind}."]
    for h in ir.helpers:  # a multi-line docstring stays a comment on every line
        out += _comment_block(f"Inlines helper {h.name} ({h.loc.short})"
                              + (f": {h.doc}" if h.doc else ""))
    out += ["library ieee;", "use ieee.std_logic_1164.all;", "use ieee.numeric_std.all;",
            "use work.sme_pkg.all;", f"use work.{pkg}.all;", "", f"entity {entity} is"]
    if ir.registers:
        out.append(f"{IND}generic (")
        gens = [f"{IND * 2}{names.init(r.name)} : {vtype(r.type)} := "
                f"{initial(r.initial, r.type)}" for r in ir.registers]
        out.append(";\n".join(gens))
        out.append(f"{IND});")
    ports = [f"{IND * 2}clk : in std_logic", f"{IND * 2}rst : in std_logic"]
    for p in ir.ports:
        for sig in p.signals:
            name = names.port(p.name, sig.name)
            if p.direction == "in":
                ports.append(f"{IND * 2}{name} : in {vtype(sig.type)}")
            else:
                ports.append(f"{IND * 2}{name} : out {vtype(sig.type)} := "
                             f"{initial(sig.initial, sig.type)}")
    out += [f"{IND}port (", ";\n".join(ports), f"{IND});", f"end entity {entity};", ""]
    out += [f"architecture rtl of {entity} is"]
    if ir.states is not None:
        lits = ", ".join(names.state(s.index) for s in ir.states)
        out.append(f"{IND}type state_t is ({lits});")
    out += ["begin", f"{IND}on_tick : process ({'all' if ir.combinational else 'clk'})"]
    decls: list[str] = []
    used = _used_constants(ir)
    for c in ir.constants:
        if c.name not in used:
            continue
        decls.append(f"constant {names.const(c.name)} : {vtype(c.type)} := "
                     f"{types.literal(c.value, c.type)};")
    for r in ir.registers:
        decls.append(f"variable {names.var(r.name)} : {vtype(r.type)} := "
                     f"{names.init(r.name)};")
    outs = [(p, s) for p in ir.ports if p.direction == "out" for s in p.signals]
    if not ir.combinational:
        for p, s in outs:
            decls.append(f"variable {names.next(p.name, s.name)} : {vtype(s.type)} := "
                         f"{initial(s.initial, s.type)};")
    for v in ir.locals:
        decls.append(f"variable {names.var(v.name)} : {vtype(v.type)};"
                     + (f"  -- {v.loc.short}" if v.loc else ""))
    spins = spin_loops(ir.states) if ir.states is not None else {}
    if ir.states is not None:
        decls.append(f"variable tick_state : state_t := {names.state(0)};")
    if spins:
        decls.append("variable tick_steps : natural := 0;  -- steps round loops in this tick")
    out += [f"{IND * 2}{d}" for d in decls]
    out.append(f"{IND}begin")
    body = StmtEmitter(ir, ex, names)
    if ir.combinational:
        # An output not written on every path holds its value (a latch), as in Python; in
        # reset (row 0) that value is the initial one, whatever ran before reset.
        held = [(p, s) for p, s in outs
                if (p.name, s.name) not in written_on_every_path(ir.body)]
        if held:
            out.append(f"{IND * 2}if rst = '1' then")
            for p, s in held:
                out.append(f"{IND * 3}{names.port(p.name, s.name)} <= "
                           f"{initial(s.initial, s.type)};")
            out.append(f"{IND * 2}end if;")
        body.emit(ir.body, 2)
        if not ir.body:
            body.put(2, "null;")
        out += body.lines
    else:
        out.append(f"{IND * 2}if rising_edge(clk) then")
        out.append(f"{IND * 3}if rst = '1' then")
        reset = [r for r in ir.registers if not r.storage]  # storage: block RAM, no reset
        for r in reset:
            out.append(f"{IND * 4}{names.var(r.name)} := {names.init(r.name)};")
        for p, s in outs:
            out.append(f"{IND * 4}{names.next(p.name, s.name)} := "
                       f"{initial(s.initial, s.type)};")
        if ir.states is not None:
            out.append(f"{IND * 4}tick_state := {names.state(0)};")
        if not reset and not outs and ir.states is None:
            out.append(f"{IND * 4}null;")
        out.append(f"{IND * 3}else")
        if ir.states is not None:
            if spins:
                body.put(4, "tick_steps := 0;")
            body.put(4, "tick_loop : loop")
            body.put(5, "case tick_state is")
            for st in ir.states:
                body.put(6, f"when {names.state(st.index)} =>  -- {st.loc.short}")
                if st.index in spins:  # a state on a same-tick cycle: GHDL would hang
                    loop = spins[st.index]
                    text = spin_message(ir.name, f"{loop.file}:{loop.line}")
                    body.put(7, "tick_steps := tick_steps + 1;")
                    body.put(7, f"assert tick_steps <= {MAX_STEPS} report \"{_string(text)}"
                             "\" severity failure;")
                body.emit(st.body, 7)
            body.put(5, "end case;")
            body.put(4, "end loop;")
        else:
            body.emit(ir.body, 4)
            if not ir.body:
                body.put(4, "null;")
        out += body.lines
        out.append(f"{IND * 3}end if;")
        for p, s in outs:
            out.append(f"{IND * 3}{names.port(p.name, s.name)} <= "
                       f"{names.next(p.name, s.name)};")
        out.append(f"{IND * 2}end if;")
    out += [f"{IND}end process on_tick;", "end architecture rtl;", ""]
    return "\n".join(out)


_ = BoolT
