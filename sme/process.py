"""Processes: the units of hardware behaviour, connected by buses.

A process class declares its ports and registers as annotated fields and implements
``on_tick``::

    class Counter(Process):
        \"\"\"Counts valid ticks; reset clears it.\"\"\"
        control: In[CounterControl]
        data: Out[CounterData]
        count: UInt[8] = 0          # a register

        def on_tick(self) -> None:
            ...

A *clocked* process (the default) reads the values its input buses had at the start of
the tick; what it writes becomes visible at the next tick. A *combinational* process
(``class P(Process, combinational=True)``) runs after the clocked ones and its writes are
visible in the same tick. A process's registers keep their value across ticks; inside one
tick the process sees its own register writes at once (VHDL variable semantics), and no
other process can see them. ``on_tick`` may be a generator: each ``yield`` waits one tick.

``class Ram(Process, storage=("mem",))`` marks Array registers as a memory's storage: they
start with their initial contents like any register, but the VHDL reset does not clear
them (a memory's words are loaded when the FPGA is configured), so synthesis can map them
to block RAM. ``simulation_only=True`` declares a process that only the interpreter runs
(a testbench or a model of an off-chip part, in any Python).
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar, get_args, get_origin

from . import srcloc
from .bus import (
    Bus,
    BusArray,
    CheckedArray,
    PendingArray,
    SignalSpec,
    _check_name,
    _ViewBase,
    misfit_error,
    reader_view,
    snake_case,
    writer_view,
)
from .declare import MISSING, class_loc, defining_namespace, own_annotations
from .errors import BusTypeError, DeclarationError, UndefinedSignalError
from .overflow import store
from .types import (
    ArrayType,
    BoolType,
    BusArrayType,
    IntegerType,
    SignalType,
    TypeMisfit,
    cast,
    is_signal_type,
)

B = TypeVar("B", bound="Bus | Sequence[Bus]")  # (a sequence: In[Array[Bus, n]])


class Direction(enum.Enum):
    """Which way a port goes."""

    IN = "in"
    OUT = "out"


In = Annotated[B, Direction.IN]
"""``name: In[BusClass]`` declares a port the process reads; ``In[Array[BusClass, n]]`` an
array of ``n`` buses (C#'s ``[InputBus] BusClass[] name``), read as ``self.name[i].signal``."""
Out = Annotated[B, Direction.OUT]
"""``name: Out[BusClass]`` declares a port the process writes (``Out[Array[BusClass, n]]``:
an array of buses)."""


@dataclass(frozen=True)
class PortSpec:
    """A declared port: its name, direction and bus class; ``count`` is the number of buses
    of an array of buses (``In[Array[B, n]]``), None for a port of one bus."""

    name: str
    direction: Direction
    bus_type: type[Bus]
    count: int | None = None

    def element(self, k: int) -> str:
        """The name of bus ``k`` of an array of buses: ``name[k]`` (in messages, traces of
        who writes what, ``Process.bus``)."""
        return f"{self.name}[{k}]"


@dataclass(frozen=True)
class RegisterSpec:
    """A declared register: name, type, class-level initial value (``MISSING`` if none)."""

    name: str
    type: SignalType
    initial: Any


def _port_of(ann: Any) -> tuple[Direction, Any] | None:
    if get_origin(ann) is Annotated:
        args = get_args(ann)
        for meta in ann.__metadata__:
            if isinstance(meta, Direction):
                return meta, args[0]
    return None


def _holds_port(ann: Any) -> bool:
    """Whether ``ann`` is a container type of ports (``list[In[B]]``, ``tuple[In[B], ...]``)."""
    return any(_port_of(a) is not None or _holds_port(a) for a in get_args(ann))


def _bus_of(ann: Any) -> str:
    """The name of the first bus class in the ports ``ann`` holds."""
    for a in get_args(ann):
        port = _port_of(a)
        if port is not None:
            return getattr(port[1], "__name__", repr(port[1]))
        if _holds_port(a):
            return _bus_of(a)
    return "Bus"


def no_bus_arrays(bus: str) -> str:
    """What a port declared as an array of buses in another way is told: how to write it."""
    return (f"an array of buses is declared with its length, In[Array[{bus}, n]] or "
            f"Out[Array[{bus}, n]] (C#'s {bus}[] of n buses), and connected to a list of n "
            f"{bus} buses; see sme/examples/array_of_buses.py")


def _bus_in(ann: Any) -> type[Bus] | None:
    """The bus class a container type holds (``list[B]``, ``tuple[B, ...]``), if any."""
    for a in get_args(ann):
        if isinstance(a, type) and issubclass(a, Bus):
            return a
        inner = _bus_in(a)
        if inner is not None:
            return inner
    return None


def _spelled(ann: Any) -> str:
    """An annotation as the source spells it: ``list[In[Data]]``, ``tuple[In[Data], ...]``."""
    port = _port_of(ann)
    if port is not None:
        return f"{'In' if port[0] is Direction.IN else 'Out'}[{_spelled(port[1])}]"
    if ann is Ellipsis:
        return "..."
    origin, args = get_origin(ann), get_args(ann)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(map(_spelled, args))}]"
    return getattr(ann, "__name__", repr(ann))


class Process:
    """Base class of SME processes (clocked unless declared ``combinational=True``)."""

    _sme_ports: ClassVar[dict[str, PortSpec]] = {}
    _sme_registers: ClassVar[dict[str, RegisterSpec]] = {}
    _sme_combinational: ClassVar[bool] = False
    _sme_simulation_only: ClassVar[bool] = False
    _sme_storage: ClassVar[frozenset[str]] = frozenset()
    _sme_generator: ClassVar[bool] = False
    _sme_src_loc: ClassVar[srcloc.SrcLoc]
    _sme_def_ns: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, combinational: bool | None = None,
                          simulation_only: bool | None = None,
                          storage: Iterable[str] | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._sme_src_loc = srcloc.caller()
        cls._sme_def_ns = defining_namespace()
        where = class_loc(cls)
        if combinational is not None:
            cls._sme_combinational = combinational
        if simulation_only is not None:
            cls._sme_simulation_only = simulation_only
        ports: dict[str, PortSpec] = {}
        registers: dict[str, RegisterSpec] = {}
        for name, ann in own_annotations(cls).items():
            if name.startswith("_sme") or ann is ClassVar or get_origin(ann) is ClassVar:
                continue
            port = _port_of(ann)
            if port is not None:
                direction, bus_type = port
                if isinstance(bus_type, BusArrayType):  # C#'s [InputBus] ValueBus[] input
                    _check_name("port", name, where)
                    ports[name] = PortSpec(name, direction, bus_type.bus, bus_type.length)
                    continue
                if not (isinstance(bus_type, type) and issubclass(bus_type, Bus)):
                    held = _bus_in(bus_type)
                    if held is not None:  # In[list[ValueBus]]: C#'s ValueBus[] input
                        raise DeclarationError(
                            f"{where}: {cls.__qualname__}.{name}: {_spelled(ann)}: "
                            + no_bus_arrays(held.__name__))
                    raise DeclarationError(
                        f"{where}: port {cls.__qualname__}.{name}: {bus_type!r} is not a Bus class"
                    )
                _check_name("port", name, where)
                ports[name] = PortSpec(name, direction, bus_type)
            elif _holds_port(ann):  # C#'s ValueBus[] input: refused, not ignored
                raise DeclarationError(
                    f"{where}: {cls.__qualname__}.{name}: {_spelled(ann)}: "
                    + no_bus_arrays(_bus_of(ann)))
            elif isinstance(ann, BusArrayType):  # without In/Out: refused, not ignored
                raise DeclarationError(
                    f"{where}: {cls.__qualname__}.{name}: {ann!r} is an array of buses "
                    f"without a direction: declare it In[{ann!r}] or Out[{ann!r}]")
            elif is_signal_type(ann):
                _check_name("register", name, where)
                t = cast(ann)
                initial = cls.__dict__.get(name, MISSING)
                if initial is MISSING:
                    inherited = cls._sme_registers.get(name)
                    initial = inherited.initial if inherited is not None else MISSING
                if initial is not MISSING:
                    try:
                        initial = store(t, initial)
                    except TypeMisfit as exc:
                        raise DeclarationError(
                            f"{where}: initial value of register {cls.__qualname__}.{name}: "
                            f"{exc}; {t!r} allows {t.describe_range()}"
                        ) from None
                registers[name] = RegisterSpec(name, t, initial)
        cls._sme_ports, cls._sme_registers = ports, registers
        if storage is not None:
            cls._sme_storage = frozenset([storage] if isinstance(storage, str) else storage)
        for name in sorted(cls._sme_storage):
            reg = registers.get(name)
            if reg is None or not isinstance(reg.type, ArrayType):
                raise DeclarationError(
                    f"{where}: storage={name!r}: {cls.__qualname__} has no Array register "
                    f"{name!r} (storage names the Array registers that hold a memory's words)")
        for name in registers:  # registers live on instances only
            if name in cls.__dict__:
                delattr(cls, name)
        on_tick = getattr(cls, "on_tick", None)
        if inspect.iscoroutinefunction(on_tick) or inspect.isasyncgenfunction(on_tick):
            # (called, it returns a coroutine that nothing awaits: the tick would do nothing)
            code = on_tick.__code__
            raise DeclarationError(
                f"{srcloc.SrcLoc(code.co_filename, code.co_firstlineno)}: "
                f"{cls.__qualname__}.on_tick is an 'async def': SME processes are "
                "not coroutines. Port C#'s 'async Task OnTickAsync()' as a plain 'def' in "
                "which each 'await ClockAsync()' is a 'yield' (docs/language.md, the porting "
                "table)")
        cls._sme_generator = inspect.isgeneratorfunction(on_tick)
        if cls._sme_combinational and cls._sme_generator:
            raise DeclarationError(
                f"{where}: combinational process {cls.__qualname__} cannot be a generator "
                "(a yield waits for a clock tick); make it clocked"
            )
        if cls._sme_combinational and registers:
            raise DeclarationError(
                f"{where}: combinational process {cls.__qualname__} cannot hold registers "
                f"({', '.join(registers)}); make it clocked or move the state elsewhere"
            )
        cls.__setattr__ = _register_setattr(cls)  # type: ignore[method-assign,assignment]

    def __init__(self, *, name: str | None = None, **connections: Any) -> None:
        cls = type(self)
        object.__setattr__(self, "_sme_frozen", False)
        self.src_loc = srcloc.caller(skip_self=self)
        self.explicit_name = name is not None
        self.name = name if name is not None else snake_case(cls.__name__)
        _check_name("process", self.name, self.src_loc)
        self._sme_buses: dict[str, Bus] = {}
        for port in cls._sme_ports.values():
            given = connections.pop(port.name, None)
            if port.count is not None:
                self._connect_array(port, given)
                continue
            bus = port.bus_type() if given is None else _as_bus(given, self, port)
            if given is None:
                bus.src_loc = self.src_loc
            if type(bus) is not port.bus_type:
                raise BusTypeError(
                    f"{self.describe()}: port '{port.name}' is {port.direction.name.title()}"
                    f"[{port.bus_type.__name__}] but was connected to {bus.describe()}"
                )
            self._sme_buses[port.name] = bus
            who = _describer(self, port.name)
            if port.direction is Direction.IN:
                view = reader_view(bus, who)
            else:
                target = bus._cur if cls._sme_combinational else bus._nxt
                view = writer_view(bus, who, target, locate=True)
            object.__setattr__(self, port.name, view)
        self._sme_initial: dict[str, Any] = {}
        for reg in cls._sme_registers.values():
            initial = connections.pop(reg.name, reg.initial)
            if initial is not MISSING:
                try:
                    initial = store(reg.type, initial)
                except TypeMisfit as exc:
                    raise DeclarationError(
                        f"{self.src_loc}: initial value of register {self.name}.{reg.name}: "
                        f"{exc}; {reg.type!r} allows {reg.type.describe_range()}"
                    ) from None
            self._sme_initial[reg.name] = initial
        if connections:
            raise TypeError(
                f"{self.src_loc}: {cls.__name__}() got unknown argument(s) "
                f"{', '.join(sorted(connections))}; ports: {', '.join(cls._sme_ports) or '-'}; "
                f"registers: {', '.join(cls._sme_registers) or '-'}"
            )
        self._sme_reset()

    def _connect_array(self, port: PortSpec, given: Any) -> None:
        """Connect the array of buses ``port`` to ``given`` (a list or tuple of exactly
        ``port.count`` buses of its class; None: that many new ones): ``self.<port>`` is a
        tuple of their views (a ``BusArray``: an index outside ``0..n-1`` is an
        ``ArrayIndexError``), and bus ``k`` is ``self.bus("<port>[k]")``."""
        assert port.count is not None
        kind = f"{port.direction.name.title()}[Array[{port.bus_type.__name__}, {port.count}]]"
        if given is None:
            buses = [port.bus_type() for _ in range(port.count)]
            for b in buses:
                b.src_loc = self.src_loc
        elif not isinstance(given, list | tuple) or len(given) != port.count:
            got = f"{len(given)} buses" if isinstance(given, list | tuple) else repr(given)
            raise BusTypeError(
                f"{self.src_loc}: {type(self).__name__} port '{port.name}' is {kind}: it needs "
                f"a list of {port.count} {port.bus_type.__name__} buses, got {got}")
        else:
            buses = [_as_bus(g, self, PortSpec(port.element(k), port.direction, port.bus_type))
                     for k, g in enumerate(given)]
        views = []
        for k, bus in enumerate(buses):
            element = port.element(k)
            if type(bus) is not port.bus_type:
                raise BusTypeError(f"{self.describe()}: port '{element}' is an element of "
                                   f"{kind} but was connected to {bus.describe()}")
            if port.direction is Direction.OUT and bus in buses[:k]:
                raise BusTypeError(
                    f"{self.describe()}: port '{port.name}' is {kind} and writes "
                    f"{bus.describe()} as its elements {buses.index(bus)} and {k}; a bus has "
                    "one writer, and each element of an Out array is one")
            self._sme_buses[element] = bus
            who = _describer(self, element)
            if port.direction is Direction.IN:
                views.append(reader_view(bus, who))
            else:
                target = bus._cur if type(self)._sme_combinational else bus._nxt
                views.append(writer_view(bus, who, target, locate=True))
        object.__setattr__(self, port.name, BusArray(views, f"{self.name}.{port.name}"))

    def on_tick(self) -> Any:
        """The process's behaviour for one clock tick (or a generator over ticks)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement on_tick()")

    def _sme_reset(self) -> None:
        """Put every register back to its initial value."""
        for reg, initial in self._sme_initial.items():
            if initial is MISSING:
                self.__dict__.pop(reg, None)
            elif isinstance(initial, tuple):
                t = type(self)._sme_registers[reg].type
                assert isinstance(t, ArrayType)
                self.__dict__[reg] = CheckedArray(t, initial, self.name, reg)
            else:
                self.__dict__[reg] = initial

    def __getattr__(self, name: str) -> Any:
        registers = type(self).__dict__.get("_sme_registers") or type(self)._sme_registers
        if name in registers:
            t = registers[name].type
            error = UndefinedSignalError(
                f"register {self.name}.{name} has no initial value and was read before "
                f"anything wrote it ({self.describe()})"
            )
            if isinstance(t, ArrayType):  # element writes give it a value
                return PendingArray(t, lambda arr: self.__dict__.__setitem__(name, arr),
                                    lambda: error, self.name, name)
            raise error
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- introspection ---------------------------------------------------------------
    @classmethod
    def ports(cls) -> dict[str, PortSpec]:
        """Declared ports in declaration order."""
        return cls._sme_ports

    @classmethod
    def registers(cls) -> dict[str, RegisterSpec]:
        """Declared registers in declaration order."""
        return cls._sme_registers

    @classmethod
    def is_combinational(cls) -> bool:
        """True for combinational processes."""
        return cls._sme_combinational

    @classmethod
    def is_generator(cls) -> bool:
        """True when ``on_tick`` is a generator (a state machine over ticks)."""
        return cls._sme_generator

    def bus(self, port: str) -> Bus:
        """The bus connected to ``port`` (``"name[k]"``: bus ``k`` of an array of buses)."""
        return self._sme_buses[port]

    def input_buses(self) -> dict[str, Bus]:
        """Port name → bus, for the ports this process reads (``name[k]`` → bus ``k`` of an
        array of buses)."""
        ports = type(self)._sme_ports
        return {n: b for n, b in self._sme_buses.items()
                if ports[n.split("[", 1)[0]].direction is Direction.IN}

    def output_buses(self) -> dict[str, Bus]:
        """Port name → bus, for the ports this process writes (``name[k]``: as above)."""
        ports = type(self)._sme_ports
        return {n: b for n, b in self._sme_buses.items()
                if ports[n.split("[", 1)[0]].direction is Direction.OUT}

    def initial_values(self) -> dict[str, Any]:
        """Register name → this instance's initial value (``MISSING`` when undefined)."""
        return dict(self._sme_initial)

    def describe(self) -> str:
        """``Class 'name' (created at file:line)`` for error messages."""
        return f"{type(self).__name__} '{self.name}' (created at {self.src_loc})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} process '{self.name}'>"


def _as_bus(given: Any, proc: Process, port: PortSpec) -> Bus:
    if isinstance(given, Bus):
        return given
    if isinstance(given, _ViewBase):
        return type(given)._sme_bus
    hint = ""
    if isinstance(given, list | tuple) and given and all(
            isinstance(g, Bus | _ViewBase) for g in given):
        hint = (f"; port '{port.name}' holds one bus; declare it In[Array["
                f"{port.bus_type.__name__}, {len(given)}]] (or Out[...]) for an array of buses")
    raise BusTypeError(
        f"{proc.src_loc}: {type(proc).__name__} port '{port.name}' needs a "
        f"{port.bus_type.__name__} bus, got {given!r}{hint}"
    )


def _describer(proc: Process, port: str) -> Callable[[], str]:
    return lambda: f"{proc.describe()} through port '{port}'"


def _register_setattr(cls: type[Process]) -> Callable[[Process, str, Any], None]:
    """A ``__setattr__`` that checks register writes against their types (fast for ints)."""
    registers = cls._sme_registers
    ports = cls._sme_ports
    ranges = {n: (r.type.lo, r.type.hi) for n, r in registers.items()
              if isinstance(r.type, IntegerType)}
    bools = frozenset(n for n, r in registers.items() if isinstance(r.type, BoolType))
    set_plain = object.__setattr__

    def __setattr__(self: Process, name: str, value: Any, _ranges: Any = ranges.get) -> None:
        t = type(value)
        if t is int:
            r = _ranges(name)
            if r is not None and r[0] <= value <= r[1]:
                set_plain(self, name, value)
                return
        elif t is bool and name in bools:
            set_plain(self, name, value)
            return
        reg = registers.get(name)
        if reg is not None:
            spec = SignalSpec(name, reg.type, MISSING)
            try:
                v = store(reg.type, value)
            except TypeMisfit as exc:
                raise misfit_error(self.name, spec, value, exc, self.describe(),
                                   str(srcloc.caller())) from None
            if isinstance(reg.type, ArrayType):
                v = CheckedArray(reg.type, v, self.name, name)
            set_plain(self, name, v)
            return
        if (name in ports and "_sme_buses" in self.__dict__) or self.__dict__.get("_sme_frozen"):
            what = "a port" if name in ports else "not a declared register"
            raise DeclarationError(
                f"{self.describe()}: cannot assign self.{name}: it is {what}; registers are "
                f"declared as annotated fields, e.g. `{name}: UInt[8] = 0`"
                + (f"; write signals as self.{name}.<signal> = value" if name in ports else "")
            )
        set_plain(self, name, value)

    return __setattr__
