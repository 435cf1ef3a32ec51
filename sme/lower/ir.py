"""The typed intermediate representation of a process body, shared by every code generator.

``sme.lower.lower_process`` turns a process class's ``on_tick`` (and the small pure helper
functions it calls, which are inlined) into a ``ProcessIR``. Every expression node carries
its exact type; the VHDL exporter (``fpga``) and the compiled simulator (``sme.compiled``)
both generate code from this tree and nothing else.

Value model (the contract a backend implements)
-----------------------------------------------
* ``NumT(lo, hi, frac)``: a number whose *raw* integer lies in ``lo..hi`` and whose value is
  ``raw * 2**-frac``. Integers have ``frac == 0``; ``UFix``/``SFix`` values have ``frac > 0``.
  The range is exact: no expression of the IR ever produces a raw value outside its type's
  range, so a backend that computes every node in ``width`` bits (signed when ``signed``)
  never overflows. ``width`` may exceed 64 (the compiled backend then runs on Python ints).
* ``BoolT``: ``False``/``True``.
* ``EnumT``: a Python ``Enum`` member; encoded by its code (``EnumT.code``: the member's
  value when every value is a non-negative int, else its position).
* ``ArrayT``: a fixed-length sequence of ``element`` values.

Operators (``BinOp``) compute the exact Python result on the operands' values; operand
types may differ from the result type, and a backend converts each operand to the result's
representation first (sign- or zero-extension, and fraction alignment for ``+``/``-``).
Only ``Convert`` can lose information, and only as it says (``overflow``/``rounding``).

Statements keep Python's structure (``If`` with ``elif`` chains, ``Match``, ``For``) and each
has a ``Loc`` (file, line, column) so generated code can point back at the Python line.

Generators
----------
A generator process (``on_tick`` contains ``yield``) keeps its structured ``body`` (with
``Yield``, ``While``, ``Return`` and the ``Break``/``Continue`` of its ``While`` loops; a
``for`` loop that yields is a ``While`` over a hidden counter) and also gets ``states``: an
explicit state machine in which every control path of a state's body ends in a ``Goto``.
State bodies hold only ``Assign``, ``If``, ``Match``, ``Goto`` and ``For`` loops that do
not yield (whose own ``Break``/``Continue`` stay inside them). ``Goto(wait=True)`` ends the
tick (the next tick starts in that state); ``Goto(wait=False)`` continues in that state
within the same tick. State 0 is the entry (the top of ``on_tick``); the generator's end and
its ``return`` end the tick and the next tick starts at state 0 (``Goto(0, wait=True)``), as
in the interpreter and C#'s ``StateProcess``; no ``wait=False`` edge goes to state 0. The
lowering refuses a loop of ``wait=False`` edges that can never be left
(``sme.lower.cycles``); a backend runs ``while not waited: run(state)``. In a
generator every local is persistent (it keeps its value across ticks, like a register that
only this process sees).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..types import SignalType
from .vtypes import ArrayT, BoolT, EnumT, NumT, VType, raw_of, vtype_of

# -- source locations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Loc:
    """A place in Python source: file (as given to ``inspect``), 1-based line, 0-based col."""

    file: str
    line: int
    col: int = 0

    @property
    def short(self) -> str:
        """``basename.py:line`` (for comments in generated code)."""
        return f"{self.file.rsplit('/', 1)[-1]}:{self.line}"

    def __str__(self) -> str:
        return f"{self.file.rsplit('/', 1)[-1]}:{self.line}:{self.col}"


# -- expressions -----------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    """Base class of expressions; ``type`` is exact (see the module docstring)."""

    type: VType


@dataclass(frozen=True)
class Const(Expr):
    """A constant. ``value``: raw int for ``NumT``, bool, enum member, or tuple for arrays.
    ``name`` is the module-level constant it came from, if any (for readable output)."""

    value: Any
    name: str | None = None


@dataclass(frozen=True)
class PortRead(Expr):
    """``self.<port>.<signal>``. ``own_output`` is set when a process reads a signal of one of
    its own output ports: it then sees the value it last wrote (its next-value store)."""

    port: str
    signal: str
    own_output: bool = False


@dataclass(frozen=True)
class RegRead(Expr):
    """``self.<register>``: the register's current value (including writes earlier in this
    tick)."""

    name: str


@dataclass(frozen=True)
class LocalRead(Expr):
    """A local variable (or a ``For`` loop variable, or an inlined helper's parameter)."""

    name: str


@dataclass(frozen=True)
class Index(Expr):
    """``base[index]`` on an array; an index outside ``0..length-1`` is an error (no count
    from the end). ``text`` is the array as the source writes it (for that error)."""

    base: Expr
    index: Expr
    text: str = field(default="", compare=False)


BinOpName = Literal["+", "-", "*", "//", "%", "<<", ">>", "&", "|", "^"]


@dataclass(frozen=True)
class BinOp(Expr):
    """An arithmetic/bitwise operator with Python semantics (exact result).

    ``//`` floors, ``%`` takes the sign of the divisor, ``>>`` on an integer floors. On a
    fixed-point left operand ``x >> n`` (constant ``n``) is exact: the raw value is unchanged
    and the result has ``n`` more fractional bits; ``x << n`` shifts the raw value.
    ``+``/``-`` align the operands' fractions to the result's ``frac``; ``*`` adds them.
    """

    op: BinOpName
    left: Expr
    right: Expr


@dataclass(frozen=True)
class UnaryOp(Expr):
    """``-x``, ``~x`` (= ``-x - 1``) on numbers; ``not x`` on Bool."""

    op: Literal["-", "~", "not"]
    operand: Expr


@dataclass(frozen=True)
class Compare(Expr):
    """A comparison of two numbers (fractions aligned), two Bools or two members of one enum
    (``==``/``!=`` only). ``type`` is always ``BoolT``."""

    op: Literal["==", "!=", "<", "<=", ">", ">="]
    left: Expr
    right: Expr


@dataclass(frozen=True)
class BoolOp(Expr):
    """``and``/``or`` over Bool operands (backends may evaluate all operands: they are pure)."""

    op: Literal["and", "or"]
    operands: tuple[Expr, ...]


@dataclass(frozen=True)
class Select(Expr):
    """``if_true if cond else if_false``; both arms already have ``type``."""

    cond: Expr
    if_true: Expr
    if_false: Expr


@dataclass(frozen=True)
class Convert(Expr):
    """Change an expression's representation to ``type``.

    Number → number: align the fraction to ``type.frac`` (shifting left is exact; dropping
    bits rounds by ``rounding``: ``"floor"``, or ``"nearest"`` = round half up; ``"exact"``
    means Python proved no bit is lost, so floor is correct), then bring the raw value into
    ``type``'s range by ``overflow``: ``"error"`` (the value is known to fit: Python checks
    it at run time, so truncating is correct), ``"wrap"`` (two's complement wrap-around to
    ``type.width`` bits), ``"saturate"`` (clamp to ``type.lo..type.hi``).
    Number → Bool: ``value != 0``. Bool → number: 0/1. Same-kind types otherwise.
    """

    operand: Expr
    rounding: Literal["exact", "floor", "nearest"] = "exact"
    overflow: Literal["error", "wrap", "saturate"] = "error"
    origin: Literal["implicit", "resize"] = "implicit"
    """``"resize"`` when the user wrote ``resize(...)`` (its error is resize's own, also when
    the result is stored unchanged into a signal of the same type)."""


# -- statements --------------------------------------------------------------------------


@dataclass(frozen=True)
class PortTarget:
    """Write ``self.<port>.<signal>`` (optionally one element ``[index]``)."""

    port: str
    signal: str
    index: Expr | None = None


@dataclass(frozen=True)
class RegTarget:
    """Write register ``self.<name>`` (optionally one element ``[index]``)."""

    name: str
    index: Expr | None = None


@dataclass(frozen=True)
class LocalTarget:
    """Write a local variable (optionally one element ``[index]``)."""

    name: str
    index: Expr | None = None


Target = PortTarget | RegTarget | LocalTarget


@dataclass
class Stmt:
    """Base class of statements."""

    loc: Loc


@dataclass
class Assign(Stmt):
    """``target = value``; ``value.type`` equals the target's type (or its element type)."""

    target: Target
    value: Expr


@dataclass
class If(Stmt):
    """``if cond: then else: orelse``. ``elif`` is an ``If`` alone in ``orelse`` with
    ``is_elif`` set (so generators of code can print ``elsif``)."""

    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt] = field(default_factory=list)
    is_elif: bool = False


@dataclass
class MatchCase:
    """One ``case``: the enum members it matches, or ``None`` for ``case _``."""

    members: tuple[str, ...] | None
    body: list[Stmt]
    loc: Loc


@dataclass
class Match(Stmt):
    """``match subject`` on an enum value; cases are tried in order (members are disjoint
    after lowering; a default case, if any, is last)."""

    subject: Expr
    cases: list[MatchCase]


@dataclass
class For(Stmt):
    """``for var in range(start, stop, step)`` with constant bounds; ``var`` is a local of
    type ``var_type`` (it is not visible after the loop). ``guard``, when set, is tested
    before each pass: the loop ends when it is false (``range(n)`` with ``n`` read from a
    bus: the static bounds cover every value ``n`` can have, the guard is ``var < n``).
    The body may hold ``Break``/``Continue`` of this loop; it never yields (a loop that
    yields is lowered to a ``While`` and then to states)."""

    var: str
    start: int
    stop: int
    step: int
    var_type: NumT
    body: list[Stmt]
    guard: Expr | None = None

    @property
    def values(self) -> range:
        """The values the loop variable takes (at most: ``guard`` may end it earlier)."""
        return range(self.start, self.stop, self.step)


@dataclass
class Yield(Stmt):
    """``yield``: end this tick; the next tick resumes after it (generator bodies only)."""


@dataclass
class While(Stmt):
    """A loop of a generator body: while ``cond`` holds, run ``body`` then ``step`` (a
    ``continue`` runs ``step`` too: it is a ``for`` loop's increment). Lowered to states;
    no backend sees it."""

    cond: Expr
    body: list[Stmt]
    step: list[Stmt] = field(default_factory=list)
    test_first: bool = True
    """False when the first pass is known to run (a ``for`` over a constant, non-empty
    range): the condition is then tested after each step only."""


@dataclass
class Break(Stmt):
    """``break`` out of the innermost loop."""


@dataclass
class Continue(Stmt):
    """``continue`` with the next pass of the innermost loop."""


@dataclass
class Return(Stmt):
    """``return`` in a generator: the pass ends, and so does the tick; the next tick starts
    at the top (lowered to a ``Goto`` of state 0 that waits)."""


@dataclass
class Goto(Stmt):
    """End of a state's code path: continue in ``state`` — at the next tick when ``wait``
    (this was a ``yield``), else at once in the same tick. Only in ``StateIR.body``."""

    state: int
    wait: bool


# -- declarations ------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalIR:
    """A signal of a port's bus: name, IR type, declared type and initial value (``None``
    when the signal has none; IR constant form otherwise, see ``raw_of``)."""

    name: str
    type: VType
    sig_type: SignalType
    initial: Any


@dataclass(frozen=True)
class PortIR:
    """A port: direction ``"in"``/``"out"``, its bus class name and the bus's signals."""

    name: str
    direction: Literal["in", "out"]
    bus_class: str
    signals: tuple[SignalIR, ...]

    def signal(self, name: str) -> SignalIR:
        """The signal called ``name``."""
        for s in self.signals:
            if s.name == name:
                return s
        raise KeyError(name)


@dataclass(frozen=True)
class RegisterIR:
    """A register: IR type, declared type, class-level initial value (IR constant form, or
    ``None`` when undefined). Instances may override the initial value (VHDL generics)."""

    name: str
    type: VType
    sig_type: SignalType
    initial: Any
    storage: bool = False
    """A memory's storage (``Process(storage=...)``): set at power-up, never reset."""


@dataclass(frozen=True)
class LocalIR:
    """A local variable with its single type (the join of every value assigned to it, or its
    annotation). ``persistent`` locals keep their value across ticks (generators)."""

    name: str
    type: VType
    persistent: bool = False
    loc: Loc | None = None


@dataclass(frozen=True)
class ConstantIR:
    """A module-level constant the body uses by name."""

    name: str
    type: VType
    value: Any


@dataclass(frozen=True)
class HelperIR:
    """A helper function that was inlined into the body (for documentation/comments)."""

    name: str
    loc: Loc
    doc: str | None


@dataclass
class StateIR:
    """One state of a generator's state machine (see the module docstring)."""

    index: int
    name: str
    loc: Loc
    body: list[Stmt]
    loop: Loc | None = None
    """The innermost ``while`` loop the state's code is in (None outside every loop): what
    a backend names when a tick goes round a loop without yielding (``cycles.MAX_STEPS``)."""


@dataclass
class ProcessIR:
    """Everything a backend needs to generate code for one process class."""

    name: str
    cls: type
    doc: str | None
    loc: Loc
    combinational: bool
    ports: list[PortIR]
    registers: list[RegisterIR]
    locals: list[LocalIR]
    constants: list[ConstantIR]
    helpers: list[HelperIR]
    body: list[Stmt]
    states: list[StateIR] | None = None
    enums: list[EnumT] = field(default_factory=list)

    @property
    def is_generator(self) -> bool:
        """Whether ``on_tick`` is a generator (``states`` is then set)."""
        return self.states is not None

    def port(self, name: str) -> PortIR:
        """The port called ``name``."""
        for p in self.ports:
            if p.name == name:
                return p
        raise KeyError(name)

    def register(self, name: str) -> RegisterIR:
        """The register called ``name``."""
        for r in self.registers:
            if r.name == name:
                return r
        raise KeyError(name)

    def local(self, name: str) -> LocalIR:
        """The local variable called ``name``."""
        for v in self.locals:
            if v.name == name:
                return v
        raise KeyError(name)


__all__ = [
    "ArrayT", "Assign", "BinOp", "BoolOp", "BoolT", "Break", "Compare", "Const", "ConstantIR",
    "Continue", "Convert", "EnumT", "Expr", "For", "Goto", "HelperIR", "If", "Index", "Loc",
    "LocalIR", "LocalRead", "LocalTarget", "Match", "MatchCase", "NumT", "PortIR", "PortRead",
    "PortTarget", "ProcessIR", "RegRead", "RegTarget", "RegisterIR", "Return", "Select",
    "SignalIR", "StateIR", "Stmt", "Target", "UnaryOp", "VType", "While", "Yield", "raw_of",
    "vtype_of",
]
