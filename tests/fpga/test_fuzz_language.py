"""Language-corner fuzzing (``fpga.fuzz_language``): random generator processes with loops,
``break``/``continue``/``return``, 64-bit registers, a RAM and a true dual-port RAM, and names that clash up to case
or with VHDL reserved and generated names — interpreter ≡ compiled ≡ GHDL, tick by tick.
``benchmarks/fuzz_nightly.py --language-modules N`` runs many more (or ``LANG_SEEDS=N`` here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fpga.fuzz import load_module
from fpga.fuzz_language import CLASS_NAMES, RESERVED, language_source
from fpga.pytest_plugin import HardwareTester
from fpga.stimulus import random_stimulus

pytestmark = pytest.mark.ghdl

SEEDS = range(int(__import__("os").environ.get("LANG_SEEDS", "2")))
TICKS = 300


def test_sources_hold_the_corners_they_promise() -> None:
    src = "\n".join(language_source(seed) for seed in range(4))
    assert all(re.search(rf"^class {c}\d*\(Process\)", src, re.M) for c in CLASS_NAMES)
    assert re.search(r"^    out_0_idx: UInt\[8\]", src, re.M) and "Out_0: Out[Res0]" in src
    assert len({r for r in RESERVED if re.search(rf"^    {r}: UInt\[64\]", src, re.M)}) >= 4
    for construct in ("while not self.ctl.go:", "in range(self.ctl.n):", "break", "continue",
                      "return", "Ram(port=port, data=data)", "Tdp(a=pa, b=pb"):
        assert construct in src, construct
    assert language_source(5) == language_source(5) != language_source(6)


@pytest.mark.parametrize("seed", SEEDS)
def test_language_corners_run_the_same_in_every_backend(seed: int, tmp_path: Path,
                                                       sme_hw: HardwareTester) -> None:
    net = load_module(language_source(seed), tmp_path, f"lang_{seed}").build()
    trace = sme_hw.all_backends(net, list(random_stimulus(net, TICKS, seed=seed)))
    assert trace.ticks == TICKS
