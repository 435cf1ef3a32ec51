"""Detectors made of modules: the layout, and the frame cut into module frames and back.

A large hybrid pixel detector is a grid of identical sensor modules with gaps between
them (no sensor there), and each module has its own readout chain: its own link, its own
firmware, its own packets. A :class:`DetectorLayout` says how: the firmware parameters of
one module (``module``: its pixels and lanes), the grid (module rows × module columns)
and the gaps in pixels. The detector's frame is ``shape``; module ``m`` (row-major:
``m = row · columns + column``) covers ``frame[y0:y0 + h, x0:x0 + w]`` with ``(y0, x0) =
origins()[m]``, and the pixels between modules belong to none (:meth:`gap_mask`).

:data:`PILATUS_6M` is the Pilatus 6M as a facility sizes it: 5 × 12 modules of
487 × 195 pixels (width × height) with gaps of 7 pixels between module columns and 17
between module rows, 2463 × 2527 pixels in all, 20-bit counters; each module's chain
takes 64 pixels per tick (a line is 8 words, its last 25 lanes padding) without the 2×2
binning stage (a Pilatus does not bin). 64 lanes rather than 32: half the ticks of a
frame for the same per-pixel work, 2–5 % less CPU per frame in the simulation
(128 lanes gained nothing more; docs/firmware.md). A single-module layout
(:meth:`DetectorLayout.single`) is the plain detector of one chain.

Every layout names its sensor (:class:`SensorLayer`: the material that absorbs the X-rays
and its thickness), which the frame files record (NeXus ``sensor_material`` and
``sensor_thickness``, which NXmx requires and dxtbx needs for its detector model). The
default, and the Pilatus 6M's, is :data:`PILATUS_SENSOR`: 450 µm of silicon, the thinner
of the two silicon sensors of Dectris's PILATUS3 X detectors (450 or 1000 µm; CdTe for
high energies); the simulated pixels are Pilatus-like (172 µm, 20-bit counters). The
sensor model (``devices.sensor``) counts what reaches its comparators and computes no
absorption, so the material and thickness are a description of the detector the
simulation stands for, taken from the same layout object the sensor model is built on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .params import ChainParams

__all__ = ["PILATUS_6M", "PILATUS_SENSOR", "DetectorLayout", "SensorLayer"]


@dataclass(frozen=True)
class SensorLayer:
    """The sensor of a detector: ``material`` (its chemical formula, as NeXus's
    ``sensor_material``: ``"Si"``, ``"CdTe"``) ``thickness`` metres thick."""

    material: str
    thickness: float

    def __post_init__(self) -> None:
        if not isinstance(self.material, str) or not self.material.strip():
            raise ValueError(f"SensorLayer.material must be a name such as 'Si', not "
                             f"{self.material!r}")
        t = self.thickness
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < 0.1:
            raise ValueError(f"SensorLayer.thickness must be metres, > 0 and < 0.1 (a "
                             f"sensor is µm to mm thick), not {t!r}")


PILATUS_SENSOR = SensorLayer("Si", 450e-6)
"""450 µm of silicon: a PILATUS3 X detector's sensor (Dectris makes them 450 or 1000 µm
thick, and with CdTe sensors for high energies)."""


@dataclass(frozen=True)
class DetectorLayout:
    """``grid`` (module rows, module columns) of modules built for ``module``, ``gap``
    pixels (between module rows, between module columns) apart, with ``sensor``."""

    module: ChainParams
    grid: tuple[int, int] = (1, 1)
    gap: tuple[int, int] = (0, 0)
    sensor: SensorLayer = PILATUS_SENSOR

    def __post_init__(self) -> None:
        if not isinstance(self.module, ChainParams):
            raise ValueError(f"DetectorLayout.module must be a ChainParams, not {self.module!r}")
        for name, low in (("grid", 1), ("gap", 0)):
            v = getattr(self, name)
            if (not isinstance(v, tuple) or len(v) != 2
                    or not all(isinstance(n, int) and not isinstance(n, bool) and n >= low
                               for n in v)):
                raise ValueError(f"DetectorLayout.{name} must be two ints >= {low} (rows, "
                                 f"columns), not {v!r}")
        if not isinstance(self.sensor, SensorLayer):
            raise ValueError(f"DetectorLayout.sensor must be a SensorLayer, not "
                             f"{self.sensor!r}")
        if self.modules > 1 and self.module.binning:
            raise ValueError("DetectorLayout: the modules of a multi-module detector are built "
                             "without the binning stage (ChainParams(..., binning=False)); a "
                             "binned module frame would not tile the detector's frame")

    @classmethod
    def single(cls, params: ChainParams, sensor: SensorLayer = PILATUS_SENSOR
               ) -> DetectorLayout:
        """One module: the detector of one chain."""
        return cls(params, sensor=sensor)

    @property
    def modules(self) -> int:
        """Number of modules (each its own chain)."""
        return self.grid[0] * self.grid[1]

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, columns)`` of the detector's frame, gaps included."""
        (r, c), (gr, gc) = self.grid, self.gap
        return (r * self.module.height + (r - 1) * gr, c * self.module.width + (c - 1) * gc)

    @property
    def pixels(self) -> int:
        """Sensor pixels (gaps excluded)."""
        return self.modules * self.module.height * self.module.width

    def origins(self) -> list[tuple[int, int]]:
        """``(y0, x0)`` of each module's first pixel in the frame, row-major."""
        h, w = self.module.height, self.module.width
        (rows, cols), (gr, gc) = self.grid, self.gap
        return [(r * (h + gr), c * (w + gc)) for r in range(rows) for c in range(cols)]

    def gap_mask(self) -> npt.NDArray[np.bool_]:
        """True on the frame's pixels that no module covers."""
        gaps = np.ones(self.shape, bool)
        h, w = self.module.height, self.module.width
        for y0, x0 in self.origins():
            gaps[y0:y0 + h, x0:x0 + w] = False
        return gaps

    def split(self, frame: npt.ArrayLike) -> list[npt.NDArray[Any]]:
        """The module frames (views) of a detector frame, row-major."""
        a = np.asarray(frame)
        if a.shape != self.shape:
            raise ValueError(f"a frame of this detector is {self.shape}, got {a.shape}")
        h, w = self.module.height, self.module.width
        return [a[y0:y0 + h, x0:x0 + w] for y0, x0 in self.origins()]

    def assemble(self, images: Sequence[npt.ArrayLike], dtype: npt.DTypeLike = np.uint16,
                 fill: int = 0, out: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
        """The detector frame of the module frames ``images`` (row-major), the gaps
        ``fill``: a new array, or ``out`` (a frame-shaped array, whatever it holds: every
        pixel is written, each once)."""
        if len(images) != self.modules:
            raise ValueError(f"{self.modules} module frames make a frame, got {len(images)}")
        h, w = self.module.height, self.module.width
        for m, image in enumerate(images):
            if np.shape(image) != (h, w):
                raise ValueError(f"module {m}: frame {np.shape(image)}, a module is {(h, w)}")
        if out is None:
            out = np.empty(self.shape, dtype=dtype)
        elif out.shape != self.shape:
            raise ValueError(f"assemble: out has shape {out.shape}, a frame is {self.shape}")
        (rows, cols), (gr, gc) = self.grid, self.gap
        for r in range(rows):
            y0 = r * (h + gr)
            if r:  # the gap rows above this module row
                out[y0 - gr:y0] = fill
            for c in range(1, cols):  # the gap columns between its modules
                x0 = c * (w + gc)
                out[y0:y0 + h, x0 - gc:x0] = fill
        for (y0, x0), image in zip(self.origins(), images, strict=True):
            out[y0:y0 + h, x0:x0 + w] = image
        return out

    def module_roi(self, roi: tuple[int, int, int, int], m: int) -> tuple[int, int, int, int]:
        """The part of the frame's ROI ``(x0, y0, x1, y1)`` on module ``m``, in the module's
        own pixels (``(0, 0, 0, 0)`` when it misses the module): what each module's ROI
        registers hold so that the modules' ROI sums add up to the frame's."""
        y_m, x_m = self.origins()[m]
        h, w = self.module.height, self.module.width
        x0, y0, x1, y1 = roi
        lo_x, hi_x = max(x0 - x_m, 0), min(x1 - x_m, w)
        lo_y, hi_y = max(y0 - y_m, 0), min(y1 - y_m, h)
        if lo_x >= hi_x or lo_y >= hi_y:
            return (0, 0, 0, 0)
        return (lo_x, lo_y, hi_x, hi_y)


PILATUS_6M = DetectorLayout(ChainParams(195, 487, 64, binning=False), grid=(12, 5),
                            gap=(17, 7), sensor=PILATUS_SENSOR)
"""A Pilatus 6M: 2527 × 2463 pixels (rows × columns), 60 modules of 195 × 487, 450 µm of
silicon (a PILATUS3 X 6M's thinner sensor)."""
