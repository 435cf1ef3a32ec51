"""Random SME process bodies for differential fuzzing of the backends.

``module_source(seed, processes=20)`` returns the Python source of a module holding an input
bus, an enum, ``processes`` random process classes (each with its own output bus and random
registers) and ``build()`` returning the network of all of them. The bodies use the subset
the translators support: integer arithmetic on random widths and signedness (``+ - *``,
``//``/``%`` by constants, shifts, bitwise operators, ``abs``/``min``/``max``, conditional
expressions), nested ``if``/``elif``/``else``, ``match`` on an enum, locals, registers,
fixed point with explicit rounding, and every store made to fit with ``wrap``, ``saturate``
or ``resize``, so the Python simulation never raises. Any backend (interpreter, compiled,
VHDL) must then produce the same trace for the same stimulus: a difference is a bug.

The random choices go through a ``Choices`` object: ``RandomChoices(seed)`` for plain
seeded runs, or ``hypothesis_choices(draw)`` inside a hypothesis strategy, which lets
hypothesis shrink a failing module to a small one. ``load_module`` imports generated source
from a file (the translators read process source code, so it must live on disk).

    src = module_source(seed=7, processes=10)
    mod = load_module(src, tmp_path)
    net = mod.build()
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from .fuzz_tools import (
    Choices,
    RandomChoices,
    hypothesis_choices,
    load_module,
    reduce_body,
    stimulus_strategy,
    value_strategy,
)

MAX_EXPR_BITS = 160
"""Generated expressions stay below this many bits (the translators reject > 256)."""
INT_OPS = ("+", "-", "*", "neg", "~", "abs", "min", "max", "//", "%", "<<", ">>", ">>v",
           "&", "|", "^", "if", "+", "-", "*")
"""Operators of integer expressions (``neg`` is unary minus, ``>>v`` a variable shift,
``if`` a conditional expression); repeated ones are drawn more often. Besides operator
names, ``exclude`` understands ``"%1"``/``"//1"`` (no divisor ±1), ``"neg/"`` (no negative
divisors), ``"nearest"`` (round fixed point by floor only)
and ``"latch"`` (combinational processes write every output first, so none holds a value)."""
KNOWN_VHDL_DIFFERENCES: frozenset[str] = frozenset()
"""``exclude`` set for constructs on which the VHDL exporter is known to differ from Python
(each has a minimal reproduction in ``tests/fpga/test_fuzz_differential.py``). Empty: the
fixed-point ``-x``/``abs`` fraction, ``x % 1``, ``x // -3`` at an unsigned maximum, the
"nearest" rounding carry and the combinational latch in reset were all fixed, and their
reproductions are regression tests there."""
FIX_OPS = ("+", "-", "*", "neg", "<<", ">>", "+int", "abs")
"""Operators of fixed-point expressions; exclude one with ``"fix" + op`` (``"fixneg"``)."""


# -- types ------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Num:
    """An integer or fixed-point type: range of the raw value and fraction bits."""

    signed: bool
    width: int
    frac: int = 0

    @property
    def decl(self) -> str:
        if self.frac:
            return (f"{'SFix' if self.signed else 'UFix'}"
                    f"[{self.width - self.frac}, {self.frac}]")
        return f"{'Int' if self.signed else 'UInt'}[{self.width}]"

    @property
    def lo(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1


@dataclass(frozen=True)
class _Sig:
    """A readable value: its Python expression, its kind and type."""

    text: str
    kind: str  # "int", "fix", "bool", "enum"
    num: _Num | None = None


@dataclass
class _Expr:
    text: str
    bits: int  # magnitude bound in bits (sign excluded)
    frac: int = 0


@dataclass
class _Scope:
    """What a body can read and write."""

    ints: list[_Sig] = field(default_factory=list)
    fixes: list[_Sig] = field(default_factory=list)
    bools: list[_Sig] = field(default_factory=list)
    enum_in: str = ""
    locals_: list[_Sig] = field(default_factory=list)


class _Generator:
    def __init__(self, c: Choices, enum_members: list[str],
                 exclude: frozenset[str] = frozenset(), max_bits: int | None = None) -> None:
        self.c = c
        self.exclude = exclude
        # max_bits given: every intermediate value is bounded (fits max_bits + 1 signed bits)
        self.bounded = max_bits is not None
        self.max_bits = MAX_EXPR_BITS if max_bits is None else max_bits
        self.members = enum_members
        self.local_count = 0
        self.constants: list[str] = []

    # -- types and values --------------------------------------------------------------
    def num_type(self, fixed: bool = False) -> _Num:
        c = self.c
        signed = c.chance(0.5)
        if fixed:
            frac = c.integer(1, 12)
            ints = c.integer(1 if signed else 0, 12)
            return _Num(signed, max(ints + frac, 1), frac)
        width = c.pick([1, 2, 3, 4, 5, 7, 8, 9, 12, 16, 17, 24, 31, 32, 33, 48, 63, 64])
        if signed and width == 1:
            width = 2
        if self.bounded:
            width = min(width, self.max_bits + signed)
        return _Num(signed, width)

    def value_of(self, t: _Num) -> str:
        c = self.c
        raw = c.pick([0, t.lo, t.hi, c.integer(t.lo, t.hi)])
        if t.frac:
            return f"{t.decl}(Fixed({raw}, {t.frac}))"
        return str(raw)

    def fix_constant(self, t: _Num) -> str:
        """A module-level fixed-point constant of type ``t`` (its name)."""
        name = f"K{len(self.constants)}"
        self.constants.append(f"{name} = {self.value_of(t)}")
        return name

    # -- expressions ---------------------------------------------------------------------
    def int_leaf(self, s: _Scope) -> _Expr:
        c = self.c
        options = s.ints + [v for v in s.locals_ if v.kind == "int"]
        k = c.integer(0, 9)
        if k <= 6 and options:
            v = c.pick(options)
            assert v.num is not None
            return _Expr(v.text, v.num.width)
        if k == 7 and s.bools:
            return _Expr(f"int({c.pick(s.bools).text})", 1)
        value = c.pick([0, 1, -1, 3, 7, -8, 100, -1000, 2**31 - 1, -(2**40),
                        c.integer(-70000, 70000)])
        return _Expr(f"({value})" if value < 0 else str(value), abs(value).bit_length() + 1)

    def int_expr(self, s: _Scope, depth: int) -> _Expr:
        c = self.c
        if depth <= 0 or c.chance(0.3):
            return self.int_leaf(s)
        op = c.pick([o for o in INT_OPS if o not in self.exclude])
        a = self.int_expr(s, depth - 1)
        if op in ("neg", "~", "abs"):
            text = {"neg": f"-{a.text}", "~": f"~{a.text}", "abs": f"abs({a.text})"}[op]
            return self._bound(_Expr(f"({text})" if op != "abs" else text, a.bits + 1), a)
        if op in ("//", "%"):
            d = c.pick([1, 2, 3, 5, 7, 8, 16, 100, -1, -3, -8, 1000])
            if d < 0 and "neg/" in self.exclude:
                d = -d
            if abs(d) == 1 and f"{op}1" in self.exclude:
                d *= 2
            return self._bound(_Expr(f"({a.text} {op} {d if d > 0 else f'({d})'})", a.bits + 1), a)
        if op == "<<":
            k = c.integer(0, 6)
            return self._bound(_Expr(f"({a.text} << {k})", a.bits + k), a)
        if op == ">>":
            return _Expr(f"({a.text} >> {c.integer(0, 12)})", a.bits)
        if op == ">>v":
            b = self.int_leaf(s)
            return _Expr(f"({a.text} >> ({b.text} & 7))", a.bits)
        if op == "if":
            b = self.int_expr(s, depth - 1)
            return _Expr(f"({a.text} if {self.cond(s, depth - 1)} else {b.text})",
                         max(a.bits, b.bits))
        b = self.int_expr(s, depth - 1)
        if op in ("min", "max"):
            return _Expr(f"{op}({a.text}, {b.text})", max(a.bits, b.bits))
        bits = a.bits + b.bits if op == "*" else max(a.bits, b.bits) + 1
        if bits > self.max_bits:
            return a
        return _Expr(f"({a.text} {op} {b.text})", bits)

    def fix_expr(self, s: _Scope, depth: int) -> _Expr:
        c = self.c
        if depth <= 0 or c.chance(0.3) or not s.fixes:
            if s.fixes and c.chance(0.8):
                v = c.pick(s.fixes)
                assert v.num is not None
                return _Expr(v.text, v.num.width, v.num.frac)
            t = self.num_type(fixed=True)
            return _Expr(self.fix_constant(t), t.width + 1, t.frac)
        op = c.pick([o for o in FIX_OPS if f"fix{o}" not in self.exclude])
        a = self.fix_expr(s, depth - 1)
        if op == "neg":
            return self._bound(_Expr(f"(-{a.text})", a.bits + 1, a.frac), a)
        if op == "abs":
            return self._bound(_Expr(f"abs({a.text})", a.bits + 1, a.frac), a)
        if op == "<<":
            k = c.integer(0, 4)
            return self._bound(_Expr(f"({a.text} << {k})", a.bits + k, a.frac), a)
        if op == ">>":
            k = c.integer(0, 4)
            return _Expr(f"({a.text} >> {k})", a.bits, a.frac + k)
        if op == "+int":
            b = self.int_expr(s, 1)
            return self._bound(_Expr(f"({a.text} + {b.text})",
                                     max(a.bits, b.bits + a.frac) + 1, a.frac), a)
        b = self.fix_expr(s, depth - 1)
        if op == "*":
            if a.bits + b.bits > self.max_bits or a.frac + b.frac > 40:
                return a
            return _Expr(f"({a.text} * {b.text})", a.bits + b.bits, a.frac + b.frac)
        f = max(a.frac, b.frac)
        return self._bound(_Expr(f"({a.text} {op} {b.text})",
                                 max(a.bits + f - a.frac, b.bits + f - b.frac) + 1, f), a)

    def _bound(self, e: _Expr, fallback: _Expr) -> _Expr:
        """``e``, or ``fallback`` when ``max_bits`` was given and ``e`` may exceed it."""
        return fallback if self.bounded and e.bits > self.max_bits else e

    def cond(self, s: _Scope, depth: int) -> str:
        c = self.c
        k = c.integer(0, 9)
        if depth > 0 and k == 0:
            return f"(not {self.cond(s, depth - 1)})"
        if depth > 0 and k == 1:
            op = c.pick(["and", "or"])
            return f"({self.cond(s, depth - 1)} {op} {self.cond(s, depth - 1)})"
        if k == 2 and s.bools:
            return c.pick(s.bools).text
        if k == 3 and s.enum_in:
            op = c.pick(["==", "!="])
            return f"{s.enum_in} {op} Mode.{c.pick(self.members)}"
        op = c.pick(["<", "<=", "==", "!=", ">", ">="])
        if k == 4 and s.fixes:
            fx, i = self.fix_expr(s, min(depth, 1)), self.int_expr(s, 0)
            if self.bounded and max(fx.bits, i.bits + fx.frac) >= self.max_bits:
                i = _Expr("0", 1)
            return f"{fx.text} {op} {i.text}"
        return f"{self.int_expr(s, min(depth, 2)).text} {op} {self.int_expr(s, 1).text}"

    # -- statements ------------------------------------------------------------------------
    def store(self, target: _Sig, s: _Scope) -> str:
        c = self.c
        if target.kind == "bool":
            return f"{target.text} = {self.cond(s, 2)}"
        if target.kind == "enum":
            m1, m2 = c.pick(self.members), c.pick(self.members)
            if s.enum_in and c.chance(0.3):
                return f"{target.text} = {s.enum_in}"
            return f"{target.text} = Mode.{m1} if {self.cond(s, 1)} else Mode.{m2}"
        assert target.num is not None
        t = target.num
        if target.kind == "fix":
            e = self.fix_expr(s, 3) if c.chance(0.85) else self.int_expr(s, 1)
            if self.bounded and e.bits + max(t.frac - e.frac, 0) >= self.max_bits:
                e = _Expr(self.fix_constant(t), t.width + 1, t.frac)
            rounding = "floor" if "nearest" in self.exclude else c.pick(["floor", "nearest"])
            form = c.integer(0, 2)
            if form == 0:
                return f"{target.text} = wrap({e.text}, rounding=\"{rounding}\")"
            if form == 1:
                return f"{target.text} = saturate({e.text}, rounding=\"{rounding}\")"
            overflow = c.pick(["wrap", "saturate"])
            return (f"{target.text} = resize({e.text}, {t.decl}, rounding=\"{rounding}\", "
                    f"overflow=\"{overflow}\")")
        e = self.int_expr(s, 3)
        return f"{target.text} = {c.pick(['wrap', 'saturate'])}({e.text})"

    def block(self, targets: list[_Sig], s: _Scope, depth: int, n: int) -> list[str]:
        c = self.c
        lines: list[str] = []
        for _ in range(n):
            k = c.integer(0, 9)
            if depth > 0 and k <= 1:
                lines += self.if_stmt(targets, s, depth)
            elif depth > 0 and k == 2 and s.enum_in:
                lines += self.match_stmt(targets, s, depth)
            else:
                lines.append(self.store(c.pick(targets), s))
        return lines or ["pass"]

    def if_stmt(self, targets: list[_Sig], s: _Scope, depth: int) -> list[str]:
        c = self.c
        lines = [f"if {self.cond(s, 2)}:"]
        lines += _indent(self.block(targets, s, depth - 1, c.integer(1, 3)))
        for _ in range(c.integer(0, 2)):
            lines.append(f"elif {self.cond(s, 2)}:")
            lines += _indent(self.block(targets, s, depth - 1, c.integer(1, 2)))
        if c.chance(0.5):
            lines.append("else:")
            lines += _indent(self.block(targets, s, depth - 1, c.integer(1, 2)))
        return lines

    def match_stmt(self, targets: list[_Sig], s: _Scope, depth: int) -> list[str]:
        c = self.c
        members = list(self.members)
        lines = [f"match {s.enum_in}:"]
        while members:
            take = members[:c.integer(1, len(members))]
            members = members[len(take):]
            if members and c.chance(0.2):
                lines.append("    case _:")
                members = []
            else:
                lines.append(f"    case {' | '.join('Mode.' + m for m in take)}:")
            lines += _indent(self.block(targets, s, depth - 1, c.integer(1, 2)), 2)
        return lines

    # -- one process -----------------------------------------------------------------------
    def process(self, index: int, inputs: _Scope) -> tuple[str, str, bool]:
        """(bus class source, process class source, combinational)."""
        c = self.c
        comb = c.chance(0.2)
        outs: list[tuple[str, str, str]] = []  # name, decl, initial
        targets: list[_Sig] = []
        for k in range(c.integer(1, 4)):
            kind = c.pick(["int", "int", "int", "fix", "bool", "enum"])
            name = f"y{k}"
            if kind in ("int", "fix"):
                t = self.num_type(fixed=kind == "fix")
                outs.append((name, t.decl, self.value_of(t)))
                targets.append(_Sig(f"self.out.{name}", kind, t))
            elif kind == "bool":
                outs.append((name, "Bool", c.pick(["False", "True"])))
                targets.append(_Sig(f"self.out.{name}", "bool"))
            else:
                outs.append((name, "Mode", f"Mode.{c.pick(self.members)}"))
                targets.append(_Sig(f"self.out.{name}", "enum"))
        regs: list[tuple[str, str, str]] = []
        scope = _Scope(list(inputs.ints), list(inputs.fixes), list(inputs.bools),
                       inputs.enum_in)
        if not comb:
            for k in range(c.integer(0, 3)):
                fixed = c.chance(0.25)
                t = self.num_type(fixed=fixed)
                regs.append((f"r{k}", t.decl, self.value_of(t)))
                sig = _Sig(f"self.r{k}", "fix" if fixed else "int", t)
                (scope.fixes if fixed else scope.ints).append(sig)
                targets.append(sig)
            for sig in targets:  # a clocked process may read its own outputs
                if sig.text.startswith("self.out.") and sig.kind in ("int", "fix", "bool"):
                    {"int": scope.ints, "fix": scope.fixes, "bool": scope.bools}[
                        sig.kind].append(sig)
        body: list[str] = []
        for _ in range(c.integer(0, 2)):
            name = f"t{self.local_count}"
            self.local_count += 1
            e = self.int_expr(scope, 2)
            body.append(f"{name} = {e.text}")
            scope.locals_.append(_Sig(name, "int", _Num(True, e.bits + (not self.bounded))))
        if comb and "latch" in self.exclude:  # every output written on every path
            body += [self.store(t, scope) for t in targets]
        body += self.block(targets, scope, 2, c.integer(2, 5))
        bus = [f"class Out{index}(Bus):", f"    \"\"\"Outputs of P{index}.\"\"\"", ""]
        bus += [f"    {n}: {d} = {init}" for n, d, init in outs]
        flag = ", combinational=True" if comb else ""
        proc = [f"class P{index}(Process{flag}):", f"    \"\"\"Random body #{index}.\"\"\"", "",
                "    inp: In[FuzzIn]", f"    out: Out[Out{index}]"]
        proc += [f"    {n}: {d} = {init}" for n, d, init in regs]
        proc += ["", "    def on_tick(self) -> None:", *_indent(body, 2)]
        return "\n".join(bus), "\n".join(proc), comb


def _indent(lines: list[str], levels: int = 1) -> list[str]:
    return ["    " * levels + ln for ln in lines]


HEADER = '''"""Random SME processes generated by fpga.fuzz (every store fits by construction)."""
# ruff: noqa
from __future__ import annotations

import enum

from sme import (Bool, Bus, Fixed, In, Int, Network, Out, Process, SFix, UFix, UInt, resize,
                 saturate, wrap)
'''


def generate_module(c: Choices, processes: int = 20, name: str = "fuzz",
                    exclude: frozenset[str] = frozenset(),
                    keep: Collection[int] | None = None, max_bits: int | None = None) -> str:
    """The source of a module with ``processes`` random process classes and ``build()``
    returning network ``name`` of one instance of each (all reading one input bus).
    ``exclude`` names operators never to generate (from ``INT_OPS``, or ``"fix" + op`` for
    ``FIX_OPS``), for a backend that does not support them yet. ``keep`` lists the process
    indices to write out (the others are generated, so the kept ones are the same, but
    left out): the way to isolate a failing process. ``max_bits`` (default: no bound beyond
    ``MAX_EXPR_BITS``) bounds every value and intermediate result to that many bits plus
    sign (63: signed 64-bit integers, no ``UInt[64]``, for the compiled backend)."""
    members = [f"M{k}" for k in range(c.integer(2, 5))]
    g = _Generator(c, members, exclude, max_bits)
    inputs = _Scope(enum_in="self.inp.mode")
    in_decls: list[str] = []
    for k in range(c.integer(2, 4)):
        t = g.num_type()
        in_decls.append(f"    a{k}: {t.decl} = {g.value_of(t)}")
        inputs.ints.append(_Sig(f"self.inp.a{k}", "int", t))
    ft = g.num_type(fixed=True)
    in_decls.append(f"    fx: {ft.decl} = {g.value_of(ft)}")
    inputs.fixes.append(_Sig("self.inp.fx", "fix", ft))
    in_decls += ["    flag: Bool = False", f"    mode: Mode = Mode.{members[0]}"]
    inputs.bools.append(_Sig("self.inp.flag", "bool"))
    parts = [HEADER, "", "class Mode(enum.Enum):", "    \"\"\"A random enum.\"\"\"", ""]
    parts += [f"    {m} = {k}" for k, m in enumerate(members)]
    parts += ["", "", "class FuzzIn(Bus):", "    \"\"\"The stimulus of every process.\"\"\"", ""]
    parts += in_decls
    names = []
    classes: list[str] = []
    for i in range(processes):
        bus, proc, _ = g.process(i, inputs)
        if keep is None or i in keep:
            classes += ["", "", bus, "", "", proc]
            names.append(i)
    if g.constants:
        parts += ["", "", *g.constants]
    parts += classes
    parts += ["", "", "def build() -> Network:", f"    \"\"\"Network '{name}'.\"\"\"",
              "    inp = FuzzIn()",
              f"    return Network({name!r}, ["]
    parts += [f"        P{i}(inp=inp, out=Out{i}())," for i in names]
    parts += ["    ], inputs=[inp])", ""]
    return "\n".join(parts)


def module_source(seed: int, processes: int = 20, name: str = "fuzz",
                  exclude: frozenset[str] = frozenset(),
                  keep: Collection[int] | None = None, max_bits: int | None = None) -> str:
    """``generate_module`` with ``RandomChoices(seed)``: the same seed, the same source."""
    return generate_module(RandomChoices(seed), processes, name, exclude, keep, max_bits)


# -- hypothesis strategies ------------------------------------------------------------------

def process_modules(processes: int = 20, name: str = "fuzz",
                    exclude: frozenset[str] = frozenset(), max_bits: int | None = None) -> Any:
    """A hypothesis strategy of module sources (see ``generate_module``)."""
    from hypothesis import strategies as st

    @st.composite
    def modules(draw: Callable[[Any], Any]) -> str:
        return generate_module(hypothesis_choices(draw), processes, name, exclude,
                               max_bits=max_bits)

    return modules()


__all__ = ["FIX_OPS", "INT_OPS", "KNOWN_VHDL_DIFFERENCES", "Choices", "RandomChoices",
           "generate_module",
           "hypothesis_choices", "load_module", "module_source", "process_modules",
           "reduce_body", "stimulus_strategy", "value_strategy"]
