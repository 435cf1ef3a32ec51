"""On 1024×1024 frames the SME firmware (compiled backend), the numpy reference model and
the readout backend agree bit for bit; corrupted packets are caught by the readout."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest

from dataflow.readout import Readout
from devices.sensor import SensorModel, link_stream
from fpga.designs.chain import build
from fpga.designs.params import ChainParams
from fpga.designs.reference import (
    ChainConfig,
    ChainTables,
    reference_stream,
    setup_stimulus,
    setup_ticks,
)
from sme import Simulator

P = ChainParams(1024, 1024, 16)


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    """Two frames from the sensor model through the compiled firmware, with calibration
    tables, zero suppression, an ROI, dead/hot pixels and idle ticks on the link."""
    rng = np.random.default_rng(5)
    shape = (P.height, P.width)
    yy, xx = np.mgrid[0:P.height, 0:P.width]
    flux = 2e4 * (1 + np.cos(np.hypot(yy - 500, xx - 530) / 40.0) ** 2)
    sensor = SensorModel(P, dead_pixels=50, hot_pixels=20, seed=2)
    frames = sensor.frames(flux, 0.5, 2)
    frames[1][:3, :40] = (1 << 20) - 1
    tables = ChainTables(dark=rng.integers(0, 30, shape),
                         gain=rng.integers(14_000, 19_000, shape),
                         mask=sensor.dead_mask | (rng.random(shape) < 1e-3))
    config = ChainConfig(threshold=12, roi=(100, 200, 900, 640))
    link = link_stream(frames, P, lead_idle=setup_ticks(P, config, tables), idle_prob=0.02,
                       seed=4)
    stim = link.stimulus()
    stim.update(setup_stimulus(P, link.ticks, config, tables))
    sim = Simulator(build(P), backend="compiled", trace=False)
    out = sim.run_batch(stim, link.ticks)
    ref = reference_stream(frames, P, config, tables, timestamps=list(link.sof_ticks))
    return {"out": out, "ref": ref}


@pytest.mark.slow
def test_firmware_reference_and_readout_agree_bit_for_bit(run: dict[str, Any]) -> None:
    out, ref = run["out"], run["ref"]
    valid = out["packet.valid"]
    assert np.array_equal(out["packet.data"][valid], ref.words)
    assert np.array_equal(out["packet.first"][valid], ref.first)
    assert np.array_equal(out["packet.last"][valid], ref.last)
    readout = Readout(P.lanes, (P.height, P.width))
    frames = readout.feed_outputs(out)
    assert [f.frame_number for f in frames] == [0, 1]
    for got, want in zip(frames, ref.results, strict=True):
        assert np.array_equal(got.image, want.image)
        assert got.roi_sum == want.roi_sum
        assert got.saturated == want.saturated
        assert np.array_equal(got.histogram, want.histogram)
    assert readout.report()["corrupt"] == 0 and readout.report()["dropped"] == 0


@pytest.mark.slow
def test_corrupt_payload_word_and_frame_number_are_detected(run: dict[str, Any]) -> None:
    out = {k: v.copy() for k, v in run["out"].items()}
    rows = np.flatnonzero(out["packet.valid"])
    firsts = np.flatnonzero(out["packet.first"])
    out["packet.data"][rows[500], 3] ^= 0x0010          # a payload bit of frame 0
    out["packet.data"][firsts[1], 2] = 7                 # frame 1 claims to be frame 7
    readout = Readout(P.lanes, (P.height, P.width))
    frames = readout.feed_outputs(out)
    report = readout.report()
    assert frames == []
    assert report["corrupt"] == 2
    checks = sorted(e.check for e in readout.errors)
    assert checks == ["crc", "crc"], readout.errors


@pytest.mark.slow
def test_frame_number_gap_with_a_valid_crc_counts_dropped_frames(run: dict[str, Any]) -> None:
    out = {k: v.copy() for k, v in run["out"].items()}
    firsts = np.flatnonzero(out["packet.first"])
    lasts = np.flatnonzero(out["packet.last"])
    data = out["packet.data"]
    data[firsts[1], 2] = 3                               # frames 1 and 2 never arrived
    words = data[firsts[1]:lasts[1] + 1][out["packet.valid"][firsts[1]:lasts[1] + 1]]
    crc = zlib.crc32(words.astype("<u2").tobytes()[:-4])  # all but the CRC lanes
    data[lasts[1], -2], data[lasts[1], -1] = crc & 0xFFFF, crc >> 16
    readout = Readout(P.lanes, (P.height, P.width))
    frames = readout.feed_outputs(out)
    assert [f.frame_number for f in frames] == [0, 3]
    assert readout.report()["dropped"] == 2
