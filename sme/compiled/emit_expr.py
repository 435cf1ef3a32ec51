"""The expression half of the compiled backend's emitter (``emit.Emitter`` adds statements
and processes): an emission's state, array indices and loads, constant tables, and the code
of expressions and conversions with the run-time checks their ranges do not prove away.

Values are int64 throughout: Bools 0/1, enum members their code, fixed point the raw
integer. Comparisons and ``and``/``or``/``not`` yield numba booleans; ``val`` and ``cond``
convert between the two forms where needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ..errors import BackendError
from ..lower import ir
from ..lower.ir import ArrayT, BoolT, EnumT, NumT, VType
from ..types import Int, SFix, SignalType, UFix, UInt
from .accumulate import Known
from .layout import ArraySlot, Layout, Site, Slot, Storage, fits_i64, memory_dtype

_RND = {"exact": 0, "floor": 1, "nearest": 2}
"""State changes a generator may make in one tick before the run is stopped as a loop that
never yields (the interpreter would spin there for ever)."""
_OVF = {"error": 0, "wrap": 1, "saturate": 2}
_CHECKS = re.compile(r"\b(_cv|_rd|_ix|_nz|_fail)\(")
"""The generated helpers that may fail a run-time check."""


@dataclass
class PortView:
    """One port of a process instance: the storage it reads and the storage it writes."""

    bus: str
    read: dict[str, Storage]
    write: dict[str, Storage]
    types: dict[str, SignalType]
    who: str
    held_as_tuple: bool = False
    """The interpreter holds the bus's arrays as tuples: a clocked process writes it, or it
    is a network input (the testbench drives it)."""


@dataclass
class Instance:
    """A process instance with its IR and storage."""

    index: int
    describe: str
    name: str
    ir: ir.ProcessIR
    ports: dict[str, PortView]
    registers: dict[str, Storage]
    register_types: dict[str, SignalType]
    locals: dict[str, Storage] = field(default_factory=dict)
    arrays: dict[str, int] = field(default_factory=dict)
    """The arrays of buses (port → its number of buses): bus ``k`` is port ``port[k]``."""


@dataclass
class FastLoop:
    """A ``for`` loop whose body is being emitted in its fast version: the array indices
    ``base + var`` (``base`` a local the body does not assign) are checked once, for the
    loop's first and last value, before the loop (``checks``) instead of per element."""

    var: str
    start: int
    stop: int
    assigned: set[str]
    checks: list[str] = field(default_factory=list)


class NeedsWide(BackendError):
    """A value of the network may need more than 64 bits: the network runs in wide mode."""


class ExprEmitter:
    """The state of one emission and the code of expressions. ``wide``: values are Python
    ints (no 64-bit limit; the module runs without numba)."""

    def __init__(self, layout: Layout, checks: bool, wide: bool = False) -> None:
        self.layout = layout
        self.checks = checks
        self.wide = wide
        self.tmp = 0
        self.inst: Instance | None = None
        self.loc: ir.Loc | None = None
        self.dirty: dict[int, str] = {}
        """Flags of the next values of clocked array signals, by slot offset: set when an
        element is stored, so the latch copies only arrays that changed."""
        self.tables: dict[tuple[int, ...], tuple[str, int]] = {}
        """Constant arrays indexed at run time, by contents: the module-level numpy array
        holding them and their offset in it (``table``)."""
        self.table_parts: dict[str, list[tuple[int, ...]]] = {}
        """The constant arrays in each module-level array, in order."""
        self.table_dtypes: dict[str, str] = {}
        """Each module-level array's numpy dtype (code)."""
        self.unsigned_memories = {name for name, dtype, _ in layout.memories
                                  if dtype.startswith("uint")}
        """Memories whose elements are read through ``np.int64`` (``load``)."""
        self.loops: list[FastLoop] = []
        """The ``for`` loops around the code being emitted, innermost last."""
        self.known = Known()
        """Locals holding a known constant at the statement being emitted."""
        self.proven: set[int] = set()
        """Assignments (ids) whose store check ``accumulate`` proved unnecessary."""

    def index(self, index: ir.Expr, length: int, defined: str, usite: int, isite: int) -> str:
        """An array index: checked by ``_ix`` unless its type proves it in range (a loop
        variable over the array, say) and the array is always defined."""
        t = index.type
        if defined == "1" and isinstance(t, NumT) and t.frac == 0 and t.lo >= 0 and t.hi < length:
            return self.val(index)
        base = self._loop_base(index) if defined == "1" else None
        if base is not None:  # base + loop variable: checked once, before the loop
            loop = self.loops[-1]
            b = self.val(base)
            loop.checks.append(f"{b} + {loop.start} >= 0 and {b} + {loop.stop - 1} < {length}")
            return self.val(index)
        return f"_ix({self.val(index)}, {length}, {defined}, {usite}, {isite}, t, E)"

    def _loop_base(self, index: ir.Expr) -> ir.Expr | None:
        """``b`` when ``index`` is ``b + v`` (or ``v + b``), ``v`` the innermost loop's
        variable and ``b`` a local integer the loop does not assign; else None."""
        if not self.loops or not isinstance(index, ir.BinOp) or index.op != "+":
            return None
        loop = self.loops[-1]
        for b, v in ((index.left, index.right), (index.right, index.left)):
            if (isinstance(v, ir.LocalRead) and v.name == loop.var
                    and isinstance(b, ir.LocalRead) and b.name not in loop.assigned
                    and isinstance(b.type, NumT) and b.type.frac == 0
                    and isinstance(index.type, NumT) and index.type.frac == 0):
                return b
        return None

    def unsigned(self, index: str) -> str:
        """An array index the generated code has proven or checked in range (``index``
        gives only such), as an unsigned integer: numba then skips its negative-index
        wrap-around, a few instructions on every element access (on the critical path of
        a chain of table lookups such as a CRC)."""
        return index if self.wide else f"np.uint64({index})"

    def element(self, arr: ArraySlot, index: str) -> str:
        """Element ``index`` (an index from ``index``) of ``arr``, to store into."""
        return f"{arr.array}[{self.unsigned(f'{arr.offset} + {index}')}]"

    def load(self, arr: ArraySlot, index: str) -> str:
        """The value of element ``index`` of ``arr`` as int64 (a memory of unsigned words
        is read through ``np.int64``, see ``layout.memory_dtype``)."""
        code = self.element(arr, index)
        return f"np.int64({code})" if arr.array in self.unsigned_memories else code

    def table(self, items: list[str]) -> tuple[str, int]:
        """The module-level array holding the constant array ``items``, and where in it
        ``items`` start (numba freezes global arrays into the compiled code; a tuple
        literal would be rebuilt on every use). The constant arrays of one dtype share one
        module-level array: its address is one register, each table a displacement (a
        CRC step's sixteen tables each needed a 64-bit address load of its own)."""
        key = tuple(int(x.strip("()")) for x in items)
        found = self.tables.get(key)
        if found is None:
            narrow = None if self.wide or not key else memory_dtype(NumT(min(key), max(key)))
            dtype = f"np.{narrow}" if narrow else ("object" if self.wide else "np.int64")
            name = f"_TABLES_{dtype.removeprefix('np.')}"
            parts = self.table_parts.setdefault(name, [])
            found = self.tables[key] = (name, sum(len(part) for part in parts))
            parts.append(key)
            self.table_dtypes[name] = dtype
        return found

    def table_definitions(self) -> list[str]:
        """Source lines defining the module-level arrays of the constant arrays used so
        far, each constant array in the narrowest dtype of its values
        (``layout.memory_dtype``; read as int64): sixteen CRC tables of 256 words take
        16 KB, not 32 KB, and stay in the first-level cache."""
        return [f"{name} = np.array({[v for part in parts for v in part]!r}, "
                f"dtype={self.table_dtypes[name]})" for name, parts in self.table_parts.items()]

    def fresh(self) -> str:
        self.tmp += 1
        return f"_x{self.tmp}"

    def where(self) -> str:
        return f"{self.loc.file}:{self.loc.line}" if self.loc else "?"

    def fail(self, what: str) -> BackendError:
        assert self.inst is not None
        return BackendError(f"{self.where()}: {self.inst.describe}: the compiled backend "
                            f"cannot translate {what}")


    def storage_of(self, e: ir.Expr) -> tuple[Storage, int]:
        """Storage read by a Port/Reg/LocalRead, and the site checking it is defined."""
        inst = self.inst
        assert inst is not None
        where = self.where()
        if isinstance(e, ir.PortRead):
            pv = inst.ports[e.port]
            st = (pv.write if e.own_output else pv.read)[e.signal]
            site = 0
            if st.defined is not None:
                site = self.layout.site(Site("undefined", where, pv.types[e.signal], pv.bus,
                                             e.signal, pv.who))
            return st, site
        if isinstance(e, ir.RegRead):
            st = inst.registers[e.name]
            site = 0
            if st.defined is not None:
                site = self.layout.site(Site("undefined", where, inst.register_types[e.name],
                                             inst.name, e.name, inst.describe, register=True))
            return st, site
        if isinstance(e, ir.LocalRead):
            return inst.locals[e.name], 0
        raise self.fail(f"an array expression {type(e).__name__}")


    # -- expressions -----------------------------------------------------------------
    def val(self, e: ir.Expr, store: Site | None = None) -> str:
        """``e`` as an int64 value; ``store`` is the site when ``e`` is a stored value."""
        if isinstance(e, ir.Convert):
            return self.convert(e, self.val(e.operand), store)
        if _is_pred(e):
            return f"(1 if {self.expr(e)} else 0)"
        return self.expr(e)

    def cond(self, e: ir.Expr) -> str:
        """``e`` as a truth value."""
        return self.expr(e) if _is_pred(e) else f"({self.val(e)} != 0)"

    def check_range(self, t: VType) -> None:
        if not self.wide and not fits_i64(t):
            raise NeedsWide(f"{self.where()}: a value that may need more than 64 bits ({t})")

    def expr(self, e: ir.Expr) -> str:
        self.check_range(e.type)
        if isinstance(e, ir.Const):
            return self.const_raw(e.value, e.type)
        if isinstance(e, (ir.PortRead, ir.RegRead, ir.LocalRead)):
            st, site = self.storage_of(e)
            if not isinstance(st, Slot):
                raise self.fail("a whole array used as a value")
            if site:
                return f"_rd({st.var}, {st.defined}, {site}, t, E)"
            return st.var
        if isinstance(e, ir.Index) and isinstance(e.base, ir.Const):
            bt = e.base.type
            assert isinstance(bt, ArrayT)
            items = [self.const_raw(x, bt.element) for x in e.base.value]
            isite = self.layout.site(Site("index_read", self.where(), signal=e.text,
                                          who=self.inst.describe if self.inst else "",
                                          length=len(items)))
            i = self.index(e.index, len(items), '1', 0, isite)
            name, offset = self.table(items)  # i is in range for items: checked or proven
            code = f"{name}[{self.unsigned(f'{offset} + {i}' if offset else i)}]"
            # a narrow table's element computes as int64 (see ``memory_dtype``); a wide
            # network's tables hold Python ints, which must stay Python ints (an np.int64
            # would overflow, or wrap silently, beside a value beyond 64 bits)
            dtype = self.table_dtypes[name]
            return code if dtype in ("np.int64", "object") else f"np.int64({code})"
        if isinstance(e, ir.Index) and isinstance(e.base, ir.PortRead) and self.inst \
                and e.base.port in self.inst.arrays:
            return self.bus_array_read(e, e.base)
        if isinstance(e, ir.Index):
            st, usite = self.storage_of(e.base)
            if not isinstance(st, ArraySlot):
                raise self.fail("an index into something that is not an array")
            inst = self.inst
            assert inst is not None
            isite = self.layout.site(Site("index_read", self.where(), signal=e.text,
                                          who=inst.describe, length=st.length))
            d = st.defined or "1"
            return self.load(st, self.index(e.index, st.length, d, usite, isite))
        if isinstance(e, ir.BinOp):
            return self.binop(e)
        if isinstance(e, ir.UnaryOp):
            if e.op == "not":
                return f"(not {self.cond(e.operand)})"
            return f"({e.op}{self.val(e.operand)})"
        if isinstance(e, ir.Compare):
            a, b = e.left, e.right
            if isinstance(a.type, NumT) and isinstance(b.type, NumT):
                f = max(a.type.frac, b.type.frac)
                return f"({self.shifted(a, f)} {e.op} {self.shifted(b, f)})"
            return f"({self.val(a)} {e.op} {self.val(b)})"
        if isinstance(e, ir.BoolOp):
            parts = [self.cond(v) for v in e.operands]
            # operands that cannot fail (no check) are all evaluated, branch-free: a lane
            # loop of them stays vector code; else Python's short circuit guards a check
            op = e.op if any(_CHECKS.search(p) for p in parts) else \
                {"and": "&", "or": "|"}[e.op]
            return "(" + f" {op} ".join(parts) + ")"
        if isinstance(e, ir.Select):
            pick = self.min_max(e)
            if pick is not None:
                return pick
            return f"({self.val(e.if_true)} if {self.cond(e.cond)} else {self.val(e.if_false)})"
        if isinstance(e, ir.Convert):
            return self.convert(e, self.val(e.operand))
        raise self.fail(f"the expression {type(e).__name__}")

    def bus_array_index(self, e: ir.Expr, port: str, text: str) -> str | int:
        """The index of a bus of the array of buses ``port``: an int when it is constant,
        else its code (checked, as an array index is, with the same message)."""
        assert self.inst is not None
        n = self.inst.arrays[port]
        if isinstance(e, ir.Const):
            return int(e.value)
        isite = self.layout.site(Site("index_read", self.where(), signal=text,
                                      who=self.inst.describe, length=n))
        return self.index(e, n, "1", 0, isite)

    def bus_array_read(self, e: ir.Index, base: ir.PortRead) -> str:
        """``self.<port>[i].<signal>``: the signal of bus ``i``, each bus being a port of its
        own (``port[k]``); a run-time ``i`` picks among them (a tuple, or a chain of
        conditions when reading a bus may fail: only the bus that is read is checked)."""
        assert self.inst is not None
        n = self.inst.arrays[base.port]
        i = self.bus_array_index(e.index, base.port, e.text)
        codes = [self.expr(ir.PortRead(e.type, f"{base.port}[{k}]", base.signal,
                                       base.own_output)) for k in range(n)]
        if isinstance(i, int):
            return codes[i]
        if not any(_CHECKS.search(c) for c in codes):
            return f"({', '.join(codes)},)[{i}]"
        chain = codes[-1]  # (an index that is not a plain name is computed per test: pure)
        for k in range(n - 2, -1, -1):
            chain = f"({codes[k]} if {i} == {k} else {chain})"
        return chain

    def min_max(self, e: ir.Select) -> str | None:
        """``min(a, b)`` / ``max(a, b)`` as ``sme.lower`` writes them (``b if b < a else a``,
        each side converted to the result's range) without the conversions' range checks:
        the smaller (larger) of two values always lies in the result's range, which the
        front end makes from both operands' ranges. Branch-free, so a lane loop of them
        stays vector code. None when ``e`` is another choice (or the sides need an
        alignment of their fraction bits)."""
        c, yes, no, t = e.cond, e.if_true, e.if_false, e.type
        if not (isinstance(c, ir.Compare) and c.op in ("<", ">") and isinstance(t, NumT)
                and isinstance(yes, ir.Convert) and isinstance(no, ir.Convert)
                and yes.operand is c.left and no.operand is c.right):
            return None
        for side in (yes, no):
            st = side.operand.type
            if (side.rounding != "exact" or side.overflow != "error" or side.type != t
                    or not isinstance(st, NumT) or st.frac != t.frac):
                return None
        return f"{'min' if c.op == '<' else 'max'}({self.val(c.left)}, {self.val(c.right)})"

    def const_raw(self, value: object, t: VType) -> str:
        if isinstance(t, EnumT):
            return str(t.code(value))  # type: ignore[arg-type]  # an enum member
        if isinstance(t, BoolT):
            return "1" if value else "0"
        assert isinstance(value, int)
        return f"({value})" if value < 0 else str(value)

    def shifted(self, e: ir.Expr, frac: int) -> str:
        """A number operand aligned to ``frac`` fractional bits."""
        t = e.type
        assert isinstance(t, NumT)
        k = frac - t.frac
        if k == 0:
            return self.val(e)
        self.check_range(NumT(min(t.lo << k, 0), max(t.hi << k, 0)))
        return f"({self.val(e)} << {k})"

    def binop(self, e: ir.BinOp) -> str:
        t, a, b = e.type, e.left, e.right
        assert isinstance(t, NumT)
        op = e.op
        if op in ("+", "-"):
            return f"({self.shifted(a, t.frac)} {op} {self.shifted(b, t.frac)})"
        if op in ("<<", ">>"):
            at, bt = a.type, b.type
            if isinstance(at, NumT) and at.frac != t.frac:  # fixed-point >> n: exact
                return self.val(a)
            if isinstance(bt, NumT) and (bt.lo < 0 or (bt.hi > 63 and not self.wide)):
                raise self.fail("a shift whose count may be negative or above 63")
        if op in ("//", "%"):
            bt = b.type
            divisor = self.val(b)
            if isinstance(bt, NumT) and bt.lo <= 0 <= bt.hi:
                site = self.layout.site(Site("zerodiv", self.where()))
                divisor = f"_nz({divisor}, {site}, t, E)"
            return f"({self.val(a)} {op} {divisor})"
        return f"({self.val(a)} {op} {self.val(b)})"

    def convert(self, e: ir.Convert, v: str, store: Site | None = None,
                index: str = "0") -> str:
        """Code converting the operand's value ``v`` to ``e.type`` as the interpreter does
        on a store (``store`` given) or in ``resize``; ``index``: the array element stored
        (named in the error of a failed check)."""
        src, dst = e.operand.type, e.type
        self.check_range(dst)
        if isinstance(dst, BoolT) and isinstance(src, NumT):
            if src.lo >= 0 and src.hi <= 1:
                return v
            if store is None or store.target_type is None:
                return f"(1 if {v} != 0 else 0)"
            lo, hi, shift = 0, 1, 0
        elif isinstance(dst, NumT) and isinstance(src, BoolT):
            return v
        elif isinstance(dst, NumT) and isinstance(src, NumT):
            shift = dst.frac - src.frac
            lo, hi = dst.lo, dst.hi
        else:
            return v
        assert isinstance(src, NumT)
        if shift >= 0:
            slo, shi = src.lo << shift, src.hi << shift
        elif e.rounding == "nearest":
            half = 1 << (-shift - 1)
            self.check_range(NumT(src.lo + half, src.hi + half))
            slo, shi = (src.lo + half) >> -shift, (src.hi + half) >> -shift
        else:
            slo, shi = src.lo >> -shift, src.hi >> -shift
        self.check_range(NumT(min(slo, 0), max(shi, 0)))
        fits = lo <= slo and shi <= hi
        needs_check = not fits and (e.overflow != "error" or self.checks)
        exact_check = shift < 0 and e.rounding == "exact" and self.checks
        if not needs_check and not exact_check:
            if shift > 0:
                return f"({v} << {shift})"
            if shift < 0:
                s = -shift
                return f"(({v} + {1 << (s - 1)}) >> {s})" if e.rounding == "nearest" \
                    else f"({v} >> {s})"
            return v
        if e.overflow == "wrap" and hi - lo >= I64_SPAN and not self.wide:
            needs_check = False
        base = store
        if base is None or base.target_type is None:  # resize(...), or a local variable
            base = Site("resize", self.where(), _signal_type(dst),
                        signal=base.signal if base else "", who=base.who if base else "")
        site = self.layout.site(replace(base, value_type=src, overflow=e.overflow,
                                        rounding=e.rounding))
        return (f"_cv({v}, {shift}, {_RND[e.rounding]}, {needs_check}, {lo}, {hi}, "
                f"{_OVF[e.overflow]}, {site}, t, {index}, E)")


I64_SPAN = (1 << 64) - 1


def _is_pred(e: ir.Expr) -> bool:
    return isinstance(e, (ir.Compare, ir.BoolOp)) or (isinstance(e, ir.UnaryOp)
                                                     and e.op == "not")


def _signal_type(t: VType) -> SignalType:
    """The declared type a ``resize`` target range stands for (for its error message)."""
    assert isinstance(t, NumT)
    signed = t.lo < 0
    width = max(1, t.hi.bit_length() + (1 if signed else 0), (-t.lo - 1).bit_length() + 1
                if signed else 0, t.frac + (1 if signed else 0))  # UFix[0, f] at least
    if t.frac == 0:
        return Int[width] if signed else UInt[width]
    return SFix[width - t.frac, t.frac] if signed else UFix[width - t.frac, t.frac]
