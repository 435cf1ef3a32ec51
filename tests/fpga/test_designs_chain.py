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
def test_detector_datapath_with_binning_passes_its_vhdl_testbench(
        tmp_path: Path, make_firmware_stimulus: Any, stimulus_rows: Any) -> None:
    """The one-chain detector's 32-lane firmware (``detector_params`` of a width that is a
    multiple of 64 but not of 128, the 2×2 binning stage) on 64×192 frames, binned,
    through the exported VHDL's self-checking testbench."""
    p = detector_params(64, 192)
    assert (p.lanes, p.binning) == (32, True)
    net = build(p)
    rows = stimulus_rows(net, make_firmware_stimulus(p, frames=2, binning=True, seed=17))
    trace = Simulator(net).run(stimulus=rows)
    assert trace is not None
    last = trace.column("packet.last")
    assert sum(1 for v in last if v) == 2
    assert sum(1 for v in trace.column("packet.valid") if v) == 2 * p.packet_words(True)
    export(net, tmp_path, trace)
    result = run_testbench(tmp_path)
    assert result.passed, result.mismatches[:3] or result.output[-2000:]
    assert result.ticks == len(rows)


@pytest.mark.ghdl
def test_detector_64_lane_datapath_passes_its_vhdl_testbench(
        tmp_path: Path, make_firmware_stimulus: Any, stimulus_rows: Any) -> None:
    """The one-chain detector's widest firmware (``detector_params`` of a width that is a
    multiple of 128: 64 lanes, the 2×2 binning stage) on 32×256 frames, binned, through
    the exported VHDL's self-checking testbench."""
    p = detector_params(32, 256)
    assert (p.lanes, p.binning) == (64, True)
    net = build(p)
    rows = stimulus_rows(net, make_firmware_stimulus(p, frames=2, binning=True, seed=19))
    trace = Simulator(net).run(stimulus=rows)
    assert trace is not None
    last = trace.column("packet.last")
    assert sum(1 for v in last if v) == 2
    assert sum(1 for v in trace.column("packet.valid") if v) == 2 * p.packet_words(True)
    export(net, tmp_path, trace)
    result = run_testbench(tmp_path)
    assert result.passed, result.mismatches[:3] or result.output[-2000:]
    assert result.ticks == len(rows)
