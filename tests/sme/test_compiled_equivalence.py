"""The compiled backend against the interpreter: every traced signal, every tick.

Every example (``sme.examples.*`` with ``build``/``stimulus``) and every shipped design
(``fpga.designs.*``, when present) runs on both backends with its own stimulus and with
hypothesis-generated stimulus; traces must be equal. Errors must be the interpreter's:
same class, message and tick.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sme.examples
from sme import Network, Simulator, SmeError
from sme.compiled.codegen import generate
from sme.network import TracedSignal
from sme.types import ArrayType, BoolType, EnumType, Fixed, FixedType, IntegerType, SignalType

from . import _compiled_nets as nets

pytestmark = pytest.mark.usefixtures("compiled_cache")


def _design_modules() -> list[ModuleType]:
    found = []
    packages: list[ModuleType] = [sme.examples]
    with contextlib.suppress(ImportError):
        packages.append(importlib.import_module("fpga.designs"))
    for pkg in packages:
        for info in pkgutil.iter_modules(pkg.__path__):
            mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
            if callable(getattr(mod, "build", None)) and callable(getattr(mod, "stimulus", None)):
                found.append(mod)
    return found


DESIGNS = _design_modules()
NETWORKS: list[tuple[str, Callable[[], Network], Callable[..., Iterator[Any]]]] = [
    (m.__name__, m.build, m.stimulus) for m in DESIGNS
] + [("fsm", nets.build_fsm, nets.fsm_stimulus)]


def _both(build: Callable[[], Network], stimulus: list[dict[str, Any]],
          **options: Any) -> tuple[Simulator, Simulator]:
    ref = Simulator(build())
    ref.run(stimulus=stimulus)
    got = Simulator(build(), backend="compiled", **options)
    got.run(stimulus=stimulus)
    return ref, got


def _assert_same(ref: Simulator, got: Simulator) -> None:
    assert ref.trace is not None and got.trace is not None
    assert got.trace.names == ref.trace.names
    assert ref.trace.differences(got.trace) == []
    assert len(got.trace.rows) == len(ref.trace.rows)


def test_examples_are_found() -> None:
    names = {m.__name__ for m in DESIGNS}
    assert {"sme.examples.counter", "sme.examples.pipeline"} <= names


@pytest.mark.parametrize(("name", "build", "stimulus"), NETWORKS, ids=[n[0] for n in NETWORKS])
def test_design_equivalent(name: str, build: Callable[[], Network],
                           stimulus: Callable[..., Iterator[Any]]) -> None:
    ref, got = _both(build, list(stimulus()))
    _assert_same(ref, got)


@pytest.mark.parametrize(("name", "build", "stimulus"), NETWORKS, ids=[n[0] for n in NETWORKS])
def test_design_equivalent_without_checks(name: str, build: Callable[[], Network],
                                          stimulus: Callable[..., Iterator[Any]]) -> None:
    ref, got = _both(build, list(stimulus()), checks=False)
    _assert_same(ref, got)


def _values(t: SignalType) -> st.SearchStrategy[Any]:
    if isinstance(t, BoolType):
        return st.booleans()
    if isinstance(t, IntegerType):
        return st.integers(t.lo, t.hi)
    if isinstance(t, FixedType):
        return st.builds(Fixed, st.integers(t.raw_type.lo, t.raw_type.hi), st.just(t.frac_bits))
    if isinstance(t, EnumType):
        return st.sampled_from(t.members)
    if isinstance(t, ArrayType):
        return st.lists(_values(t.element), min_size=t.length, max_size=t.length)
    raise TypeError(t)


def _stimulus(inputs: list[TracedSignal]) -> st.SearchStrategy[list[dict[str, Any]]]:
    tick = st.fixed_dictionaries({s.name: _values(s.type) for s in inputs})
    return st.lists(tick, min_size=1, max_size=60)


@pytest.mark.parametrize(("name", "build", "stimulus"), NETWORKS, ids=[n[0] for n in NETWORKS])
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_stimulus_equivalent(name: str, build: Callable[[], Network],
                                    stimulus: Callable[..., Any], data: st.DataObject) -> None:
    inputs = [s for s in build().traced_signals() if s.is_input]
    stim = data.draw(_stimulus(inputs))
    ref = Simulator(build())
    got = Simulator(build(), backend="compiled")
    for sim in (ref, got):
        try:
            sim.run(stimulus=stim)
        except SmeError as exc:  # a design may reject some inputs: then both must
            sim.error = exc  # type: ignore[attr-defined]
    ref_err, got_err = getattr(ref, "error", None), getattr(got, "error", None)
    assert type(ref_err) is type(got_err)
    assert str(ref_err) == str(got_err)
    _assert_same(ref, got)


def _batch_stimulus(net: Network, ticks: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for s in net.traced_signals():
        if not s.is_input:
            continue
        t = s.type
        el = t.element if isinstance(t, ArrayType) else t
        shape = (ticks, t.length) if isinstance(t, ArrayType) else (ticks,)
        if isinstance(el, BoolType):
            out[s.name] = rng.integers(0, 2, shape).astype(bool)
        elif isinstance(el, EnumType):
            out[s.name] = rng.integers(0, len(el.members), shape)
        else:
            rt = el.raw_type if isinstance(el, FixedType) else el
            assert isinstance(rt, IntegerType)
            wide = rt.hi > np.iinfo(np.int64).max  # a UInt[64] signal: uint64 stimulus
            out[s.name] = rng.integers(rt.lo, rt.hi, shape, endpoint=True,
                                       dtype=np.uint64 if wide else np.int64)
    return out


@pytest.mark.parametrize(("name", "build", "stimulus"), NETWORKS, ids=[n[0] for n in NETWORKS])
def test_run_batch_equivalent(name: str, build: Callable[[], Network],
                              stimulus: Callable[..., Any]) -> None:
    net = build()
    every = [s.name for s in net.traced_signals()]
    stim = _batch_stimulus(net, 500, seed=len(name))
    try:
        ref: dict[str, np.ndarray] | SmeError = Simulator(build()).run_batch(stim, 500, every)
    except SmeError as exc:
        ref = exc
    sim = Simulator(build(), backend="compiled")
    if isinstance(ref, SmeError):
        with pytest.raises(type(ref)) as info:
            sim.run_batch(stim, 500, every)
        assert str(info.value) == str(ref)
        return
    got = sim.run_batch(stim, 500, every)
    assert list(got) == list(ref)
    for key in ref:
        assert got[key].dtype == ref[key].dtype, key
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    assert sim.tick == 500


def test_pipeline_batch_figures() -> None:
    from sme.examples import pipeline

    i = np.arange(100_000, dtype=np.int64)
    u = (i * 40503 + 12345) & 0xFFFF
    stim = {"samples.x": np.where(u >= 32768, u - 65536, u), "samples.x_valid": i % 8 != 7}
    out = Simulator(pipeline.build(), backend="compiled", trace=False).run_batch(stim, 100_000)
    valid = out["sum_out.sum_valid"]
    assert int(valid.sum()) == pipeline.EXPECTED_VALID_COUNT
    assert int(out["sum_out.sum_out"][valid].sum()) == pipeline.EXPECTED_VALID_SUM


# -- errors are the interpreter's --------------------------------------------------------
def _error_of(sim: Simulator, stim: list[dict[str, Any]]) -> BaseException:
    with pytest.raises((SmeError, IndexError, ZeroDivisionError, ValueError)) as info:
        sim.run(stimulus=stim)
    return info.value


@pytest.mark.parametrize("cls", [nets.Overflowing, nets.Indexing, nets.Undefined,
                                 nets.Dividing, nets.Resizing])
def test_errors_match(cls: type) -> None:
    stim = [{"num.v": 200, "num.i": (k * 3 + 1) % 8} for k in range(20)]
    ref = _error_of(Simulator(nets.single(cls)), stim)
    got = _error_of(Simulator(nets.single(cls), backend="compiled"), stim)
    assert type(got) is type(ref)
    assert str(got) == str(ref)
    assert getattr(got, "tick", None) == getattr(ref, "tick", None)
    assert getattr(got, "__notes__", None) == getattr(ref, "__notes__", None)


def test_overflow_message_names_the_tick() -> None:
    sim = Simulator(nets.single(nets.Overflowing), backend="compiled")
    with pytest.raises(SmeError, match=r"overflowing\.acc: cannot store 1200 .* \(tick 5\)"):
        sim.run(stimulus=[{"num.v": 200}] * 10)


def test_checks_off_skips_overflow_checks() -> None:
    sim = Simulator(nets.single(nets.Overflowing), backend="compiled", checks=False)
    sim.run(stimulus=[{"num.v": 200}] * 10)  # no error: the check is off
    assert sim.tick == 10


def test_bad_input_is_the_testbench_error() -> None:
    net_ref, net_got = nets.single(nets.Overflowing), nets.single(nets.Overflowing)
    stim = {"num.v": np.array([1, 2, 300, 4])}
    with pytest.raises(SmeError) as ref:
        Simulator(net_ref).run_batch(stim, 4)
    sim = Simulator(net_got, backend="compiled")
    with pytest.raises(SmeError) as got:
        sim.run_batch(stim, 4)
    assert str(got.value) == str(ref.value)
    assert sim.tick == 2  # the ticks before the bad value ran
    with pytest.raises(SmeError, match="cannot store 300"):
        sim.poke("num.v", 300)


def test_undefined_at_reset_matches() -> None:
    def build() -> Network:
        acc = nets.Acc()
        return Network("u", [nets.Undefined(inp=nets.Num(), out=acc)])

    errors = []
    for backend in ("interp", "compiled"):
        sim = Simulator(build(), backend=backend)
        with pytest.raises(SmeError) as info:
            sim.run(stimulus=[{"num.i": 3}])
        errors.append((type(info.value), str(info.value), info.value.__notes__))
    assert errors[0] == errors[1]
    assert "register undefined.r has no initial value" in errors[0][1]


def test_wide_intermediate_runs_exactly_on_python_ints() -> None:
    a = 2**32 - 5  # a**3 needs 96 bits
    traces = []
    for backend in ("interp", "compiled"):
        net = Network("wide", [nets.Wide(inp=nets.Num(), out=nets.Acc(), a=a)])
        sim = Simulator(net, backend=backend)
        traces.append(sim.run(3))
        assert sim.peek("acc.total") == a**3 % 2**10
    assert traces[0] is not None and traces[1] is not None
    assert traces[0].first_difference(traces[1]) is None
    assert generate(nets.single(nets.Wide)).wide            # Python ints, not int64
    assert not generate(nets.single(nets.Overflowing)).wide


def test_wide_network_reads_constant_tables_as_python_ints() -> None:
    """A table read in a wide network stays a Python int. It was an ``np.int64``: XOR
    with a 64-bit unsigned value raised OverflowError, and ``TABLE[i] << 100`` wrapped
    to 0 silently (the AES-256 example's S-box beside its 64-bit words)."""
    stimulus = [{"num.v": v} for v in (3, 1, 7, 0)]
    net = nets.single(nets.WideTable)
    assert generate(net).wide
    ref, got = _both(lambda: nets.single(nets.WideTable), stimulus)
    _assert_same(ref, got)
    big = (2**64 - 1) ^ 200 ^ 2 ^ 200 ^ 1  # the table words of v % 4 = 3, 1, 3, 0
    assert got.peek("acc.total") == (big + 1) % 1024 == 1021  # + TABLE[0] << 100 >> 100


def test_unknown_option() -> None:
    with pytest.raises(TypeError, match="checks= and cache_dir="):
        Simulator(nets.single(nets.Overflowing), backend="compiled", fast=True)


def test_step_mode_views() -> None:
    net = nets.build_fsm()
    sim = Simulator(net, backend="compiled", trace=False)
    ctl = sim.input("ctl")
    ctl.go = True
    ctl.level = 90
    sim.step(3)
    assert sim.peek("stat.mode") is nets.Mode.HOLD
    assert sim.output("stat").count == 1
    assert sim.output("stat").hist == (1, 0, 0, 0)
    with pytest.raises(SmeError, match="not a top-level input"):
        sim.input("stat")


def test_source_is_readable(tmp_path: Path) -> None:
    sim = Simulator(nets.build_fsm(), backend="compiled", cache_dir=tmp_path)
    src = sim.build.source  # type: ignore[attr-defined]
    assert "def run(" in src and "# process fsm (state machine)" in src
