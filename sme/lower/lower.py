"""``lower_process``: run the front-end passes on one process class and assemble its IR."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..declare import MISSING
from ..network import Network
from ..process import Direction, Process
from ..types import Array
from .context import MAX_FIXPOINT_PASSES
from .errors import LoweringError, LoweringTypeError
from .frontend import Lowerer, parse_function
from .ir import (
    ArrayT,
    EnumT,
    Loc,
    LocalIR,
    PortIR,
    ProcessIR,
    RegisterIR,
    SignalIR,
    VType,
    raw_of,
    vtype_of,
)
from .states import build_states

_CACHE: dict[type, ProcessIR] = {}


def _initial(value: Any, t: VType) -> Any:
    return None if value is MISSING else raw_of(value, t)


def _collect_enums(t: VType, out: dict[type, EnumT]) -> None:
    if isinstance(t, EnumT):
        out.setdefault(t.enum_cls, t)
    elif isinstance(t, ArrayT):
        _collect_enums(t.element, out)


def on_tick_function(cls: type[Process]) -> Callable[..., Any] | None:
    """The plain function behind ``cls.on_tick`` (None when the class has none of its own
    making: only ``Process``'s)."""
    on_tick = cls.__dict__.get("on_tick") or getattr(cls, "on_tick", None)
    func = getattr(on_tick, "__func__", on_tick)
    return None if func is None or func is Process.on_tick else func


def lower_process(cls: type[Process]) -> ProcessIR:
    """Lower ``cls.on_tick`` to a ``ProcessIR`` (cached per class).

    Raises ``UnsupportedConstructError``/``LoweringTypeError`` (both ``LoweringError``)
    naming the file, line and column of the offending Python.
    """
    cached = _CACHE.get(cls)
    if cached is not None:
        return cached
    if cls._sme_simulation_only:
        raise LoweringError(Loc(inspect.getsourcefile(cls) or "<unknown>",
                                cls._sme_src_loc.line),
                            f"{cls.__qualname__} is a simulation-only process "
                            "(simulation_only=True): it has no compiled or hardware form")
    func = on_tick_function(cls)
    if func is None:
        raise LoweringError(Loc(inspect.getsourcefile(cls) or "<unknown>",
                                cls._sme_src_loc.line),
                            f"{cls.__qualname__} does not implement on_tick()")
    parsed = parse_function(func)
    local_types: dict[str, VType] = {}
    for _ in range(MAX_FIXPOINT_PASSES):
        lw = Lowerer(cls, local_types)
        body = lw.lower_body(parsed)
        changed = [k for k, v in lw.assigned.items()
                   if k not in lw.annotated and local_types.get(k) != v]
        if not changed:
            break
        for k in changed:
            local_types[k] = lw.assigned[k]
    else:
        k = changed[0]
        raise LoweringTypeError(
            lw.local_locs[k],
            f"the type of local '{k}' grows with every assignment (an accumulator?); "
            f"annotate it, e.g. `{k}: UInt[16] = 0`, or use a register")
    loc = parsed.loc(parsed.node)
    enums: dict[type, EnumT] = dict(lw.enums)
    ports = []
    for name, spec in cls._sme_ports.items():
        sigs = tuple(
            SignalIR(s.name, vtype_of(s.type), s.type, _initial(s.initial, vtype_of(s.type)))
            for s in spec.bus_type.signals().values()
        )
        if spec.count is not None:  # an array of buses: its signals are arrays (bus_arrays)
            sigs = tuple(_bus_array_signal(s, spec.count) for s in sigs)
        for s in sigs:
            _collect_enums(s.type, enums)
        ports.append(PortIR(name, "in" if spec.direction is Direction.IN else "out",
                            spec.bus_type.__name__, sigs))
    registers = []
    for r in cls._sme_registers.values():
        t = vtype_of(r.type)
        _collect_enums(t, enums)
        registers.append(RegisterIR(r.name, t, r.type, _initial(r.initial, t),
                                    r.name in cls._sme_storage))
    generator = cls._sme_generator
    types = {**local_types, **lw.assigned, **lw.annotated}
    locals_ = [LocalIR(n, t, generator, lw.local_locs.get(n)) for n, t in types.items()
               if n not in lw.loop_vars]
    for v in locals_:
        _collect_enums(v.type, enums)
    states = build_states(body, loc) if generator else None
    ir = ProcessIR(
        name=cls.__name__, cls=cls, doc=inspect.getdoc(cls) if cls.__doc__ else None, loc=loc,
        combinational=cls._sme_combinational, ports=ports, registers=registers,
        locals=locals_, constants=list(lw.constants.values()),
        helpers=list(lw.helpers.values()), body=body, states=states,
        enums=list(enums.values()),
    )
    _CACHE[cls] = ir
    return ir


def _bus_array_signal(s: SignalIR, count: int) -> SignalIR:
    """Signal ``s`` of the ``count`` buses of an array of buses, as one array signal."""
    return SignalIR(s.name, ArrayT(s.type, count), Array[s.sig_type, count],
                    None if s.initial is None else (s.initial,) * count)


def lower_network(network: Network) -> dict[type[Process], ProcessIR]:
    """Lower every process class of ``network`` (each class once), in first-use order."""
    out: dict[type[Process], ProcessIR] = {}
    for p in network.processes:
        cls = type(p)
        if cls not in out:
            out[cls] = lower_process(cls)
    return out


__all__ = ["lower_network", "lower_process"]
