"""Every design shipped in ``sme/examples/`` and ``fpga/designs/`` runs the same in the
interpreter, the compiled backend and its exported VHDL under GHDL (trace-replay
testbench), tick by tick, signal by signal. A module counts as a design when it has a
``build()`` taking no required arguments; its ``stimulus()`` drives it when it has one,
else random values on every input (``fpga.stimulus.random_stimulus``). So that no design
escapes: every module of the two packages (sub-packages included) that defines a ``build``
must be such a design, and every process class they define must be in the network of
one of them."""

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
from sme import Network, Process

pytestmark = pytest.mark.ghdl

RANDOM_TICKS = 300


def _modules() -> list[ModuleType]:
    """Every module of ``sme/examples`` and ``fpga/designs``, sub-packages included."""
    found = []
    for pkg in (sme.examples, fpga.designs):
        for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}."):
            found.append(importlib.import_module(info.name))
    return found


def _own_build(mod: ModuleType) -> Callable[..., Network] | None:
    build = getattr(mod, "build", None)
    if callable(build) and getattr(build, "__module__", None) == mod.__name__:
        return build  # type: ignore[no-any-return]
    return None


def _designs() -> list[tuple[str, ModuleType]]:
    found = []
    for mod in _modules():
        build = _own_build(mod)
        if build is not None and all(p.default is not p.empty
                                     for p in inspect.signature(build).parameters.values()):
            found.append((mod.__name__, mod))
    return found


DESIGNS = _designs()


def test_every_build_is_a_design_the_suite_runs() -> None:
    """A ``build`` that needs arguments would be skipped by the enumeration: refused."""
    skipped = [m.__name__ for m in _modules()
               if _own_build(m) is not None and m.__name__ not in dict(DESIGNS)]
    assert not skipped, (f"{', '.join(skipped)}: build() has required parameters, so the "
                         "all-backends test cannot run it; give them defaults")


def test_every_process_class_is_in_a_design() -> None:
    """A process class defined in the two packages but in no design's network would never
    run in the three backends; each must be (or be the base of) a process of a design."""
    defined = {c for m in _modules() for c in vars(m).values()
               if isinstance(c, type) and issubclass(c, Process) and c.__module__ == m.__name__}
    used: set[type] = set()
    for _, mod in DESIGNS:
        for proc in mod.build().processes:
            used.update(type(proc).__mro__)
    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in defined - used)
    assert not missing, (f"{', '.join(missing)}: in no network built by a design of "
                         "sme/examples or fpga/designs, so no test runs it in every backend")


def test_the_ported_and_shipped_designs_are_found() -> None:
    names = {n for n, _ in DESIGNS}
    assert {"sme.examples.statebased_counter", "sme.examples.stopwatch", "sme.examples.mips",
            "sme.examples.colorbin", "sme.examples.trader", "sme.examples.fifo",
            "sme.examples.aes256cbc", "sme.examples.noisefilter", "sme.examples.dependency_cycle",
            "sme.examples.state_machines", "sme.examples.bitwidth", "sme.examples.nested_component",
            "sme.examples.stated_adder", "sme.examples.array_of_buses", "sme.examples.memory_bus",
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
