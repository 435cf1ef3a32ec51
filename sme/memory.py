"""Memories: ROM, single-port RAM and simple dual-port RAM as ordinary SME processes.

Each is a clocked process holding an ``Array`` register ``mem`` and reading it with one
tick of latency (the address given at tick ``i`` shows its word on ``rdata`` after tick
``i``), which is the registered-read template that synthesis tools infer as block RAM.
Writes are read-first: a read of the address being written returns the old word.

Memories are parameterised by word type and depth, so their buses and process classes
are made on demand (and cached, so equal parameters give the same classes)::

    Ram = single_port_ram(UInt[16], 1024)
    ctl, out = Ram.ports()["port"].bus_type(), Ram.ports()["data"].bus_type()
    ram = Ram(port=ctl, data=out, mem=np.arange(1024))   # initial contents

An address at or beyond ``depth`` (possible when the depth is not a power of two) is an
error when it is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from .bus import Bus
from .errors import DeclarationError
from .process import Direction, Process
from .types import Array, Bool, SignalType, UInt, cast

_C = TypeVar("_C")
_CLASSES: dict[tuple[str, SignalType, int], Any] = {}


def address_width(depth: int) -> int:
    """Bits needed to address ``depth`` words."""
    return max(1, (depth - 1).bit_length())


def _tag(word: SignalType, depth: int) -> str:
    text = re.sub(r"[\[\]]", "", repr(word)).replace(", ", "_")
    return re.sub(r"[^A-Za-z0-9_]", "", text) + f"x{depth}"


def _make(kind: str, word: Any, depth: int, build: Callable[[SignalType, int, str], _C]) -> _C:
    t = cast(word)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise DeclarationError(f"{kind}: depth must be an int >= 1, not {depth!r}")
    key = (kind, t, depth)
    if key not in _CLASSES:
        _CLASSES[key] = build(t, depth, _tag(t, depth))
    made: _C = _CLASSES[key]
    return made


def _bus(name: str, doc: str, fields: dict[str, SignalType], initial: dict[str, Any]) -> type[Bus]:
    ns: dict[str, Any] = {"__annotations__": fields, "__module__": __name__, "__doc__": doc}
    ns.update(initial)
    return type(name, (Bus,), ns)


def _process(name: str, base: type[Process], doc: str, ann: dict[str, Any], t: SignalType,
             depth: int) -> type[Process]:
    ns: dict[str, Any] = {"__annotations__": ann, "__module__": __name__, "__doc__": doc,
                          "mem": (t.zero(),) * depth, "DEPTH": depth}
    return type(name, (base,), ns)


def read_port(word: Any, depth: int) -> type[Bus]:
    """The address bus of a memory read port."""
    return _make("ReadAddress", word, depth, lambda t, d, tag: _bus(
        f"ReadAddress{tag}", "Read address of a memory.", {"addr": UInt[address_width(d)]},
        {"addr": 0}))


def read_data(word: Any, depth: int) -> type[Bus]:
    """The data bus a memory read port answers on (one tick after the address)."""
    return _make("ReadData", word, depth, lambda t, d, tag: _bus(
        f"ReadData{tag}", "Word read from a memory.", {"rdata": t}, {"rdata": t.zero()}))


def write_port(word: Any, depth: int) -> type[Bus]:
    """The write port of a simple dual-port RAM."""
    return _make("WritePort", word, depth, lambda t, d, tag: _bus(
        f"WritePort{tag}", "Write port of a memory.",
        {"waddr": UInt[address_width(d)], "we": Bool, "wdata": t},
        {"waddr": 0, "we": False, "wdata": t.zero()}))


def ram_port(word: Any, depth: int) -> type[Bus]:
    """The one port of a single-port RAM: address, write enable, write data."""
    return _make("RamPort", word, depth, lambda t, d, tag: _bus(
        f"RamPort{tag}", "Address, write enable and write data of a single-port RAM.",
        {"addr": UInt[address_width(d)], "we": Bool, "wdata": t},
        {"addr": 0, "we": False, "wdata": t.zero()}))


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


def _port(direction: Direction, bus: type[Bus]) -> Any:
    return Annotated[bus, direction]


def _array(t: SignalType, depth: int) -> Any:
    return Array.__getitem__((t, depth))


def _memory(kind: str, body: type[Process], word: Any, depth: int,
            ports: dict[str, tuple[Direction, Any]]) -> type[Process]:
    def build(t: SignalType, d: int, tag: str) -> type[Process]:
        ann = {name: _port(direction, bus(t, d)) for name, (direction, bus) in ports.items()}
        ann["mem"] = _array(t, d)
        return _process(f"{kind}{tag}", body, body.__doc__ or "", ann, t, d)

    return _make(kind, word, depth, build)


def rom(word: Any, depth: int) -> type[Process]:
    """A ROM process class of ``depth`` words of type ``word`` (ports ``read``, ``data``;
    contents given as ``mem=`` when instantiating)."""
    return _memory("Rom", RomBody, word, depth,
                   {"read": (Direction.IN, read_port), "data": (Direction.OUT, read_data)})


def single_port_ram(word: Any, depth: int) -> type[Process]:
    """A single-port RAM process class (ports ``port``, ``data``; register ``mem``)."""
    return _memory("Ram", SinglePortRamBody, word, depth,
                   {"port": (Direction.IN, ram_port), "data": (Direction.OUT, read_data)})


def dual_port_ram(word: Any, depth: int) -> type[Process]:
    """A simple dual-port RAM process class (ports ``write``, ``read``, ``data``)."""
    return _memory("DualRam", DualPortRamBody, word, depth,
                   {"write": (Direction.IN, write_port), "read": (Direction.IN, read_port),
                    "data": (Direction.OUT, read_data)})
