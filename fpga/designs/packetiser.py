"""The packetiser: one packet per frame — header, payload, reductions, trailer ending in
the CRC-32 of every byte before it (docs/firmware.md, "The packet"), sixteen bytes (eight
lanes) per step (``WORD16`` steps a word, ``TRAILER16`` in the trailer's CRC-covered
part) and four bytes per step for the lanes left over."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sme import Array, Bool, Process, UInt, wrap
from sme.process import Direction

from .buses import bits, chain_buses, specialise
from .crc import INIT, XOR_OUT, crc32_step, crc32_step16
from .params import (
    HEADER_LANES,
    MAGIC,
    REDUCTION_FIELDS,
    REDUCTION_LANES,
    TRAILER_FIELDS,
    VERSION,
    ChainParams,
    Flags,
)

BINNING_FLAG = int(Flags.BINNING)
FRAMING_FLAG = int(Flags.FRAMING_ERROR)


class PacketiserBody(Process):
    """Emits the header on a frame's first word and the payload one word behind the image
    (that slot is the header's); after the last word come the reduction words, read from
    ``results``, and the trailer: word count and flags, then in its last two lanes the
    CRC of everything before them (the trailer's own fields included). Payload words,
    the bulk of a packet, take a path of their own: the CRC of the held word, then the
    copies."""

    if TYPE_CHECKING:  # registers, declared per parameters by the factory below
        tail: bool
        err: bool
        step: int
        crc: int
        count: int
        frame: int

    def on_tick(self) -> None:
        emit = False
        last = False
        self.out.first = False
        if self.tail:
            if self.step == 0:
                for j in range(self.LANES):
                    self.word[j] = self.held[j]
            elif self.step <= self.REDUCTION_WORDS:
                base = (self.step - 1) * self.LANES
                for j in range(self.LANES):
                    n = base + j
                    if n == 0:
                        self.word[j] = self.results.roi_sum & 0xFFFF
                    elif n == 1:
                        self.word[j] = (self.results.roi_sum >> 16) & 0xFFFF
                    elif n == 2:
                        self.word[j] = self.results.roi_sum >> 32
                    elif n == 3:
                        self.word[j] = self.results.saturated & 0xFFFF
                    elif n == 4:
                        self.word[j] = self.results.saturated >> 16
                    elif n >= REDUCTION_FIELDS and n < REDUCTION_LANES:
                        count = self.results.hist[(n - REDUCTION_FIELDS) >> 1]
                        if (n & 1) == 0:
                            self.word[j] = count & 0xFFFF
                        else:
                            self.word[j] = count >> 16
                    else:
                        self.word[j] = 0
            else:
                self.word[0] = self.count & 0xFFFF
                self.word[1] = self.count >> 16
                self.word[2] = FRAMING_FLAG if self.err else 0
                for j in range(TRAILER_FIELDS, self.LANES):
                    self.word[j] = 0
                tc: UInt[32] = self.crc
                for g in range(self.TRAILER16):
                    b = 8 * g
                    tc = crc32_step16(tc, self.word[b] | (self.word[b + 1] << 16),
                                      self.word[b + 2] | (self.word[b + 3] << 16),
                                      self.word[b + 4] | (self.word[b + 5] << 16),
                                      self.word[b + 6] | (self.word[b + 7] << 16))
                for i in range(4 * self.TRAILER16, self.LANES // 2 - 1):
                    tc = crc32_step(tc, self.word[2 * i] | (self.word[2 * i + 1] << 16))
                value = tc ^ XOR_OUT
                self.word[self.LANES - 2] = value & 0xFFFF
                self.word[self.LANES - 1] = value >> 16
                last = True
                self.tail = False
                self.frame = wrap(self.frame + 1)
            self.step = self.step + 1
            emit = True
        elif self.inp.valid and not self.inp.sof:
            c: UInt[32] = self.crc
            for g in range(self.WORD16):
                b = 8 * g
                c = crc32_step16(c, self.held[b] | (self.held[b + 1] << 16),
                                 self.held[b + 2] | (self.held[b + 3] << 16),
                                 self.held[b + 4] | (self.held[b + 5] << 16),
                                 self.held[b + 6] | (self.held[b + 7] << 16))
            for i in range(4 * self.WORD16, self.LANES // 2):
                c = crc32_step(c, self.held[2 * i] | (self.held[2 * i + 1] << 16))
            for j in range(self.LANES):
                self.out.data[j] = self.held[j]
                self.held[j] = self.inp.data[j]
            self.crc = c
            self.count = self.count + 1
            self.out.valid = True
            self.out.last = False
            if self.inp.eof:
                self.tail = True
                self.step = 0
                self.err = self.inp.err
            return
        elif self.inp.valid:
            binning = self.config.binning
            ts = self.info.ts
            self.word[0] = MAGIC
            self.word[1] = (VERSION << 8) | self.LANES
            self.word[2] = self.frame & 0xFFFF
            self.word[3] = self.frame >> 16
            self.word[4] = ts & 0xFFFF
            self.word[5] = (ts >> 16) & 0xFFFF
            self.word[6] = ts >> 32
            self.word[7] = self.HEIGHT // 2 if binning else self.HEIGHT
            self.word[8] = self.WIDTH // 2 if binning else self.WIDTH
            self.word[9] = BINNING_FLAG if binning else 0
            self.word[10] = self.config.threshold & 0xFFFF
            self.word[11] = self.config.threshold >> 16
            for j in range(HEADER_LANES, self.LANES):
                self.word[j] = 0
            self.out.first = True
            self.crc = INIT
            self.count = 0
            for j in range(self.LANES):
                self.held[j] = self.inp.data[j]
            if self.inp.eof:
                self.tail = True
                self.step = 0
                self.err = self.inp.err
            emit = True
        self.out.valid = emit
        self.out.last = last
        if emit:
            for j in range(self.LANES):
                self.out.data[j] = self.word[j]
            if not last:
                crc: UInt[32] = self.crc
                for g in range(self.WORD16):
                    b = 8 * g
                    crc = crc32_step16(crc, self.word[b] | (self.word[b + 1] << 16),
                                       self.word[b + 2] | (self.word[b + 3] << 16),
                                       self.word[b + 4] | (self.word[b + 5] << 16),
                                       self.word[b + 6] | (self.word[b + 7] << 16))
                for i in range(4 * self.WORD16, self.LANES // 2):
                    crc = crc32_step(crc, self.word[2 * i] | (self.word[2 * i + 1] << 16))
                self.crc = crc
                self.count = self.count + 1


def packetiser(p: ChainParams) -> type[Process]:
    """The packetiser process class for ``p``."""
    b = chain_buses(p)
    return specialise(PacketiserBody, p, {
        "inp": (Direction.IN, b.image), "results": (Direction.IN, b.results),
        "info": (Direction.IN, b.frame_info), "config": (Direction.IN, b.config),
        "out": (Direction.OUT, b.packet),
    }, {
        "word": (Array[UInt[16], p.lanes], [0] * p.lanes),
        "held": (Array[UInt[16], p.lanes], [0] * p.lanes),
        "tail": (Bool, False), "err": (Bool, False),
        # (the step after the trailer's, reduction_words + 2, is stored too)
        "step": (UInt[bits(p.reduction_words + 2)], 0),
        "crc": (UInt[32], INIT), "count": (UInt[32], 0), "frame": (UInt[32], 0),
    }, LANES=p.lanes, HEIGHT=p.height, WIDTH=p.width, REDUCTION_WORDS=p.reduction_words,
        WORD16=p.lanes // 8, TRAILER16=(p.lanes // 2 - 1) // 4)
