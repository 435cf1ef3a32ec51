"""Networks: a set of process instances and the buses between them, checked once.

Building a ``Network`` elaborates everything a simulator or the VHDL exporter needs:
names, who writes and reads each bus, the top-level inputs and outputs, the order of the
combinational processes. Wiring mistakes are errors here, before the first tick, and each
error names the user's file and line for every party involved.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from . import srcloc
from .bus import Bus, SignalSpec, _check_name
from .errors import (
    CombinationalLoopError,
    MultipleWritersError,
    NetworkError,
    UnconnectedInputError,
)
from .process import Process
from .types import SignalType


@dataclass(frozen=True)
class TracedSignal:
    """One column of a trace: ``bus.signal`` with its type and whether it is a top-level input."""

    bus: Bus
    spec: SignalSpec
    is_input: bool

    @property
    def name(self) -> str:
        """``bus.signal``."""
        return f"{self.bus.name}.{self.spec.name}"

    @property
    def type(self) -> SignalType:
        """The signal's type."""
        return self.spec.type


class Network:
    """A checked, elaborated set of processes.

    Parameters
    ----------
    name:
        The network's name (the VHDL top-level entity's name).
    processes:
        The process instances; their buses are found through their ports.
    inputs:
        Optional declaration of the top-level input buses. When given, a bus that is
        read, written by no process and not listed is an error (a forgotten connection).
    outputs:
        Buses to treat as top-level outputs besides those written and read by nobody.
    """

    def __init__(
        self,
        name: str,
        processes: Sequence[Process],
        *,
        inputs: Iterable[Bus] | None = None,
        outputs: Iterable[Bus] = (),
    ) -> None:
        self.src_loc = srcloc.caller(skip_self=self)
        _check_name("network", name, self.src_loc)
        self.name = name
        self.processes: list[Process] = list(processes)
        if not self.processes:
            raise NetworkError(f"{self.src_loc}: network '{name}' has no processes")
        for p in self.processes:
            if not isinstance(p, Process):
                raise NetworkError(f"{self.src_loc}: network '{name}': {p!r} is not a Process")
        _unique_names(self.processes, "process", self.src_loc)
        self.buses: list[Bus] = []
        self.writer: dict[Bus, Process] = {}
        self.readers: dict[Bus, list[Process]] = {}
        self._find_buses()
        _unique_names(self.buses, "bus", self.src_loc)
        declared = None if inputs is None else list(inputs)
        self.inputs: list[Bus] = self._find_inputs(declared)
        extra_outputs = list(outputs)
        for b in extra_outputs:
            if b not in self.writer:
                raise NetworkError(
                    f"{self.src_loc}: {b.describe()} is marked a top-level output of "
                    f"'{self.name}' but no process of the network writes it"
                )
        self.outputs: list[Bus] = [
            b for b in self.buses
            if b in self.writer and (not self.readers.get(b) or b in extra_outputs)
        ]
        self.clocked: list[Process] = [p for p in self.processes if not p.is_combinational()]
        self.combinational: list[Process] = self._comb_order()
        for p in self.processes:
            object.__setattr__(p, "_sme_frozen", True)

    # -- elaboration ---------------------------------------------------------------
    def _find_buses(self) -> None:
        seen: set[Bus] = set()
        for p in self.processes:
            for port, bus in p.output_buses().items():
                other = self.writer.get(bus)
                if other is not None:
                    raise MultipleWritersError(
                        f"{bus.describe()} has two writers; a bus has exactly one:\n"
                        f"  {other.describe()} writes it\n"
                        f"  {p.describe()} writes it through port '{port}'"
                    )
                self.writer[bus] = p
            for bus in p.input_buses().values():
                self.readers.setdefault(bus, []).append(p)
            for bus in p._sme_buses.values():
                if bus not in seen:
                    seen.add(bus)
                    self.buses.append(bus)

    def _find_inputs(self, declared: list[Bus] | None) -> list[Bus]:
        unwritten = [b for b in self.buses if b not in self.writer]
        if declared is None:
            return unwritten
        for b in declared:
            if b in self.writer:
                raise NetworkError(
                    f"{self.src_loc}: {b.describe()} is declared a top-level input of "
                    f"'{self.name}' but {self.writer[b].describe()} writes it"
                )
            if b not in self.buses:
                raise NetworkError(
                    f"{self.src_loc}: {b.describe()} is declared a top-level input of "
                    f"'{self.name}' but no process of the network reads it"
                )
        for b in unwritten:
            if b not in declared:
                readers = "\n".join(f"  read by {r.describe()}" for r in self.readers[b])
                raise UnconnectedInputError(
                    f"{b.describe()} is read but no process writes it and it is not a declared "
                    f"top-level input of network '{self.name}' ({self.src_loc}):\n{readers}\n"
                    "Hint: connect the writer's Out port to this bus, or list it in inputs=[...]"
                )
        return [b for b in self.buses if b in declared]

    def _comb_order(self) -> list[Process]:
        comb = [p for p in self.processes if p.is_combinational()]
        deps: dict[Process, list[tuple[Bus, Process]]] = {p: [] for p in comb}
        for p in comb:
            for bus in p.input_buses().values():
                w = self.writer.get(bus)
                if w is not None and w.is_combinational():
                    deps[p].append((bus, w))
        order: list[Process] = []
        state: dict[Process, int] = {}  # 1 = on the stack, 2 = done
        stack: list[tuple[Process, Bus | None]] = []

        def visit(p: Process, via: Bus | None) -> None:
            state[p] = 1
            stack.append((p, via))
            for bus, w in deps[p]:
                if state.get(w) == 1:
                    start = next(i for i, (q, _) in enumerate(stack) if q is w)
                    cycle = [*stack[start:], (w, bus)]
                    lines = []
                    for (q, _), (_, b) in itertools.pairwise(cycle):
                        assert b is not None
                        lines.append(f"  {q.describe()} reads {b.describe()}")
                    raise CombinationalLoopError(
                        f"combinational loop in network '{self.name}' ({self.src_loc}): each "
                        "process reads a bus written by the next, in the same tick:\n"
                        + "\n".join(lines)
                        + "\nHint: make one of these processes clocked to break the loop"
                    )
                if w not in state:
                    visit(w, bus)
            stack.pop()
            state[p] = 2
            order.append(p)

        for p in comb:
            if p not in state:
                visit(p, None)
        return order

    # -- queries ---------------------------------------------------------------------
    def bus(self, name: str) -> Bus:
        """The bus called ``name``."""
        for b in self.buses:
            if b.name == name:
                return b
        raise KeyError(f"network '{self.name}' has no bus {name!r}; buses: "
                       f"{', '.join(b.name for b in self.buses)}")

    def process(self, name: str) -> Process:
        """The process called ``name``."""
        for p in self.processes:
            if p.name == name:
                return p
        raise KeyError(f"network '{self.name}' has no process {name!r}")

    def traced_signals(self) -> list[TracedSignal]:
        """Every signal of every bus: top-level inputs first, then the other buses in the
        order processes use them. This is the column order of traces."""
        ordered = self.inputs + [b for b in self.buses if b not in self.inputs]
        inputs = set(self.inputs)
        return [
            TracedSignal(b, spec, b in inputs)
            for b in ordered
            for spec in b.signals().values()
        ]

    def depends_on_inputs(self) -> list[Process]:
        """Combinational processes whose outputs depend (through combinational processes) on
        top-level inputs, in evaluation order."""
        return self._comb_reachable(set(self.inputs))

    def depends_on_registers(self) -> list[Process]:
        """Combinational processes whose outputs depend on buses written by clocked
        processes, in evaluation order."""
        return self._comb_reachable({b for b, w in self.writer.items() if not w.is_combinational()})

    def _comb_reachable(self, sources: set[Bus]) -> list[Process]:
        live = set(sources)
        result = []
        for p in self.combinational:
            if any(b in live for b in p.input_buses().values()):
                result.append(p)
                live.update(p.output_buses().values())
        return result

    def __repr__(self) -> str:
        return f"<Network '{self.name}': {len(self.processes)} processes, {len(self.buses)} buses>"


def _unique_names(items: Sequence[Bus] | Sequence[Process], kind: str, where: object) -> None:
    """Give auto-named items unique names (``name_0``, ``name_1``…); explicit clashes are errors."""
    by_name: dict[str, list[Bus | Process]] = {}
    for item in items:
        by_name.setdefault(item.name, []).append(item)
    taken = {item.name for item in items if item.explicit_name}
    for name, group in by_name.items():
        if len(group) < 2:
            continue
        explicit = [g for g in group if g.explicit_name]
        if len(explicit) > 1:
            raise NetworkError(
                f"{where}: two {kind}es are both named {name!r}:\n"
                + "\n".join(f"  {g.describe()}" for g in explicit)
            )
        n = 0
        for g in group:
            if g.explicit_name:
                continue
            while f"{name}_{n}" in taken:
                n += 1
            g.name = f"{name}_{n}"
            taken.add(g.name)
            n += 1
