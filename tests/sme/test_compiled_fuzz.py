"""The compiled backend against the interpreter on the random process bodies of the VHDL
fuzz tests (``fpga.fuzz``, with ``max_bits=63`` so every value fits the backend's signed
64-bit integers): every traced signal, every tick.

numba needs ~1 s per random body to compile (and a 25-process network ~2 minutes), so the
bulk run (12 modules of 25 processes, 300 random bodies, 200 ticks each) executes the
generated code with numba's ``njit`` replaced by the identity: the translation (IR, ranges,
checks, wrap/saturate/resize, scheduling, latching) is what is compared, on numpy int64
values as in compiled code. A few small modules are compiled with numba for real (seeded
and hypothesis-drawn), which covers numba's own integer semantics.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import sme.compiled.session
from fpga.fuzz import load_module, module_source, process_modules, stimulus_strategy
from fpga.stimulus import random_stimulus
from sme import Bus, Fixed, In, Network, Out, Process, SFix, Simulator, wrap

MAX_BITS = 63
MODULES = range(12)
PROCESSES = 25
TICKS = 200


pytestmark = pytest.mark.usefixtures("compiled_cache")


def _njit(*args: Any, **kwargs: Any) -> Any:
    def plain(f: Any) -> Any:
        f.overloads = {}  # what the session looks at on a numba dispatcher
        return f

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return plain(args[0])
    return plain


_loaded = 0


def _load_without_jit(source: str, cache_dir: Any = None) -> types.ModuleType:
    """The generated module executed as plain Python (``njit`` does nothing)."""
    global _loaded
    _loaded += 1
    module = types.ModuleType(f"smeflow_sim_nojit_{_loaded}")
    fake = types.ModuleType("numba")
    fake.njit = _njit  # type: ignore[attr-defined]
    saved = sys.modules.get("numba")
    sys.modules["numba"] = fake
    try:
        exec(compile(source, module.__name__, "exec"), module.__dict__)
    finally:
        if saved is not None:
            sys.modules["numba"] = saved
    return module


@pytest.fixture
def no_jit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sme.compiled.session, "load_module", _load_without_jit)


def _compare(build: Callable[[], Network], stimulus: list[dict[str, Any]],
             where: str) -> None:
    ref = Simulator(build())
    ref.run(stimulus=stimulus)
    got = Simulator(build(), backend="compiled")
    got.run(stimulus=stimulus)
    assert ref.trace is not None and got.trace is not None
    assert got.trace.names == ref.trace.names
    assert len(got.trace.rows) == len(ref.trace.rows) == len(stimulus) + 1  # + reset row
    diff = ref.trace.first_difference(got.trace)
    assert diff is None, f"{diff} ({where})"


@pytest.mark.parametrize("seed", MODULES)
def test_random_bodies_compiled_equals_interpreter(seed: int, tmp_path: Path,
                                                   no_jit: None) -> None:
    source = module_source(seed, PROCESSES, max_bits=MAX_BITS)
    module = load_module(source, tmp_path, f"cfuzz_seed_{seed}")
    stimulus = list(random_stimulus(module.build(), TICKS, seed))
    _compare(module.build, stimulus, f"module in {tmp_path}")


@pytest.mark.parametrize("seed", [100])
def test_random_bodies_numba(seed: int, tmp_path: Path) -> None:
    source = module_source(seed, 3, max_bits=MAX_BITS)
    module = load_module(source, tmp_path, f"cfuzz_numba_{seed}")
    stimulus = list(random_stimulus(module.build(), TICKS, seed))
    _compare(module.build, stimulus, f"module in {tmp_path}")


@settings(max_examples=3, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(source=process_modules(processes=1, max_bits=MAX_BITS), data=st.data())
def test_random_bodies_hypothesis(source: str, data: st.DataObject,
                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    module = load_module(source, tmp_path_factory.mktemp("cfuzz"))
    stimulus = data.draw(stimulus_strategy(module.build(), 1, 60))
    _compare(module.build, stimulus, "hypothesis module")


@settings(max_examples=15, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
@given(source=process_modules(processes=10, max_bits=MAX_BITS), data=st.data())
def test_random_bodies_hypothesis_without_jit(source: str, data: st.DataObject,
                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sme.compiled.session, "load_module", _load_without_jit)
        module = load_module(source, tmp_path_factory.mktemp("cfuzz"))
        stimulus = data.draw(stimulus_strategy(module.build(), 1, TICKS))
        _compare(module.build, stimulus, "hypothesis module")


def test_bounded_generator_fits_the_compiled_backend() -> None:
    """``max_bits=63`` never makes a ``UInt[64]`` nor a wider intermediate value."""
    for seed in range(20):
        source = module_source(seed, PROCESSES, max_bits=MAX_BITS)
        assert "UInt[64]" not in source
    assert module_source(3, 5) == module_source(3, 5, max_bits=None)


# -- reductions of differences the fuzzing found ------------------------------------------
class FixIn(Bus):
    fx: SFix[2, 3] = SFix[2, 3](Fixed(-16, 3))


class FixOut(Bus):
    y0: SFix[2, 12] = SFix[2, 12](Fixed(-8192, 12))


class AbsOfFixed(Process):
    """abs() of a fixed-point value whose range is narrower than its fraction bits: the
    compiled backend crashed naming the range's type (``UFix[-1, 6]``)."""

    inp: In[FixIn]
    out: Out[FixOut]

    def on_tick(self) -> None:
        self.out.y0 = wrap(abs(self.inp.fx >> 3), rounding="floor")


def test_abs_of_narrow_fixed_point() -> None:
    def build() -> Network:
        inp = FixIn()
        return Network("absfix", [AbsOfFixed(inp=inp, out=FixOut())], inputs=[inp])

    stimulus = [{"fix_in.fx": Fixed(raw, 3)} for raw in range(-16, 16)]
    _compare(build, stimulus, "abs of fixed point")
