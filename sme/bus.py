"""Buses: named groups of typed signals with one writer and any number of readers.

A bus is declared as a class whose annotated fields are its signals; the field's default
is the signal's initial value (a field without one starts undefined)::

    class CounterControl(Bus):
        valid: Bool = False
        reset: Bool = False

Processes never touch a ``Bus`` object's storage directly: each port gets a *view*, an
object whose attributes are the signal values. Reader views read the values visible this
tick; writer views check every value against the signal's type before storing it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from . import srcloc
from .declare import MISSING, class_loc, defining_namespace, own_annotations
from .errors import (
    ArrayIndexError,
    DeclarationError,
    PortDirectionError,
    SignalValueError,
    UndefinedSignalError,
    UnknownSignalError,
)
from .overflow import store
from .srcloc import SrcLoc
from .types import ArrayType, BoolType, IntegerType, SignalType, TypeMisfit, cast


@dataclass(frozen=True)
class SignalSpec:
    """One signal of a bus class: name, type and initial value (``MISSING`` if none)."""

    name: str
    type: SignalType
    initial: Any

    @property
    def has_initial(self) -> bool:
        """Whether the signal has a value before anything writes it."""
        return self.initial is not MISSING


def snake_case(name: str) -> str:
    """``CounterControl`` → ``counter_control`` (default names of buses and processes)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z])(?=[a-z])", r"_\1\2", name).lower()


def _check_name(kind: str, name: str, where: SrcLoc) -> None:
    if not name.isidentifier() or name.startswith("_") or "__" in name or name.endswith("_"):
        raise DeclarationError(
            f"{where}: {kind} name {name!r} must be an identifier that does not start or end "
            "with '_' and has no '__' (it becomes a VHDL name)"
        )


class Bus:
    """Base class of bus declarations; instances are the buses a network connects."""

    _sme_signals: ClassVar[dict[str, SignalSpec]] = {}
    _sme_is_bus: ClassVar[bool] = True  # (``Array[B, n]`` of a bus class: sme.types)
    _sme_src_loc: ClassVar[SrcLoc]
    _sme_def_ns: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._sme_src_loc = srcloc.caller()
        cls._sme_def_ns = defining_namespace()
        specs: dict[str, SignalSpec] = {}
        for name, ann in own_annotations(cls).items():
            if name.startswith("_sme") or ann is ClassVar:
                continue
            where = class_loc(cls)
            _check_name("signal", name, where)
            try:
                t = cast(ann)
            except DeclarationError as exc:
                raise DeclarationError(f"{where}: {cls.__qualname__}.{name}: {exc}") from None
            initial = cls.__dict__.get(name, MISSING)
            if initial is MISSING:
                for base in cls.__mro__[1:]:
                    spec = getattr(base, "_sme_signals", {}).get(name)
                    if spec is not None:
                        initial = spec.initial
                        break
            if initial is not MISSING:
                try:
                    initial = store(t, initial)
                except TypeMisfit as exc:
                    raise DeclarationError(
                        f"{where}: initial value of {cls.__qualname__}.{name}: {exc}; "
                        f"{t!r} allows {t.describe_range()}"
                    ) from None
            specs[name] = SignalSpec(name, t, initial)
        if not specs:
            raise DeclarationError(f"{class_loc(cls)}: bus {cls.__qualname__} declares no signals")
        cls._sme_signals = specs
        for name in specs:  # signals live in views, never on the Bus object
            if name in cls.__dict__:
                delattr(cls, name)

    def __init__(self, name: str | None = None) -> None:
        self.src_loc = srcloc.caller(skip_self=self)
        self.explicit_name = name is not None
        self.name = name if name is not None else snake_case(type(self).__name__)
        _check_name("bus", self.name, self.src_loc)
        self._cur: dict[str, Any] = {}
        self._nxt: dict[str, Any] = {}
        self._sme_reset()

    @classmethod
    def signals(cls) -> dict[str, SignalSpec]:
        """The signals of this bus class, in declaration order."""
        return cls._sme_signals

    def _sme_reset(self) -> None:
        """Put every signal back to its initial value (undefined ones are removed)."""
        self._cur.clear()
        self._nxt.clear()
        for spec in self._sme_signals.values():
            if not spec.has_initial:
                continue
            if isinstance(spec.type, ArrayType):  # each side its own writable copy
                for d in (self._cur, self._nxt):
                    d[spec.name] = CheckedArray(spec.type, spec.initial, self.name, spec.name)
            else:
                self._cur[spec.name] = self._nxt[spec.name] = spec.initial

    def describe(self) -> str:
        """``name (Type, created at file:line)`` for error messages."""
        return f"bus '{self.name}' ({type(self).__name__}, created at {self.src_loc})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} bus '{self.name}'>"


class BusArray(tuple[Any, ...]):
    """The views of an array of buses (``In[Array[B, n]]``): a tuple whose index must lie
    in ``0..n-1``, as for an ``Array`` signal (no count from the end: ``self.ins[-1]`` is
    an ``ArrayIndexError``, not the last bus). ``simulation_only`` processes index it as
    written; lowered ones are checked again by their backend."""

    _name: str

    def __new__(cls, views: Iterable[Any], name: str) -> BusArray:
        made = super().__new__(cls, views)
        made._name = name
        return made

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self)[index]
        try:
            i = operator.index(index)
        except TypeError:
            raise ArrayIndexError(f"{self._name}[{index!r}]: an index of an array of buses "
                                  "must be an integer") from None
        if not 0 <= i < len(self):
            raise ArrayIndexError(
                f"{self._name}[{i}]: index out of range 0..{len(self) - 1}")
        return super().__getitem__(i)


class CheckedArray(list[Any]):
    """A fixed-length list whose element writes are checked against the element type.

    Used for array signals being written and for array registers; reading is plain list
    indexing. Changing the length is an error.
    """

    __slots__ = ("_owner", "_signal", "_type")

    def __init__(self, t: ArrayType, values: Iterable[Any], owner: str, signal: str) -> None:
        super().__init__(values)
        self._type, self._owner, self._signal = t, owner, signal

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, slice):
            old = list(self)
            old[index] = value
            if len(old) != len(self):
                raise self._misfit(value, "a slice assignment may not change the array's length")
            value = [self._elem(v, index) for v in old[index]]
            super().__setitem__(index, value)
            return
        n = len(self)
        if not 0 <= index < n:  # (no count from the end: see ArrayIndexError)
            raise ArrayIndexError(
                f"{self._owner}.{self._signal}[{index}]: index out of range 0..{n - 1}"
            )
        super().__setitem__(index, self._elem(value, index))

    def _elem(self, value: Any, index: Any) -> Any:
        try:
            return store(self._type.element, value)
        except TypeMisfit as exc:
            raise self._misfit(value, f"[{index}]: {exc}") from None

    def _misfit(self, value: Any, reason: str) -> SignalValueError:
        return SignalValueError(
            f"{self._owner}.{self._signal}{reason}; {self._type!r} allows "
            f"{self._type.describe_range()}; written at {srcloc.caller()}",
            bus=self._owner, signal=self._signal, value=value,
        )

    def _fixed_length(self, *args: Any, **kwargs: Any) -> Any:
        raise SignalValueError(
            f"{self._owner}.{self._signal} is an {self._type!r}: its length is fixed",
            bus=self._owner, signal=self._signal, value=None,
        )

    append = extend = insert = pop = remove = clear = __delitem__ = _fixed_length
    __iadd__ = __imul__ = _fixed_length


class PendingArray:
    """An array signal or register that has no value yet, as its writer sees it.

    Writing one element gives the array a value: that element, and the type's zero
    (``False``, ``0``, an enum's first member) in every element not written yet — what a
    hardware register holds after power-up. Reading an element before that is the
    ``UndefinedSignalError`` the plain read would raise. ``len()`` is the declared length.
    """

    __slots__ = ("_commit", "_owner", "_signal", "_type", "_undefined")

    def __init__(self, t: ArrayType, store: Callable[[CheckedArray], None],
                 undefined: Callable[[], Exception], owner: str, signal: str) -> None:
        self._type = t
        self._owner, self._signal = owner, signal
        self._undefined = undefined
        self._commit = store

    def __setitem__(self, index: Any, value: Any) -> None:
        arr = CheckedArray(self._type, self._type.zero(), self._owner, self._signal)
        arr[index] = value  # checked before the array gets its value
        self._commit(arr)

    def __getitem__(self, index: Any) -> Any:
        raise self._undefined()

    def __iter__(self) -> Any:
        raise self._undefined()

    def __len__(self) -> int:
        return self._type.length


def misfit_error(
    bus_name: str, spec: SignalSpec, value: Any, exc: TypeMisfit, writer: str,
    at: str | None = None,
) -> SignalValueError:
    """The error for a value that does not fit a signal, naming bus, signal, value, range,
    the writer and (``at``) the ``file:line`` of the store."""
    if at is not None:
        writer = f"{writer} at {at}"
    shown = value.value if hasattr(value, "overflow") else value
    hint = ""
    if "out of range" in str(exc):
        hint = "; if the overflow is deliberate, write wrap(...) or saturate(...)"
    return SignalValueError(
        f"{bus_name}.{spec.name}: cannot store {shown!r} ({exc}); {spec.type!r} allows "
        f"{spec.type.describe_range()}; written by {writer}{hint}",
        bus=bus_name, signal=spec.name, value=shown,
    )


def convert_for(bus_name: str, spec: SignalSpec, value: Any, writer: str,
                locate: bool = False) -> Any:
    """Coerce a value written to ``bus_name.spec.name``; arrays become ``CheckedArray`` (the
    writer's own copy, so that it can go on writing single elements). ``locate``: a value
    that does not fit names the line that stored it (the first frame outside ``sme``)."""
    try:
        v = store(spec.type, value)
    except TypeMisfit as exc:
        at = str(srcloc.caller()) if locate else None
        raise misfit_error(bus_name, spec, value, exc, writer, at) from None
    if isinstance(spec.type, ArrayType):
        return CheckedArray(spec.type, v, bus_name, spec.name)
    return v


class _ViewBase:
    """Common behaviour of bus views: helpful errors for unknown and undefined signals."""

    _sme_bus: ClassVar[Bus]
    _sme_who: ClassVar[Callable[[], str]]

    def __getattr__(self, name: str) -> Any:
        bus = type(self)._sme_bus
        specs = bus._sme_signals
        if name in specs:
            raise UndefinedSignalError(
                f"{bus.name}.{name} has no initial value and nothing has written it yet "
                f"(read by {type(self)._sme_who()}); give it a default in "
                f"{type(bus).__name__} or write it first"
            )
        if name.startswith("__"):
            raise AttributeError(name)
        raise UnknownSignalError(
            f"{bus.describe()} has no signal {name!r}; its signals are: {', '.join(specs)}"
        )

    def __repr__(self) -> str:
        bus = type(self)._sme_bus
        values = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"<{type(self).__name__} of '{bus.name}': {values}>"


class _ReaderBase(_ViewBase):
    def __setattr__(self, name: str, value: Any) -> None:
        t = type(self)
        raise PortDirectionError(
            f"{t._sme_who()} cannot write {t._sme_bus.name}.{name}: it reads "
            f"{t._sme_bus.describe()}; a process writes only its Out[...] buses"
        )


class ReadOnlyArray(tuple[Any, ...]):
    """An array signal as a reader sees it: writing an element is a ``PortDirectionError``
    (the bus's own storage is never handed to a reader)."""

    _sme_view: Any
    _sme_signal: str

    def __new__(cls, values: Iterable[Any], view: Any, signal: str) -> ReadOnlyArray:
        obj = super().__new__(cls, values)
        obj._sme_view, obj._sme_signal = view, signal
        return obj

    def __setitem__(self, index: Any, value: Any) -> None:
        t = type(self._sme_view)
        raise PortDirectionError(
            f"{t._sme_who()} cannot write {t._sme_bus.name}.{self._sme_signal}[{index}]: it "
            f"reads {t._sme_bus.describe()}; a process writes only its Out[...] buses"
        )


def _array_reader(name: str) -> property:
    """The attribute of a reader view for array signal ``name``: a read-only copy."""

    def get(self: Any) -> Any:
        d = object.__getattribute__(self, "__dict__")
        if name not in d:
            return self.__getattr__(name)  # raises UndefinedSignalError
        return ReadOnlyArray(d[name], self, name)

    return property(get)


def reader_view(bus: Bus, who: Callable[[], str]) -> Any:
    """A read-only view of the values of ``bus`` visible this tick; ``who()`` describes the
    reader for error messages."""
    attrs: dict[str, Any] = {"_sme_bus": bus, "_sme_who": staticmethod(who)}
    for spec in bus._sme_signals.values():
        if isinstance(spec.type, ArrayType):
            attrs[spec.name] = _array_reader(spec.name)
    cls = type(f"{type(bus).__name__}Reader", (_ReaderBase,), attrs)
    view: Any = object.__new__(cls)
    object.__setattr__(view, "__dict__", bus._cur)
    return view


def writer_view(bus: Bus, who: Callable[[], str], target: dict[str, Any],
                locate: bool = False) -> Any:
    """A view that checks and stores values into ``target`` (the bus's next-tick values for a
    clocked writer, its current values for a combinational writer or a testbench);
    ``locate``: a value that does not fit names the line of the store (a process's)."""
    specs = bus._sme_signals
    ranges: dict[str, tuple[int, int]] = {
        n: (s.type.lo, s.type.hi) for n, s in specs.items() if isinstance(s.type, IntegerType)
    }
    bools = frozenset(n for n, s in specs.items() if isinstance(s.type, BoolType))

    def __setattr__(self: Any, name: str, value: Any, _ranges: Any = ranges.get) -> None:
        t = type(value)
        if t is int:
            r = _ranges(name)
            if r is not None and r[0] <= value <= r[1]:
                target[name] = value
                return
        elif t is bool and name in bools:
            target[name] = value
            return
        spec = specs.get(name)
        if spec is None:
            self.__getattr__(name)  # raises UnknownSignalError
            raise AssertionError(name)
        target[name] = convert_for(bus.name, spec, value, who(), locate)

    def __getattr__(self: Any, name: str) -> Any:
        spec = specs.get(name)
        if spec is not None and isinstance(spec.type, ArrayType):
            return PendingArray(spec.type, lambda arr: target.__setitem__(name, arr),
                                lambda: _undefined(self, name), bus.name, name)
        return _ViewBase.__getattr__(self, name)

    attrs: dict[str, Any] = {
        "_sme_bus": bus, "_sme_who": staticmethod(who), "__setattr__": __setattr__,
        "__getattr__": __getattr__,
    }
    cls = type(f"{type(bus).__name__}Writer", (_ViewBase,), attrs)
    view: Any = object.__new__(cls)
    object.__setattr__(view, "__dict__", target)
    return view


def _undefined(view: Any, name: str) -> Exception:
    try:
        _ViewBase.__getattr__(view, name)
    except UndefinedSignalError as exc:
        return exc
    raise AssertionError(name)


def bus_of(obj: Any) -> Bus:
    """The ``Bus`` behind a bus object or one of its views."""
    if isinstance(obj, Bus):
        return obj
    if isinstance(obj, _ViewBase):
        return type(obj)._sme_bus
    raise TypeError(f"{obj!r} is not a bus")

