"""SME C#'s SimpleNestedComponent: a ticker and an incrementer that count register numbers.

On a tick where ``CounterInput.input_enabled`` is set, ``CounterTicker`` (a state process)
reads ``repeat_count`` and drives its ``TickBus``: ``reset`` for one tick, then ``tick``
for ``repeat_count`` ticks (``reset`` stays set with the first one). ``ValueIncrementer``
follows the ticker: on ``reset`` it loads ``start_register``, on each ``tick`` it counts
up, and it shows the number on ``CounterOutput`` (``output_enabled`` while ticking): the
numbers ``start_register``, ``start_register + 1``, ... ``repeat_count`` of them.

The C# component's two processes share a bus declared inside the component
(``[SingletonBus] TickBus``); here it is one ``TickBus`` passed to both. C#'s
``ValueIncrementer`` has no ``[ClockedProcess]`` but keeps ``regno`` between ticks; a
combinational process cannot hold registers in smeflow (refused, naming the register),
so it is clocked. ``CounterTicker`` is literal: its return ends the tick, as C#'s does.

    smeflow vhdl sme.examples.nested_component:build -o out/nested \\
        --stimulus sme.examples.nested_component:stimulus --run
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sme import Bool, Bus, In, Int, Network, Out, Process


class CounterInput(Bus):
    """A request: count ``repeat_count`` register numbers from ``start_register``."""

    input_enabled: Bool = False
    start_register: Int[32] = 0
    repeat_count: Int[32] = 0


class CounterOutput(Bus):
    """The register number, and whether the incrementer is counting."""

    register_number: Int[32] = 0
    output_enabled: Bool = False


class TickBus(Bus):
    """The ticker's commands to the incrementer."""

    tick: Bool = False
    reset: Bool = False


class CounterTicker(Process):
    """Waits a tick, then for a request; then reset, then ``repeat_count`` ticks."""

    input: In[CounterInput]
    ticker: Out[TickBus]

    def on_tick(self) -> Any:
        yield
        while not self.input.input_enabled:
            yield
        cnt: Int[32] = self.input.repeat_count
        self.ticker.reset = True
        yield
        while cnt > 0:
            cnt = cnt - 1
            self.ticker.tick = True
            yield
            if cnt != 0:
                self.ticker.reset = False
        self.ticker.tick = False
        self.ticker.reset = True


class ValueIncrementer(Process):
    """Loads the start number on reset, counts up on each tick."""

    ticker: In[TickBus]
    input: In[CounterInput]
    output: Out[CounterOutput]
    regno: Int[32] = 0

    def on_tick(self) -> None:
        if self.ticker.tick or self.ticker.reset:
            if self.ticker.reset:
                self.regno = self.input.start_register
            elif self.ticker.tick:
                self.regno = self.regno + 1
            self.output.output_enabled = self.ticker.tick
            self.output.register_number = self.regno


def build() -> Network:
    """The request bus (top-level input) → ticker → incrementer → register numbers."""
    inp, tick = CounterInput(name="inp"), TickBus(name="tick")
    return Network("nested_component", [
        CounterTicker(input=inp, ticker=tick),
        ValueIncrementer(ticker=tick, input=inp, output=CounterOutput(name="out"))])


def stimulus(ticks: int = 30) -> Iterator[dict[str, Any]]:
    """Two requests: 4 numbers from 10 (tick 2), 2 numbers from 50 (tick 15)."""
    for t in range(ticks):
        yield {"inp.input_enabled": t in (2, 15), "inp.start_register": 10 if t < 10 else 50,
               "inp.repeat_count": 4 if t < 10 else 2}
