"""VHDL names for the Python names of a network, and VHDL spellings of IR types/constants.

Names follow the Python: entities are the process class names, ports of a process entity
are ``<port>_<signal>``, top-level ports and bus signals are ``<bus>_<signal>``. A Python
name that is a VHDL reserved word gets a ``_r`` suffix.
"""

from __future__ import annotations

from sme.lower.ir import ArrayT, BoolT, EnumT, NumT, VType

RESERVED = frozenset("""
abs access after alias all and architecture array assert assume assume_guarantee
attribute begin block body buffer bus case component configuration constant context
cover default disconnect downto else elsif end entity exit fairness file for force
function generate generic group guarded if impure in inertial inout is label library
linkage literal loop map mod nand new next nor not null of on open or others out package
parameter port postponed procedure process property protected pure range record register
reject release rem report restrict restrict_guarantee return rol ror select sequence
severity shared signal sla sll sra srl strong subtype then to transport type unaffected
units until use variable vmode vprop vunit wait when while with xnor xor clk rst std
ieee work string integer natural boolean bit time character
""".split())  # noqa: SIM905


def vname(name: str) -> str:
    """A VHDL identifier for a Python name."""
    return f"{name}_r" if name.lower() in RESERVED else name


def enum_type_name(t: EnumT) -> str:
    """``State`` → ``State_t``."""
    return f"{t.name}_t"


def enum_literal(t: EnumT, member: str) -> str:
    """The VHDL literal of an enum member (prefixed by the type name: literals of different
    enums never clash, and no member name can hit a reserved word)."""
    return f"{t.name}_{member}"


def elem_tag(t: VType) -> str:
    """A short tag for array type names: ``u8``, ``s16``, ``bool``, ``state``."""
    if isinstance(t, NumT):
        return f"{'s' if t.signed else 'u'}{t.width}"
    if isinstance(t, BoolT):
        return "bool"
    if isinstance(t, EnumT):
        return t.name.lower()
    raise TypeError(t)


def array_type_name(t: ArrayT) -> str:
    """``Array[UInt[8], 4]`` → ``array_u8_4_t``."""
    return f"array_{elem_tag(t.element)}_{t.length}_t"


def vtype(t: VType) -> str:
    """The VHDL subtype of a stored value of type ``t`` (Bool is ``std_logic``)."""
    if isinstance(t, NumT):
        return f"{'signed' if t.signed else 'unsigned'}({t.width - 1} downto 0)"
    if isinstance(t, BoolT):
        return "std_logic"
    if isinstance(t, EnumT):
        return enum_type_name(t)
    if isinstance(t, ArrayT):
        return array_type_name(t)
    raise TypeError(t)


def num_literal(raw: int, t: NumT) -> str:
    """A literal of raw value ``raw`` in ``t``'s representation."""
    w = t.width
    if -(2**31) < raw < 2**31 and (t.signed or raw >= 0):
        return f"to_{'signed' if t.signed else 'unsigned'}({raw}, {w})"
    bits = format(raw & ((1 << w) - 1), f"0{w}b")
    return f"{'signed' if t.signed else 'unsigned'}'(\"{bits}\")"


def literal(value: object, t: VType) -> str:
    """A VHDL literal of a stored value in IR constant form (see ``sme.lower.ir.raw_of``)."""
    if isinstance(t, NumT):
        return num_literal(int(value), t)  # type: ignore[call-overload]
    if isinstance(t, BoolT):
        return "'1'" if value else "'0'"
    if isinstance(t, EnumT):
        return enum_literal(t, value if isinstance(value, str) else value.name)  # type: ignore[attr-defined]
    if isinstance(t, ArrayT):
        assert isinstance(value, (tuple, list))
        return _aggregate([literal(v, t.element) for v in value])
    raise TypeError(t)


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


def zero(t: VType) -> str:
    """The literal of the zero value of ``t`` (for undefined initial values)."""
    if isinstance(t, NumT):
        return "(others => '0')"
    if isinstance(t, BoolT):
        return "'0'"
    if isinstance(t, EnumT):
        return enum_literal(t, t.members[0])
    if isinstance(t, ArrayT):
        return f"(others => {zero(t.element)})"
    raise TypeError(t)


def initial(value: object, t: VType) -> str:
    """The literal of an initial value (``None`` = undefined → zero)."""
    return zero(t) if value is None else literal(value, t)
