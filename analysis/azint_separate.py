"""pyFAI's ``separate``: a frame split into its powder/amorphous part — the azimuthal
median (:mod:`analysis.azint_median`) projected back onto every pixel — and the rest, the
Bragg peaks of single crystals or texture.

The median profile is interpolated linearly at each pixel's centre (in the profile's
unit) and multiplied back by the solid angle (and polarization, when given), as pyFAI's
``calcfrom1d``; ``bragg = data − amorphous``. Masked pixels keep the frame's value in
both parts (``restore_mask``), as pyFAI's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from analysis import azint_args as args
from analysis.azint_results import Integrate1dResult
from geometry import radial_unit

if TYPE_CHECKING:
    from analysis.azint import AzimuthalIntegrator

__all__ = ["SeparateResult", "separate"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, repr=False)
class SeparateResult:
    """``bragg, amorphous = result`` as pyFAI's; ``filtered`` is the median profile (its
    ``radial``, ``intensity``, ``sigma``, ``count``, sums and ``unit`` are also the
    result's, as pyFAI's)."""

    bragg: F64
    amorphous: F64
    filtered: Integrate1dResult

    def __iter__(self) -> Iterator[F64]:
        return iter((self.bragg, self.amorphous))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> F64:
        return (self.bragg, self.amorphous)[i]

    def __getattr__(self, name: str) -> Any:
        if name in _PROFILE:
            return getattr(self.filtered, name)
        raise AttributeError(f"SeparateResult has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"SeparateResult(shape={self.bragg.shape}, npt={self.filtered.radial.size})"


_PROFILE = frozenset({"radial", "intensity", "sigma", "count", "sum_signal", "sum_variance",
                      "sum_normalization", "unit", "method", "error_model"})


def separate(ai: AzimuthalIntegrator, data: Any, npt: int = 1024, *,
             unit: Any = "2th_deg", method: Any = ("full", "csr", "cython"),
             polarization_factor: float | None = None, percentile: Any = 50,
             mask: Any = None, restore_mask: bool = True) -> SeparateResult:
    """pyFAI's ``separate``: ``bragg, amorphous`` images of ``data`` (one frame, or a
    stack: images per frame) from the ``percentile`` (median by default) of ``npt`` bins
    in ``unit`` (2θ in degrees by default), computed with
    :meth:`~analysis.azint.AzimuthalIntegrator.medfilt1d_ng`'s ``method``, ``mask`` and
    ``polarization_factor``. With ``restore_mask`` the masked pixels (``mask``, else the
    detector's gaps) hold the frame's value in both images."""
    if not isinstance(restore_mask, (bool, np.bool_)):
        raise ValueError(f"restore_mask must be True or False, got {restore_mask!r}")
    filtered = ai.medfilt1d_ng(data, npt, unit=unit, method=method, percentile=percentile,
                               polarization_factor=polarization_factor, mask=mask)
    g = ai.geometry
    u = radial_unit(unit)
    frames = np.asarray(data, dtype=np.float64).reshape(-1, *g.shape)
    profiles = np.asarray(filtered.intensity).reshape(len(frames), -1)
    at = g.array(u).ravel()
    scale = g.solid_angle(3.0)
    if polarization_factor is not None:
        scale = scale * g.polarization(polarization_factor)
    radial = np.asarray(filtered.radial) / u.scale
    amorphous = np.stack([np.interp(at, radial, p).reshape(g.shape) * scale
                          for p in profiles])
    bragg = frames - amorphous
    hidden = args.mask_image(mask, g.shape)
    if hidden is None and g.detector.has_gaps:
        hidden = g.detector.mask
    if restore_mask and hidden is not None:
        where = np.asarray(hidden) != 0
        bragg[:, where] = frames[:, where]
        amorphous[:, where] = frames[:, where]
    shape = np.shape(data)
    return SeparateResult(bragg.reshape(shape), amorphous.reshape(shape), filtered)

