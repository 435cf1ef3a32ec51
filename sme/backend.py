"""The simulation backend interface and its registry.

A backend turns an elaborated ``Network`` into something that can be ticked. It declares
what it can do, checks that its tools are installed, prepares a ``Build`` (pure: generated
code or commands, nothing run yet) and opens ``Session`` objects on it. Backends outside
``sme`` (the GHDL one lives in ``fpga``) register themselves through the
``smeflow.backends`` entry-point group, so ``sme`` never imports them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .batch import check_shape, check_unmasked, check_whole_values
from .bus import Bus
from .errors import BackendError, SimulationError
from .network import Network, TracedSignal
from .types import ArrayType, BoolType, EnumType, Fixed, FixedType, IntegerType, SignalType


@dataclass
class Build:
    """What ``Backend.prepare`` produced for one network (subclassed by backends)."""

    network: Network
    options: dict[str, Any] = field(default_factory=dict)


class Session(ABC):
    """A running simulation: drive inputs, tick, read values."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self.network = build.network
        self.tick = 0

    @abstractmethod
    def step(self) -> None:
        """Advance one clock tick."""

    def lean_step(self) -> Callable[[], Any]:
        """A callable that advances one tick with as little Python in between as the
        backend can manage (``Simulator.step`` calls it when nothing traces or observes the
        ticks). An exception it raises goes to ``step_failed``. Default: ``step``."""
        return self.step

    def raw_snapshot(self) -> tuple[Callable[[], Any],
                                    Callable[[list[Any]], list[tuple[Any, ...]]]] | None:
        """A cheaper way to record trace rows, or None: a function returning the current
        state as one raw object (say, the bytes of a state array), and a function turning a
        list of those into trace rows (as ``snapshot`` gives them), called only when the
        trace is read. Default: None (``snapshot`` every tick)."""
        return None

    def step_failed(self, exc: BaseException) -> None:
        """Raise the error ``exc`` (raised by ``lean_step()()``) stands for, as ``step``
        would have raised it. Default: ``exc`` itself."""
        raise exc

    @abstractmethod
    def driver(self, bus: Bus) -> Any:
        """An object whose attribute writes set a top-level input bus's signals."""

    def require_input(self, bus: Bus) -> None:
        """Raise ``SimulationError`` unless ``bus`` is a top-level input (what ``driver``
        accepts)."""
        if bus not in self.network.inputs:
            raise SimulationError(
                f"{bus.describe()} is not a top-level input of network '{self.network.name}' "
                f"(inputs: {', '.join(b.name for b in self.network.inputs) or '-'}); only "
                "top-level inputs are driven from outside"
            )

    @abstractmethod
    def monitor(self, bus: Bus) -> Any:
        """An object whose attributes are a bus's current signal values."""

    @abstractmethod
    def snapshot(self) -> tuple[Any, ...]:
        """The values of ``network.traced_signals()`` now, as one trace row."""

    def run_batch(
        self, stimulus: Mapping[str, np.ndarray], ticks: int, outputs: list[str] | None = None,
        dtypes: Mapping[str, npt.DTypeLike] | None = None,
    ) -> dict[str, np.ndarray]:
        """Drive ``ticks`` ticks from per-signal arrays (``"bus.signal"`` → array of length
        ``ticks``) and return, for every top-level output signal (or the ``outputs`` named),
        its value right after each tick as an array (of ``numpy_dtype``, or of the dtype
        ``dtypes`` gives for it: see ``result_dtypes``)."""
        net = self.network
        inputs = {t.name: t for t in net.traced_signals() if t.is_input}
        check_batch_stimulus(net, {n: t.type for n, t in inputs.items()}, stimulus, ticks)
        wanted = _output_signals(net, outputs)
        kinds = result_dtypes(wanted, dtypes)
        drivers = [(self.driver(inputs[n].bus), inputs[n].spec.name, _py_values(inputs[n], a))
                   for n, a in stimulus.items()]
        monitors = [(self.monitor(t.bus), t.spec.name) for t in wanted]
        results: list[list[Any]] = [[] for _ in wanted]
        for i in range(ticks):
            for drv, sig, values in drivers:
                setattr(drv, sig, values[i])
            self.step()
            for res, (mon, sig) in zip(results, monitors, strict=True):
                res.append(getattr(mon, sig))
        return {t.name: to_array(t, r).astype(kinds[t.name], copy=False)
                for t, r in zip(wanted, results, strict=True)}

    def close(self) -> None:
        """Release what the session holds (processes, files)."""


def check_batch_stimulus(
    net: Network, inputs: Mapping[str, SignalType], stimulus: Mapping[str, Any], ticks: int
) -> None:
    """Raise ``BackendError`` when ``stimulus`` names a signal that is not one of ``inputs``
    (the top-level input signals and their types), holds fewer than ``ticks`` values, a
    masked value (``check_unmasked``), values of another shape than one per tick
    (``check_shape``) or values that are not integers (batch values are raw integers: a
    float array is taken only when every value it holds is a whole number, so 1.5 is
    refused, never truncated to 1 — for a fixed-point input the raw value of 1.5 is
    ``1.5 * 2**frac``)."""
    for name, arr in stimulus.items():
        if name not in inputs:
            raise BackendError(
                f"run_batch: {name!r} is not a top-level input signal of '{net.name}'; "
                f"inputs: {', '.join(inputs) or '-'}"
            )
        values = np.asarray(arr)
        check_shape(name, inputs[name], values)
        if len(values) < ticks:
            raise BackendError(f"run_batch: stimulus {name!r} has {len(values)} values, "
                               f"need {ticks}")
        if np.ma.isMaskedArray(arr):
            check_unmasked(name, arr[:ticks])
        check_whole_values(name, values[:ticks])


def _output_signals(net: Network, names: list[str] | None) -> list[TracedSignal]:
    signals = net.traced_signals()
    if names is None:
        outs = set(net.outputs)
        return [t for t in signals if t.bus in outs]
    by_name = {t.name: t for t in signals}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise BackendError(f"no signal(s) {', '.join(missing)} in network '{net.name}'")
    return [by_name[n] for n in names]


def numpy_dtype(t: TracedSignal) -> np.dtype[Any]:
    """The numpy dtype that holds a signal's values in batch I/O (raw ints for fixed point,
    member codes for enums): int64, uint64 for 64-bit unsigned, Python ints (``object``)
    beyond 64 bits."""
    ty = t.type
    if isinstance(ty, BoolType):
        return np.dtype(np.bool_)
    el = ty.element if isinstance(ty, ArrayType) else ty
    if isinstance(el, BoolType):
        return np.dtype(np.bool_)
    signed = getattr(el, "signed", False)
    width = el.width
    if width > 64:
        return np.dtype(object)  # Python ints: more than 64 bits
    return np.dtype(np.int64 if signed or width < 64 else np.uint64)


def result_dtypes(wanted: list[TracedSignal], dtypes: Mapping[str, npt.DTypeLike] | None
                  ) -> dict[str, np.dtype[Any]]:
    """The dtype of each batch result: ``numpy_dtype``, or the one ``dtypes`` names for the
    signal — an integer dtype holding every raw value of the (integer or fixed-point)
    signal, e.g. ``{"packet.data": np.uint16}`` for ``Array[UInt[16], K]``: results a
    quarter the size of int64 ones, for a caller that keeps many."""
    kinds = {t.name: numpy_dtype(t) for t in wanted}
    for name, dt in (dtypes or {}).items():
        if name not in kinds:
            raise BackendError(f"run_batch: dtypes names {name!r}, not one of the outputs "
                               f"({', '.join(kinds) or '-'})")
        t = next(w for w in wanted if w.name == name)
        el = t.type.element if isinstance(t.type, ArrayType) else t.type
        rt = el.raw_type if isinstance(el, FixedType) else el
        try:
            kind = np.dtype(dt)
        except TypeError as exc:
            raise BackendError(f"run_batch: dtypes[{name!r}]: {exc}") from None
        if not isinstance(rt, IntegerType) or kind.kind not in "iu" \
                or not np.iinfo(kind).min <= rt.lo <= rt.hi <= np.iinfo(kind).max:
            raise BackendError(f"run_batch: dtypes[{name!r}] = {kind} cannot hold every value "
                               f"of {t.type!r}")
        kinds[name] = kind
    return kinds


def to_array(t: TracedSignal, values: list[Any]) -> np.ndarray:
    """Python values of one signal → numpy array (see ``numpy_dtype``)."""
    ty = t.type
    if isinstance(ty, EnumType):
        return np.array([ty.to_raw(v) for v in values], dtype=numpy_dtype(t))
    if isinstance(ty, FixedType):
        return np.array([v.raw for v in values], dtype=numpy_dtype(t))
    if isinstance(ty, ArrayType):
        el = ty.element
        conv = (lambda v: v.raw) if isinstance(el, FixedType) else (
            el.to_raw if isinstance(el, EnumType) else int)
        return np.array([[conv(x) for x in v] for v in values], dtype=numpy_dtype(t))
    return np.array(values, dtype=numpy_dtype(t))


def batch_rows(network: Network, stimulus: Mapping[str, np.ndarray],
               ticks: int | None = None) -> list[dict[str, Any]]:
    """Batch stimulus (``"bus.signal"`` → array, enums as member codes, fixed point raw,
    as ``run_batch`` takes it) as one ``{"bus.signal": value}`` mapping per tick, the form
    ``Simulator.run`` and the cocotb lock-step take. ``ticks`` defaults to the shortest
    array."""
    inputs = {t.name: t for t in network.traced_signals() if t.is_input}
    if ticks is None and not stimulus:
        raise BackendError(f"batch_rows: no stimulus arrays for '{network.name}', so the "
                           "number of ticks is unknown; pass ticks=")
    n = min(len(a) for a in stimulus.values()) if ticks is None else ticks
    check_batch_stimulus(network, {k: t.type for k, t in inputs.items()}, stimulus, n)
    columns = {name: _py_values(inputs[name], np.asarray(arr)[:n])
               for name, arr in stimulus.items()}
    return [{name: col[i] for name, col in columns.items()} for i in range(n)]


def _py_values(t: TracedSignal, arr: np.ndarray) -> list[Any]:
    ty = t.type
    if isinstance(ty, BoolType):  # any other number goes on to be refused, as in step mode
        return [bool(v) if v == 0 or v == 1 else int(v) for v in arr]
    if isinstance(ty, EnumType):
        return [ty.from_raw(int(v)) for v in arr]
    if isinstance(ty, FixedType):
        return [Fixed(int(v), ty.frac_bits) for v in arr]
    return [int(v) if np.ndim(v) == 0 else [int(x) for x in v] for v in arr]


class Backend(ABC):
    """A simulation engine behind ``Simulator``."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset({"step", "trace", "batch"})

    def check_available(self) -> None:
        """Raise ``BackendError`` saying what to install when the backend cannot run here."""

    @abstractmethod
    def prepare(self, network: Network, **options: Any) -> Build:
        """Elaborate ``network`` for this backend (generate code, commands); run nothing."""

    @abstractmethod
    def open(self, build: Build) -> Session:
        """Start a simulation of a prepared build, in its reset state."""


_REGISTRY: dict[str, Callable[[], Backend]] = {}


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Make a backend available to ``get_backend(name)``."""
    _REGISTRY[name] = factory


def _load_entry_points() -> None:
    for ep in metadata.entry_points(group="smeflow.backends"):
        if ep.name not in _REGISTRY:
            _REGISTRY[ep.name] = ep.load()


def backend_names() -> list[str]:
    """Names of every known backend."""
    _load_entry_points()
    return sorted(_REGISTRY)


def get_backend(name: str) -> Backend:
    """The backend called ``name``, checked to be available on this machine."""
    if name not in _REGISTRY:
        _load_entry_points()
    factory = _REGISTRY.get(name)
    if factory is None:
        raise BackendError(
            f"unknown simulation backend {name!r}; known backends: {', '.join(backend_names())}"
        )
    backend = factory()
    backend.check_available()
    return backend
