"""SME C#'s simple FIFO buffer (the ``SimpleComponents`` example), generic in its word
type and depth as the C# ``SimpleFifoBuffer<T>(depth)`` is.

``fifo_buffer(word, depth)`` makes the process class (cached: equal parameters give the
same class) from a factory function, the way a Python designer writes a parameterised
component; its annotations and ``on_tick`` read the factory's parameters. Each tick the
buffer first drops its head word when ``read`` is set (and it holds one), then stores
``value`` when ``valid`` is set and there is room (a write to a full buffer is dropped),
and then shows its head word on the output (``valid`` while it holds one) and whether it
is ``filled``. The storage is a ring: a head index and a count.

    smeflow vhdl sme.examples.fifo:build -o out/fifo \\
        --stimulus sme.examples.fifo:stimulus --run
"""

# Classes made inside a function from its parameters are beyond what mypy can type:
# mypy: disable-error-code="valid-type,attr-defined"
from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np

from sme import Array, Bool, Bus, In, Network, Out, Process, UInt
from sme.types import SignalType


@functools.cache
def fifo_buses(word: SignalType) -> tuple[type[Bus], type[Bus]]:
    """The (control, data) bus classes of a FIFO of ``word``s."""

    class FifoControl(Bus):
        """A word to store (``valid``), and ``read``: drop the head word."""

        valid: Bool = False
        value: word = 0
        read: Bool = False

    class FifoData(Bus):
        """The head word (``valid`` while the buffer holds one); ``filled`` when full."""

        valid: Bool = False
        value: word = 0
        filled: Bool = False

    return FifoControl, FifoData


@functools.cache
def fifo_buffer(word: SignalType, depth: int) -> type[Process]:
    """The FIFO process class for ``depth`` words of type ``word``."""
    if depth < 1:
        raise ValueError(f"a FIFO holds at least one word, not {depth}")
    control_bus, data_bus = fifo_buses(word)
    bits = depth.bit_length()

    class FifoBuffer(Process):
        """A ring buffer of ``depth`` words."""

        control: In[control_bus]
        data: Out[data_bus]
        buffer: Array[word, depth] = [0] * depth
        head: UInt[bits] = 0
        count: UInt[bits] = 0

        def on_tick(self) -> None:
            if self.control.read and self.count > 0:
                self.count -= 1
                self.head = (self.head + 1) % depth
            if self.control.valid and self.count < depth:
                self.buffer[(self.head + self.count) % depth] = self.control.value
                self.count += 1
            self.data.valid = self.count > 0
            if self.count > 0:
                self.data.value = self.buffer[self.head]
            self.data.filled = self.count == depth

    return FifoBuffer


def build(word: SignalType = UInt[8], depth: int = 5) -> Network:
    """One FIFO; its control bus is the top-level input."""
    control_bus, data_bus = fifo_buses(word)
    control = control_bus(name="control")
    return Network("fifo", [fifo_buffer(word, depth)(control=control,
                                                     data=data_bus(name="data"))],
                   inputs=[control])


def tester_stimulus(first: int) -> list[dict[str, Any]]:
    """The C# component tester's ticks (a FIFO of depth 2): idle, write ``first``, write
    ``first + 1``, stop writing and read, keep reading."""
    idle = {"control.valid": False, "control.read": False}
    return [idle,
            {"control.valid": True, "control.value": first, "control.read": False},
            {"control.valid": True, "control.value": first + 1, "control.read": False},
            {"control.valid": False, "control.read": True},
            {"control.valid": False, "control.read": True},
            {"control.valid": False, "control.read": True}]


def stimulus(ticks: int = 300, seed: int = 2) -> Iterator[dict[str, Any]]:
    """Random writes and reads: bursts that fill the buffer (and write to it when full),
    then bursts that drain it (and read it when empty)."""
    rng = np.random.default_rng(seed)
    for t in range(ticks):
        filling = (t // 20) % 2 == 0
        yield {"control.valid": bool(rng.random() < (0.8 if filling else 0.2)),
               "control.value": int(rng.integers(0, 256)),
               "control.read": bool(rng.random() < (0.2 if filling else 0.8))}
