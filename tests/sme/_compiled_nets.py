"""Networks for the compiled-backend tests: a state machine with enums, fixed point and
arrays, and small processes whose run-time checks fail (overflow, index, undefined)."""
from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Any

from sme import (
    Array,
    Bool,
    Bus,
    Fixed,
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


class Mode(enum.Enum):
    IDLE = 0
    RUN = 1
    HOLD = 2


class Ctl(Bus):
    go: Bool = False
    level: UInt[8] = 0
    gain: UFix[2, 6] = 0
    sel: UInt[3] = 0


class Stat(Bus):
    mode: Mode = Mode.IDLE
    scaled: UFix[8, 2] = 0
    near: SFix[6, 1] = 0
    hist: Array[UInt[6], 4] = [0, 0, 0, 0]
    picked: UInt[6] = 0
    count: UInt[4] = 0


class Mix(Bus):
    total: Int[10] = 0
    flag: Bool = False


class Fsm(Process):
    """A generator: idle until go, then one counting step, a fixed-point step, a match."""

    ctl: In[Ctl]
    out: Out[Stat]
    n: UInt[4] = 0
    bins: Array[UInt[6], 4] = [0, 0, 0, 0]

    def on_tick(self) -> Any:
        self.out.mode = Mode.IDLE
        yield
        if not self.ctl.go:
            return
        self.out.mode = Mode.RUN
        yield
        self.n = wrap(self.n + 1)
        self.out.count = self.n
        self.bins[self.ctl.sel & 3] = saturate(self.bins[self.ctl.sel & 3] + 1)
        self.out.hist = self.bins
        self.out.scaled = resize(self.ctl.gain * self.ctl.level, UFix[8, 2], rounding="floor",
                                 overflow="saturate")
        self.out.near = resize(self.ctl.gain - 1, SFix[6, 1], rounding="nearest")
        self.out.picked = self.bins[self.ctl.sel % 4]
        match self.out.mode:
            case Mode.RUN:
                self.out.mode = Mode.HOLD
            case _:
                self.out.mode = Mode.IDLE
        yield


class Comb(Process, combinational=True):
    """Combinational: reads the state machine's bus and the top-level input."""

    st: In[Stat]
    ctl: In[Ctl]
    mix: Out[Mix]

    def on_tick(self) -> None:
        t = self.st.picked - self.ctl.level // 3
        if self.st.mode == Mode.HOLD and t > 0:
            self.mix.total = t
        else:
            self.mix.total = -t if t < 0 else t
        self.mix.flag = self.ctl.go or self.st.count > 7


def build_fsm() -> Network:
    """The state-machine network."""
    ctl, st, mix = Ctl(), Stat(), Mix()
    return Network("fsm", [Fsm(ctl=ctl, out=st), Comb(st=st, ctl=ctl, mix=mix)], inputs=[ctl])


def fsm_stimulus(ticks: int = 300) -> Iterator[dict[str, Any]]:
    """Go most of the time, levels, gains and selections cycling."""
    for i in range(ticks):
        yield {"ctl.go": i % 5 != 0, "ctl.level": (i * 37) % 256,
               "ctl.gain": Fixed((i * 13) % 256, 6), "ctl.sel": i % 8}


class Num(Bus):
    v: UInt[8] = 0
    i: UInt[3] = 0


class Acc(Bus):
    total: UInt[10] = 0


class Overflowing(Process):
    """Accumulates without wrap: overflows after a while."""

    inp: In[Num]
    out: Out[Acc]
    acc: UInt[10] = 0

    def on_tick(self) -> None:
        self.acc = self.acc + self.inp.v
        self.out.total = self.acc


class Indexing(Process):
    """Indexes a 5-element array with a 3-bit index: 5..7 are out of range."""

    inp: In[Num]
    out: Out[Acc]
    table: Array[UInt[10], 5] = [1, 2, 3, 4, 5]

    def on_tick(self) -> None:
        self.out.total = self.table[self.inp.i]


class Undefined(Process):
    """Reads a register that has no initial value unless i == 0 wrote it first."""

    inp: In[Num]
    out: Out[Acc]
    r: UInt[8]

    def on_tick(self) -> None:
        if self.inp.i == 0:
            self.r = self.inp.v
        self.out.total = self.r


class Dividing(Process):
    """Divides by a 3-bit input that is sometimes zero."""

    inp: In[Num]
    out: Out[Acc]

    def on_tick(self) -> None:
        self.out.total = self.inp.v // self.inp.i + self.inp.v % 5


class Resizing(Process):
    """resize(...) stored directly: its error is resize's ValueError, not a store error."""

    inp: In[Num]
    out: Out[Acc]

    def on_tick(self) -> None:
        self.out.total = resize(self.inp.v * 6, UInt[10])


class Wide(Process):
    """A product of three 32-bit values needs 96 bits."""

    inp: In[Num]
    out: Out[Acc]
    a: UInt[32] = 0

    def on_tick(self) -> None:
        self.out.total = wrap(self.a * self.a * self.a)


def single(cls: type[Process]) -> Network:
    """A network of one process between a Num bus and an Acc bus."""
    return Network(cls.__name__.lower(), [cls(inp=Num(), out=Acc())])


TABLE = (1, 2, 3, 200)


class WideTable(Process):
    """A constant table read at a run-time index beside values beyond 64 bits."""

    inp: In[Num]
    out: Out[Acc]
    big: UInt[64] = 2**64 - 1
    wide: UInt[128] = 0

    def on_tick(self) -> None:
        self.big = TABLE[self.inp.v % 4] ^ self.big
        self.wide = TABLE[self.inp.v % 4] << 100
        self.out.total = wrap(self.big + (self.wide >> 100))
