"""Shared stimulus for the detector-firmware tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from devices.sensor import link_stream
from fpga.designs.params import ChainParams
from fpga.designs.reference import ChainConfig, ChainTables, setup_stimulus, setup_ticks
from sme import Network
from sme.backend import batch_rows


def firmware_stimulus(params: ChainParams, frames: int = 3, binning: bool = False,
                      seed: int = 3, idle_prob: float = 0.1) -> dict[str, np.ndarray]:
    """Random calibration tables and a configuration written while the link is idle, then
    ``frames`` frames of random counts (a few saturated pixels) with random idle ticks."""
    rng = np.random.default_rng(seed)
    shape = (params.height, params.width)
    tables = ChainTables(dark=rng.integers(0, 40, shape),
                         gain=rng.integers(13_000, 21_000, shape),
                         mask=rng.random(shape) < 0.02)
    counts = rng.integers(0, 90_000, (frames, *shape))
    counts[0, 3, :7] = (1 << 20) - 1
    h, w = params.out_shape(binning)
    config = ChainConfig(threshold=20, roi=(w // 8, h // 5, w - w // 4, h - 3),
                         binning=binning)
    link = link_stream(counts, params, lead_idle=setup_ticks(params, config, tables),
                       idle_prob=idle_prob, seed=seed)
    stim = link.stimulus()
    stim.update(setup_stimulus(params, link.ticks, config, tables))
    return stim


@pytest.fixture
def make_firmware_stimulus() -> Callable[..., dict[str, np.ndarray]]:
    """``firmware_stimulus(params, frames=3, binning=False, seed=3, idle_prob=0.1)``."""
    return firmware_stimulus


@pytest.fixture
def stimulus_rows() -> Callable[[Network, dict[str, np.ndarray]], list[dict[str, Any]]]:
    """``batch_rows(network, batch_stimulus)``: per-tick mappings for ``Simulator.run``."""
    return batch_rows
