"""The Python side of a compiled session's state: the step-mode bus views
(``sim.input(bus)``, ``sim.output(bus)``) and the trace snapshot.

A testbench that drives and reads every tick spends most of its time here, so each view is
a class made for its bus once, when first asked for: reading a plain integer or Bool
signal is a property that indexes the state array; writing one is a generated
``__setattr__`` whose first branch stores a Python ``int``/``bool`` that fits the signal
straight into the state array. Everything else (fixed point, enums, arrays, a signal with
no initial value, a value that does not fit) takes the session's checked ``poke``, which
raises exactly what the interpreter raises. Unknown names and writes to a monitor get the
interpreter's errors too. The snapshot (one trace row per tick) is likewise one generated
function that reads every traced signal out of the state arrays.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

import numpy as np

from ..bus import Bus
from ..errors import PortDirectionError, UndefinedSignalError, UnknownSignalError
from ..trace import UNDEFINED
from ..types import ArrayType, BoolType, EnumType, Fixed, FixedType, IntegerType, SignalType
from .layout import ArraySlot, SignalPlace, Slot

if TYPE_CHECKING:
    from .session import CompiledSession


class _Monitor:
    """Attribute reads give a bus's current values (one property per signal)."""

    __slots__ = ()
    _s: tuple[CompiledSession, Bus]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        bus = type(self)._s[1]
        raise UnknownSignalError(f"{bus.describe()} has no signal {name!r}; its signals "
                                 f"are: {', '.join(bus.signals())}")

    def __setattr__(self, name: str, value: Any) -> None:
        bus = type(self)._s[1]
        if name not in bus.signals():
            self.__getattr__(name)
        raise PortDirectionError(
            f"the testbench cannot write {bus.name}.{name}: sim.output() gives a read-only "
            f"view of {bus.describe()}; drive top-level inputs through sim.input()")

    def __repr__(self) -> str:
        bus = type(self)._s[1]
        values = []
        for name in bus.signals():
            try:
                values.append(f"{name}={getattr(self, name)!r}")
            except UndefinedSignalError:
                values.append(f"{name}=<undefined>")
        return f"<{type(self).__name__} of '{bus.name}': {', '.join(values)}>"


def _getter(session: CompiledSession, place: SignalPlace) -> Any:
    S = session.S if session.wide else session.S.data  # item access gives Python ints
    i, d, t = place.s_index, place.d_index, place.signal.type
    if isinstance(place.storage, Slot) and d < 0:
        if isinstance(t, BoolType):
            return lambda self: S[i] != 0
        if isinstance(t, IntegerType):
            return lambda self: S[i]
    bus, name = place.signal.bus, place.signal.spec.name

    def get(self: Any) -> Any:
        v = session.value(place)
        if v is UNDEFINED:
            raise UndefinedSignalError(
                f"{bus.name}.{name} has no initial value and nothing has written it yet "
                f"(read by the testbench); give it a default in {type(bus).__name__} or "
                "write it first")
        return v

    return get


def _setattr(session: CompiledSession, bus: Bus) -> Any:
    """The generated ``__setattr__`` of a driver view of ``bus`` (see the module doc)."""
    S = session.S if session.wide else session.S.data
    specs = bus.signals()
    ns: dict[str, Any] = {"S": S}
    lines = ["def __setattr__(self, name, value):"]
    branch = "if"
    for name in specs:
        place = session._places[bus, name]
        t, i = place.signal.type, place.s_index
        lines.append(f"    {branch} name == {name!r}:")
        branch = "elif"
        if not isinstance(place.storage, Slot) or place.d_index >= 0:
            lines.append("        pass")
        elif isinstance(t, BoolType):
            lines += ["        if type(value) is bool:", f"            S[{i}] = value",
                      "            return"]
        elif isinstance(t, IntegerType):
            lines += [f"        if type(value) is int and {t.lo} <= value <= {t.hi}:",
                      f"            S[{i}] = value", "            return"]
        else:
            lines.append("        pass")
    lines += ["    else:", "        self.__getattr__(name)",  # raises UnknownSignalError
              "    poke(bus, specs[name], value)"]
    ns.update(poke=session.poke, bus=bus, specs=specs)
    exec(compile("\n".join(lines) + "\n", f"<smeflow driver of {bus.name}>", "exec"), ns)
    return ns["__setattr__"]


def bus_view(session: CompiledSession, bus: Bus, drive: bool) -> Any:
    """A monitor (or, with ``drive``, a driver) object for ``bus``."""
    attrs: dict[str, Any] = {"__slots__": (), "_s": (session, bus)}
    for name in bus.signals():
        attrs[name] = property(_getter(session, session._places[bus, name]))
    if drive:
        attrs["__setattr__"] = _setattr(session, bus)
    suffix = "Driver" if drive else "Monitor"
    cls = type(f"{type(bus).__name__}{suffix}", (_Monitor,), attrs)
    return object.__new__(cls)


def snapshot_function(session: CompiledSession) -> Any:
    """A generated function returning the trace row of ``session``'s current state (the
    values of ``layout.places`` in order, ``UNDEFINED`` for a signal with no value)."""
    wide = session.wide
    ns: dict[str, Any] = {"S": session.S if wide else session.S.data,
                          "A": session.A if wide else session.A.data, "U": UNDEFINED,
                          "Fixed": Fixed, "tuple": tuple, "map": map}
    cells = []
    for k, place in enumerate(session.layout.places):
        t, st = place.signal.type, place.storage
        if isinstance(st, ArraySlot):
            assert isinstance(t, ArrayType)
            conv = _converter(t.element, ns, k)
            part = f"A[{st.offset}:{st.offset + st.length}]"
            cell = f"tuple({part})" if conv is None else f"tuple(map({conv}, {part}))"
        else:
            conv = _converter(t, ns, k)
            cell = f"S[{place.s_index}]" if conv is None else f"{conv}(S[{place.s_index}])"
        if place.d_index >= 0:
            cell = f"({cell} if S[{place.d_index}] else U)"
        cells.append(cell)
    src = "def snapshot():\n    return (" + "".join(c + ", " for c in cells) + ")\n"
    exec(compile(src, "<smeflow compiled snapshot>", "exec"), ns)
    return ns["snapshot"]


def _converter(t: SignalType, ns: dict[str, Any], k: int) -> str | None:
    """The name of a function (put into ``ns``) turning a raw value of ``t`` into its
    Python value, or None when the raw value is the value (integers)."""
    if isinstance(t, BoolType):
        return "bool"
    if isinstance(t, EnumType):
        ns[f"enum{k}"] = t.from_raw
        return f"enum{k}"
    if isinstance(t, FixedType):
        frac = t.frac_bits
        ns[f"fixed{k}"] = lambda v: Fixed(v, frac)
        return f"fixed{k}"
    return None


def rows_from_raw(session: CompiledSession, raws: list[bytes]) -> list[tuple[Any, ...]]:
    """Trace rows from raw copies of ``W[:e]`` (``S`` then ``A``, one per tick): the rows
    ``snapshot_function`` would have made at those ticks."""
    paused = gc.isenabled()
    gc.disable()  # only tuples and numbers are made: no cycle for the collector to find
    try:
        return _rows_from_raw(session, raws)
    finally:
        if paused:
            gc.enable()


def _rows_from_raw(session: CompiledSession, raws: list[bytes]) -> list[tuple[Any, ...]]:
    ws = session._ws
    assert ws is not None
    M = np.frombuffer(b"".join(raws), dtype=np.int64).reshape(len(raws), ws.e)
    columns: list[list[Any]] = []
    for k, place in enumerate(session.layout.places):
        t, st = place.signal.type, place.storage
        if isinstance(st, ArraySlot):
            assert isinstance(t, ArrayType)
            conv = _value_function(t.element, k)
            start = ws.a + st.offset
            block = M[:, start:start + st.length].tolist()
            values = [tuple(map(conv, r)) if conv else tuple(r) for r in block]
        else:
            conv = _value_function(t, k)
            col = M[:, ws.s + place.s_index].tolist()
            values = list(map(conv, col)) if conv else col
        if place.d_index >= 0:
            defined = M[:, ws.s + place.d_index].tolist()
            values = [v if d else UNDEFINED for v, d in zip(values, defined, strict=True)]
        columns.append(values)
    if not columns:
        return [() for _ in raws]
    return list(zip(*columns, strict=True))


def _value_function(t: SignalType, k: int) -> Any:
    """The function ``_converter`` names for ``t`` (None: the raw value is the value)."""
    ns: dict[str, Any] = {}
    name = _converter(t, ns, k)
    if name is None:
        return None
    return bool if name == "bool" else ns[name]
