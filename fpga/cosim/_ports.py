"""The top-level ports of an exported network, as the co-simulation sees them.

The exported VHDL top-level entity ``N`` has one port per signal of each top-level input
and output bus, named ``<bus>_<signal>``. GHDL's VPI (what cocotb sees) shows ``std_logic``
as a single bit, ``unsigned``/``signed`` as bit vectors and enumerations as their position
number, so every value crosses the boundary as a plain integer (its *raw* value): Bool
``0``/``1``, integers themselves, enums their member code (an enum whose codes are not its
positions is an ``unsigned`` port holding the code; one whose codes are its positions is an
enumeration type, whose position is the code), fixed point its raw integer,
arrays a list of raw elements. This module maps between those raw values and the Python
model's values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sme.bus import Bus
from sme.network import Network
from sme.trace import UNDEFINED
from sme.types import ArrayType, BoolType, EnumType, Fixed, FixedType, SignalType

if TYPE_CHECKING:
    from fpga.vhdl.regions import TopNames

RawValue = int | list[int] | None
"""A port value as an integer (``None``: undefined, not driven / not compared)."""


def port_name(bus: Bus, signal: str, network: Network) -> str:
    """The VHDL port name of ``bus.signal`` on the top-level entity (``<bus>_<signal>``, as
    the exporter named it), lower case as GHDL's VPI reports it."""
    return _names(network).signal(bus, signal).lower()


def _names(network: Network) -> TopNames:
    from fpga.vhdl.regions import export_names  # the exporter's names (lowers the network)

    return export_names(network)


@dataclass(frozen=True)
class Port:
    """One top-level port: its VHDL name, the ``bus.signal`` it carries and its type."""

    name: str
    signal: str
    type: SignalType
    flat: bool = False
    """An array port seen as one bit vector (element i in bits (i+1)·w-1 … i·w), as the
    lock-step's wrapper entity shows it (see ``_flatten``)."""

    @property
    def signed(self) -> bool:
        """Whether the port's bits are read as two's complement."""
        t = self.type.element if isinstance(self.type, ArrayType) else self.type
        return bool(getattr(t, "signed", False))

    @property
    def length(self) -> int | None:
        """Number of elements of an array port, ``None`` for a scalar."""
        return self.type.length if isinstance(self.type, ArrayType) else None

    def wire(self) -> tuple[str, bool, int | None]:
        """What the cocotb side needs to know: (port name, signed, array length)."""
        if self.flat:
            return (self.name, False, None)
        return (self.name, self.signed, self.length)

    def to_raw(self, value: Any) -> RawValue:
        """A Python model value → the port's raw integer value(s)."""
        if value is UNDEFINED:
            return None
        if isinstance(self.type, ArrayType):
            el = self.type.element
            raws = [_scalar_raw(el, v) for v in value]
            if self.flat:
                mask = (1 << el.width) - 1
                return sum((r & mask) << (i * el.width) for i, r in enumerate(raws))
            return raws
        return _scalar_raw(self.type, value)

    def from_raw(self, raw: Any) -> Any:
        """A raw value read from the DUT → the Python model's value (strings such as
        ``"UUUU"`` for unresolvable bits are returned unchanged)."""
        if isinstance(raw, str) or raw is None:
            return raw
        if isinstance(self.type, ArrayType):
            el = self.type.element
            if self.flat:
                w, n = el.width, self.type.length
                raw = [(raw >> (i * w)) & ((1 << w) - 1) for i in range(n)]
                if self.signed:
                    raw = [r - (1 << w) if r >> (w - 1) else r for r in raw]
            return tuple(_scalar_value(el, r) for r in raw)
        return _scalar_value(self.type, raw)


def _scalar_raw(t: SignalType, value: Any) -> int:
    if isinstance(t, BoolType):
        return 1 if value else 0
    if isinstance(t, EnumType):
        return t.to_raw(value)
    if isinstance(t, FixedType):
        return int(value.raw)
    return int(value)


def _scalar_value(t: SignalType, raw: Any) -> Any:
    if isinstance(raw, str):
        return raw
    if isinstance(t, BoolType):
        return bool(raw)
    if isinstance(t, EnumType):
        try:
            return t.from_raw(raw)
        except ValueError:
            return f"<enum code {raw}>"
    if isinstance(t, FixedType):
        return Fixed(raw, t.frac_bits)
    return raw


@dataclass(frozen=True)
class TopLevel:
    """The ports of network ``name``'s top-level entity: inputs to drive, outputs to compare."""

    name: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]

    @classmethod
    def of(cls, network: Network) -> TopLevel:
        """The top-level ports of ``network`` (inputs and outputs in trace column order)."""
        outs = set(network.outputs)
        names = _names(network)
        inputs: list[Port] = []
        outputs: list[Port] = []
        for t in network.traced_signals():
            port = Port(names.signal(t.bus, t.spec.name).lower(), t.name, t.type)
            if t.is_input:
                inputs.append(port)
            elif t.bus in outs:
                outputs.append(port)
        return cls(network.name, tuple(inputs), tuple(outputs))

    def flattened(self) -> TopLevel:
        """The same ports with every array port flat (see ``Port.flat``)."""
        def flat(ports: tuple[Port, ...]) -> tuple[Port, ...]:
            return tuple(replace(p, flat=isinstance(p.type, ArrayType)) for p in ports)

        return TopLevel(self.name, flat(self.inputs), flat(self.outputs))

