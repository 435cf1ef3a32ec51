"""Typed IR (``sme.lower.ir``) of one process instance → lines of numba-compatible Python.

The IR says the exact range of every expression; this emitter adds the run-time checks
the interpreter makes (a stored value that may not fit, an index that may be out of
range, a divisor that may be zero, a read of a value that may be undefined) only where
the ranges do not already prove them unnecessary, and refuses (``BackendError`` naming
the process and ``file:line``) any expression whose raw value may not fit 64 bits.

This module emits statements and processes; ``emit_expr`` the expressions.
"""

from __future__ import annotations

from dataclasses import replace

from ..lower import ir
from ..lower.cycles import MAX_STEPS, spin_loops
from ..lower.ir import ArrayT, EnumT
from ..types import ArrayType
from .accumulate import Known, assigned, proven_accumulations
from .emit_expr import ExprEmitter, FastLoop, Instance
from .layout import ArraySlot, Site, Slot, Storage


class Emitter(ExprEmitter):
    """Emits the code of process instances into one flattened function: the statements
    and processes on top of ``ExprEmitter``'s expressions."""

    # -- processes -------------------------------------------------------------------
    def process(self, inst: Instance) -> list[str]:
        """The code of one tick of ``inst``."""
        self.inst = inst
        self.known = Known()
        p = inst.ir
        if p.states is None:
            return [f"# process {inst.name}", *self.block(p.body)]
        pc, waited = f"pc{inst.index}", f"_w{inst.index}"
        # The error names the loop the tick went round: the outermost loop of its cycle of
        # same-tick edges (``spin_loops``). With one such loop in the process the site says
        # it; with several, the state it stopped in (E[1]) picks one from ``lines``.
        spins = spin_loops(p.states)
        loops = sorted({f"{loc.file}:{loc.line}" for loc in spins.values()})
        lines = tuple(f"{(spins.get(st.index) or st.loop or st.loc).file}:"
                      f"{(spins.get(st.index) or st.loop or st.loc).line}"
                      for st in p.states) if len(loops) > 1 else ()
        steps = self.layout.site(Site("steps", loops[0] if loops else self.where(),
                                      who=inst.describe, lines=lines))
        out = [f"# process {inst.name} (state machine)", f"{waited} = 0",
               f"_n{inst.index} = 0", f"while {waited} == 0:",
               f"    _n{inst.index} += 1",
               f"    if _n{inst.index} > {MAX_STEPS}:",
               f"        _fail({steps}, {pc if lines else 0}, t, 0, E)"]
        for k, st in enumerate(p.states):
            self.loc = st.loc
            self.known = Known()
            out.append(f"    {'if' if k == 0 else 'elif'} {pc} == {st.index}:")
            out += ["        " + ln for ln in self.block(st.body)]
        return out

    def block(self, stmts: list[ir.Stmt]) -> list[str]:
        out: list[str] = []
        outer = self.known.values
        self.known.values = dict(outer)
        try:
            for s in stmts:
                self.loc = s.loc
                out += self.stmt(s)
                self.known.after(s)
        finally:
            self.known.values = outer
        return out or ["pass"]

    def loop_entry(self, body: list[ir.Stmt], var: str | None = None) -> dict[str, int]:
        """Enter a loop: what is known on every pass (the locals the body or loop may
        assign are not); the caller restores the returned values afterwards."""
        outer = self.known.values
        self.known.values = self.known.without(assigned(body) | ({var} if var else set()))
        return outer

    def stmt(self, s: ir.Stmt) -> list[str]:
        inst = self.inst
        assert inst is not None
        if isinstance(s, ir.Assign):
            return self.assign(s)
        if isinstance(s, ir.If):
            lines = [f"if {self.cond(s.cond)}:", *_indent(self.block(s.then))]
            if s.orelse:
                lines += ["else:", *_indent(self.block(s.orelse))]
            return lines
        if isinstance(s, ir.Match):
            subject = self.fresh()
            t = s.subject.type
            assert isinstance(t, EnumT)
            lines = [f"{subject} = {self.val(s.subject)}"]
            first = True
            for case in s.cases:
                if case.members is None:
                    head = "else:" if not first else "if True:"
                else:
                    test = " or ".join(f"{subject} == {t.code(m)}" for m in case.members)
                    head = f"{'if' if first else 'elif'} {test}:"
                lines += [head, *_indent(self.block(case.body))]
                first = False
            return lines
        if isinstance(s, ir.For):
            self.proven |= proven_accumulations(s, self.known.values)
            outer = self.loop_entry(s.body, s.var)
            try:
                return self.for_loop(s)
            finally:
                self.known.values = outer
        if isinstance(s, ir.Break):
            return ["break"]
        if isinstance(s, ir.Continue):
            return ["continue"]
        if isinstance(s, ir.Goto):
            lines = [f"pc{inst.index} = {s.state}"]
            if s.wait:
                lines.append(f"_w{inst.index} = 1")
            return lines
        raise self.fail(f"the statement {type(s).__name__}")

    def for_loop(self, s: ir.For) -> list[str]:
        """A ``for`` loop: its fast version when its indices can be checked before it (any
        out of range, for a value the loop may reach: the checked version runs, and fails
        where and as the element-wise checks do)."""
        inst = self.inst
        assert inst is not None
        var = inst.locals[s.var]
        assert isinstance(var, Slot)
        stop = str(s.stop)
        if s.step == 1 and s.stop - s.start > 1 and _copies(s):
            stop = self.layout.trip(s.stop)
        head = f"for {var.var} in range({s.start}, {stop}, {s.step}):"
        if s.step != 1 or s.start >= s.stop:
            return [head, *_indent(self.loop_body(s))]
        loop = FastLoop(s.var, s.start, s.stop, assigned(s.body))
        self.loops.append(loop)
        try:
            fast = self.loop_body(s)
        finally:
            self.loops.pop()
        if not loop.checks:
            return [head, *_indent(fast)]
        checked = self.loop_body(s)
        return [f"if {' and '.join(dict.fromkeys(loop.checks))}:",
                *_indent([head, *_indent(fast)]), "else:",
                *_indent([head, *_indent(checked)])]

    def loop_body(self, s: ir.For) -> list[str]:
        """A ``for`` loop's body, its guard first."""
        guard = [f"if not {self.cond(s.guard)}:", "    break"] if s.guard else []
        return guard + self.block(s.body)

    # -- stores ----------------------------------------------------------------------
    def target(self, t: ir.Target) -> tuple[Storage, Site]:
        """The storage of an assignment target and the site describing a failed store."""
        inst = self.inst
        assert inst is not None
        where = self.where()
        if isinstance(t, ir.PortTarget):
            pv = inst.ports[t.port]
            st = pv.write[t.signal]
            return st, Site("store", where, pv.types[t.signal], pv.bus, t.signal, pv.who)
        if isinstance(t, ir.RegTarget):
            return inst.registers[t.name], Site("store", where, inst.register_types[t.name],
                                                inst.name, t.name, inst.describe,
                                                register=True)
        return inst.locals[t.name], Site("store", where)

    def assign(self, s: ir.Assign) -> list[str]:
        t = s.target
        if isinstance(t, ir.PortTarget) and self.inst and t.port in self.inst.arrays \
                and t.index is not None:  # self.<port>[i].<signal> = value: bus i's signal
            i = self.bus_array_index(t.index, t.port, f"self.{t.port}")
            stores = [self.assign(replace(s, target=ir.PortTarget(f"{t.port}[{k}]", t.signal)))
                      for k in range(self.inst.arrays[t.port])]
            if isinstance(i, int):
                return stores[i]
            v = self.fresh()
            lines = [f"{v} = {i}"]
            for k, store in enumerate(stores):
                lines.append(f"{'if' if k == 0 else 'elif'} {v} == {k}:")
                lines += [f"    {ln}" for ln in store]
            return lines
        st, site = self.target(s.target)
        index = s.target.index
        if isinstance(s.value, ir.Convert) and s.value.origin == "resize":
            site = Site("store", site.where)  # the resize(...) is what can fail
        if isinstance(st, Slot):
            if isinstance(s.target, ir.LocalTarget) and site.signal == "" and (
                    not isinstance(s.value, ir.Convert) or s.value.origin != "resize"):
                # an annotated local: its failed store names it (``local_misfit``)
                site = Site("store", site.where, signal=s.target.name,
                            who=self.inst.describe if self.inst else "")
            value = s.value
            if id(s) in self.proven:  # x = x + e that cannot leave x's range
                assert isinstance(value, ir.Convert)
                value = value.operand
            lines = [f"{st.var} = {self.val(value, store=site)}"]
            if st.defined is not None:
                lines.append(f"{st.defined} = 1")
            return lines
        if index is not None:
            return self.store_elem(st, index, s.value, site)
        return self.store_array(st, s.value, site)

    def store_elem(self, arr: ArraySlot, index: ir.Expr, value: ir.Expr,
                   site: Site) -> list[str]:
        """``arr[index] = value``: Python evaluates the value, then checks the index, then
        checks the element."""
        v, i = self.fresh(), self.fresh()
        conv = value if isinstance(value, ir.Convert) else None
        lines = [f"{v} = {self.val(conv.operand if conv else value)}"]
        if arr.array == "A" and arr.offset in self.dirty:
            lines.append(f"{self.dirty[arr.offset]} = 1")
        # No undefined check: storing an element gives an array without a value one (the
        # other elements hold the zero they were allocated with, see Layout.storage).
        isite = self.layout.site(Site("index", site.where, site.target_type, site.owner,
                                      site.signal, length=arr.length))
        lines.append(f"{i} = {self.index(index, arr.length, '1', 0, isite)}")
        if conv is not None:
            elem = site.target_type.element if isinstance(site.target_type, ArrayType) else None
            esite = Site("store", site.where, site.target_type, site.owner, site.signal,
                         site.who, element=True, register=site.register)
            code = self.convert(conv, v, esite if elem is not None else site, index=i)
            lines.append(f"{self.element(arr, i)} = {code}")
        else:
            lines.append(f"{self.element(arr, i)} = {v}")
        if arr.defined is not None:
            lines.append(f"{arr.defined} = 1")
        return lines

    def store_array(self, dst: ArraySlot, value: ir.Expr, site: Site) -> list[str]:
        lines: list[str] = []
        if dst.array == "A" and dst.offset in self.dirty:
            lines.append(f"{self.dirty[dst.offset]} = 1")
        if isinstance(value, ir.Const):
            t = value.type
            assert isinstance(t, ArrayT)
            for k, x in enumerate(value.value):
                lines.append(f"{dst.at(str(k))} = {self.const_raw(x, t.element)}")
        else:
            src, usite = self.storage_of(value)
            if not isinstance(src, ArraySlot):
                raise self.fail("an array value other than an array signal, register or local")
            if usite:
                lines.append(f"_rd(0, {src.defined}, {usite}, t, E)")
            lines += [f"for _k in range({self.layout.trip(dst.length)}):",
                      f"    {dst.at('_k')} = {self.load(src, '_k')}"]
        if dst.defined is not None:
            lines.append(f"{dst.defined} = 1")
        return lines


def _copies(s: ir.For) -> bool:
    """Whether the loop ``s`` only stores array elements (a copy or a conversion of
    words, lane by lane: no scalar locals, no branches), so that its trip count is made
    opaque (``Layout.trip``)."""
    return s.guard is None and all(isinstance(b, ir.Assign) and b.target.index is not None
                                   for b in s.body)


def _indent(lines: list[str]) -> list[str]:
    return ["    " + ln for ln in lines]
