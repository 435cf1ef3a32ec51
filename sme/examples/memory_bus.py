"""SME C#'s SimpleMemoryBus example: a tester writes two words into a mock memory of 1024
``ulong`` words and reads them back, through a memory interface bus.

C#'s ``IMemoryInterface`` is one bus that both the tester and the memory write
(``[InputBus, OutputBus]`` on both sides): the tester its enables, addresses and
``WriteValue``, the memory ``ReadValue``. An smeflow bus has one writer, so it is two buses
here: :class:`MemoryRequest` (the tester's signals) and :class:`MemoryReply` (the
memory's). As in C#, only the enables have initial values; an address or value is read
only when its enable says so.

C# has the memory twice: ``MockMemory`` (a ``Process`` whose ``Run`` loops
``while (true) { await ClockAsync(); ... }``: here a generator, a ``yield`` at the top of
``while True``) and ``SimpleMockMemory`` (a ``SimpleProcess``): each tick, when
``ReadEnabled`` set ``ReadValue = m_data[ReadAddr]``, then when ``WriteEnabled`` store
``m_data[WriteAddr] = WriteValue``. ``m_data`` is a register ``data: Array[UInt[64], 1024]``;
C#'s ``m_cycle`` only numbers the lines it prints ("Phase: n"), left out. An address past
1023 is an ``ArrayIndexError`` (C#: ``IndexOutOfRangeException``).

C#'s ``Program`` runs both memories, each with a ``MemoryTester`` on a bus of its own. The
memories carry no ``[ClockedProcess]``, so in C# they run in the tester's tick, after it,
and see its writes at once (as the StateMachineTester's state processes,
``sme/examples/state_machines.py``): :func:`stimulus` gives tick ``i`` the tester's ``i``-th
write, and the memory's reply reaches the tester a tick later, in trace row ``i + 1``.
The tester writes 32 at address 22 (tick 1) and 33 at 23 (tick 2), requests a read of 22
(tick 3) and of 23 (tick 4), and ``Debug.Assert``s ``ReadValue`` 32 at tick 4 and 33 at
tick 5: :data:`EXPECTED`, the reply's value in trace rows 4 and 5.

    smeflow vhdl sme.examples.memory_bus:build -o out/memory_bus \\
        --stimulus sme.examples.memory_bus:stimulus --run
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sme import Array, Bool, Bus, In, Network, Out, Process, UInt

WORDS = 1024
"""C#'s ``m_data = new ulong[1024]``."""

EXPECTED = {4: 32, 5: 33}
"""The tester's two ``Debug.Assert``s: ``ReadValue`` in trace rows 4 and 5."""


class MemoryRequest(Bus):
    """The tester's half of C#'s ``IMemoryInterface``."""

    write_enabled: Bool = False
    read_enabled: Bool = False
    read_addr: UInt[32]
    write_addr: UInt[32]
    write_value: UInt[64]


class MemoryReply(Bus):
    """The memory's half of C#'s ``IMemoryInterface``."""

    read_value: UInt[64]


class MockMemory(Process):
    """C#'s ``MockMemory``: its ``Run`` loop, one pass a tick after a clock."""

    interface: In[MemoryRequest]
    reply: Out[MemoryReply]
    data: Array[UInt[64], WORDS] = [0] * WORDS

    def on_tick(self) -> Any:
        while True:
            yield  # await ClockAsync()
            if self.interface.read_enabled:
                self.reply.read_value = self.data[self.interface.read_addr]
            if self.interface.write_enabled:
                self.data[self.interface.write_addr] = self.interface.write_value


class SimpleMockMemory(Process):
    """C#'s ``SimpleMockMemory``: the same body as its ``OnTick``."""

    interface: In[MemoryRequest]
    reply: Out[MemoryReply]
    data: Array[UInt[64], WORDS] = [0] * WORDS

    def on_tick(self) -> None:
        if self.interface.read_enabled:
            self.reply.read_value = self.data[self.interface.read_addr]
        if self.interface.write_enabled:
            self.data[self.interface.write_addr] = self.interface.write_value


def build() -> Network:
    """C#'s ``Program``: each memory with its own interface (``request_0``/``reply_0`` for
    ``MockMemory``, ``request_1``/``reply_1`` for ``SimpleMockMemory``)."""
    return Network("memory_bus", [
        MockMemory(interface=MemoryRequest(name="request_0"), reply=MemoryReply(name="reply_0")),
        SimpleMockMemory(interface=MemoryRequest(name="request_1"),
                         reply=MemoryReply(name="reply_1"))])


TESTER: list[dict[str, Any]] = [
    {},
    {"write_addr": 22, "write_value": 32, "write_enabled": True},
    {"write_addr": 23, "write_value": 33, "write_enabled": True},
    {"write_enabled": False, "read_enabled": True, "read_addr": 22},
    {"write_enabled": False, "read_enabled": True, "read_addr": 23},
    {"read_enabled": False},
]
"""What C#'s ``MemoryTester`` writes on its interface at ticks 0..5 (a signal keeps its
value until written again)."""


def stimulus() -> Iterator[dict[str, Any]]:
    """The tester's writes, tick by tick, on both memories' request buses."""
    for row in TESTER:
        yield {f"{bus}.{k}": v for bus in ("request_0", "request_1") for k, v in row.items()}
