"""The control block: configuration registers and calibration-table writes from the host,
the way a readout card exposes them over its control link."""

from __future__ import annotations

from sme import Process, UFix
from sme.process import Direction

from .buses import chain_buses, specialise
from .params import GAIN_FRAC, ChainParams, Reg, Table

GAIN_LSB = UFix[1, GAIN_FRAC](2.0 ** -GAIN_FRAC)
"""One raw step of a gain entry: raw * GAIN_LSB is the gain."""


class ControlBody(Process):
    """Holds the configuration registers written through ``ctrl`` and routes each
    ``tables`` write to the dark, gain or mask memory (raw gain words become ``UFix``)."""

    def on_tick(self) -> None:
        if self.ctrl.we:
            value = self.ctrl.value
            match self.ctrl.reg:
                case Reg.THRESHOLD:
                    self.config.threshold = value & 0xFFFFF
                case Reg.ROI_X0:
                    self.config.roi_x0 = value & 0xFFFF
                case Reg.ROI_Y0:
                    self.config.roi_y0 = value & 0xFFFF
                case Reg.ROI_X1:
                    self.config.roi_x1 = value & 0xFFFF
                case Reg.ROI_Y1:
                    self.config.roi_y1 = value & 0xFFFF
                case Reg.BINNING:  # a chain without the binning stage keeps it off
                    self.config.binning = self.HAS_BINNING != 0 and value != 0
        we = self.tables.we
        table = self.tables.table
        self.dark_wr.we = we and table == Table.DARK
        self.gain_wr.we = we and table == Table.GAIN
        self.mask_wr.we = we and table == Table.MASK
        if we:
            addr = self.tables.addr
            self.dark_wr.waddr = addr
            self.gain_wr.waddr = addr
            self.mask_wr.waddr = addr
            for j in range(self.LANES):
                word = self.tables.data[j]
                self.dark_wr.wdata[j] = word
                self.gain_wr.wdata[j] = word * GAIN_LSB
                self.mask_wr.wdata[j] = word != 0


def control(p: ChainParams) -> type[Process]:
    """The control process class for ``p``."""
    b = chain_buses(p)
    return specialise(ControlBody, p, {
        "ctrl": (Direction.IN, b.ctrl), "tables": (Direction.IN, b.tables),
        "config": (Direction.OUT, b.config),
        "dark_wr": (Direction.OUT, b.table_write[Table.DARK]),
        "gain_wr": (Direction.OUT, b.table_write[Table.GAIN]),
        "mask_wr": (Direction.OUT, b.table_write[Table.MASK]),
    }, LANES=p.lanes, HAS_BINNING=int(p.binning))
