"""SME C#'s state-based counter, in the "await the clock" style.

The process waits until ``valid`` is set, reads how far to count from the bus, then puts
``0, 1, …, count-1`` on its output, one number per tick, each marked valid; then it waits
for the next request. Two versions, as in the C# example: one counts with a ``for`` loop
over ``range(count)``, the other with a ``while`` loop and its own counter. Each ``yield``
is one ``await ClockAsync()``; the front end turns both into the same kind of state
machine for the compiled backend and the VHDL.

    smeflow vhdl sme.examples.statebased_counter:build -o out/sbc \\
        --stimulus sme.examples.statebased_counter:stimulus --run
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sme import Bool, Bus, In, Network, Out, Process, UInt


class Control(Bus):
    """A request: count from 0 to ``count - 1``, read on a tick where ``valid`` is set."""

    valid: Bool = False
    count: UInt[8] = 0


class Result(Bus):
    """The numbers counted; ``valid`` stays set once the first number is out."""

    valid: Bool = False
    number: UInt[8] = 0


class StatebasedCounterWithForLoop(Process):
    """Waits for a request, then counts with ``for i in range(count)``."""

    request: In[Control]
    result: Out[Result]

    def on_tick(self) -> Any:
        while True:
            while not self.request.valid:
                yield
            count = self.request.count
            for i in range(count):
                self.result.number = i
                self.result.valid = True
                yield
            if count == 0:  # nothing to count: wait a tick (else this loop spins in the tick)
                yield


class StatebasedCounter(Process):
    """Waits for a request, then counts with a ``while`` loop; then ``on_tick`` returns,
    which ends the tick (as C#'s ``OnTickAsync`` returning does), and the next tick starts
    again from the top."""

    request: In[Control]
    result: Out[Result]

    def on_tick(self) -> Any:
        while not self.request.valid:
            yield
        count = self.request.count
        i: UInt[8] = 0      # a local that counts needs its type (C#'s int)
        while i < count:
            self.result.number = i
            self.result.valid = True
            yield
            i = i + 1


def build() -> Network:
    """Both counters on one request bus, each with its own result bus."""
    control = Control()
    return Network("statebased_counter", [
        StatebasedCounterWithForLoop(request=control, result=Result(name="for_result")),
        StatebasedCounter(request=control, result=Result(name="while_result")),
    ])


def stimulus(ticks: int = 60) -> Iterator[dict[str, Any]]:
    """The C# tester's request (count 4 after one idle tick), then others. (A request to
    count to 0 would spin the C# for-loop version within one tick; the port waits a tick
    instead.)"""
    requests = {1: 4, 12: 7, 25: 1, 30: 3, 40: 11}
    for t in range(ticks):
        yield {"control.valid": t in requests, "control.count": requests.get(t, 0)}
