"""The buses of the firmware chain, made for one ``ChainParams`` (their widths depend on
the frame shape and the lanes per word) and cached, so equal parameters give the same
classes."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Annotated, Any

from sme import Array, Bool, Bus, Process, UFix, UInt
from sme.memory import address_width, read_data, read_port, write_port
from sme.process import Direction
from sme.types import SignalType

from .params import GAIN_FRAC, HIST_BINS, OUT_BITS, PIXEL_BITS, ChainParams, Reg, Table

GAIN = UFix[2, GAIN_FRAC]
"""Type of a gain-table entry."""


def bus_class(name: str, doc: str, signals: dict[str, tuple[Any, Any]]) -> type[Bus]:
    """A bus class with the given ``{signal: (type, initial value)}``."""
    ns: dict[str, Any] = {"__annotations__": {k: t for k, (t, _) in signals.items()},
                          "__module__": __name__, "__doc__": doc}
    ns.update({k: v for k, (_, v) in signals.items()})
    return type(name, (Bus,), ns)


def specialise(body: type[Process], params: ChainParams, ports: dict[str, tuple[Direction, Any]],
               registers: dict[str, tuple[SignalType | Any, Any]] | None = None,
               **constants: Any) -> type[Process]:
    """A process class for ``params``: ``body``'s ``on_tick`` with the given ports,
    registers ``{name: (type, initial)}`` and class constants (read as ``self.NAME``)."""
    ann: dict[str, Any] = {n: Annotated[bus, d] for n, (d, bus) in ports.items()}
    ns: dict[str, Any] = {"__module__": body.__module__, "__doc__": body.__doc__}
    for n, (t, init) in (registers or {}).items():
        ann[n] = t
        ns[n] = init
    ns["__annotations__"] = ann
    ns.update(constants)
    name = body.__name__.removesuffix("Body") + params_tag(params)
    return type(name, (body,), ns)


def params_tag(p: ChainParams) -> str:
    """``"64x64k16"`` (``"195x487k32nb"`` without the binning stage): the parameters in a
    class name."""
    return f"{p.height}x{p.width}k{p.lanes}{'' if p.binning else 'nb'}"


def bits(n: int) -> int:
    """Bits of an unsigned counter that holds 0 … n."""
    return max(1, n.bit_length())


@dataclass(frozen=True)
class ChainBuses:
    """The bus classes of one chain (instantiate each with its network name)."""

    link: type[Bus]
    ctrl: type[Bus]
    tables: type[Bus]
    config: type[Bus]
    frame_info: type[Bus]
    pixels: type[Bus]
    corrected: type[Bus]
    image: type[Bus]
    results: type[Bus]
    packet: type[Bus]
    table_write: dict[Table, type[Bus]]
    table_read: dict[Table, type[Bus]]
    table_data: dict[Table, type[Bus]]


TABLE_WORDS: dict[Table, Any] = {Table.DARK: UInt[OUT_BITS], Table.GAIN: GAIN, Table.MASK: Bool}
"""Word type of each calibration table."""


@functools.cache
def chain_buses(p: ChainParams) -> ChainBuses:
    """The buses of the chain for ``p``."""
    k, tag = p.lanes, params_tag(p)
    aw = address_width(p.table_depth)
    raw = Array[UInt[PIXEL_BITS], k]
    out = Array[UInt[OUT_BITS], k]
    zeros = [0] * k
    flags = {"valid": (Bool, False), "sof": (Bool, False), "eol": (Bool, False),
             "eof": (Bool, False), "err": (Bool, False)}

    def make(name: str, doc: str, signals: dict[str, tuple[Any, Any]]) -> type[Bus]:
        return bus_class(name + tag, doc, signals)

    corrected = make("Corrected", "Corrected pixels; saturated is the frame's count of "
                     "saturated pixels, valid on eof.",
                     {**flags, "saturated": (UInt[32], 0), "data": (out, zeros)})
    # without the binning stage the reductions and the packetiser read the corrected bus
    image = make("Image", "The output image (binned or not), K pixels per word.",
                 {**flags, "saturated": (UInt[32], 0), "data": (out, zeros)}) \
        if p.binning else corrected
    return ChainBuses(
        link=make("Link", "Link words from the sensor ASIC: K pixel counts per word.",
                  {"valid": (Bool, False), "sof": (Bool, False), "eol": (Bool, False),
                   "data": (raw, zeros)}),
        ctrl=make("Ctrl", "Register writes from the host (applied between frames).",
                  {"we": (Bool, False), "reg": (Reg, Reg.THRESHOLD), "value": (UInt[32], 0)}),
        tables=make("Tables", "Calibration-table writes from the host, one word at a time.",
                    {"we": (Bool, False), "table": (Table, Table.DARK), "addr": (UInt[aw], 0),
                     "data": (out, zeros)}),
        config=make("Config", "The configuration registers, as the stages see them.",
                    {"threshold": (UInt[PIXEL_BITS], 0), "roi_x0": (UInt[16], 0),
                     "roi_y0": (UInt[16], 0), "roi_x1": (UInt[16], 0xFFFF),
                     "roi_y1": (UInt[16], 0xFFFF), "binning": (Bool, False)}),
        frame_info=make("FrameInfo", "Timestamp (tick) of the frame being received.",
                        {"ts": (UInt[48], 0)}),
        pixels=make("Pixels", "Received words with their position flags (eof: last word of "
                    "the frame; err: the frame had a framing error, valid on eof).",
                    {**flags, "data": (raw, zeros)}),
        corrected=corrected,
        image=image,
        results=make("Results", "Reductions of the last finished frame.",
                     {"roi_sum": (UInt[48], 0), "saturated": (UInt[32], 0),
                      "hist": (Array[UInt[bits(p.height * p.width)], HIST_BINS],
                               [0] * HIST_BINS)}),
        packet=make("Packet", "The firmware's output: one packet per frame, K lanes a word.",
                    {"valid": (Bool, False), "first": (Bool, False), "last": (Bool, False),
                     "data": (out, zeros)}),
        table_write={t: write_port(w, p.table_depth, k) for t, w in TABLE_WORDS.items()},
        table_read={t: read_port(w, p.table_depth, k) for t, w in TABLE_WORDS.items()},
        table_data={t: read_data(w, p.table_depth, k) for t, w in TABLE_WORDS.items()},
    )
