"""The whole detector firmware: cocotb lock-step against GHDL on 64×64 frames, and its
packets against the numpy reference model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fpga.designs.chain import build
from fpga.designs.params import ChainParams, detector_params
from fpga.export import export
from fpga.ghdl import run_testbench
from sme import Simulator

P = ChainParams(64, 64, 16)


@pytest.mark.ghdl
@pytest.mark.parametrize("binning", [False, True], ids=["direct", "binned"])
def test_chain_lockstep_random_frames(binning: bool, sme_hw: Any, make_firmware_stimulus: Any,
                                      stimulus_rows: Any) -> None:
    stim = make_firmware_stimulus(P, frames=4, binning=binning, seed=11 + binning)
    net = build(P)
    rows = stimulus_rows(net, stim)
    result = sme_hw.lockstep(net, rows, trace=True)
    assert result.passed, str(result.mismatch)
    assert result.ticks == len(rows)
    packets = sum(1 for v in result.trace.column("packet.last") if v)
    assert packets == 4


@pytest.mark.ghdl
def test_chain_passes_its_vhdl_testbench(tmp_path: Path, make_firmware_stimulus: Any,
                                         stimulus_rows: Any) -> None:
    net = build(P)
    rows = stimulus_rows(net, make_firmware_stimulus(P, frames=3, binning=False, seed=5))
    trace = Simulator(net).run(stimulus=rows)
    assert trace is not None
    export(net, tmp_path, trace)
    result = run_testbench(tmp_path)
    assert result.passed, result.mismatches[:3] or result.output[-2000:]
    assert result.ticks == len(rows)


@pytest.mark.ghdl
@pytest.mark.parametrize(("shape", "lanes", "seed"), [((64, 192), 32, 17), ((32, 256), 64, 19)])
def test_detector_datapath_with_binning_passes_its_vhdl_testbench(
        tmp_path: Path, make_firmware_stimulus: Any, stimulus_rows: Any,
        shape: tuple[int, int], lanes: int, seed: int) -> None:
    """The one-chain detector's firmware as ``detector_params`` makes it — 32 lanes for a
    width that is a multiple of 64 but not of 128, 64 (the widest) for a multiple of 128,
    the 2×2 binning stage — on two binned frames, through the exported VHDL's
    self-checking testbench."""
    p = detector_params(*shape)
    assert (p.lanes, p.binning) == (lanes, True)
    net = build(p)
    rows = stimulus_rows(net, make_firmware_stimulus(p, frames=2, binning=True, seed=seed))
    trace = Simulator(net).run(stimulus=rows)
    assert trace is not None
    last = trace.column("packet.last")
    assert sum(1 for v in last if v) == 2
    assert sum(1 for v in trace.column("packet.valid") if v) == 2 * p.packet_words(True)
    export(net, tmp_path, trace)
    result = run_testbench(tmp_path)
    assert result.passed, result.mismatches[:3] or result.output[-2000:]
    assert result.ticks == len(rows)
