"""Memories: ROM, single-port, simple dual-port and true dual-port RAM as ordinary SME
processes.

Each is a clocked process holding an ``Array`` register ``mem`` and reading it with one
tick of latency (the address given at tick ``i`` shows its word on ``rdata`` after tick
``i``), which is the registered-read template that synthesis tools infer as block RAM.
Writes are read-first: a read of the address being written returns the old word — on the
writing port and on the other port alike (Xilinx's READ_FIRST mode, Intel's OLD_DATA
mixed-port read-during-write: the behaviour both vendors' block RAMs give on one clock).

A true dual-port RAM has two ports that each read and write in the same tick. When both
write the same address in one tick, the simulation stores port ``b``'s word, in every
backend (GHDL included: port ``b``'s write comes last in the VHDL process). Synthesis
keeps the two write ports unordered (Yosys infers them with no priority between them),
and the block RAMs of Xilinx and Intel leave such a collision undefined ("invalid data",
"unknown"): a design meant for hardware must not write one address from both ports in
the same tick.

Memories are parameterised by word type and depth, so their buses and process classes
are made on demand (and cached, so equal parameters give the same classes)::

    Ram = single_port_ram(UInt[16], 1024)
    ctl, out = Ram.ports()["port"].bus_type(), Ram.ports()["data"].bus_type()
    ram = Ram(port=ctl, data=out, mem=np.arange(1024))   # initial contents

An address at or beyond ``depth`` (possible when the depth is not a power of two) is an
error when it is used.

Wide memories: ``lanes=K`` makes every word an ``Array[word, K]`` (K pixels side by side,
as a firmware reading K pixels per tick needs); ``mem`` is then the flat
``Array[word, depth * K]`` with word ``a`` in elements ``a*K … a*K + K - 1``. In hardware
that is K memories of ``depth`` words sharing one address (one block RAM per lane).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from .bus import Bus
from .errors import DeclarationError
from .process import Direction, Process
from .types import Array, ArrayType, Bool, SignalType, UInt, cast

_C = TypeVar("_C")
_CLASSES: dict[tuple[str, SignalType, int, int], Any] = {}


def address_width(depth: int) -> int:
    """Bits needed to address ``depth`` words."""
    return max(1, (depth - 1).bit_length())


def _tag(word: SignalType, depth: int, lanes: int) -> str:
    text = re.sub(r"[\[\]]", "", repr(word)).replace(", ", "_")
    return re.sub(r"[^A-Za-z0-9_]", "", text) + f"x{depth}" + (f"x{lanes}" if lanes > 1 else "")


def _make(kind: str, word: Any, depth: int, lanes: int,
          build: Callable[[SignalType, int, int, str], _C]) -> _C:
    t = cast(word)
    for name, v in (("depth", depth), ("lanes", lanes)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise DeclarationError(f"{kind}: {name} must be an int >= 1, not {v!r}")
    if isinstance(t, ArrayType):
        raise DeclarationError(f"{kind}: the word type cannot be an Array ({t!r}); "
                               "use lanes=K for K words side by side")
    key = (kind, t, depth, lanes)
    if key not in _CLASSES:
        _CLASSES[key] = build(t, depth, lanes, _tag(t, depth, lanes))
    made: _C = _CLASSES[key]
    return made


def _word(t: SignalType, lanes: int) -> SignalType:
    return t if lanes == 1 else _array(t, lanes)


def _zero(t: SignalType, lanes: int) -> Any:
    return t.zero() if lanes == 1 else [t.zero()] * lanes


def _bus(name: str, doc: str, fields: dict[str, SignalType], initial: dict[str, Any]) -> type[Bus]:
    ns: dict[str, Any] = {"__annotations__": fields, "__module__": __name__, "__doc__": doc}
    ns.update(initial)
    return type(name, (Bus,), ns)


def _process(name: str, base: type[Process], doc: str, ann: dict[str, Any], t: SignalType,
             depth: int, lanes: int) -> type[Process]:
    ns: dict[str, Any] = {"__annotations__": ann, "__module__": __name__, "__doc__": doc,
                          "mem": (t.zero(),) * (depth * lanes), "DEPTH": depth, "LANES": lanes}
    return type(name, (base,), ns, storage=("mem",))


def read_port(word: Any, depth: int, lanes: int = 1) -> type[Bus]:
    """The address bus of a memory read port."""
    return _make("ReadAddress", word, depth, lanes, lambda t, d, k, tag: _bus(
        f"ReadAddress{tag}", "Read address of a memory.", {"addr": UInt[address_width(d)]},
        {"addr": 0}))


def read_data(word: Any, depth: int, lanes: int = 1) -> type[Bus]:
    """The data bus a memory read port answers on (one tick after the address)."""
    return _make("ReadData", word, depth, lanes, lambda t, d, k, tag: _bus(
        f"ReadData{tag}", "Word read from a memory.", {"rdata": _word(t, k)},
        {"rdata": _zero(t, k)}))


def write_port(word: Any, depth: int, lanes: int = 1) -> type[Bus]:
    """The write port of a simple dual-port RAM."""
    return _make("WritePort", word, depth, lanes, lambda t, d, k, tag: _bus(
        f"WritePort{tag}", "Write port of a memory.",
        {"waddr": UInt[address_width(d)], "we": Bool, "wdata": _word(t, k)},
        {"waddr": 0, "we": False, "wdata": _zero(t, k)}))


def ram_port(word: Any, depth: int, lanes: int = 1) -> type[Bus]:
    """The one port of a single-port RAM: address, write enable, write data."""
    return _make("RamPort", word, depth, lanes, lambda t, d, k, tag: _bus(
        f"RamPort{tag}", "Address, write enable and write data of a single-port RAM.",
        {"addr": UInt[address_width(d)], "we": Bool, "wdata": _word(t, k)},
        {"addr": 0, "we": False, "wdata": _zero(t, k)}))


class RomBody(Process):
    """A ROM: ``rdata`` is the word at the previous tick's ``addr``."""

    def on_tick(self) -> None:
        self.data.rdata = self.mem[self.read.addr]


class SinglePortRamBody(Process):
    """A single-port RAM, read-first: ``rdata`` gets the old word, then ``wdata`` is stored
    when ``we`` is set."""

    def on_tick(self) -> None:
        addr = self.port.addr
        self.data.rdata = self.mem[addr]
        if self.port.we:
            self.mem[addr] = self.port.wdata


class DualPortRamBody(Process):
    """A simple dual-port RAM: one write port, one read port, read-first on a collision."""

    def on_tick(self) -> None:
        self.data.rdata = self.mem[self.read.addr]
        if self.write.we:
            self.mem[self.write.waddr] = self.write.wdata


class TrueDualPortRamBody(Process):
    """A true dual-port RAM: ports ``a`` and ``b`` each read (into ``data_a``/``data_b``) and
    write in the same tick; reads are read-first on both ports, and port ``b``'s write is
    the one stored when both ports write one address in one tick."""

    def on_tick(self) -> None:
        self.data_a.rdata = self.mem[self.a.addr]
        self.data_b.rdata = self.mem[self.b.addr]
        if self.a.we:
            self.mem[self.a.addr] = self.a.wdata
        if self.b.we:
            self.mem[self.b.addr] = self.b.wdata


class WideRomBody(Process):
    """A ROM of words of ``LANES`` elements: ``rdata`` is the word at the previous tick's
    ``addr``."""

    def on_tick(self) -> None:
        base = self.read.addr * self.LANES
        for j in range(self.LANES):
            self.data.rdata[j] = self.mem[base + j]


class WideSinglePortRamBody(Process):
    """A single-port RAM of words of ``LANES`` elements, read-first."""

    def on_tick(self) -> None:
        base = self.port.addr * self.LANES
        for j in range(self.LANES):
            self.data.rdata[j] = self.mem[base + j]
        if self.port.we:
            for j in range(self.LANES):
                self.mem[base + j] = self.port.wdata[j]


class WideDualPortRamBody(Process):
    """A simple dual-port RAM of words of ``LANES`` elements, read-first on a collision."""

    def on_tick(self) -> None:
        rbase = self.read.addr * self.LANES
        for j in range(self.LANES):
            self.data.rdata[j] = self.mem[rbase + j]
        if self.write.we:
            wbase = self.write.waddr * self.LANES
            for j in range(self.LANES):
                self.mem[wbase + j] = self.write.wdata[j]


class WideTrueDualPortRamBody(Process):
    """A true dual-port RAM of words of ``LANES`` elements (rules as the one-lane RAM)."""

    def on_tick(self) -> None:
        abase = self.a.addr * self.LANES
        bbase = self.b.addr * self.LANES
        for j in range(self.LANES):
            self.data_a.rdata[j] = self.mem[abase + j]
        for j in range(self.LANES):
            self.data_b.rdata[j] = self.mem[bbase + j]
        if self.a.we:
            for j in range(self.LANES):
                self.mem[abase + j] = self.a.wdata[j]
        if self.b.we:
            for j in range(self.LANES):
                self.mem[bbase + j] = self.b.wdata[j]


def _port(direction: Direction, bus: type[Bus]) -> Any:
    return Annotated[bus, direction]


def _array(t: SignalType, depth: int) -> Any:
    return Array.__getitem__((t, depth))


def _memory(kind: str, bodies: tuple[type[Process], type[Process]], word: Any, depth: int,
            lanes: int, ports: dict[str, tuple[Direction, Any]]) -> type[Process]:
    def build(t: SignalType, d: int, k: int, tag: str) -> type[Process]:
        ann = {name: _port(direction, bus(t, d, k)) for name, (direction, bus) in ports.items()}
        ann["mem"] = _array(t, d * k)
        body = bodies[k > 1]
        return _process(f"{kind}{tag}", body, body.__doc__ or "", ann, t, d, k)

    return _make(kind, word, depth, lanes, build)


def rom(word: Any, depth: int, lanes: int = 1) -> type[Process]:
    """A ROM process class of ``depth`` words of type ``word`` (ports ``read``, ``data``;
    contents given as ``mem=`` when instantiating)."""
    return _memory("Rom", (RomBody, WideRomBody), word, depth, lanes,
                   {"read": (Direction.IN, read_port), "data": (Direction.OUT, read_data)})


def single_port_ram(word: Any, depth: int, lanes: int = 1) -> type[Process]:
    """A single-port RAM process class (ports ``port``, ``data``; register ``mem``)."""
    return _memory("Ram", (SinglePortRamBody, WideSinglePortRamBody), word, depth, lanes,
                   {"port": (Direction.IN, ram_port), "data": (Direction.OUT, read_data)})


def dual_port_ram(word: Any, depth: int, lanes: int = 1) -> type[Process]:
    """A simple dual-port RAM process class (ports ``write``, ``read``, ``data``)."""
    return _memory("DualRam", (DualPortRamBody, WideDualPortRamBody), word, depth, lanes,
                   {"write": (Direction.IN, write_port), "read": (Direction.IN, read_port),
                    "data": (Direction.OUT, read_data)})


def true_dual_port_ram(word: Any, depth: int, lanes: int = 1) -> type[Process]:
    """A true dual-port RAM process class: ports ``a`` and ``b`` (each a ``ram_port``:
    ``addr``, ``we``, ``wdata``) answer on ``data_a`` and ``data_b`` (``read_data``); both
    read and write in the same tick (see the module docstring for collisions)."""
    return _memory("TdpRam", (TrueDualPortRamBody, WideTrueDualPortRamBody), word, depth,
                   lanes, {"a": (Direction.IN, ram_port), "b": (Direction.IN, ram_port),
                           "data_a": (Direction.OUT, read_data),
                           "data_b": (Direction.OUT, read_data)})
