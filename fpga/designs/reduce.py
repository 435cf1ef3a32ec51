"""On-FPGA reductions of each output frame: the ROI sum, the saturated-pixel count and a
64-bin intensity histogram, published when the frame's last word has passed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sme import Array, Process, UInt
from sme.process import Direction

from .buses import bits, chain_buses, specialise
from .params import HIST_BINS, HIST_SHIFT, ChainParams


class ReduceBody(Process):
    """Accumulates over the words of a frame; on its last word writes the totals to
    ``results`` (held there until the next frame ends) and starts again. The padding
    lanes at the end of a line (``PAD`` of them, always 0) are left out of the
    histogram."""

    if TYPE_CHECKING:  # registers, declared per parameters by the factory below
        roi_sum: int

    def on_tick(self) -> None:
        if not self.inp.valid:
            return
        if self.inp.sof:
            self.x = 0
            self.y = 0
        y = self.y
        in_rows = y >= self.config.roi_y0 and y < self.config.roi_y1
        x0 = self.config.roi_x0
        x1 = self.config.roi_x1
        total: UInt[48] = self.roi_sum
        for j in range(self.LANES):
            v = self.inp.data[j]
            x = self.x + j
            if self.PAD == 0 or x < self.WIDTH:  # padding lanes are not pixels
                self.hist[v >> HIST_SHIFT] = self.hist[v >> HIST_SHIFT] + 1
            if in_rows and x >= x0 and x < x1:
                total = total + v
        if self.inp.eof:
            self.out.roi_sum = total
            self.out.saturated = self.inp.saturated
            for b in range(HIST_BINS):
                self.out.hist[b] = self.hist[b]
                self.hist[b] = 0
            self.roi_sum = 0
        else:
            self.roi_sum = total
        if self.inp.eol:
            self.x = 0
            self.y = self.y + 1
        else:
            self.x = self.x + self.LANES


def reduce(p: ChainParams) -> type[Process]:
    """The reduction process class for ``p``."""
    b = chain_buses(p)
    return specialise(ReduceBody, p, {
        "inp": (Direction.IN, b.image), "config": (Direction.IN, b.config),
        "out": (Direction.OUT, b.results),
    }, {
        "roi_sum": (UInt[48], 0),
        "hist": (Array[UInt[bits(p.height * p.width)], HIST_BINS], [0] * HIST_BINS),
        "x": (UInt[bits(p.line_width)], 0), "y": (UInt[bits(p.height)], 0),
    }, LANES=p.lanes, WIDTH=p.width, PAD=p.pad)
