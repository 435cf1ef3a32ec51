"""Every stage of the detector firmware, exported on its own, passes its VHDL testbench in
GHDL on 64×64 frames (stimulus: what the stage saw inside the whole chain)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fpga.designs.chain import build, stage_network
from fpga.designs.params import ChainParams
from fpga.export import export
from fpga.ghdl import run_testbench
from sme import Simulator
from sme.trace import Trace

P = ChainParams(64, 64, 16)


@pytest.fixture(params=[False, True], ids=["direct", "binned"])
def chain_trace(request: pytest.FixtureRequest, make_firmware_stimulus: Any,
                stimulus_rows: Any) -> Trace:
    stim = make_firmware_stimulus(P, binning=request.param)
    net = build(P)
    trace = Simulator(net).run(stimulus=stimulus_rows(net, stim))
    assert trace is not None
    return trace


def stage_stimulus(trace: Trace, chain_inputs: set[str], wanted: list[str]) -> list[dict[str, Any]]:
    """What the stage's inputs carried in each tick of the chain's run: a chain input as
    driven for the tick (row k + 1), an internal bus as it was during the tick (row k)."""
    cols = {name: trace.names.index(name) for name in wanted}
    out = []
    for k in range(trace.ticks - 1):
        out.append({n: trace.rows[k + 1 if n in chain_inputs else k][c]
                    for n, c in cols.items()})
    return out


@pytest.mark.ghdl
@pytest.mark.parametrize("stage", ["control", "receiver", "correct", "binning", "reduce",
                                   "packetiser", "gain_table"])
def test_stage_passes_its_vhdl_testbench(stage: str, chain_trace: Trace, tmp_path: Path) -> None:
    chain = build(P)
    chain_inputs = {t.name for t in chain.traced_signals() if t.is_input}
    net = stage_network(stage, P)
    inputs = [t.name for t in net.traced_signals() if t.is_input]
    stim = stage_stimulus(chain_trace, chain_inputs, inputs)
    sim = Simulator(net)
    trace = sim.run(stimulus=stim)
    assert trace is not None
    # the stage alone behaves exactly as inside the chain
    for name in trace.names:
        if name not in inputs:
            assert trace.column(name)[1:] == chain_trace.column(name)[1:len(trace.rows)], name
    export(net, tmp_path, trace)
    result = run_testbench(tmp_path)
    assert result.passed, result.mismatches[:3] or result.output[-2000:]
    assert result.ticks == len(stim)
