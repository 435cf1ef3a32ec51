"""The reference backend: an interpreter that runs the process objects themselves.

Each tick it (1) settles the combinational processes that depend on top-level inputs,
(2) runs every clocked process, (3) latches the buses the clocked processes wrote, and
(4) settles the combinational processes that depend on those buses. The schedule is
generated once as a flat Python function, so a tick costs only the process bodies and one
dictionary update per clocked bus.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .backend import Backend, Build, Session
from .bus import Bus, reader_view, writer_view
from .errors import ArrayIndexError, SmeError
from .network import Network
from .process import Process
from .trace import UNDEFINED
from .types import ArrayType


def _runner(proc: Process, checked: Mapping[type[Process], Callable[..., Any]]
            ) -> Callable[[], Any]:
    """The callable that runs one tick of ``proc`` (its class's ``on_tick`` with annotated
    locals checked, when ``checked`` has one: :mod:`sme.interp_locals`)."""
    on_tick: Callable[[], Any] = proc.on_tick
    if type(proc) in checked:
        on_tick = types.MethodType(checked[type(proc)], proc)
    if not proc.is_generator():
        return on_tick
    state: list[Iterator[Any]] = [on_tick()]

    def run() -> None:
        # C#'s StateProcess.Run is `while (true) { await ClockAsync(); await OnTickAsync(); }`:
        # a pass that returns ends the tick, and the next tick starts a fresh pass at the top
        try:
            next(state[0])
        except StopIteration:
            state[0] = on_tick()

    return run


class InterpSession(Session):
    """A running interpreter simulation."""

    def __init__(self, build: Build) -> None:
        super().__init__(build)
        net = self.network
        for bus in net.buses:
            bus._sme_reset()
        for proc in net.processes:
            proc._sme_reset()
        self._drivers: dict[Bus, Any] = {}
        self._monitors: dict[Bus, Any] = {}
        ns: dict[str, Any] = {}
        lines: list[str] = []

        def bind(prefix: str, obj: Any) -> str:
            name = f"{prefix}{len(ns)}"
            ns[name] = obj
            return name

        checked = build.checked_locals if isinstance(build, InterpBuild) else {}
        runners = {p: bind("p", _runner(p, checked)) for p in net.processes}
        pre = [runners[p] + "()" for p in net.depends_on_inputs()]
        post = [runners[p] + "()" for p in net.depends_on_registers()]
        lines += pre + [runners[p] + "()" for p in net.clocked]
        for bus, writer in net.writer.items():
            if writer.is_combinational():
                continue
            lines.append(f"{bind('u', bus._cur.update)}({bind('n', bus._nxt)})")
            for spec in bus.signals().values():
                if isinstance(spec.type, ArrayType):
                    cur, nxt = bind("c", bus._cur), bind("n", bus._nxt)
                    lines.append(f"if {spec.name!r} in {nxt}: "  # undefined until written
                                 f"{cur}[{spec.name!r}] = tuple({nxt}[{spec.name!r}])")
        lines += post
        args = ", ".join(f"{k}={k}" for k in ns)
        src = f"def _tick({args}):\n" + "".join(f"    {ln}\n" for ln in lines or ["pass"])
        exec(compile(src, f"<sme tick of {net.name}>", "exec"), ns)
        self._tick: Callable[[], None] = ns["_tick"]
        self.source = src
        self._snapshot = self._make_snapshot()
        # reset state: combinational outputs settled on the initial values
        try:
            for p in net.combinational:
                runners_fn = _runner(p, checked)
                runners_fn()
        except SmeError as exc:
            _annotate(exc, 0)
            raise

    def _make_snapshot(self) -> Callable[[], tuple[Any, ...]]:
        ns: dict[str, Any] = {"U": UNDEFINED, "tuple": tuple}
        cells = []
        for i, sig in enumerate(self.network.traced_signals()):
            d = f"d{i}"
            ns[d] = sig.bus._cur
            key = repr(sig.spec.name)
            if isinstance(sig.type, ArrayType):
                cells.append(f"(tuple({d}[{key}]) if {key} in {d} else U)")
            else:
                cells.append(f"{d}.get({key}, U)")
        src = "def _snap():\n    return (" + "".join(c + ", " for c in cells) + ")\n"
        exec(compile(src, f"<sme snapshot of {self.network.name}>", "exec"), ns)
        return ns["_snap"]  # type: ignore[no-any-return]

    def step(self) -> None:
        try:
            self._tick()
        except SmeError as exc:
            _annotate(exc, self.tick)
            raise
        self.tick += 1

    def driver(self, bus: Bus) -> Any:
        self.require_input(bus)
        view = self._drivers.get(bus)
        if view is None:
            view = self._drivers[bus] = writer_view(bus, lambda: "the testbench", bus._cur)
        return view

    def monitor(self, bus: Bus) -> Any:
        view = self._monitors.get(bus)
        if view is None:
            view = self._monitors[bus] = reader_view(bus, lambda: "the testbench")
        return view

    def snapshot(self) -> tuple[Any, ...]:
        return self._snapshot()


def _annotate(exc: SmeError, tick: int) -> None:
    if getattr(exc, "tick", None) is None:
        with contextlib.suppress(AttributeError):
            exc.tick = tick  # type: ignore[attr-defined]
        if not hasattr(exc, "bus") and not isinstance(exc, ArrayIndexError):
            exc.add_note(f"(at tick {tick})")


_CHECKED: dict[type[Process], Callable[..., Any] | None] = {}


def _checked_on_tick(cls: type[Process]) -> Callable[..., Any] | None:
    """``cls.on_tick`` with its annotated locals checked (made once per class)."""
    from .interp_locals import checked_on_tick  # (with the front end: not at import)
    from .lower.lower import on_tick_function

    if cls not in _CHECKED:
        func = on_tick_function(cls)
        _CHECKED[cls] = None if func is None else checked_on_tick(
            func, loops_only=cls._sme_simulation_only)
    return _CHECKED[cls]


@dataclass
class InterpBuild(Build):
    """A network prepared for the interpreter, with the ``on_tick`` variants of its process
    classes that check their annotated locals."""

    checked_locals: dict[type[Process], Callable[..., Any]] = field(default_factory=dict)


class InterpBackend(Backend):
    """Runs the Python process objects directly (the reference semantics)."""

    name = "interp"

    def prepare(self, network: Network, **options: Any) -> Build:
        """Check that every process's ``on_tick`` is in the translatable subset (as the
        other backends do), unless it is ``simulation_only`` (any Python: only its ``while``
        loops and its ``for`` loops over iterables without a length are counted,
        :mod:`sme.interp_locals`) or its source cannot be read (typed at
        the prompt or run by ``exec``: then it runs unchecked)."""
        if options:
            raise TypeError(f"the interp backend takes no options, got {', '.join(options)}")
        from .lower import lower_process  # the front end every backend shares
        from .lower.errors import LoweringError, SourceUnavailableError

        checked: dict[type[Process], Callable[..., Any]] = {}
        for cls in dict.fromkeys(type(p) for p in network.processes):
            if cls._sme_simulation_only:
                with contextlib.suppress(LoweringError, SyntaxError):
                    fn = _checked_on_tick(cls)
                    if fn is not None:
                        checked[cls] = fn
                continue
            with contextlib.suppress(SourceUnavailableError):
                lower_process(cls)
                fn = _checked_on_tick(cls)
                if fn is not None:
                    checked[cls] = fn
        return InterpBuild(network, checked_locals=checked)

    def open(self, build: Build) -> Session:
        return InterpSession(build)
