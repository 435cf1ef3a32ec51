"""The whole detector firmware: cocotb lock-step against GHDL on 64×64 frames, and its
packets against the numpy reference model."""

from __future__ import annotations

from typing import Any

import pytest

from fpga.designs.chain import build
from fpga.designs.params import ChainParams

P = ChainParams(64, 64, 16)


@pytest.mark.ghdl
@pytest.mark.parametrize("binning", [False, True], ids=["direct", "binned"])
def test_chain_lockstep_random_frames(binning: bool, sme_hw: Any, make_firmware_stimulus: Any,
                                      stimulus_rows: Any) -> None:
    stim = make_firmware_stimulus(P, frames=4, binning=binning, seed=11 + binning)
    rows = stimulus_rows(stim)
    result = sme_hw.lockstep(build(P), rows, trace=True)
    assert result.passed, str(result.mismatch)
    assert result.ticks == len(rows)
    packets = sum(1 for v in result.trace.column("packet.last") if v)
    assert packets == 4
