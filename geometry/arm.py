"""Two-theta of a detector on a rotating arm (the Copenhagen group's cross-check geometry).

With no rotations it coincides with a PONI geometry of a detector normal to the beam,
which is how the two are cross-checked (see DESIGN.md)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["arm_two_theta"]

FloatArray = npt.NDArray[np.float64]


def arm_two_theta(shape: tuple[int, int], n0: float, m0: float, wn: float, wm: float,
                  phi: float, delta: float) -> FloatArray:
    """2θ (rad) per pixel of a detector on a rotating arm (see DESIGN.md).

    Parameters
    ----------
    shape
        Detector shape ``(rows, cols)``; pixel ``(n, m)`` is row ``n``, column ``m``.
    n0, m0
        Detector zero (where the arm's axis meets the detector), in pixels.
    wn, wm
        Pixel sizes along n and m divided by the sample–detector distance.
    phi
        Rotation of the detector about its own normal, rad.
    delta
        Arm angle about the main axis, rad.

    Returns
    -------
    numpy.ndarray
        ``2θ = arccos(X / |(X, Y, Z)|)`` with the pixel offsets rotated by φ
        (``tN``, ``tM``) and then by δ: ``X = cos δ − sin δ·tN``,
        ``Y = sin δ + cos δ·tN``, ``Z = tM``. It is evaluated as the equal
        ``atan2(√(Y² + Z²), X)``, which keeps full precision near the beam.
    """
    rows, cols = (int(shape[0]), int(shape[1]))
    if rows <= 0 or cols <= 0:
        raise ValueError(f"arm_two_theta: shape must be positive (rows, cols), got {shape!r}")
    if not (wn > 0 and wm > 0):
        raise ValueError(f"arm_two_theta: wn and wm must be positive, got {wn!r}, {wm!r}")
    dn = (np.arange(rows, dtype=np.float64) - n0)[:, None] * wn
    dm = (np.arange(cols, dtype=np.float64) - m0)[None, :] * wm
    t_n = math.cos(phi) * dn - math.sin(phi) * dm
    t_m = math.sin(phi) * dn + math.cos(phi) * dm
    x = math.cos(delta) - math.sin(delta) * t_n
    y = math.sin(delta) + math.cos(delta) * t_n
    z = t_m
    result: FloatArray = np.arctan2(np.sqrt(y * y + z * z), x)
    return result
