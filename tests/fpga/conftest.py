"""Shared stimulus for the detector-firmware tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from devices.sensor import link_stream
from fpga.designs.params import ChainParams, Reg, Table
from fpga.designs.reference import ChainConfig, ChainTables, setup_stimulus, setup_ticks

ENUMS = {"ctrl.reg": Reg, "tables.table": Table}


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


def as_rows(stim: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Batch stimulus arrays as per-tick mappings (enum indexes become members)."""
    n = len(next(iter(stim.values())))
    rows = []
    for i in range(n):
        row = {k: (v[i].tolist() if v.ndim > 1 else v[i].item()) for k, v in stim.items()}
        for k, cls in ENUMS.items():
            if k in row:
                row[k] = list(cls)[row[k]]
        rows.append(row)
    return rows


@pytest.fixture
def make_firmware_stimulus() -> Callable[..., dict[str, np.ndarray]]:
    """``firmware_stimulus(params, frames=3, binning=False, seed=3, idle_prob=0.1)``."""
    return firmware_stimulus


@pytest.fixture
def stimulus_rows() -> Callable[[dict[str, np.ndarray]], list[dict[str, Any]]]:
    """``as_rows(batch_stimulus)``: per-tick mappings for ``Simulator.run``."""
    return as_rows
