"""Pixel corrections in fixed point: dark subtraction, zero suppression, flat-field gain,
bad-pixel mask and saturation (docs/firmware.md, "Per-pixel correction")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sme import Process, UInt, resize
from sme.process import Direction

from .buses import chain_buses, specialise
from .params import OUT_MAX, PIXEL_MAX, ChainParams, Table


class CorrectBody(Process):
    """Corrects the K pixels of a word with the calibration words read for it and counts the
    frame's saturated pixels (reported with the last word)."""

    if TYPE_CHECKING:  # registers, declared per parameters by the factory below
        saturated: int

    def on_tick(self) -> None:
        self.out.valid = self.inp.valid
        if self.inp.valid:
            self.out.sof = self.inp.sof
            self.out.eol = self.inp.eol
            self.out.eof = self.inp.eof
            self.out.err = self.inp.err
            count: UInt[32] = self.saturated
            threshold = self.config.threshold
            for j in range(self.LANES):
                raw = self.inp.data[j]
                if self.mask.rdata[j]:
                    self.out.data[j] = 0
                elif raw == PIXEL_MAX:
                    self.out.data[j] = OUT_MAX
                    count = count + 1
                else:
                    signal = raw - self.dark.rdata[j]
                    if signal < threshold:
                        signal = 0
                    value = resize(signal * self.gain.rdata[j], UInt[23], rounding="nearest")
                    if value > OUT_MAX:
                        self.out.data[j] = OUT_MAX
                        count = count + 1
                    else:
                        self.out.data[j] = value
            if self.inp.eof:
                self.out.saturated = count
                self.saturated = 0
            else:
                self.saturated = count


def correct(p: ChainParams) -> type[Process]:
    """The correction process class for ``p``."""
    b = chain_buses(p)
    return specialise(CorrectBody, p, {
        "inp": (Direction.IN, b.pixels), "config": (Direction.IN, b.config),
        "dark": (Direction.IN, b.table_data[Table.DARK]),
        "gain": (Direction.IN, b.table_data[Table.GAIN]),
        "mask": (Direction.IN, b.table_data[Table.MASK]),
        "out": (Direction.OUT, b.corrected),
    }, {"saturated": (UInt[32], 0)}, LANES=p.lanes)
