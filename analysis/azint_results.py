"""The results of :class:`analysis.azint.AzimuthalIntegrator`'s ``integrate1d`` and
``integrate2d``, as pyFAI's: arrays with the sums they came from, unpacking as pyFAI's
results do (``x, I[, sigma]``; ``I, radial, azimuthal[, sigma]``). Re-exported by
:mod:`analysis.azint`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from geometry import UnitName

__all__ = ["Integrate1dResult", "Integrate2dResult"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, repr=False)
class _Result:
    """Arrays common to 1D and 2D results (a leading frame axis for stacks)."""

    intensity: F64
    sigma: F64 | None
    count: F64
    sum_signal: F64
    sum_variance: F64 | None
    sum_normalization: F64
    sum_normalization2: F64
    std: F64 | None
    sem: F64 | None
    error_model: str | None
    method: tuple[str, str, str]
    compute_engine: str
    metadata: Any

    def _tuple(self) -> tuple[F64, ...]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(shape={self.intensity.shape}, "
                f"npt={self.intensity.shape[-1]}, method={self.method}, "
                f"error_model={self.error_model!r})")

    def __iter__(self) -> Iterator[F64]:
        return iter(self._tuple())

    def __len__(self) -> int:
        return len(self._tuple())

    def __getitem__(self, i: int) -> F64:
        return self._tuple()[i]


@dataclass(frozen=True, repr=False)
class Integrate1dResult(_Result):
    """A 1D pattern (or one per frame of a stack), as pyFAI's: ``radial`` bin centres in
    ``unit`` (a name with pyFAI's ``label``); ``intensity``; ``sigma`` (the standard error
    of the mean, None without error model); the sums. Unpacks as ``x, I[, sigma]``."""

    radial: F64
    unit: UnitName

    def _tuple(self) -> tuple[F64, ...]:
        base = (self.radial, self.intensity)
        return base if self.sigma is None else (*base, self.sigma)


@dataclass(frozen=True, repr=False)
class Integrate2dResult(_Result):
    """A cake: arrays ``(npt_azim, npt_rad)`` (``(n, npt_azim, npt_rad)`` for a stack),
    ``radial`` in ``radial_unit``, ``azimuthal`` in ``azimuthal_unit``. Unpacks as pyFAI's:
    ``I, radial, azimuthal`` or ``I, radial, azimuthal, sigma``."""

    radial: F64
    azimuthal: F64
    radial_unit: UnitName
    azimuthal_unit: UnitName

    @property
    def unit(self) -> tuple[UnitName, UnitName]:
        """``(radial_unit, azimuthal_unit)``."""
        return self.radial_unit, self.azimuthal_unit

    def _tuple(self) -> tuple[F64, ...]:
        base = (self.intensity, self.radial, self.azimuthal)
        return base if self.sigma is None else (*base, self.sigma)
