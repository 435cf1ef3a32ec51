"""``Simulator``: the one entry point for simulating a network, whatever the backend.

    sim = Simulator(net)                 # the reference interpreter
    ctl = sim.input(net.bus("counter_control"))
    ctl.valid = True
    sim.step()
    print(sim.output(net.bus("counter_data")).value)

``run`` drives the top-level inputs from an iterator of stimulus (one mapping per tick)
and records a ``Trace``; ``step`` and the input/output views are the step-by-step mode
for interactive testbenches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .backend import Backend, Session, get_backend, register_backend
from .batch import CHUNK, is_vectorised, run_chunked
from .bus import Bus, bus_of
from .errors import SignalValueError, SimulationError, UnknownBusError, UnknownSignalError
from .interp import InterpBackend
from .network import Network
from .trace import Column, Trace

register_backend("interp", InterpBackend)


def _compiled_backend() -> Backend:
    from .compiled import CompiledBackend  # imported on first use: it loads numba

    return CompiledBackend()


register_backend("compiled", _compiled_backend)

_END: Any = object()
Stimulus = Iterable[Mapping[Any, Any]]
"""One mapping per tick: ``{"bus.signal": value}`` or ``{bus: {"signal": value}}``."""


class Simulator:
    """Simulate ``network`` on a backend (``"interp"`` by default).

    Parameters
    ----------
    network:
        The network to simulate. Creating a simulator resets the network's state.
    backend:
        A backend name (see ``sme.backend.backend_names()``) or a ``Backend`` object.
    trace:
        Record every signal after every tick (``self.trace``); off for the fastest runs.
    options:
        Backend-specific options, passed to ``Backend.prepare``.
    """

    def __init__(
        self,
        network: Network,
        backend: str | Backend = "interp",
        *,
        trace: bool = True,
        **options: Any,
    ) -> None:
        self.network = network
        self.backend = get_backend(backend) if isinstance(backend, str) else backend
        self.build = self.backend.prepare(network, **options)
        self.session: Session = self.backend.open(self.build)
        self._observers: list[Callable[[Simulator], None]] = []
        self.trace: Trace | None = None
        if trace:
            columns = [Column(t.name, t.type, t.is_input) for t in network.traced_signals()]
            self.trace = Trace(network.name, columns, [self.session.snapshot()])
        # step(): the session's one-tick callable itself while no observer is registered,
        # and the cheapest way the session has to keep a trace row
        self._lean: Callable[[], Any] | None = self.session.lean_step()
        self._record: Callable[[Any], None] | None = None
        self._take: Callable[[], Any] = self.session.snapshot
        if self.trace is not None:
            raw = self.session.raw_snapshot()
            if raw is not None:
                self._take, convert = raw
                self._record = self.trace.defer(convert)
            else:
                self._record = self.trace.rows.append

    @property
    def tick(self) -> int:
        """Ticks simulated so far."""
        return self.session.tick

    def _bus(self, bus: Bus | str | Any) -> Bus:
        return self._named_bus(bus) if isinstance(bus, str) else bus_of(bus)

    def _named_bus(self, name: str) -> Bus:
        try:
            return self.network.bus(name)
        except KeyError:
            inputs = ", ".join(b.name for b in self.network.inputs) or "-"
            raise UnknownBusError(
                f"network '{self.network.name}' has no bus {name!r} (its top-level inputs: "
                f"{inputs}; every bus: {', '.join(b.name for b in self.network.buses)})"
            ) from None

    def input(self, bus: Bus | str) -> Any:
        """A view of a top-level input bus; setting its attributes drives the signals for the
        coming tick (values hold until set again)."""
        return self.session.driver(self._bus(bus))

    def output(self, bus: Bus | str) -> Any:
        """A read-only view of any bus's current values (outputs are read after a tick)."""
        return self.session.monitor(self._bus(bus))

    def poke(self, signal: str, value: Any) -> None:
        """Drive ``"bus.signal"`` (a top-level input) to ``value``."""
        bus, sig = self._split(signal)
        self._drive(self.input(bus), sig, value)

    def _drive(self, view: Any, signal: str, value: Any) -> None:
        try:
            setattr(view, signal, value)
        except SignalValueError as exc:
            exc.tick = self.tick
            raise

    def peek(self, signal: str) -> Any:
        """Current value of ``"bus.signal"``."""
        bus, sig = self._split(signal)
        return getattr(self.output(bus), sig)

    def _split(self, signal: str) -> tuple[Bus, str]:
        bus, dot, sig = signal.partition(".")
        if not dot:
            raise SimulationError(f"{signal!r}: name a signal as 'bus.signal'")
        return self._named_bus(bus), sig

    def on_tick(self, callback: Callable[[Simulator], None]) -> None:
        """Call ``callback(sim)`` after every tick (hooks for tracers and co-simulation)."""
        self._observers.append(callback)
        self._lean = None

    def step(self, n: int = 1) -> None:
        """Advance ``n`` ticks."""
        lean = self._lean
        if lean is not None and n == 1:  # the per-tick path of testbenches
            try:
                lean()
            except Exception as exc:
                self.session.step_failed(exc)
            if self._record is not None:
                self._record(self._take())
            return
        session, trace, observers = self.session, self.trace, self._observers
        for _ in range(n):
            session.step()
            if trace is not None:
                trace.rows.append(session.snapshot())
            for cb in observers:
                cb(self)

    def apply(self, values: Mapping[Any, Any]) -> None:
        """Drive several inputs at once: ``{"bus.signal": v}`` or ``{bus: {"signal": v}}``."""
        if not isinstance(values, Mapping):
            raise SimulationError(
                f"stimulus for tick {self.tick}: {values!r:.60} is a {type(values).__name__}, "
                "not a mapping {'bus.signal': value}")
        for key, value in values.items():
            if isinstance(key, str) and "." in key:
                try:
                    self.poke(key, value)
                except (UnknownBusError, UnknownSignalError) as exc:
                    raise type(exc)(f"stimulus {key!r}: {exc}") from None
            else:
                if not isinstance(value, Mapping):
                    raise SimulationError(
                        f"stimulus key {key!r}: expected 'bus.signal' or a bus mapped to "
                        "{signal: value}"
                    )
                view = self.input(key)
                for sig, v in value.items():
                    self._drive(view, sig, v)

    def run(
        self,
        ticks: int | None = None,
        *,
        stimulus: Stimulus | None = None,
        until: Callable[[Simulator], bool] | None = None,
    ) -> Trace | None:
        """Run ``ticks`` ticks, or until ``stimulus`` ends, or until ``until(sim)`` is true
        after a tick (whichever comes first). Returns the trace (None when off)."""
        if ticks is None and stimulus is None and until is None:
            raise SimulationError("run() needs ticks=, stimulus= or until= to know when to stop")
        if ticks is not None and ticks < 0:
            raise SimulationError(f"run(ticks={ticks}): ticks must be >= 0")
        it = iter(stimulus) if stimulus is not None else None
        done = 0
        while ticks is None or done < ticks:
            if it is not None:
                item = next(it, _END)
                if item is _END:
                    if ticks is None:
                        break
                    it = None
                else:
                    self.apply(item)
            self.step()
            done += 1
            if until is not None and until(self):
                break
        return self.trace

    def run_batch(
        self, stimulus: Mapping[str, Any], ticks: int, outputs: list[str] | None = None,
        chunk: int = CHUNK, dtypes: Mapping[str, npt.DTypeLike] | None = None,
    ) -> dict[str, np.ndarray]:
        """Batch mode: per-signal stimulus in, per-signal output arrays out (see
        ``Session.run_batch``; ``dtypes``: narrower result dtypes, see
        ``sme.backend.result_dtypes``). Not traced. A stimulus value is an array, a function
        of the tick index (``lambda i: i % 8 != 7``, called with an array of tick numbers)
        or an iterator of arrays; with functions or iterators the run goes ``chunk`` ticks
        at a time (``sme.batch``)."""
        if is_vectorised(stimulus):
            run = functools.partial(self.session.run_batch, dtypes=dtypes)
            return run_chunked(run, stimulus, ticks, self.tick, outputs, chunk)
        return self.session.run_batch(stimulus, ticks, outputs, dtypes)

    def close(self) -> None:
        """Release the backend's resources."""
        self.session.close()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
