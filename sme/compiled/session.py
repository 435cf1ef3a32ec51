"""The compiled backend: ``Simulator(net, backend="compiled")``.

``prepare`` lowers the network and generates the module source (pure); ``open`` imports
it through the on-disk cache (compiling it with numba the first time) and starts a
session. Batch runs (``run_batch``) execute the whole tick loop in compiled code; ``step``
runs one tick through the same function, so interactive testbenches and traces work as
with the interpreter. A failed run-time check is re-raised as the exception the
interpreter raises, with the same message and tick. After such an error the scalar state
is that of the start of the failing call (``step``: the start of the failing tick); array
elements may hold writes made before the check failed (a bus stored in place among them),
so the state is not the interpreter's: the session can still be read (``peek``), but a
further tick or batch raises ``SimulationError`` saying so instead of going on from it
(``STOPPED``, set in the workspace, stops ``step(W)`` itself, which testbenches call
directly).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from ..backend import (
    Backend,
    Build,
    Session,
    _output_signals,
    check_batch_stimulus,
    result_dtypes,
)
from ..buffers import ResultBuffers
from ..bus import Bus, SignalSpec, convert_for
from ..errors import (
    BackendError,
    SimulationError,
    SmeError,
)
from ..interp import _annotate
from ..native import NativeFunction
from ..network import Network
from ..trace import UNDEFINED
from ..types import (
    ArrayType,
)
from .batch_io import (
    AsIsStimulus,
    BatchPlan,
    dummy_input,
    first_unfit,
    is_bool_signal,
    pack_stimulus,
    py_input,
    py_of_type,
    scratch_buffer,
    signal_columns,
)
from .cache import load_module
from .codegen import STOPPED, Generated, generate
from .failures import site_error
from .layout import ArraySlot, SignalPlace, raw
from .views import bus_view, rows_from_raw, snapshot_function

RAW_A_MAX = 1024
"""Trace rows are kept as raw copies of the state when ``A`` has at most this many words
(bigger memories would make the per-tick copy cost more than the Python row)."""


@dataclass
class CompiledBuild(Build):
    """The generated module source and the state layout of one network."""

    generated: Generated | None = None
    cache_dir: str | os.PathLike[str] | None = None
    module: ModuleType | None = field(default=None, repr=False)

    @property
    def source(self) -> str:
        """The generated Python source (what numba compiles), for reading and debugging."""
        assert self.generated is not None
        return self.generated.source


class CompiledBackend(Backend):
    """Flattens the network into one function compiled to machine code by numba.

    Options: ``checks`` (default True: a value that does not fit its signal raises the
    interpreter's ``SignalValueError``; False skips those range checks for speed once a
    design is verified) and ``cache_dir`` (default ``$SMEFLOW_CACHE_DIR`` or
    ``~/.cache/smeflow``).
    """

    name = "compiled"

    def check_available(self) -> None:
        try:
            import numba  # noqa: F401
        except ImportError as exc:
            raise BackendError(f"the compiled backend needs numba ({exc}); install it with "
                               "`pip install numba` (it is a dependency of smeflow)") from None

    def prepare(self, network: Network, **options: Any) -> Build:
        checks = options.pop("checks", True)
        cache_dir = options.pop("cache_dir", None)
        if options:
            raise TypeError("the compiled backend takes the options checks= and cache_dir=, "
                            f"not {', '.join(options)}")
        gen = generate(network, checks=bool(checks))
        return CompiledBuild(network, {"checks": bool(checks)}, gen, cache_dir)

    def open(self, build: Build) -> Session:
        assert isinstance(build, CompiledBuild) and build.generated is not None
        if build.module is None:
            build.module = load_module(build.generated.source, build.cache_dir)
        return CompiledSession(build)


class CompiledSession(Session):
    """A running compiled simulation."""

    def __init__(self, build: Build) -> None:
        assert isinstance(build, CompiledBuild) and build.generated and build.module
        gen = build.generated
        self.layout = lay = gen.layout
        self._run = build.module.run
        self.wide = gen.wide
        self._int = object if gen.wide else np.int64  # Python ints in wide mode
        self._in1 = [dummy_input(p.signal.type, self.wide) for p in lay.inputs]
        self.M = lay.new_memories()  # the big register arrays, each its own (layout.py)
        ws = self._ws = gen.workspace
        if ws is None:  # wide: Python ints, the generated functions run uncompiled
            self.S = np.array(lay.s_init, dtype=object)
            self.A = np.array(lay.a_init or [0], dtype=object)
            self.E = np.zeros(8, dtype=object)
            self._ticks: Any = [0]
            self._lean: Callable[[], Any] = self._wide_step
        else:  # everything in one array W: step(W) is the cheapest call per tick
            self.W = ws.new(lay)
            self.S, self.A = self.W[ws.s:ws.a], self.W[ws.a:ws.e]
            self.E = self.W[ws.e:ws.e + 8]
            self._ticks = self.W[ws.tick:ws.tick + 1].data  # item access gives Python ints
            # the compiled entry point itself (skips the dispatcher's type matching)
            step = build.module.step
            if isinstance(step, NativeFunction):  # (its types matched once, here)
                self._lean = step.bind(self.W, *self.M)
            else:
                overloads = list(getattr(step, "overloads", {}).values())
                entry = overloads[0].entry_point if len(overloads) == 1 else step
                self._lean = functools.partial(entry, self.W, *self.M)
        super().__init__(build)  # sets tick = 0
        self._places = {(p.signal.bus, p.signal.spec.name): p for p in lay.places}
        self._drivers: dict[Bus, Any] = {}
        self._monitors: dict[Bus, Any] = {}
        self._snapshot = snapshot_function(self)
        self._inputs_by_name = {p.signal.name: (p, k) for k, p in enumerate(lay.inputs)}
        self._input_types = {p.signal.name: p.signal.type for p in lay.inputs}
        self._plans: dict[Any, BatchPlan] = {}
        self._last_plan: tuple[Any, Any, Any, Any, BatchPlan] | None = None
        self._drv: dict[tuple[int, ...], np.ndarray] = {}
        self._as_is = AsIsStimulus({p.signal.name: (p.signal.type, k)
                                    for k, p in enumerate(lay.inputs)}, self.wide)
        self._results = ResultBuffers()
        self._stopped: str | None = None
        """The failed check the session stopped on (see the module docstring)."""
        try:
            build.module.reset(self.S, self.A, *self.M, self.E)
        except RuntimeError:
            self._raise(0)

    @property
    def tick(self) -> int:
        """Ticks simulated so far (kept in the workspace, where ``step(W)`` counts)."""
        return int(self._ticks[0])

    @tick.setter
    def tick(self, value: int) -> None:
        self._ticks[0] = value

    # -- errors ----------------------------------------------------------------------
    def _raise(self, tick_base: int) -> None:
        if self._stopped is not None:
            raise SimulationError(
                f"the compiled simulation stopped on a failed check ({self._stopped}); the "
                "state it stopped in is not the interpreter's (writes of the failing tick "
                "stay in arrays), so it does not go on from it: build a new Simulator, or "
                "use backend='interp' to continue past errors") from None
        site_no, value, tick, index = (int(x) for x in self.E[:4])
        if site_no <= 0:
            raise BackendError("the compiled simulation failed without saying where")
        site = self.layout.sites[site_no - 1]
        exc = site_error(self.network, site, value, index)
        if isinstance(exc, SmeError) and site.what not in ("undefined_tb",):
            _annotate(exc, tick)
        self._stopped = f"{type(exc).__name__} at tick {tick}"
        self.E[STOPPED] = 1
        raise exc from None

    # -- stepping --------------------------------------------------------------------
    def step(self) -> None:
        try:
            self._lean()
        except RuntimeError:
            self._raise(self.tick)

    def lean_step(self) -> Callable[[], Any]:
        return self._lean

    def raw_snapshot(self) -> tuple[Callable[[], Any],
                                    Callable[[list[Any]], list[tuple[Any, ...]]]] | None:
        """The bytes of ``S`` and ``A`` (one copy per tick, no Python value made), when the
        state is int64 and ``A`` is small; ``views.rows_from_raw`` converts them."""
        ws = self._ws
        if ws is None or ws.e - ws.a > RAW_A_MAX:
            return None
        return self.W[:ws.e].tobytes, functools.partial(rows_from_raw, self)

    def step_failed(self, exc: BaseException) -> None:
        if isinstance(exc, RuntimeError):
            self._raise(self.tick)
        raise exc

    def _wide_step(self) -> None:
        """One tick on Python ints (wide mode: the generated ``run`` runs uncompiled)."""
        if self._stopped is not None:
            raise RuntimeError("smeflow: stopped on a failed check")
        drv = np.zeros(max(1, len(self.layout.inputs)), dtype=np.int64)
        rec = np.full(len(self.layout.places) + 1, -1, dtype=np.int64)
        rec[-1] = 0
        self._run(self.S, self.A, *self.M, *self._in1, drv, np.zeros((1, 1), dtype=object),
                  np.zeros((1, 1), dtype=np.bool_), np.zeros((1, 1), dtype=np.uint16), rec, 1,
                  self.tick, self.E)
        self.tick += 1

    def value(self, place: SignalPlace) -> Any:
        """The current Python value of a traced signal (``UNDEFINED`` when it has none)."""
        if place.d_index >= 0 and not self.S[place.d_index]:
            return UNDEFINED
        st = place.storage
        t = place.signal.type
        if isinstance(st, ArraySlot):
            assert isinstance(t, ArrayType)
            el = t.element
            return tuple(py_of_type(el, int(v)) for v in self.A[st.offset:st.offset + st.length])
        return py_of_type(t, int(self.S[place.s_index]))

    def snapshot(self) -> tuple[Any, ...]:
        return self._snapshot()  # type: ignore[no-any-return]

    def driver(self, bus: Bus) -> Any:
        self.require_input(bus)
        view = self._drivers.get(bus)
        if view is None:
            view = self._drivers[bus] = bus_view(self, bus, drive=True)
        return view

    def monitor(self, bus: Bus) -> Any:
        view = self._monitors.get(bus)
        if view is None:
            view = self._monitors[bus] = bus_view(self, bus, drive=False)
        return view

    def poke(self, bus: Bus, spec: SignalSpec, value: Any) -> None:
        """Store a checked testbench value into a top-level input."""
        v = convert_for(bus.name, spec, value, "the testbench")
        place = self._places[bus, spec.name]
        st = place.storage
        if isinstance(st, ArraySlot):
            assert isinstance(spec.type, ArrayType)
            self.A[st.offset:st.offset + st.length] = [raw(spec.type.element, x) for x in v]
        else:
            self.S[place.s_index] = raw(spec.type, v)
        if place.d_index >= 0:
            self.S[place.d_index] = 1

    # -- batch -----------------------------------------------------------------------
    def _driven(self, slots: tuple[int, ...]) -> np.ndarray:
        """The loop's ``drv`` flags for a batch driving the inputs in ``slots``: made once
        per set of inputs and kept (the loop only reads it)."""
        drv = self._drv.get(slots)
        if drv is None:
            drv = np.zeros(max(1, len(self.layout.inputs)), dtype=np.int64)
            drv[list(slots)] = 1
            if len(self._drv) < 64:
                self._drv[slots] = drv
        return drv

    def _plan(self, outputs: list[str] | None,
              dtypes: Mapping[str, npt.DTypeLike] | None) -> BatchPlan:
        """What ``run_batch`` records and returns for these ``outputs`` and ``dtypes``:
        made once per combination and kept (a detector board runs the same batch call for
        every acquisition; making it anew cost about a tenth of a P6M module's run). The
        last call's arguments are recognised first, by identity and equal contents (the
        key's sorting and dtype names were a tenth of a 512×512 frame's Python)."""
        last = self._last_plan
        if last is not None and outputs is last[0] and dtypes is last[2] \
                and outputs == last[1] and dtypes == last[3]:
            return last[4]
        plan = self._find_plan(outputs, dtypes)
        self._last_plan = (outputs, None if outputs is None else list(outputs), dtypes,
                           None if dtypes is None else dict(dtypes), plan)
        return plan

    def _find_plan(self, outputs: list[str] | None,
                   dtypes: Mapping[str, npt.DTypeLike] | None) -> BatchPlan:
        """``_plan``'s plan from those kept, or made and kept."""
        try:
            key: Any = (None if outputs is None else tuple(outputs),
                        None if dtypes is None else
                        tuple(sorted((str(n), np.dtype(d).str) for n, d in dtypes.items())))
            found = self._plans.get(key)
        except (TypeError, ValueError):  # not a dtype: result_dtypes says what is wrong
            key, found = None, None
        if found is not None:
            return found
        net, lay = self.network, self.layout
        wanted = _output_signals(net, outputs)
        kinds = result_dtypes(wanted, dtypes)
        places = {p.signal.name: (k, p) for k, p in enumerate(lay.places)}
        rec = np.full(len(lay.places) + 1, -1, dtype=np.int64)
        rows = {"i": 0, "b": 0, "h": 0}
        outs = set(net.outputs)
        other = False
        columns = []
        for t in wanted:
            k, p = places[t.name]
            # Bools into OUTB; numbers asked for as uint16 (every value fits, result_dtypes
            # made sure) straight into OUTH, column c as -2 - c in rec; the rest into OUTI
            out = "b" if is_bool_signal(t.type) else \
                "h" if kinds[t.name] == np.uint16 and not self.wide else "i"
            r = rows[out]
            rec[k] = -2 - r if out == "h" else r
            rows[out] += signal_columns(p)
            other = other or t.bus not in outs
            length = p.storage.length if isinstance(p.storage, ArraySlot) else -1
            columns.append((t.name, r, length, out, kinds[t.name]))
        rec[-1] = int(other)
        narrow = all(out != "i" or kind != self._int for _, _, _, out, kind in columns)
        plan = BatchPlan(rec, rows["i"], rows["b"], rows["h"], narrow, columns)
        if key is not None and len(self._plans) < 64:
            self._plans[key] = plan
        return plan

    def _stop_at(self, values: Mapping[str, np.ndarray], tick: int,
                 outputs: list[str] | None) -> NoReturn:
        """Run the batch's ticks before ``tick``, then store its inputs at ``tick`` as a
        step does, raising the error the interpreter's batch raises for a value the loop
        cannot take (see ``first_unfit``)."""
        if tick:
            self.run_batch({n: v[:tick] for n, v in values.items()}, tick, outputs)
        for name, v in values.items():
            place, _ = self._inputs_by_name[name]
            self.poke(place.signal.bus, place.signal.spec, py_input(place.signal.type, v[tick]))
        raise BackendError(f"run_batch: an input at tick {tick} cannot be packed for the "
                           "compiled loop but the testbench accepts it")

    def run_batch(
        self, stimulus: Mapping[str, np.ndarray], ticks: int, outputs: list[str] | None = None,
        dtypes: Mapping[str, npt.DTypeLike] | None = None,
    ) -> dict[str, np.ndarray]:
        lay = self.layout
        by_name = self._inputs_by_name
        ins: list[np.ndarray] = list(self._in1)
        as_is = self._as_is.take(stimulus, ticks)
        if as_is is None:  # checked and packed; an unfit value raises the testbench's error
            drv = np.zeros(max(1, len(lay.inputs)), dtype=np.int64)
            check_batch_stimulus(self.network, self._input_types, stimulus, ticks)
            values = {name: np.asarray(arr)[:ticks] for name, arr in stimulus.items()}
            unfit = [u for name, v in values.items()
                     if (u := first_unfit(self._input_types[name], v, self.wide)) is not None]
            if unfit:
                self._stop_at(values, min(unfit), outputs)
            for name, arr in values.items():
                place, k = by_name[name]
                ins[k] = pack_stimulus(place.signal.type, arr, self.wide)
                drv[k] = 1
            self._as_is.remember(stimulus)
        else:
            for k, arr in as_is:
                ins[k] = arr
            drv = self._driven(tuple(k for k, _ in as_is))
        plan = self._plan(outputs, dtypes)
        rec = plan.rec
        # one row per tick, one column per signal (array element): a word of many lanes is
        # one contiguous store per tick, and an array signal's result is these rows (no
        # transpose). When every number comes out narrower than int64 (``dtypes``), the
        # results are copies and OUTI is this thread's reused buffer; else results may be
        # views of a fresh OUTI.
        shape_i = (max(ticks, 1) if plan.rows_i else 1, max(plan.rows_i, 1))
        OUTI = scratch_buffer(shape_i, self._int) if plan.narrow else np.empty(shape_i, self._int)
        # Bools the other way round, a row per signal: a scalar's result is its row of
        # this fresh array, no copy (strided one-byte copies were half the Python of a
        # P6M module's call)
        OUTB = np.empty((max(plan.rows_b, 1), max(ticks, 1) if plan.rows_b else 1),
                        dtype=np.bool_)
        # One uint16 result (a detector's packet words) is recorded into an array of its
        # own, returned as it is (copying the packet words was 7 % of a P6M module's
        # run), in memory of an earlier run that no array uses any more (fresh memory
        # each run was a fifth of it in page faults); several are copied out of this
        # thread's reused buffer (below).
        own_h = plan.own_h
        OUTH = self._results.take((max(ticks, 1), plan.rows_h), np.uint16) if own_h else \
            scratch_buffer((max(ticks, 1) if plan.rows_h else 1, max(plan.rows_h, 1)),
                           np.uint16, "outh")
        if self._stopped is not None:
            self._raise(self.tick)
        self.E[:] = 0
        try:
            done = int(self._run(self.S, self.A, *self.M, *ins, drv, OUTI, OUTB, OUTH, rec,
                                 ticks, self.tick, self.E))
        except RuntimeError:
            self._raise(self.tick)
        self.tick += done
        if done < ticks:  # an input value that does not fit: the testbench's error
            site = self.layout.sites[int(self.E[0]) - 1]
            name = f"{site.owner}.{site.signal}"
            place, _ = by_name[name]
            self.poke(place.signal.bus, place.signal.spec,
                      py_input(place.signal.type, np.asarray(stimulus[name])[done]))
            raise BackendError(f"run_batch: input {name} at tick {done} stopped the run "
                               "but the testbench accepts it")
        result: dict[str, np.ndarray] = {}
        outs = {"i": OUTI, "b": OUTB, "h": OUTH}
        for name, r, length, which, kind in plan.columns:
            out = outs[which]
            if which == "b":
                result[name] = OUTB[r, :ticks] if length < 0 else \
                    np.ascontiguousarray(OUTB[r:r + length, :ticks].T)
                continue
            got = out[:ticks, r] if length < 0 else out[:ticks, r:r + length]
            result[name] = (got if own_h else np.array(got, dtype=kind)) if which == "h" else \
                np.ascontiguousarray(got, dtype=kind)
        return result
