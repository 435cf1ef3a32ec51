"""SME C#'s ArrayOfBuses example (``src/Examples/ArrayOfBuses``), with its array of buses.

C#'s ``ReduceAdd`` reads ``[InputBus] ValueBus[] input`` (``size`` = 100 buses of ``valid``
and ``Value``) and writes, on one output bus, the sum of ``input[i].Value + bias[i]``
(``bias[i] = i``) over the valid inputs ``i``, and ``input[0].valid``. Here the array of
buses is declared ``In[Array[ValueBus, size]]`` and read as C# reads it,
``self.input[i].value``; C#'s ``int`` sum wraps, here with ``wrap(...)``. C#'s ``ReduceAdd``
is a ``SimpleProcess`` without ``[ClockedProcess]``: combinational, as here. C#'s
constructor parameter ``size`` is the parameter of the factory :func:`reduce_add` (the
porting idiom for a constructor that sizes a process): ``reduce_add(SIZE)`` is C#'s
``ReduceAdd`` class as ``new ReduceAdd(100)`` makes it.

C#'s ``ReduceAddTester`` (a ``SimulationProcess`` writing ``[OutputBus] ValueBus[]
network_input``) is :class:`ReduceAddTester`, a ``simulation_only`` process with an
``Out[Array[ValueBus, size]]`` port: ten rounds of random values (0..99, all valid), each
waiting for a valid output and checking that it is ``sum(data[i] + i)``, as C#'s
``Debug.Assert`` does (:func:`tested`: the interpreter). For the backends that have no
simulation-only process (compiled, GHDL), :func:`build` leaves the 100 input buses as
top-level inputs, as C#'s ``AddTopLevelInputs(tester.network_input)`` does, and
:func:`stimulus` drives the tester's rounds on them.

In VHDL the array of buses becomes one port per signal, of an array type
(``input_value : in array_s32_100_t``), indexed as ``input_value(i)``: C#'s
``input_Value: in T_SYSTEM_INT32_ARRAY(99 downto 0)``; the top level maps element ``k`` of
each to bus ``k``'s signal.

    smeflow vhdl sme.examples.array_of_buses:build -o out/array_of_buses \\
        --stimulus sme.examples.array_of_buses:stimulus --run

(:func:`build` and :func:`stimulus` default to 10 buses, see :data:`BUILT`.)
"""

from __future__ import annotations

import functools
import random
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
    SimulationError,
    wrap,
)

SIZE = 100
"""C#'s ``const int size = 100``: the number of input buses."""


class ValueBus(Bus):
    """C#'s ``[InitializedBus] ValueBus``."""

    valid: Bool = False
    value: Int[32] = 0


@functools.cache
def reduce_add(size: int) -> type[Process]:
    """C#'s ``ReduceAdd`` class for ``new ReduceAdd(size)``."""
    bias = tuple(range(size))  # C#'s bias[i] = i (set in the constructor, never written)

    class ReduceAdd(Process, combinational=True):
        """``output.Value = sum(input[i].Value + bias[i] for valid i)``; ``output.valid =
        input[0].valid``."""

        input: In[Array[ValueBus, size]]
        output: Out[ValueBus]

        def on_tick(self) -> None:
            total: Int[32] = 0
            for i in range(len(self.input)):
                if self.input[i].valid:
                    total = wrap(total + self.input[i].value + bias[i])
            self.output.valid = self.input[0].valid
            self.output.value = total

    return ReduceAdd


def rounds(count: int = 10, seed: int = 0, size: int = SIZE) -> list[list[int]]:
    """The tester's data: ``count`` rounds of ``size`` values in 0..99 (C#'s
    ``rng.Next(0, 100)``)."""
    rng = random.Random(seed)
    return [[rng.randrange(100) for _ in range(size)] for _ in range(count)]


def expected(count: int = 10, seed: int = 0, size: int = SIZE) -> list[int]:
    """The sums the C# tester checks: ``sum(data[i] + i)`` of each round."""
    return [sum(v + i for i, v in enumerate(data)) for data in rounds(count, seed, size)]


@functools.cache
def reduce_add_tester(size: int) -> type[Process]:
    """C#'s ``ReduceAddTester`` class for ``new ReduceAddTester(size)``."""

    class ReduceAddTester(Process, simulation_only=True):
        """C#'s ``ReduceAddTester.Run``: a tick, then per round: set every input (valid),
        wait a tick and then until the output is valid, and check the sum (a
        ``SimulationError`` where C# fails its ``Debug.Assert``)."""

        network_input: Out[Array[ValueBus, size]]
        network_output: In[ValueBus]

        def on_tick(self) -> Any:
            yield  # await ClockAsync()
            for data in rounds(size=size):
                for j in range(len(self.network_input)):
                    self.network_input[j].value = data[j]
                    self.network_input[j].valid = True
                yield
                while not self.network_output.valid:
                    yield
                want = sum(v + i for i, v in enumerate(data))
                got = self.network_output.value
                if got != want:
                    raise SimulationError(f"Error: Expected {want}, got {got}")
            while True:  # (C#'s Run returns: the tester is done)
                yield

    return ReduceAddTester


BUILT = 10
"""The number of buses :func:`build` gives by default: C#'s 100 make 200 top-level input
signals, for which numba compiles the compiled backend's batch runner (one argument and one
branch per input signal) for minutes; ``build(SIZE)`` is C#'s size (the interpreter and
GHDL run it in seconds)."""


def build(size: int = BUILT) -> Network:
    """``ReduceAdd`` with its ``size`` input buses (``value_bus_0``, ``value_bus_1``, ...)
    as top-level inputs and ``output``."""
    return Network("array_of_buses", [reduce_add(size)(output=ValueBus(name="output"))])


def tested(size: int = SIZE) -> Network:
    """C#'s ``Program``: the tester's ``network_input[i]`` connected to ``reduce.input[i]``
    and ``reduce.output`` to ``tester.network_output`` (the interpreter only)."""
    buses = [ValueBus() for _ in range(size)]
    output = ValueBus(name="output")
    return Network("array_of_buses_tested", [
        reduce_add_tester(size)(network_input=buses, network_output=output),
        reduce_add(size)(input=buses, output=output)])


def stimulus(count: int = 10, seed: int = 0, size: int = BUILT) -> Iterator[dict[str, Any]]:
    """An idle tick, then one round of :func:`rounds` per tick, every input valid."""
    yield {}
    for data in rounds(count, seed, size):
        row: dict[str, Any] = {}
        for j, v in enumerate(data):
            row[f"value_bus_{j}.valid"] = True
            row[f"value_bus_{j}.value"] = v
        yield row
