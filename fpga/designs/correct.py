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
    frame's saturated pixels (reported with the last word).

    Each lane is written branch-free, as a pipeline of selects (what the hardware is): the
    dark-subtracted signal floored at 0 and zero-suppressed below the threshold, times the
    gain, capped at ``OUT_MAX``; a saturated counter or product gives ``OUT_MAX``, a masked
    pixel 0. The word's saturated pixels are counted apart (at most K <= 255: the 8-bit
    count cannot overflow, which the compiled backend proves, so its lane loop has no
    check and runs as vector code) and added to the frame's count once per word."""

    if TYPE_CHECKING:  # registers, declared per parameters by the factory below
        saturated: int

    def on_tick(self) -> None:
        self.out.valid = self.inp.valid
        if self.inp.valid:
            self.out.sof = self.inp.sof
            self.out.eol = self.inp.eol
            self.out.eof = self.inp.eof
            self.out.err = self.inp.err
            threshold = self.config.threshold
            word: UInt[8] = 0
            for j in range(self.LANES):
                raw = self.inp.data[j]
                masked = self.mask.rdata[j]
                above = max(raw - self.dark.rdata[j], 0)
                signal = above if above >= threshold else 0
                value = resize(signal * self.gain.rdata[j], UInt[23], rounding="nearest")
                full = raw == PIXEL_MAX or value > OUT_MAX
                self.out.data[j] = 0 if masked else (OUT_MAX if full else min(value, OUT_MAX))
                word = word + int(full and not masked)
            count: UInt[32] = self.saturated + word
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
