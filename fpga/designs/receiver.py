"""The link receiver: frames the sensor's words, timestamps frames, checks the framing and
addresses the calibration memories one tick ahead of the pixels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sme import Bool, Process, UInt, wrap
from sme.memory import address_width
from sme.process import Direction

from .buses import bits, chain_buses, specialise
from .params import ChainParams, Table


class ReceiverBody(Process):
    """Every valid link word belongs to a frame of ``WORDS`` words: a word arriving outside
    a frame starts one. A ``sof`` or ``eol`` flag in the wrong place marks the frame's
    framing error (reported with its last word). The calibration memories are addressed
    one word ahead (the next word's address is known), so their words and the pixels
    reach the correction stage in the same tick."""

    if TYPE_CHECKING:  # registers, declared per parameters by the factory below
        ticks: int
        in_frame: bool
        err: bool
        addr: int
        col: int

    def on_tick(self) -> None:
        now = self.ticks
        self.ticks = wrap(self.ticks + 1)
        self.pixels.valid = self.link.valid
        if self.link.valid:
            start = not self.in_frame
            if start:
                self.col = 0
                self.err = False
                self.info.ts = now
            last_col = self.col == self.WORDS_PER_LINE - 1
            last_word = self.addr == self.WORDS - 1
            if self.link.sof != start or self.link.eol != last_col:
                self.err = True
            self.pixels.sof = start
            self.pixels.eol = last_col
            self.pixels.eof = last_word
            self.pixels.err = self.err
            for j in range(self.LANES):
                self.pixels.data[j] = self.link.data[j]
            if last_word:
                self.in_frame = False
                self.addr = 0
            else:
                self.in_frame = True
                self.addr = self.addr + 1
                self.col = 0 if last_col else self.col + 1
            self.dark_rd.addr = self.addr
            self.gain_rd.addr = self.addr
            self.mask_rd.addr = self.addr


def receiver(p: ChainParams) -> type[Process]:
    """The receiver process class for ``p``."""
    b = chain_buses(p)
    return specialise(ReceiverBody, p, {
        "link": (Direction.IN, b.link), "info": (Direction.OUT, b.frame_info),
        "pixels": (Direction.OUT, b.pixels),
        "dark_rd": (Direction.OUT, b.table_read[Table.DARK]),
        "gain_rd": (Direction.OUT, b.table_read[Table.GAIN]),
        "mask_rd": (Direction.OUT, b.table_read[Table.MASK]),
    }, {
        "ticks": (UInt[48], 0), "in_frame": (Bool, False), "err": (Bool, False),
        "addr": (UInt[address_width(p.words_per_frame)], 0),
        "col": (UInt[bits(p.words_per_line - 1)], 0),
    }, LANES=p.lanes, WORDS=p.words_per_frame, WORDS_PER_LINE=p.words_per_line)
