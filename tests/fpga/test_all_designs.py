"""Every design shipped in ``sme/examples/`` and ``fpga/designs/`` runs the same in the
interpreter, the compiled backend and its exported VHDL under GHDL (trace-replay
testbench), tick by tick, signal by signal. A module counts as a design when it has a
``build()`` taking no required arguments; its ``stimulus()`` drives it when it has one,
else random values on every input (``fpga.stimulus.random_stimulus``)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from types import ModuleType

import pytest

import fpga.designs
import sme.examples
from fpga.pytest_plugin import HardwareTester
from fpga.stimulus import random_stimulus
from sme import Network

pytestmark = pytest.mark.ghdl

RANDOM_TICKS = 300


def _designs() -> list[tuple[str, ModuleType]]:
    found = []
    for pkg in (sme.examples, fpga.designs):
        for info in pkgutil.iter_modules(pkg.__path__):
            mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
            build = getattr(mod, "build", None)
            if callable(build) and getattr(build, "__module__", None) == mod.__name__ and all(
                    p.default is not p.empty for p in inspect.signature(build).parameters.values()):
                found.append((mod.__name__, mod))
    return found


DESIGNS = _designs()


def test_the_ported_and_shipped_designs_are_found() -> None:
    names = {n for n, _ in DESIGNS}
    assert {"sme.examples.statebased_counter", "sme.examples.stopwatch", "sme.examples.mips",
            "fpga.designs.chain"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("module", [m for _, m in DESIGNS], ids=[n for n, _ in DESIGNS])
def test_design_runs_the_same_in_every_backend(module: ModuleType,
                                               sme_hw: HardwareTester) -> None:
    net: Network = module.build()
    make: Callable[[], object] | None = getattr(module, "stimulus", None)
    stimulus = list(make()) if callable(make) else list(  # type: ignore[call-overload]
        random_stimulus(net, RANDOM_TICKS, seed=1, hold=0.9))
    trace = sme_hw.all_backends(net, stimulus)
    assert trace.ticks == len(stimulus)
