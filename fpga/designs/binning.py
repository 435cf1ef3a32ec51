"""Optional 2×2 binning with a line buffer (docs/firmware.md, "2×2 binning")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sme import Array, Bool, Process, UInt
from sme.process import Direction

from .buses import bits, chain_buses, specialise
from .params import OUT_BITS, OUT_MAX, ChainParams


class BinBody(Process):
    """Without binning, passes words through. With binning, an even line leaves the sums of
    its horizontal pixel pairs in the line buffer; on the odd line below, each word adds its
    pairs to them (saturating at 65535) and two such half words make one output word."""

    if TYPE_CHECKING:  # registers, declared per parameters by the factory below
        odd: bool
        first: bool
        col: int

    def on_tick(self) -> None:
        if not self.config.binning:
            self.out.valid = self.inp.valid
            if self.inp.valid:
                self.out.sof = self.inp.sof
                self.out.eol = self.inp.eol
                self.out.eof = self.inp.eof
                self.out.err = self.inp.err
                self.out.saturated = self.inp.saturated
                for j in range(self.LANES):
                    self.out.data[j] = self.inp.data[j]
            return
        self.out.valid = False
        if not self.inp.valid:
            return
        if self.inp.sof:
            self.odd = False
            self.col = 0
        base = self.col * self.HALF
        if not self.odd:
            for j in range(self.HALF):
                self.line[base + j] = self.inp.data[2 * j] + self.inp.data[2 * j + 1]
        else:
            second = (self.col & 1) == 1
            for j in range(self.HALF):
                total = self.line[base + j] + self.inp.data[2 * j] + self.inp.data[2 * j + 1]
                if total > OUT_MAX:
                    total = OUT_MAX
                if second:
                    self.out.data[self.HALF + j] = total
                else:
                    self.pending[j] = total
            if second:
                for j in range(self.HALF):
                    self.out.data[j] = self.pending[j]
                self.out.valid = True
                self.out.sof = self.first
                self.out.eol = self.inp.eol
                self.out.eof = self.inp.eof
                self.out.err = self.inp.err
                self.out.saturated = self.inp.saturated
                self.first = False
        if self.inp.sof:
            self.first = True
        if self.inp.eol:
            self.odd = not self.odd
            self.col = 0
        else:
            self.col = self.col + 1


def binning(p: ChainParams) -> type[Process]:
    """The binning process class for ``p``."""
    b = chain_buses(p)
    half = p.lanes // 2
    return specialise(BinBody, p, {
        "inp": (Direction.IN, b.corrected), "config": (Direction.IN, b.config),
        "out": (Direction.OUT, b.image),
    }, {
        "line": (Array[UInt[OUT_BITS + 1], p.width // 2], [0] * (p.width // 2)),
        "pending": (Array[UInt[OUT_BITS], half], [0] * half),
        "odd": (Bool, False), "first": (Bool, False),
        "col": (UInt[bits(p.words_per_line - 1)], 0),
    }, LANES=p.lanes, HALF=half)
