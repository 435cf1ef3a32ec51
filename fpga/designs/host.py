"""What the host writes to the firmware: register writes on ``ctrl`` and calibration-table
words on ``tables``, as per-tick stimulus arrays for ``Simulator.run_batch`` (one write
per tick, as a control link would deliver them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import GAIN_ONE, OUT_MAX, ChainParams, Reg, Table


@dataclass(frozen=True)
class Config:
    """The firmware's configuration registers (docs/firmware.md)."""

    threshold: int = 0
    roi: tuple[int, int, int, int] = (0, 0, 0xFFFF, 0xFFFF)
    """``(x0, y0, x1, y1)`` in output-image pixels, ``x0 <= x < x1``."""
    binning: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.threshold < 1 << 20:
            raise ValueError(f"Config.threshold must be in 0..{(1 << 20) - 1}, "
                             f"not {self.threshold}")
        if len(self.roi) != 4 or any(not 0 <= v <= 0xFFFF for v in self.roi):
            raise ValueError(f"Config.roi must be (x0, y0, x1, y1) with each in 0..65535, "
                             f"not {self.roi!r}")

    def writes(self) -> list[tuple[Reg, int]]:
        """The register writes that set this configuration."""
        x0, y0, x1, y1 = self.roi
        return [(Reg.THRESHOLD, self.threshold), (Reg.ROI_X0, x0), (Reg.ROI_Y0, y0),
                (Reg.ROI_X1, x1), (Reg.ROI_Y1, y1), (Reg.BINNING, int(self.binning))]


def _idle(ticks: int, bus: str, fields: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    return {f"{bus}.{name}": np.zeros(ticks, dtype=dt) for name, dt in fields.items()}


def config_stimulus(config: Config, bus: str = "ctrl") -> dict[str, np.ndarray]:
    """One tick per register write, then one idle tick (``we`` low)."""
    writes = config.writes()
    n = len(writes) + 1
    stim = _idle(n, bus, {"we": np.dtype(bool), "reg": np.dtype(np.int64),
                          "value": np.dtype(np.int64)})
    for i, (reg, value) in enumerate(writes):
        stim[f"{bus}.we"][i] = True
        stim[f"{bus}.reg"][i] = reg.value
        stim[f"{bus}.value"][i] = value
    return stim


def _words(params: ChainParams, name: str, table: np.ndarray) -> np.ndarray:
    if table.shape != (params.height, params.width):
        raise ValueError(f"{name} table has shape {table.shape}, the firmware is built for "
                         f"{(params.height, params.width)}")
    words = np.ascontiguousarray(table, dtype=np.int64)
    shaped: np.ndarray = words.reshape(params.table_depth, params.lanes)
    return shaped


def gain_raw(gain: np.ndarray) -> np.ndarray:
    """Float gains → raw ``UFix[2, 14]`` table entries (rounded to nearest); gains outside
    0 … 3.99994 are an error."""
    g = np.asarray(gain, dtype=float)
    raw: np.ndarray = np.rint(g * GAIN_ONE)
    if np.any(raw < 0) or np.any(raw > OUT_MAX) or not np.all(np.isfinite(g)):
        raise ValueError(f"gains must be finite and within 0 … {OUT_MAX / GAIN_ONE:.5f}")
    return raw.astype(np.int64)


def table_stimulus(params: ChainParams, dark: np.ndarray | None = None,
                   gain: np.ndarray | None = None, mask: np.ndarray | None = None,
                   bus: str = "tables") -> dict[str, np.ndarray]:
    """Writes of the given tables (``gain`` as raw ``UFix[2, 14]`` integers, see
    ``gain_raw``; ``mask`` true for bad pixels), a word per tick, then one idle tick."""
    given = [(t, name, a) for t, name, a in ((Table.DARK, "dark", dark),
                                             (Table.GAIN, "gain", gain),
                                             (Table.MASK, "mask", mask)) if a is not None]
    depth, k = params.table_depth, params.lanes
    n = depth * len(given) + 1
    stim = _idle(n, bus, {"we": np.dtype(bool), "table": np.dtype(np.int64),
                          "addr": np.dtype(np.int64)})
    stim[f"{bus}.data"] = np.zeros((n, k), dtype=np.int64)
    for i, (t, name, a) in enumerate(given):
        words = _words(params, name, np.asarray(a))
        if t is Table.MASK:
            words = (words != 0).astype(np.int64)
        elif words.min() < 0 or words.max() > OUT_MAX:
            raise ValueError(f"{name} table values must be within 0 … {OUT_MAX}")
        rows = slice(i * depth, (i + 1) * depth)
        stim[f"{bus}.we"][rows] = True
        stim[f"{bus}.table"][rows] = t.value
        stim[f"{bus}.addr"][rows] = np.arange(depth)
        stim[f"{bus}.data"][rows] = words
    return stim


def concat(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Stimulus pieces one after the other; a signal missing from a piece is held idle
    (zero) during it. Returns arrays of the summed length."""
    lengths = [len(next(iter(p.values()))) if p else 0 for p in parts]
    names: dict[str, np.ndarray] = {}
    for p in parts:
        for k, v in p.items():
            names.setdefault(k, v)
    out = {}
    for k, proto in names.items():
        arr = np.zeros((sum(lengths), *proto.shape[1:]), dtype=proto.dtype)
        at = 0
        for p, n in zip(parts, lengths, strict=True):
            if k in p:
                arr[at:at + n] = p[k]
            at += n
        out[k] = arr
    return out
