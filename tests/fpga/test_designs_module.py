"""One module of the Pilatus 6M (195 × 487 pixels, 64 lanes, lines padded to whole words,
no binning stage): the compiled firmware, the interpreter, the numpy reference and the
readout agree bit for bit, and the module's VHDL passes its testbench in GHDL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataflow.readout import Readout
from devices.sensor import SensorModel, link_stream
from fpga.designs.chain import build
from fpga.designs.layout import PILATUS_6M
from fpga.designs.params import ChainParams, Reg
from fpga.designs.reference import (
    ChainConfig,
    ChainTables,
    reference_stream,
    setup_stimulus,
    setup_ticks,
)
from fpga.export import export
from fpga.ghdl import run_testbench
from sme import Simulator
from sme.backend import batch_rows

P = PILATUS_6M.module
SIGNALS = ["packet.valid", "packet.first", "packet.last", "packet.data"]


def stimulus(frames: int, tables: str, seed: int) -> tuple[dict[str, Any], int, Any, Any]:
    """Link words of ``frames`` module frames after the configuration: (stimulus, ticks,
    the frames, the reference stream)."""
    rng = np.random.default_rng(seed)
    shape = (P.height, P.width)
    sensor = SensorModel(P, dead_pixels=6, hot_pixels=3, seed=seed)
    yy, xx = np.mgrid[0:P.height, 0:P.width]
    counts = sensor.frames(3e4 * (1 + np.cos(np.hypot(yy - 90, xx - 300) / 30.0) ** 2),
                           0.5, frames)
    counts[0][:2, :40] = (1 << 20) - 1
    reset = ChainTables.reset(P)
    mask = sensor.dead_mask | sensor.hot_mask
    chosen = ChainTables(rng.integers(0, 30, shape), rng.integers(14_000, 19_000, shape),
                         mask) if tables == "full" else ChainTables(reset.dark, reset.gain, mask)
    config = ChainConfig(threshold=4, roi=(30, 10, 470, 180))
    lead = setup_ticks(P, config, chosen)
    link = link_stream(counts, P, lead_idle=lead, idle_prob=0.05, seed=seed)
    stim: dict[str, Any] = link.stimulus()
    stim.update(setup_stimulus(P, link.ticks, config, chosen))
    ref = reference_stream(counts, P, config, chosen,
                           timestamps=[int(t) for t in link.sof_ticks])
    return stim, link.ticks, counts, ref


def test_module_compiled_reference_and_readout_agree() -> None:
    stim, ticks, _, ref = stimulus(2, "full", 3)
    out = Simulator(build(P), backend="compiled", trace=False).run_batch(stim, ticks, SIGNALS)
    valid = out["packet.valid"]
    assert np.array_equal(out["packet.data"][valid], ref.words)
    assert np.array_equal(out["packet.first"][valid], ref.first)
    assert np.array_equal(out["packet.last"][valid], ref.last)
    frames = Readout(P.lanes, (P.height, P.width)).feed_outputs(out)
    assert len(frames) == 2
    for got, want in zip(frames, ref.results, strict=True):
        assert got.image.shape == (195, 487)
        assert np.array_equal(got.image, want.image)
        assert got.roi_sum == want.roi_sum and got.saturated == want.saturated
        assert np.array_equal(got.histogram, want.histogram)
        assert int(got.histogram.sum()) == 195 * 487     # padding lanes are not pixels
    assert frames[0].saturated >= 80                     # the counters set full


def test_module_interpreter_equals_compiled() -> None:
    stim, ticks, _, _ = stimulus(1, "mask", 4)
    net = build(P)
    a = Simulator(net, backend="compiled", trace=False).run_batch(stim, ticks, SIGNALS)
    b = Simulator(build(P), trace=False).run_batch(stim, ticks, SIGNALS)
    for name in SIGNALS:
        assert np.array_equal(a[name], b[name]), name


def test_module_without_binning_stage_ignores_the_binning_register() -> None:
    stim, ticks, _, ref = stimulus(1, "mask", 5)
    stim["ctrl.we"] = stim["ctrl.we"].copy()
    stim["ctrl.reg"] = stim["ctrl.reg"].copy()
    stim["ctrl.value"] = stim["ctrl.value"].copy()
    free = int(np.flatnonzero(~stim["ctrl.we"])[0])   # one more write: BINNING on
    stim["ctrl.we"][free], stim["ctrl.reg"][free] = True, list(Reg).index(Reg.BINNING)
    stim["ctrl.value"][free] = 1
    net = build(P)
    assert "binning" not in {p.name for p in net.processes}
    out = Simulator(net, backend="compiled", trace=False).run_batch(stim, ticks, SIGNALS)
    assert np.array_equal(out["packet.data"][out["packet.valid"]], ref.words)


@pytest.mark.ghdl
def test_module_passes_its_vhdl_testbench(tmp_path: Path) -> None:
    """One whole module frame (1,560 link words of 64 lanes) through the exported VHDL."""
    stim, ticks, _, _ = stimulus(1, "mask", 6)
    net = build(P)
    trace = Simulator(net, backend="compiled").run(stimulus=batch_rows(net, stim, ticks))
    assert trace is not None
    export(net, tmp_path, trace)
    result = run_testbench(tmp_path)
    assert result.passed, result.mismatches[:3] or result.output[-2000:]
    assert result.ticks == ticks


@pytest.mark.parametrize("lanes", [24, 128])
def test_every_lane_count_sends_the_reference_packets(lanes: int) -> None:
    """Lane counts whose reduction words are 2 or 6 (24 to 27, 69 to 135 lanes) build a
    working chain: the packetiser's step counter was a bit short for the step after the
    trailer, and the first packet stopped the run with an overflow (the other counts
    run in the tests of the chain and of this module)."""
    p = ChainParams(6, 100, lanes, binning=False)
    rng = np.random.default_rng(lanes)
    counts = [rng.integers(0, 1 << 20, (6, 100)) for _ in range(3)]
    config = ChainConfig(threshold=3, roi=(5, 1, 90, 5))
    tables = ChainTables(rng.integers(0, 30, (6, 100)), rng.integers(14_000, 19_000, (6, 100)),
                         rng.random((6, 100)) < 0.05)
    lead = setup_ticks(p, config, tables)
    link = link_stream(counts, p, lead_idle=lead, idle_prob=0.1, seed=lanes)
    stim: dict[str, Any] = link.stimulus()
    stim.update(setup_stimulus(p, link.ticks, config, tables))
    ref = reference_stream(counts, p, config, tables, timestamps=[int(t) for t in link.sof_ticks])
    out = Simulator(build(p), backend="compiled", trace=False).run_batch(stim, link.ticks, SIGNALS)
    valid = out["packet.valid"]
    assert np.array_equal(out["packet.data"][valid], ref.words)
    assert int(out["packet.last"][valid].sum()) == 3
