"""A small network that uses every construct the translators support: enums and ``match``,
fixed point with rounding, arrays, ``for`` over constant ranges, helper functions, ``//``
and ``%`` by constants, shifts, ``wrap``/``saturate``, a combinational process and a
generator state machine. It exists to test backends against the interpreter.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

from sme import (
    Array,
    Bool,
    Bus,
    In,
    Int,
    Network,
    Out,
    Process,
    SFix,
    UFix,
    UInt,
    resize,
    saturate,
    wrap,
)

GAIN = UFix[2, 6](0.75)
TAPS = (1, 2, 3, 2)
LIMIT = 200


class Mode(enum.Enum):
    """What the filter does with its input."""

    IDLE = 0
    PASS = 1
    SCALE = 2
    HOLD = 3


class Phase(enum.Enum):
    """States of the handshake."""

    WAIT = 0
    BUSY = 1
    DONE = 2


class Stimulus(Bus):
    """Inputs of the features network."""

    sample: Int[12] = 0
    mode: Mode = Mode.IDLE
    start: Bool = False


class Filtered(Bus):
    """Outputs of the filter."""

    y: Int[16] = 0
    scaled: SFix[8, 4] = SFix[8, 4](0)
    window: Array[UInt[8], 4] = [0, 0, 0, 0]
    parity: Bool = False
    quotient: Int[10] = 0
    remainder: UInt[3] = 0


class Decoded(Bus):
    """Combinational decode of the filter output."""

    big: Bool = False
    level: UInt[2] = 0


class Handshake(Bus):
    """The generator's outputs."""

    phase: Phase = Phase.WAIT
    count: UInt[4] = 0


def clamp(x: int, lo: int, hi: int) -> int:
    """Clamp x to lo..hi."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def low_byte(x: int) -> int:
    """The low 8 bits of x."""
    return x & 0xFF


class Filter(Process):
    """A moving window with a weighted sum, gain in fixed point, mode selection."""

    inp: In[Stimulus]
    out: Out[Filtered]
    hist: Array[UInt[8], 4] = [0, 0, 0, 0]
    last: Int[16] = 0

    def on_tick(self) -> None:
        for i in range(3, 0, -1):
            self.hist[i] = self.hist[i - 1]
        self.hist[0] = low_byte(self.inp.sample)
        total: UInt[12] = 0
        for i in range(4):
            total = total + self.hist[i] * TAPS[i]
        match self.inp.mode:
            case Mode.IDLE:
                y = 0
            case Mode.PASS:
                y = self.inp.sample
            case Mode.SCALE | Mode.HOLD:
                y = clamp(self.inp.sample * 3 - total, -LIMIT, LIMIT)
        self.out.y = saturate(y + self.last)
        self.last = wrap((y << 2) + (self.inp.sample >> 3))
        self.out.scaled = resize(self.inp.sample * GAIN >> 2, SFix[8, 4], rounding="nearest",
                                 overflow="saturate")
        self.out.window = self.hist
        self.out.parity = (total % 2) == 1 and not self.out.parity
        self.out.quotient = self.inp.sample // 5
        self.out.remainder = self.inp.sample % 7 if self.inp.sample >= 0 else -self.inp.sample % 4


class Decode(Process, combinational=True):
    """Flags large outputs and bins them into four levels."""

    inp: In[Filtered]
    out: Out[Decoded]

    def on_tick(self) -> None:
        y = self.inp.y
        self.out.big = abs(y) > 100
        self.out.level = min(abs(y) // 64, 3)


class Handshaker(Process):
    """Waits for start, stays busy for three ticks counting, then reports done."""

    inp: In[Stimulus]
    out: Out[Handshake]

    def on_tick(self) -> Any:
        self.out.phase = Phase.WAIT
        while True:
            started = self.inp.start
            yield
            if started:
                self.out.phase = Phase.BUSY
                self.out.count = wrap(self.out.count + 1)
                yield
                yield
                self.out.phase = Phase.DONE
                yield
                self.out.phase = Phase.WAIT


def build() -> Network:
    """The features network."""
    stim, filt, dec, hs = Stimulus(), Filtered(), Decoded(), Handshake()
    return Network("features", [Filter(inp=stim, out=filt), Decode(inp=filt, out=dec),
                                Handshaker(inp=stim, out=hs)], inputs=[stim])


def stimulus(ticks: int = 1000) -> Iterator[dict[str, Any]]:
    """Pseudo-random samples, modes cycling, a start pulse now and then."""
    x = 12345
    for i in range(ticks):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        yield {"stimulus.sample": (x >> 8) % 4096 - 2048,
               "stimulus.mode": list(Mode)[(i // 7) % 4],
               "stimulus.start": (x >> 3) % 5 == 0}
