"""Compiled simulations served from their natively built module (``sme.compiled.cache``
with ``sme.native``): the interpreter's results in batch and step mode, and a process
that simulates from it never builds numba's compiler."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sme import Simulator
from sme.compiled.cache import native_group
from sme.examples import pipeline
from sme.native import NativeFunction
from sme.native_build import build_native

TICKS = 3000


def _batch(sim: Simulator) -> dict[str, np.ndarray]:
    return sim.run_batch({"samples.x": pipeline.sample_x, "samples.x_valid": pipeline.sample_valid},
                         TICKS, outputs=["sum_out.sum_out", "sum_out.sum_valid"])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder with the pipeline's simulation compiled, then built natively."""
    cache = tmp_path_factory.mktemp("native-sim")
    sim = Simulator(pipeline.build(), backend="compiled", trace=False, cache_dir=cache)
    assert not isinstance(sim.session.build.module.run, NativeFunction)  # type: ignore[attr-defined]
    _batch(sim)
    sim.run(stimulus=pipeline.stimulus(10))  # step mode: the JIT's step
    group = native_group(sim.session.build.source, cache)  # type: ignore[attr-defined]
    (result,) = build_native([group])
    assert result.error is None and result.built and result.exports == 3
    return cache


def test_native_simulation_is_the_interpreters(built: Path) -> None:
    sim = Simulator(pipeline.build(), backend="compiled", trace=False, cache_dir=built)
    module = sim.session.build.module  # type: ignore[attr-defined]
    assert all(isinstance(getattr(module, f), NativeFunction) for f in ("run", "reset", "step"))
    ref = Simulator(pipeline.build(), backend="interp", trace=False)
    got, want = _batch(sim), _batch(ref)
    assert got.keys() == want.keys()
    for name in got:
        assert np.array_equal(got[name], want[name]), name
    valid = got["sum_out.sum_valid"]
    assert int(valid.sum()) > 0
    # step mode (one native call per tick, types matched once) from where batch left off
    stim = list(pipeline.stimulus(TICKS + 200))[TICKS:]
    for s in (sim, ref):
        s.run(stimulus=iter(stim))
    assert sim.peek("sum_out.sum_out") == ref.peek("sum_out.sum_out")
    assert sim.tick == ref.tick == TICKS + 200


def test_process_on_native_code_builds_no_numba_compiler(built: Path) -> None:
    """numba's typing context (≈ 700 modules, LLVM's compiler: what the native modules
    are for) is never built by a process whose compiled calls are all native."""
    script = (
        "import sys\n"
        "from sme import Simulator\n"
        "from sme.examples import pipeline\n"
        f"sim = Simulator(pipeline.build(), backend='compiled', trace=False, cache_dir={str(built)!r})\n"
        f"sim.run(stimulus=pipeline.stimulus(500))\n"
        "print(sim.peek('sum_out.sum_out'), 'numba.core.typing.cmathdecl' in sys.modules)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    ref = Simulator(pipeline.build(), backend="interp", trace=False)
    ref.run(stimulus=pipeline.stimulus(500))
    assert out == [str(ref.peek("sum_out.sum_out")), "False"]
