"""Full pixel splitting in 2D (radial × χ), with pyFAI's area rule.

Each pixel is the quadrilateral of its four corners in (radial bin, χ bin) coordinates,
clipped to the ranges. Its area is shared among the cells it covers the way pyFAI's
``splitPixel`` 2D builder shares it: every edge, column by column, contributes the signed
area under it, stacked from the bottom of the pixel's bounding box up (each cell of the
column holds at most the column's width), and the cells' totals are normalised to 1. For
edges that cross a cell corner diagonally this is an approximation of the exact overlap —
the approximation pyFAI publishes, which is what results are compared with. The per-pixel
loop runs compiled (numba).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from analysis.azint_matrix import (
    _EPS32,
    _PI32,
    Axis,
    Matrix,
    Request,
    _corners,
    _csr,
    _four,
    _recentre,
)
from geometry import PoniGeometry

F64 = npt.NDArray[np.float64]


@numba.njit(cache=True)
def _fill_column(box: npt.NDArray[np.float32], col: int, area: float, width: float) -> None:
    """Stack ``area`` (signed) into column ``col`` from the bottom, ``width`` per cell."""
    if area == 0.0 or col < 0 or col >= box.shape[0]:
        return
    left = abs(area)
    sign = 1.0 if area > 0 else -1.0
    h = 0
    while left > 0 and h < box.shape[1]:
        step = min(width, left)
        box[col, h] += np.float32(sign * step)
        left -= step
        h += 1


@numba.njit(cache=True)
def _edge(box: npt.NDArray[np.float32], x0: float, y0: float, x1: float, y1: float) -> None:
    """Add the signed area under the segment (x0, y0)–(x1, y1), column by column."""
    if x0 == x1:
        return
    slope = (y1 - y0) / (x1 - x0)
    lo, hi = min(x0, x1), max(x0, x1)
    direction = 1.0 if x1 > x0 else -1.0
    col = math.floor(lo)
    while col < hi:
        a = max(lo, float(col))
        b = min(hi, float(col + 1))
        if b > a:
            mid = 0.5 * (a + b)
            area = direction * (b - a) * (y0 + slope * (mid - x0))
            _fill_column(box, col, area, b - a)
        col += 1


@numba.njit(cache=True)
def _entries(r: F64, c: F64, keep: npt.NDArray[np.bool_], lo0: float, maxin0: float,
             d0: float, lo1: float, maxin1: float, hi1: float, d1: float, n0: int,
             n1: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], F64]:
    """(pixel, flat bin, weight) of every pixel: r and c are (4, npix) corners."""
    npix = r.shape[1]
    cap = 4 * npix + 16
    pix = np.empty(cap, np.int64)
    bins = np.empty(cap, np.int64)
    wts = np.empty(cap, np.float64)
    n = 0
    fx = np.empty(4)
    fy = np.empty(4)
    for p in range(npix):
        if not keep[p]:
            continue
        min0 = min(min(r[0, p], r[1, p]), min(r[2, p], r[3, p]))
        max0 = max(max(r[0, p], r[1, p]), max(r[2, p], r[3, p]))
        min1 = min(min(c[0, p], c[1, p]), min(c[2, p], c[3, p]))
        max1 = max(max(c[0, p], c[1, p]), max(c[2, p], c[3, p]))
        if max0 < lo0 or min0 > maxin0 or max1 < lo1 or min1 >= hi1:
            continue
        for k in range(4):
            fx[k] = (min(max(r[k, p], lo0), maxin0) - lo0) / d0
            fy[k] = (min(max(c[k, p], lo1), maxin1) - lo1) / d1
        off0 = math.floor(min(min(fx[0], fx[1]), min(fx[2], fx[3])))
        off1 = math.floor(min(min(fy[0], fy[1]), min(fy[2], fy[3])))
        w0 = int(math.ceil(max(max(fx[0], fx[1]), max(fx[2], fx[3]))) - off0)
        w1 = int(math.ceil(max(max(fy[0], fy[1]), max(fy[2], fy[3]))) - off1)
        box = np.zeros((w0 + 1, w1 + 1), np.float32)
        for k in range(4):
            m = (k + 1) % 4
            _edge(box, fx[k] - off0, fy[k] - off1, fx[m] - off0, fy[m] - off1)
        total = 0.0
        for i in range(w0):
            for j in range(w1):
                total += box[i, j]
        if total == 0.0:
            continue
        for i in range(w0):
            for j in range(w1):
                if box[i, j] == 0.0:
                    continue
                b0 = int(off0) + i
                b1 = int(off1) + j
                if b0 < 0 or b0 >= n0 or b1 < 0 or b1 >= n1:
                    continue
                if n == cap:
                    cap *= 2
                    pix = np.concatenate((pix, np.empty(cap - n, np.int64)))
                    bins = np.concatenate((bins, np.empty(cap - n, np.int64)))
                    wts = np.concatenate((wts, np.empty(cap - n, np.float64)))
                pix[n] = p
                bins[n] = b0 * n1 + b1
                wts[n] = box[i, j] / total
                n += 1
    return pix[:n], bins[:n], wts[:n]


def full2d(geometry: PoniGeometry, req: Request, keep: npt.NDArray[np.bool_]) -> Matrix:
    """The ``full``-split matrix of a 2D request (see the module docstring)."""
    assert req.npt_azim is not None
    r = np.stack(_four(_corners(geometry, req.unit)))
    c_list = list(_four(_corners(geometry, "chi_rad")))
    raw_c = np.stack(c_list)

    def bounds(values: F64, rng: tuple[float, float] | None, clamp: bool
               ) -> tuple[float, float]:
        if rng is not None:
            return min(rng), max(rng)
        lo = float(values.min(axis=0)[keep].min())
        hi = float(values.max(axis=0)[keep].max())
        if clamp:
            return max(0.0, lo), max(0.0, hi)
        return max(lo, -_PI32), min(hi, _PI32)

    lo0, maxin0 = bounds(r, req.radial_range, True)
    lo1, maxin1 = bounds(raw_c, req.azimuth_range, False)
    hi0 = maxin0 * _EPS32 if maxin0 > 0 else maxin0 / _EPS32
    hi1 = maxin1 * _EPS32 if maxin1 > 0 else maxin1 / _EPS32
    radial = Axis(req.npt_rad, lo0, hi0, req.unit.scale)
    azim = Axis(req.npt_azim, lo1, hi1, 180.0 / math.pi)
    _recentre(tuple(r), c_list, geometry.detector.orientation)
    c = np.ascontiguousarray(np.stack(c_list))
    pix, bins, w = _entries(np.ascontiguousarray(r), c, keep, lo0, maxin0, radial.delta,
                            lo1, maxin1, hi1, azim.delta, radial.npt, azim.npt)
    return _csr("full", radial, azim, keep.size, pix, bins, w)
