"""VHDL names for the Python names of a network, and VHDL spellings of IR types/constants.

Names follow the Python: entities are the process class names, ports of a process entity
are ``<port>_<signal>``, top-level ports and bus signals are ``<bus>_<signal>``, registers
and locals keep their names, enum literals are ``<Enum>_<MEMBER>``. VHDL identifiers are
case-insensitive and more restricted than Python's, so every name goes through a
``Namer`` for its declarative region, which

* spells it as a legal basic identifier (ASCII letters, digits and single underscores,
  starting with a letter, not ending with ``_``: ``_tmp`` → ``tmp``, ``a__b`` → ``a_b``,
  ``zähler`` → ``zxe4hler``);
* adds ``_r`` to a VHDL reserved word or a name the generated code uses from a library or
  support package (``signal`` → ``signal_r``, ``resize`` → ``resize_r``);
* adds ``_2``, ``_3`` … to a name that another one in the same region already has, whatever
  the letter case (a register ``output_index`` beside a port ``Output`` with a signal
  ``Index``: the port keeps ``Output_Index``, the register becomes ``output_index_2``).

Regions: the network's package (enum and array types, enum literals, conversion functions,
probe signals), each process entity (ports, generics, registers, locals, constants,
``_next`` variables, states) and the top level with its testbench (bus signals, instance
labels). Names are given in a fixed order, so the same network always gets the same names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sme.lower.ir import ArrayT, BoolT, EnumT, NumT, VType

from .support import SME_PKG, TB_PKG

VHDL_RESERVED = frozenset("""
abs access after alias all and architecture array assert assume assume_guarantee
attribute begin block body buffer bus case component configuration constant context
cover default disconnect downto else elsif end entity exit fairness file for force
function generate generic group guarded if impure in inertial inout is label library
linkage literal loop map mod nand new next nor not null of on open or others out package
parameter port postponed procedure process property protected pure range record register
reject release rem report restrict restrict_guarantee return rol ror select sequence
severity shared signal sla sll sra srl strong subtype then to transport type unaffected
units until use variable vmode vprop vunit wait when while with xnor xor
""".split())  # noqa: SIM905
"""The reserved words of VHDL-2008 (including PSL's)."""

LIBRARY_NAMES = frozenset("""
std ieee work std_logic_1164 numeric_std standard textio env
boolean false true bit character severity_level note warning error failure integer real
time delay_length now natural positive string bit_vector boolean_vector integer_vector
real_vector time_vector file_open_kind read_mode write_mode append_mode file_open_status
open_ok status_error name_error mode_error fs ps ns us ms sec min hr minimum maximum
to_string std_ulogic std_logic std_ulogic_vector std_logic_vector resolved x01 x01z ux01
ux01z to_bit to_bitvector to_stdulogic to_stdlogicvector to_stdulogicvector to_x01
to_x01z to_ux01 rising_edge falling_edge is_x to_01 to_hstring to_ostring to_bstring
unsigned signed unresolved_unsigned unresolved_signed u_unsigned u_signed to_integer
to_unsigned to_signed resize shift_left shift_right rotate_left rotate_right std_match
find_leftmost find_rightmost
""".split())  # noqa: SIM905
"""Names of the libraries and packages generated code uses (a declaration of one of them
would hide what the code needs)."""

TESTBENCH_NAMES = frozenset("""
line text side left right width input output readline writeline read write hread oread
bread hwrite owrite bwrite sread swrite justify flush finish stop resolution_limit
clk rst sim dut watchdog replay period trace max_ticks f st l fld row errors mismatch
""".split())  # noqa: SIM905
"""Names visible in the testbench, where the top-level bus signals are declared too."""


def _declared(text: str) -> frozenset[str]:
    return frozenset(m.lower() for m in re.findall(r"(?:function|procedure)\s+(\w+)", text))


SUPPORT_NAMES = _declared(SME_PKG) | _declared(TB_PKG) | {"sme_pkg", "tb_sme_pkg"}
"""Functions of the support packages (``to_u``, ``sel``, ``clamp``, ``read_field`` …)."""

FIXED_NAMES = frozenset({"clk", "rst", "rtl", "on_tick", "tick_loop", "tick_state",
                         "state_t", "probes"})
"""Names the generated process and top-level code declares itself."""

_AVOID = VHDL_RESERVED | LIBRARY_NAMES | SUPPORT_NAMES


def legal(name: str) -> str:
    """``name`` spelled as a VHDL basic identifier (see the module docstring)."""
    text = "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"x{ord(c):x}"
                   for c in name)
    text = re.sub(r"_+", "_", text).strip("_")
    if not text:
        return "v"
    return text if text[0].isalpha() else f"v{text}"


class Namer:
    """Unique VHDL identifiers in one declarative region (see the module docstring)."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self._used: set[str] = {t.lower() for t in taken}

    def copy(self) -> Namer:
        """A namer for a region nested in this one (it avoids every name used here)."""
        child = Namer()
        child._used = set(self._used)
        return child

    def reserve(self, name: str) -> str:
        """Claim ``name`` exactly (a name the generator itself declares)."""
        self._used.add(name.lower())
        return name

    def taken(self, name: str) -> bool:
        """Whether ``name`` (any letter case) is used or to be avoided in this region."""
        return name.lower() in self._used or name.lower() in _AVOID

    def take(self, wanted: str) -> str:
        """A new identifier for ``wanted``, unique in this region."""
        base = legal(wanted)
        name = f"{base}_r" if base.lower() in _AVOID else base
        n = 2
        while self.taken(name):
            name = f"{base}_{n}"
            n += 1
        self._used.add(name.lower())
        return name


class TypeNames:
    """The names of a network's package: enum types and literals, their conversion
    functions, array types; and how values of IR types are spelled with them."""

    def __init__(self, namer: Namer, enums: Iterable[EnumT], arrays: Iterable[ArrayT]
                 ) -> None:
        self.namer = namer
        self._enum: dict[type, str] = {}
        self._literal: dict[tuple[type, str], str] = {}
        self._to: dict[type, str] = {}
        self._text: dict[type, str] = {}
        self._array: dict[ArrayT, str] = {}
        for e in enums:
            self.add_enum(e)
        for a in arrays:
            self.array_type(a)

    def add_enum(self, e: EnumT) -> None:
        """Name enum ``e``'s type, literals and functions (once)."""
        if e.enum_cls in self._enum:
            return
        t = self._enum[e.enum_cls] = self.namer.take(f"{e.name}_t")
        self._to[e.enum_cls] = self.namer.take(f"to_{t}")
        self._text[e.enum_cls] = self.namer.take(f"{t}_text")
        for m in e.members:
            self._literal[e.enum_cls, m] = self.namer.take(f"{e.name}_{m}")

    def enum_type(self, t: EnumT) -> str:
        """``State`` → ``State_t``."""
        self.add_enum(t)
        return self._enum[t.enum_cls]

    def enum_literal(self, t: EnumT, member: str) -> str:
        """The VHDL literal (or constant) of an enum member: ``State_IDLE``."""
        self.add_enum(t)
        return self._literal[t.enum_cls, member]

    def enum_from_text(self, t: EnumT) -> str:
        """The package function turning a member's name into its value: ``to_State_t``."""
        self.add_enum(t)
        return self._to[t.enum_cls]

    def enum_text(self, t: EnumT) -> str:
        """The package function giving a value's member name: ``State_t_text``."""
        self.add_enum(t)
        return self._text[t.enum_cls]

    def elem_tag(self, t: VType) -> str:
        """A short tag for array type names: ``u8``, ``s16``, ``bool``, ``state``."""
        if isinstance(t, NumT):
            return f"{'s' if t.signed else 'u'}{t.width}"
        if isinstance(t, BoolT):
            return "bool"
        if isinstance(t, EnumT):
            return self.enum_type(t).removesuffix("_t").lower()
        raise TypeError(t)

    def array_type(self, t: ArrayT) -> str:
        """``Array[UInt[8], 4]`` → ``array_u8_4_t``."""
        name = self._array.get(t)
        if name is None:
            name = self._array[t] = self.namer.take(
                f"array_{self.elem_tag(t.element)}_{t.length}_t")
        return name

    def vtype(self, t: VType) -> str:
        """The VHDL subtype of a stored value of type ``t`` (Bool is ``std_logic``)."""
        if isinstance(t, NumT):
            return f"{'signed' if t.signed else 'unsigned'}({t.width - 1} downto 0)"
        if isinstance(t, BoolT):
            return "std_logic"
        if isinstance(t, EnumT):
            return self.enum_type(t)
        if isinstance(t, ArrayT):
            return self.array_type(t)
        raise TypeError(t)

    def literal(self, value: object, t: VType) -> str:
        """A VHDL literal of a stored value in IR constant form (``sme.lower.ir.raw_of``)."""
        if isinstance(t, NumT):
            return num_literal(int(value), t)  # type: ignore[call-overload]
        if isinstance(t, BoolT):
            return "'1'" if value else "'0'"
        if isinstance(t, EnumT):
            member = value if isinstance(value, str) else value.name  # type: ignore[attr-defined]
            return self.enum_literal(t, member)
        if isinstance(t, ArrayT):
            assert isinstance(value, (tuple, list))
            return _aggregate([self.literal(v, t.element) for v in value])
        raise TypeError(t)

    def zero(self, t: VType) -> str:
        """The literal of the zero value of ``t`` (for undefined initial values)."""
        if isinstance(t, NumT):
            return "(others => '0')"
        if isinstance(t, BoolT):
            return "'0'"
        if isinstance(t, EnumT):
            return self.enum_literal(t, t.members[0])
        if isinstance(t, ArrayT):
            return f"(others => {self.zero(t.element)})"
        raise TypeError(t)

    def initial(self, value: object, t: VType) -> str:
        """The literal of an initial value (``None`` = undefined → zero)."""
        return self.zero(t) if value is None else self.literal(value, t)


def num_literal(raw: int, t: NumT) -> str:
    """A literal of raw value ``raw`` in ``t``'s representation."""
    w = t.width
    if -(2**31) < raw < 2**31 and (t.signed or raw >= 0):
        return f"to_{'signed' if t.signed else 'unsigned'}({raw}, {w})"
    bits = format(raw & ((1 << w) - 1), f"0{w}b")
    return f"{'signed' if t.signed else 'unsigned'}'(\"{bits}\")"


def _aggregate(items: list[str]) -> str:
    """A named aggregate; the most frequent element becomes ``others`` and long aggregates
    are wrapped, four elements per line."""
    common = max(set(items), key=items.count) if len(items) > 4 else None
    if common is not None and items.count(common) < 2:
        common = None
    parts = [f"{i} => {v}" for i, v in enumerate(items) if v != common]
    if common is not None:
        parts.append(f"others => {common}")
    if len(parts) <= 8:
        return "(" + ", ".join(parts) + ")"
    lines = [", ".join(parts[i:i + 4]) for i in range(0, len(parts), 4)]
    return "(" + (",\n" + " " * 8).join(lines) + ")"


__all__ = ["FIXED_NAMES", "LIBRARY_NAMES", "SUPPORT_NAMES", "TESTBENCH_NAMES", "VHDL_RESERVED",
           "Namer", "TypeNames", "legal", "num_literal"]
