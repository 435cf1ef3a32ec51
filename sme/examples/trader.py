"""SME C#'s simple trader: two trend detectors on one stream of prices.

A price arrives on ``TraderInput`` on each tick where ``valid`` is set (ticks without a
price — bubbles — are allowed); ``restart`` starts a new run. Each core keeps a short and
a long average of the prices and, once ``STARTUP`` prices of the run were seen, reports on
every price whether the two averages crossed: ``going_up`` when the short average rises
above the long one (it was at or below it on the price before), ``going_down`` when it
falls below. ``short``/``long`` show the averages (the C# example's debug outputs).

* ``TraderCoreEWMA`` — exponentially weighted moving averages with decay ``1/2**SHORT_SHIFT``
  and ``1/2**LONG_SHIFT``, by shifts (the first price of a run seeds both averages).
* ``TraderCoreFIR`` — plain moving averages over the last ``len(SHORT_WEIGHTS)`` and
  ``len(LONG_WEIGHTS)`` prices (FIR filters with unit weights), sums in 64 bits as the
  C# example's ``ulong``. (The C# original shifts its sample arrays upwards in ascending
  order, which copies the newest sample into every tap; this port shifts from the top
  down, the moving average the example describes.)

    smeflow vhdl sme.examples.trader:build -o out/trader \\
        --stimulus sme.examples.trader:stimulus --run
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from sme import Array, Bool, Bus, In, Network, Out, Process, UInt

STARTUP = 10
"""Prices of a run read before the cores report."""
SHORT_SHIFT = 2
"""The short EWMA's decay is 1/4."""
LONG_SHIFT = 3
"""The long EWMA's decay is 1/8."""
SHORT_WEIGHTS = (1, 1, 1, 1)
"""The short FIR's taps (its average divides by their sum)."""
LONG_WEIGHTS = (1, 1, 1, 1, 1, 1, 1, 1)
"""The long FIR's taps."""
PRICE_RANGE = 5000
"""Prices of the test stream are below this."""


class TraderInput(Bus):
    """A price, or a restart."""

    valid: Bool = False
    restart: Bool = False
    value: UInt[32] = 0


class EwmaOutput(Bus):
    """A crossing report of the EWMA core."""

    valid: Bool = False
    going_down: Bool = False
    going_up: Bool = False
    short: UInt[32] = 0
    long: UInt[32] = 0


class FirOutput(Bus):
    """A crossing report of the FIR core (64-bit averages)."""

    valid: Bool = False
    going_down: Bool = False
    going_up: Bool = False
    short: UInt[64] = 0
    long: UInt[64] = 0


class TraderCoreEWMA(Process):
    """Trend crossings of two exponentially weighted moving averages."""

    prices: In[TraderInput]
    report: Out[EwmaOutput]
    short: UInt[32] = 0
    long: UInt[32] = 0
    seen: UInt[4] = 0  # prices of the run, counted up to STARTUP

    def on_tick(self) -> None:
        self.report.valid = self.report.going_down = self.report.going_up = False
        if self.prices.restart:
            self.seen = 0
            self.short = self.long = 0
        elif self.prices.valid:
            price = self.prices.value
            if self.seen == 0:
                self.short = self.long = price
                self.seen = 1
            else:
                new_short = ((price >> SHORT_SHIFT)
                             + (self.short >> SHORT_SHIFT) * ((1 << SHORT_SHIFT) - 1))
                new_long = ((price >> LONG_SHIFT)
                            + (self.long >> LONG_SHIFT) * ((1 << LONG_SHIFT) - 1))
                if self.seen < STARTUP:
                    self.seen += 1
                else:
                    self.report.going_down = new_long > new_short and self.long <= self.short
                    self.report.going_up = new_long < new_short and self.long >= self.short
                    self.report.valid = True
                self.short = new_short
                self.long = new_long
                self.report.short = new_short
                self.report.long = new_long


class TraderCoreFIR(Process):
    """Trend crossings of two moving averages (FIR filters over the last prices)."""

    prices: In[TraderInput]
    report: Out[FirOutput]
    short_taps: Array[UInt[32], len(SHORT_WEIGHTS)] = [0] * len(SHORT_WEIGHTS)
    long_taps: Array[UInt[32], len(LONG_WEIGHTS)] = [0] * len(LONG_WEIGHTS)
    short: UInt[64] = 0
    long: UInt[64] = 0
    seen: UInt[4] = 0

    def on_tick(self) -> None:
        self.report.valid = self.report.going_down = self.report.going_up = False
        if self.prices.restart:
            self.seen = 0
        elif self.prices.valid:
            for i in range(len(SHORT_WEIGHTS) - 1, 0, -1):  # shift, newest price at tap 0
                self.short_taps[i] = self.short_taps[i - 1]
            for i in range(len(LONG_WEIGHTS) - 1, 0, -1):
                self.long_taps[i] = self.long_taps[i - 1]
            self.short_taps[0] = self.long_taps[0] = self.prices.value
            new_short: UInt[64] = 0
            new_long: UInt[64] = 0
            for i in range(len(SHORT_WEIGHTS)):
                new_short += self.short_taps[i] * SHORT_WEIGHTS[i]
            for i in range(len(LONG_WEIGHTS)):
                new_long += self.long_taps[i] * LONG_WEIGHTS[i]
            new_short = new_short // sum(SHORT_WEIGHTS)
            new_long = new_long // sum(LONG_WEIGHTS)
            if self.seen >= STARTUP:
                self.report.going_down = new_long > new_short and self.long <= self.short
                self.report.going_up = new_long < new_short and self.long >= self.short
                self.report.valid = True
            else:
                self.seen += 1
            self.short = new_short
            self.long = new_long
            self.report.short = new_short
            self.report.long = new_long


def build() -> Network:
    """One price bus (top-level input) feeding both cores."""
    prices = TraderInput(name="prices")
    return Network("trader", [
        TraderCoreEWMA(prices=prices, report=EwmaOutput(name="ewma")),
        TraderCoreFIR(prices=prices, report=FirOutput(name="fir")),
    ], inputs=[prices])


def price_walk(n: int, seed: int = 1, max_run: int = 40) -> list[int]:
    """``n`` prices below ``PRICE_RANGE`` in random waves: runs of mostly rising, then
    mostly falling steps (as the C# example's value generator)."""
    rng = np.random.default_rng(seed)
    current, up = rng.random(), bool(rng.integers(2))
    out: list[int] = []
    while len(out) < n:
        up = not up
        for _ in range(int(rng.integers(5, max_run))):
            sign = 1 if up ^ (rng.random() > 0.75) else -1
            current = min(1.0, max(0.0, current + rng.random() * 0.1 * sign))
            if 0.0 < current < 1.0:
                out.append(int(current * PRICE_RANGE))
    return out[:n]


def stimulus(runs: int = 3, prices_per_run: int = 50, seed: int = 1
             ) -> Iterator[dict[str, Any]]:
    """``runs`` runs, each a restart then ``prices_per_run`` prices of ``price_walk`` with
    a bubble (a tick without a price) before about one price in seven, then two idle ticks
    (the C# example's simulation driver)."""
    rng = np.random.default_rng(seed + 1000)
    for run in range(runs):
        yield {"prices.restart": True, "prices.valid": False}
        for price in price_walk(prices_per_run, seed + run):
            if rng.random() > 0.85:
                yield {"prices.restart": False, "prices.valid": False}
            yield {"prices.restart": False, "prices.valid": True, "prices.value": price}
        yield {"prices.restart": False, "prices.valid": False}
        yield {"prices.restart": False, "prices.valid": False}
