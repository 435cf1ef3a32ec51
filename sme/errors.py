"""Exception classes of the SME kernel.

Every error says what went wrong, where (``file:line`` of each party, bus, signal,
process, tick) and, where one is likely, a hint. Each class exists so that callers and
tests can tell the failures apart without parsing messages.
"""

from __future__ import annotations


class SmeError(Exception):
    """Base class of every error raised by ``sme``."""


class DeclarationError(SmeError, TypeError):
    """A bus, process or type is declared in a way SME cannot accept."""


class _AtTick(SmeError):
    """An error whose message ends with the tick it happened at, once the simulator has
    set ``tick``."""

    tick: int | None = None

    def __str__(self) -> str:
        text = super().__str__()
        if self.tick is not None:
            text += f" (tick {self.tick})"
        return text


class SignalValueError(_AtTick, ValueError):
    """A value was written that does not fit the signal's type."""

    def __init__(self, message: str, *, bus: str, signal: str, value: object) -> None:
        super().__init__(message)
        self.bus = bus
        self.signal = signal
        self.value = value


class ArrayIndexError(_AtTick, IndexError):
    """An array was indexed outside ``0..length-1``. SME arrays have no negative indexes
    (Python's count from the end would silently read another element; the VHDL stops on
    it, a C# SME simulation throws ``IndexOutOfRangeException``)."""


class UndefinedSignalError(SmeError, RuntimeError):
    """A signal with no initial value was read before anything wrote it."""


class UnknownSignalError(SmeError, AttributeError):
    """A bus has no signal of the given name."""


class UnknownBusError(SmeError, KeyError):
    """A network has no bus of the given name (also a ``KeyError``: a lookup by name)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PortDirectionError(SmeError, RuntimeError):
    """A process wrote to a bus it only reads, or read a bus it may not read."""


class BusTypeError(SmeError, TypeError):
    """A port was connected to a bus of another bus type."""


class NetworkError(SmeError):
    """Base class of the errors found when a network is built."""


class MultipleWritersError(NetworkError):
    """Two processes write the same bus."""


class CombinationalLoopError(NetworkError):
    """Combinational processes depend on each other in a cycle."""


class UnconnectedInputError(NetworkError):
    """A bus is read, written by nobody and not declared as a top-level input."""


class SimulationError(SmeError, RuntimeError):
    """The simulation cannot go on (for example a generator that loops in one tick)."""


class BackendError(SmeError):
    """A simulation backend is unknown, unavailable or cannot run this network."""


class TypeMisfit(Exception):
    """Internal: a value does not fit a type; the caller adds bus/signal/process context."""
