"""The counter from the SME slides: counts the ticks on which ``valid`` is set.

Run it with ``smeflow sim sme.examples.counter:build --stimulus sme.examples.counter:stimulus``
or ``smeflow demo``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sme import Bool, Bus, In, Network, Out, Process, UInt, wrap


class CounterControl(Bus):
    """Commands to the counter."""

    valid: Bool = False
    reset: Bool = False


class CounterData(Bus):
    """The counter's value."""

    value: UInt[8] = 0


class Counter(Process):
    """Counts the ticks on which control.valid is set; control.reset clears the count."""

    control: In[CounterControl]
    data: Out[CounterData]
    count: UInt[8] = 0

    def on_tick(self) -> None:
        if self.control.reset:
            self.count = 0
        elif self.control.valid:
            self.count = wrap(self.count + 1)
        self.data.value = self.count


def build() -> Network:
    """The counter network: one Counter between a control bus and a data bus."""
    return Network("counter", [Counter(control=CounterControl(), data=CounterData())])


def stimulus(ticks: int = 12) -> Iterator[dict[str, Any]]:
    """Count for a while, skip every fourth tick, reset once at tick 8."""
    for i in range(ticks):
        yield {"counter_control.valid": i % 4 != 3, "counter_control.reset": i == 8}
