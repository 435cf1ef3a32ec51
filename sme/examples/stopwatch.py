"""SME C#'s stopwatch: a start/stop button, a reset button and a counter.

``Stopwatch`` is a state process in the await style: it waits for a button, then either
holds ``reset`` while the reset button is held, or runs from one press of start/stop to
the next (waiting for each release). ``Counter`` is a clocked process that, while the
watch runs, counts ticks and advances its displayed number every ``SKIPS`` ticks (in
hardware at 5 MHz that would be 5,000,000 for one number per second); reset clears it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sme import Bool, Bus, In, Network, Out, Process, UInt, wrap

SKIPS = 10
"""Ticks per displayed number."""


class Buttons(Bus):
    """The two push buttons (set while held)."""

    reset: Bool = False
    startstop: Bool = False


class WatchOutput(Bus):
    """What the watch is doing."""

    running: Bool = False
    reset: Bool = False


class NumberOutput(Bus):
    """The displayed number (six bits, wrapping)."""

    val: UInt[6] = 0


class Stopwatch(Process):
    """Start/stop and reset from the buttons, one press at a time."""

    buttons: In[Buttons]
    output: Out[WatchOutput]

    def on_tick(self) -> Any:
        while True:
            self.output.running = False
            self.output.reset = False
            while not self.buttons.startstop and not self.buttons.reset:
                yield
            if self.buttons.reset:
                self.output.reset = True       # keep resetting until the button is released
                while self.buttons.reset:
                    yield
                self.output.reset = False
            else:
                self.output.running = True     # running: wait for the release ...
                while self.buttons.startstop:
                    yield
                while not self.buttons.startstop:  # ... and the next press
                    yield
                self.output.running = False    # stopped: wait for the release
                while self.buttons.startstop:
                    yield


class Counter(Process):
    """Advances the number every ``SKIPS`` ticks while running; reset clears it."""

    watch: In[WatchOutput]
    output: Out[NumberOutput]
    num: UInt[6] = 0
    current: UInt[8] = 0

    def on_tick(self) -> None:
        if self.watch.running:
            self.current = self.current + 1
            if self.current == SKIPS:
                self.num = wrap(self.num + 1)
                self.current = 0
        elif self.watch.reset:
            self.num = 0
            self.current = 0
        self.output.val = self.num


def build() -> Network:
    """Buttons → stopwatch → counter; the buttons are the top-level input."""
    buttons, watch = Buttons(), WatchOutput()
    return Network("stopwatch", [Stopwatch(buttons=buttons, output=watch),
                                 Counter(watch=watch, output=NumberOutput())],
                   inputs=[buttons])


PRESSES = [(2, "startstop"), (4, "startstop"), (6, "startstop"), (8, "startstop"),
           (10, "reset"), (14, "startstop"), (16, "startstop"), (18, "reset"),
           (22, "startstop")]
"""The C# tester's button presses: (tick, button), each held for one tick."""


def stimulus(ticks: int = 22 + 12 * SKIPS) -> Iterator[dict[str, Any]]:
    """Start, stop, start, stop, reset, a short run, reset, then a long run."""
    held = dict(PRESSES)
    for t in range(ticks):
        button = held.get(t)
        yield {"buttons.startstop": button == "startstop", "buttons.reset": button == "reset"}
