"""pytest plugin: test an SME design in simulation, in GHDL, and in lock-step, in a few lines.

Installed with smeflow (entry point ``pytest11``), so any test can use its fixtures::

    from fpga.stimulus import random_stimulus
    from sme.examples import counter

    def test_counter_hardware(sme_hw):
        net = counter.build()
        trace = sme_hw.simulate(net, counter.stimulus(100))       # Python model → Trace
        sme_hw.testbench(net, counter.stimulus(100))               # exported VHDL + its testbench
        sme_hw.lockstep(net, random_stimulus(net, 10_000, seed=1)) # cocotb lock-step
        sme_hw.all_backends(net, counter.stimulus(100))            # interp ≡ compiled ≡ GHDL

A difference between the VHDL and the Python model fails the test with a message naming
the tick, the signal, the expected and the actual value. The single-purpose fixtures
``sme_simulate``, ``ghdl_testbench`` and ``cocotb_lockstep`` are the same methods.
Mark tests that need GHDL with ``@pytest.mark.ghdl``: they fail (never skip) when GHDL or
cocotb is missing.

This module is also imported by cocotb inside the simulator (it loads pytest plugins for
assertion rewriting), so it imports nothing heavy at module level.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fpga.cosim import LockstepResult
    from fpga.export import Export
    from fpga.ghdl import TestbenchResult
    from sme.network import Network
    from sme.trace import Trace

Stimulus = Iterable[Mapping[Any, Any]]
MISMATCHES_SHOWN = 10


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``ghdl`` marker for projects that use the plugin."""
    config.addinivalue_line(
        "markers", "ghdl: needs GHDL and cocotb; fails (never skips) when they are missing")


class HardwareTester:
    """Simulate, export and co-simulate networks inside one test's temporary folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self._exports = 0

    def folder(self, network: Network) -> Path:
        """A fresh export folder for ``network`` under the test's ``tmp_path``."""
        self._exports += 1
        name = re.sub(r"[^A-Za-z0-9_]", "_", network.name)
        path = self.tmp_path / f"{name}_{self._exports}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def simulate(self, network: Network, stimulus: Stimulus | None = None,
                 ticks: int | None = None, backend: str = "interp") -> Trace:
        """Run ``network`` in the Python simulator and return its trace (``ticks`` ticks, or
        until ``stimulus`` ends)."""
        from sme.simulator import Simulator

        with Simulator(network, backend) as sim:
            trace = sim.run(ticks, stimulus=stimulus)
        assert trace is not None
        return trace

    def export(self, network: Network, trace: Trace | None = None,
               out_dir: str | os.PathLike[str] | None = None) -> Export:
        """Write the VHDL of ``network`` (and ``trace`` as the testbench's ``trace.csv``)."""
        from fpga.export import export

        return export(network, out_dir if out_dir is not None else self.folder(network), trace)

    def testbench(self, network: Network, stimulus: Stimulus | None = None,
                  ticks: int | None = None, *,
                  edit: Callable[[Path], None] | None = None) -> TestbenchResult:
        """Simulate, export, and run the generated trace-replay testbench in GHDL. Fails the
        test on any mismatch, showing tick, signal, expected and got. ``edit(folder)`` may
        change the exported files before the run (to plant a fault)."""
        from fpga.ghdl import run_testbench

        trace = self.simulate(network, stimulus, ticks)
        written = self.export(network, trace)
        if edit is not None:
            edit(written.out_dir)
        result = run_testbench(written.out_dir)
        if not result.passed:
            lines = [f"GHDL testbench of '{network.name}' FAILED "
                     f"(exit status {result.returncode}, {len(result.mismatches)} mismatches "
                     f"reported, folder {written.out_dir}):"]
            lines += [f"  tick {m.tick}, signal {m.signal}: expected {m.expected}, got {m.got}"
                      for m in result.mismatches[:MISMATCHES_SHOWN]]
            if not result.mismatches:
                lines += ["  " + ln for ln in result.output.strip().splitlines()[-20:]]
            pytest.fail("\n".join(lines), pytrace=False)
        return result

    def all_backends(self, network: Network, stimulus: Stimulus | None = None,
                     ticks: int | None = None) -> Trace:
        """The reference interpreter, the compiled backend and the exported VHDL in GHDL on
        the same stimulus: fails the test at the first tick and signal where the compiled
        trace differs from the interpreter's, or where GHDL differs from the trace. Returns
        the interpreter's trace."""
        stim = None if stimulus is None else list(stimulus)
        reference = self.simulate(network, stim, ticks)
        compiled = self.simulate(network, stim, ticks, backend="compiled")
        diff = reference.first_difference(compiled)
        if diff is not None:
            pytest.fail(f"compiled backend differs from the interpreter on '{network.name}': "
                        f"{diff}", pytrace=False)
        self.testbench(network, stim, ticks)
        return reference

    def lockstep(self, network: Network, stimulus: Stimulus | None = None,
                 ticks: int | None = None, *, vhdl: str | os.PathLike[str] | None = None,
                 edit: Callable[[Path], None] | None = None, **options: Any) -> LockstepResult:
        """Export ``network`` (or use the already exported folder ``vhdl``) and run it in
        GHDL through cocotb in lock-step with the Python model. Fails the test at the first
        difference with tick, signal, expected and got. ``options`` go to
        ``fpga.cosim.run_lockstep`` (``chunk``, ``period_ns``, ``waves``, ``backend``…)."""
        from fpga.cosim import run_lockstep

        folder = Path(vhdl) if vhdl is not None else self.export(network).out_dir
        if edit is not None:
            edit(folder)
        result = run_lockstep(network, folder, stimulus, ticks, **options)
        if not result.passed:
            pytest.fail(result.summary(), pytrace=False)
        return result


@pytest.fixture
def sme_hw(tmp_path: Path) -> HardwareTester:
    """Simulate, export and co-simulate SME networks (see ``HardwareTester``)."""
    return HardwareTester(tmp_path)


@pytest.fixture
def sme_simulate(sme_hw: HardwareTester) -> Callable[..., Trace]:
    """``sme_simulate(network, stimulus=None, ticks=None, backend="interp") -> Trace``."""
    return sme_hw.simulate


@pytest.fixture
def ghdl_testbench(sme_hw: HardwareTester) -> Callable[..., TestbenchResult]:
    """``ghdl_testbench(network, stimulus=None, ticks=None)``: export and run the generated
    testbench in GHDL; a mismatch fails the test."""
    return sme_hw.testbench


@pytest.fixture
def cocotb_lockstep(sme_hw: HardwareTester) -> Callable[..., LockstepResult]:
    """``cocotb_lockstep(network, stimulus=None, ticks=None, **options)``: export and run
    the cocotb lock-step co-simulation; a mismatch fails the test."""
    return sme_hw.lockstep


__all__ = ["HardwareTester", "cocotb_lockstep", "ghdl_testbench", "sme_hw", "sme_simulate"]
