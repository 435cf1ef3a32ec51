"""The smeflow pytest plugin, as a firmware engineer's test suite sees it: loaded through
the ``pytest11`` entry point, fixtures that simulate / run the testbench / run the lock-step,
and failures that show tick, signal, expected and got."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
import pytest
from sme.examples import counter


def break_counter(folder):
    path = folder / "Counter_proc.vhd"
    lines = path.read_text().splitlines()
    (i,) = [k for k, ln in enumerate(lines) if ln.rstrip().endswith("counter.py:39")]
    lines[i] = lines[i].replace(" + ", " - ")
    path.write_text("\\n".join(lines) + "\\n")


def test_simulate(sme_simulate):
    trace = sme_simulate(counter.build(), counter.stimulus(12))
    assert trace.column("counter_data.value")[-1] == 2


@pytest.mark.ghdl
def test_testbench_passes(ghdl_testbench):
    assert ghdl_testbench(counter.build(), counter.stimulus(50)).ticks == 50


@pytest.mark.ghdl
def test_lockstep_passes(cocotb_lockstep):
    assert cocotb_lockstep(counter.build(), counter.stimulus(50)).passed


@pytest.mark.ghdl
def test_testbench_broken(sme_hw):
    sme_hw.testbench(counter.build(), counter.stimulus(12), edit=break_counter)


@pytest.mark.ghdl
def test_lockstep_broken(sme_hw):
    sme_hw.lockstep(counter.build(), counter.stimulus(12), edit=break_counter)
'''


def test_plugin_is_registered_as_pytest11_entry_point() -> None:
    eps = {ep.name: ep.value for ep in metadata.entry_points(group="pytest11")}
    assert eps.get("smeflow") == "fpga.pytest_plugin"


def test_fixtures_are_available_here(sme_hw: Any, sme_simulate: Any) -> None:
    from sme.examples import counter

    assert sme_simulate == sme_hw.simulate
    assert sme_simulate(counter.build(), ticks=3).ticks == 3


@pytest.mark.ghdl
def test_user_suite_passes_and_fails_with_tick_signal_expected_got(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user_design=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=3, failed=2)
    out = result.stdout.str()
    assert "GHDL testbench of 'counter' FAILED" in out
    assert "tick 1, signal counter_data.value: expected 1, got 255" in out
    assert "lock-step counter: FAIL" in out
    assert ("first mismatch: tick 1, signal counter_data.value (port counter_data_value): "
            "expected 1, got 255") in out


@pytest.mark.ghdl
def test_the_readme_test_file_passes_as_printed(pytester: pytest.Pytester,
                                                repo_root: Path) -> None:
    """README.md's example test file for a firmware engineer's own design, run by pytest."""
    readme = (repo_root / "README.md").read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                  if "def test_my_design(sme_hw)" in b]
    pytester.makepyfile(test_readme_example=example)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
