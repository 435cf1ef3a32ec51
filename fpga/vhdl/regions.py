"""The VHDL names of every declarative region of an export, chosen once per network.

``export_names(network)`` names the package (``TypeNames``), one entity per process class,
each process entity's ports, generics, variables and states (``ProcessNames``) and the
top level's bus signals, probes and instance labels (``TopNames``), following the rules of
``fpga.vhdl.names``. The exporter, the testbench and the cocotb co-simulation all read
names from here, so they always agree.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sme.bus import Bus
from sme.lower import lower_network
from sme.lower.ir import ArrayT, EnumT, For, If, Match, ProcessIR, Stmt, VType, While
from sme.network import Network
from sme.process import Process

from .names import FIXED_NAMES, TESTBENCH_NAMES, Namer, TypeNames, legal


@dataclass
class ProcessNames:
    """Names inside one process entity."""

    entity: str
    types: TypeNames
    ports: dict[tuple[str, str], str] = field(default_factory=dict)
    nexts: dict[tuple[str, str], str] = field(default_factory=dict)
    inits: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    states: dict[int, str] = field(default_factory=dict)

    def port(self, port: str, signal: str) -> str:
        """The entity port of ``self.<port>.<signal>``."""
        return self.ports[port, signal]

    def next(self, port: str, signal: str) -> str:
        """The variable holding what a clocked process last wrote to ``<port>.<signal>``."""
        return self.nexts[port, signal]

    def var(self, name: str) -> str:
        """The variable of a register or local."""
        return self.variables[name]

    def init(self, register: str) -> str:
        """The generic holding a register's initial value."""
        return self.inits[register]

    def const(self, name: str) -> str:
        """The constant of a module or class constant."""
        return self.constants[name]

    def state(self, index: int) -> str:
        """The literal of a generator state."""
        return self.states[index]


@dataclass
class TopNames:
    """Names of the top level (and the testbench, which declares the same signals)."""

    types: TypeNames
    entities: dict[type, str]
    processes: dict[type, ProcessNames]
    signals: dict[tuple[int, str], str] = field(default_factory=dict)
    probes: dict[tuple[int, str], str] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)

    def signal(self, bus: Bus, signal: str) -> str:
        """The top-level port or signal of ``bus.signal``."""
        return self.signals[id(bus), signal]

    def probe(self, bus: Bus, signal: str) -> str:
        """The package signal through which the testbench watches an internal bus."""
        return self.probes[id(bus), signal]

    def label(self, proc: Process) -> str:
        """The instance label of a process."""
        return self.labels[id(proc)]


def _loop_vars(stmts: list[Stmt], out: dict[str, None]) -> None:
    for s in stmts:
        if isinstance(s, For):
            out.setdefault(s.var)
            _loop_vars(s.body, out)
        elif isinstance(s, If):
            _loop_vars(s.then, out)
            _loop_vars(s.orelse, out)
        elif isinstance(s, Match):
            for c in s.cases:
                _loop_vars(c.body, out)
        elif isinstance(s, While):
            _loop_vars(s.body, out)


def process_names(ir: ProcessIR, entity: str, package: Namer, types: TypeNames
                  ) -> ProcessNames:
    """The names inside the entity of ``ir`` (user names first, then generated ones)."""
    namer = package.copy()
    namer.reserve(entity)
    for fixed in FIXED_NAMES:
        namer.reserve(fixed)
    names = ProcessNames(entity, types)
    for p in ir.ports:
        for s in p.signals:
            names.ports[p.name, s.name] = namer.take(f"{p.name}_{s.name}")
    for r in ir.registers:
        names.variables[r.name] = namer.take(r.name)
    loops: dict[str, None] = {}
    _loop_vars(ir.body, loops)
    for st in ir.states or []:
        _loop_vars(st.body, loops)
    for v in [*(v.name for v in ir.locals), *loops]:
        if v not in names.variables:
            names.variables[v] = namer.take(v)
    for c in ir.constants:
        names.constants[c.name] = namer.take(c.name)
    if not ir.combinational:
        for p in ir.ports:
            if p.direction == "out":
                for s in p.signals:
                    names.nexts[p.name, s.name] = namer.take(f"{p.name}_{s.name}_next")
    for r in ir.registers:
        names.inits[r.name] = namer.take(f"{r.name}_init")
    for st in ir.states or []:
        names.states[st.index] = namer.take(f"st_{st.name}")
    return names


def _walk_types(obj: object, out: list[VType], seen: set[int]) -> None:
    """Every IR type in ``obj`` (an IR node, statement list or process), depth first."""
    if isinstance(obj, VType):
        out.append(obj)
        if isinstance(obj, ArrayT):
            out.append(obj.element)
        return
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, list | tuple):
        for x in obj:
            _walk_types(x, out, seen)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            if f.name != "cls":
                _walk_types(getattr(obj, f.name), out, seen)


def types_of(irs: dict[type[Process], ProcessIR]) -> tuple[list[EnumT], list[ArrayT]]:
    """The enums and array types the processes use, in first-use order."""
    types: list[VType] = []
    for ir in irs.values():
        _walk_types(ir, types, set())
    enums: dict[type, EnumT] = {}
    arrays: dict[ArrayT, None] = {}
    for t in types:
        if isinstance(t, ArrayT):
            arrays.setdefault(t)
        elif isinstance(t, EnumT):
            enums.setdefault(t.enum_cls, t)
    return list(enums.values()), list(arrays)


def export_names(network: Network) -> TopNames:
    """Every name of the export of ``network`` (lowering its process classes)."""
    irs = lower_network(network)
    pkg, tb = f"{network.name}_pkg", f"tb_{network.name}"
    package = Namer([network.name, pkg, tb])
    enums, arrays = types_of(irs)
    types = TypeNames(package, enums, arrays)
    library = Namer([network.name, pkg, tb])
    entities: dict[type, str] = {}
    for cls, ir in irs.items():
        wanted = legal(ir.name)
        if wanted.lower() in (network.name.lower(), pkg.lower(), tb.lower()):
            wanted += "_proc"
        entities[cls] = library.take(wanted)
    processes = {cls: process_names(ir, entities[cls], package, types)
                 for cls, ir in irs.items()}
    top = package.copy()
    for name in [*FIXED_NAMES, *TESTBENCH_NAMES, *entities.values()]:
        top.reserve(name)
    names = TopNames(types, entities, processes)
    inputs, outputs = set(network.inputs), set(network.outputs)
    for bus in network.buses:
        for s in bus.signals():
            names.signals[id(bus), s] = top.take(f"{bus.name}_{s}")
    for bus in network.buses:
        if bus not in inputs and bus not in outputs:
            for s in bus.signals():
                probe = top.take(f"probe_{names.signals[id(bus), s]}")
                names.probes[id(bus), s] = package.reserve(probe)
    for proc in network.processes:
        wanted = proc.name if not top.taken(legal(proc.name)) else f"{proc.name}_inst"
        names.labels[id(proc)] = top.take(wanted)
    return names


__all__ = ["ProcessNames", "TopNames", "export_names", "process_names", "types_of"]
