"""On-FPGA reductions of each output frame: the ROI sum, the saturated-pixel count and a
64-bin intensity histogram, published when the frame's last word has passed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sme import Array, Process, UInt
from sme.process import Direction

from .buses import bits, chain_buses, specialise
from .params import HIST_BANKS, HIST_BINS, HIST_SHIFT, ChainParams


class ReduceBody(Process):
    """Accumulates over the words of a frame; on its last word writes the totals to
    ``results`` (held there until the next frame ends) and starts again. The padding
    lanes at the end of a line (``PAD`` of them, always 0) are left out of the
    histogram. The word's ROI pixels are summed first, into a 24-bit local (K <= 255
    pixels of 16 bits cannot overflow it, which the compiled backend proves: that loop
    has no check and runs as vector code), and added to the frame's sum once per word;
    the histogram, a read-modify-write per lane, has a loop of its own. Lane j counts into
    bank j mod ``HIST_BANKS`` of the counters (``hist[bank · HIST_BINS + bin]``), added
    up when the frame ends: neighbouring pixels often fall in the same bin, and one set of
    counters made each lane's update wait for the previous lane's (a chain of dependent
    memory updates in the simulation; in hardware, fewer lanes per counter)."""

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
        word: UInt[24] = 0  # the word's ROI pixels (K <= 255 of 16 bits)
        for j in range(self.LANES):
            x = self.x + j
            inside = in_rows and x >= x0 and x < x1
            word = word + (self.inp.data[j] if inside else 0)
        total: UInt[48] = self.roi_sum + word
        for j in range(self.LANES):
            v = self.inp.data[j]
            if self.PAD == 0 or self.x + j < self.WIDTH:  # padding lanes are not pixels
                k = (j % HIST_BANKS) * HIST_BINS + (v >> HIST_SHIFT)
                self.hist[k] = self.hist[k] + 1
        if self.inp.eof:
            self.out.roi_sum = total
            self.out.saturated = self.inp.saturated
            for b in range(HIST_BINS):
                count: UInt[32] = 0  # at most the frame's pixels
                for bank in range(HIST_BANKS):
                    count = count + self.hist[bank * HIST_BINS + b]
                    self.hist[bank * HIST_BINS + b] = 0
                self.out.hist[b] = count
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
        "hist": (Array[UInt[bits(p.height * p.width)], HIST_BANKS * HIST_BINS],
                 [0] * (HIST_BANKS * HIST_BINS)),
        "x": (UInt[bits(p.line_width)], 0), "y": (UInt[bits(p.height)], 0),
    }, LANES=p.lanes, WIDTH=p.width, PAD=p.pad)
