"""A 3D attenuation phantom made of ellipsoids, with exact parallel-beam projections.

Each :class:`Ellipsoid` adds its linear attenuation coefficient ``mu`` (1/mm) inside its
volume. Along a straight ray the path length through an ellipsoid is a closed-form chord
(solve the quadratic of the ray against the ellipsoid), so the line integral ∫μ dl through
the whole phantom is a sum of exact chords — no voxels, no sampling error, and cheap: the
quadratic's coefficients are affine or quadratic in the detector coordinates, so one
projection costs a handful of array operations per ellipsoid.

Geometry is the lab/sample convention of :mod:`devices.samples`: the sample frame has
``x`` horizontal, ``y`` vertical (the rotation axis) and ``z`` along the beam at angle 0;
at rotation angle θ the sample is turned about ``y`` by θ (counter-clockwise seen from
above), and the stages translate it by ``(x, y)`` mm. A detector pixel at lab ``(X, Y)``
sees the ray ``(X, Y, s)``, ``s`` along the beam. Moving the sample far enough along ``x``
leaves every ray empty, which is how flat fields are taken.

:func:`shepp_logan_3d` builds the 3D Shepp–Logan head phantom geometry (Kak & Slaney's
ellipsoid table) with higher-contrast ("modified") attenuation values so the structures
are visible in a simulated projection.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from numba import njit

from devices.samples import (
    FloatImage,
    FluxBuffer,
    IncidentBeam,
    PixelSize,
    Pose,
    detector_coordinates_mm,
    pixel_pair,
)
from sme.native import native_kernel

__all__ = ["Ellipsoid", "EllipsoidPhantom", "PhantomSample", "shepp_logan_3d"]

FloatArray = npt.NDArray[np.float64]


def _rotation_y(angle_deg: float) -> FloatArray:
    """Rotation about the vertical axis ``y`` (counter-clockwise seen from +y)."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rotation_x(angle_deg: float) -> FloatArray:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


@dataclass(frozen=True)
class Ellipsoid:
    """One ellipsoid of a phantom, in the sample frame.

    Parameters
    ----------
    center
        Centre ``(x, y, z)``, mm (``y`` vertical).
    semi_axes
        Semi-axes along the ellipsoid's own x, y, z, mm.
    mu
        Linear attenuation coefficient added inside, 1/mm (may be negative to carve out).
    phi
        Rotation about the vertical axis, degrees.
    tilt
        Rotation about the horizontal ``x`` axis applied before ``phi``, degrees.
    """

    center: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    mu: float
    phi: float = 0.0
    tilt: float = 0.0

    def __post_init__(self) -> None:
        if len(self.center) != 3 or not all(math.isfinite(c) for c in self.center):
            raise ValueError(f"Ellipsoid.center must be 3 finite numbers, got {self.center!r}")
        if len(self.semi_axes) != 3 or not all(
            math.isfinite(a) and a > 0 for a in self.semi_axes
        ):
            raise ValueError(
                f"Ellipsoid.semi_axes must be 3 numbers > 0, got {self.semi_axes!r}"
            )
        for name in ("mu", "phi", "tilt"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"Ellipsoid.{name} must be finite, got {getattr(self, name)!r}")

    def quadric(self) -> FloatArray:
        """Matrix ``M`` with ``(p - c)ᵀ M (p - c) <= 1`` inside the ellipsoid."""
        rot = _rotation_y(self.phi) @ _rotation_x(self.tilt)
        inv_sq = np.diag([1.0 / (a * a) for a in self.semi_axes])
        result: FloatArray = rot @ inv_sq @ rot.T
        return result


class EllipsoidPhantom:
    """A sum of ellipsoids with exact line integrals.

    Parameters
    ----------
    ellipsoids
        The ellipsoids; attenuation adds where they overlap.
    """

    def __init__(self, ellipsoids: Sequence[Ellipsoid]) -> None:
        if len(ellipsoids) == 0:
            raise ValueError("EllipsoidPhantom needs at least one ellipsoid")
        self.ellipsoids = tuple(ellipsoids)
        self._quadrics = [e.quadric() for e in self.ellipsoids]
        self._centers = [np.asarray(e.center, dtype=np.float64) for e in self.ellipsoids]
        # stacked for ray_coefficients (one frame's pose: a few array products in all)
        self._m = np.stack(self._quadrics)
        self._c = np.stack(self._centers)
        self._cmc = np.einsum("ki,kij,kj->k", self._c, self._m, self._c) - 1.0
        self._mu = np.array([e.mu for e in self.ellipsoids], dtype=np.float64)
        # the heights (sample y, the rotation axis) each ellipsoid spans, whatever the
        # angle: centre ± √((M⁻¹)_yy), widened by far more than the rounding of a row's
        # test (``_transmit`` skips the rows outside, where no ray meets it)
        half = np.sqrt(np.linalg.inv(self._m)[:, 1, 1])
        margin = 1e-6 * (half + np.linalg.norm(self._c, axis=1))
        self._heights = np.stack([self._c[:, 1] - half - margin,
                                  self._c[:, 1] + half + margin], axis=1)

    @property
    def radius(self) -> float:
        """Radius (mm) of a sphere about the sample-frame origin containing the phantom."""
        return max(
            float(np.linalg.norm(c)) + max(e.semi_axes)
            for c, e in zip(self._centers, self.ellipsoids, strict=True)
        )

    def mu_at(self, points: FloatArray) -> FloatArray:
        """Attenuation coefficient (1/mm) at sample-frame points of shape ``(..., 3)``."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.shape[-1:] != (3,):
            raise ValueError(f"mu_at needs points of shape (..., 3), got {pts.shape}")
        total = np.zeros(pts.shape[:-1], dtype=np.float64)
        for e, m, c in zip(self.ellipsoids, self._quadrics, self._centers, strict=True):
            q = pts - c
            inside = np.einsum("...i,ij,...j->...", q, m, q) <= 1.0
            total += np.where(inside, e.mu, 0.0)
        return total

    def line_integrals_at(
        self, x_mm: FloatArray, y_mm: FloatArray, pose: Pose
    ) -> FloatArray:
        """∫μ dl along the beam through lab points ``(x_mm, y_mm)`` (broadcast together)."""
        rot_t = _rotation_y(pose.angle).T  # lab -> sample frame
        ex = rot_t[:, 0]  # sample-frame image of the lab x axis
        ey = rot_t[:, 1]  # ... of the lab y axis (= sample y)
        d = rot_t[:, 2]  # beam direction in the sample frame
        xr = np.asarray(x_mm, dtype=np.float64) - pose.x
        yr = np.asarray(y_mm, dtype=np.float64) - pose.y
        total: FloatArray = np.zeros(np.broadcast_shapes(xr.shape, yr.shape), np.float64)
        for e, m, c in zip(self.ellipsoids, self._quadrics, self._centers, strict=True):
            # ray q(s) = X ex + Y ey - c + s d ; (q(s))ᵀ M q(s) = 1 is A s² + 2 B s + C = 0
            md = m @ d
            a = float(d @ md)
            b = xr * float(ex @ md) + yr * float(ey @ md) - float(c @ md)
            mx, my, mc = m @ ex, m @ ey, m @ c
            cc = (
                xr * xr * float(ex @ mx)
                + yr * yr * float(ey @ my)
                + 2.0 * xr * yr * float(ex @ my)
                - 2.0 * xr * float(ex @ mc)
                - 2.0 * yr * float(ey @ mc)
                + (float(c @ mc) - 1.0)
            )
            disc = b * b - a * cc
            chord = (2.0 / a) * np.sqrt(np.maximum(disc, 0.0))
            total += e.mu * chord
        return total

    def ray_coefficients(self, pose: Pose) -> FloatArray:
        """Per ellipsoid, the chord's quadratic in the lab point ``(X, Y)`` at ``pose``.

        Row ``k`` is ``(a, bx, by, b0, cxx, cyy, cxy, cx, cy, c0, mu)``: with ``X, Y``
        relative to the stage position, ``b = bx X + by Y + b0``, ``c = cxx X² + cyy Y² +
        2 cxy X Y − 2 cx X − 2 cy Y + c0`` and the chord is ``(2/a) √(b² − a c)`` where
        positive (see :meth:`line_integrals_at`, the same algebra on arrays)."""
        rot_t = _rotation_y(pose.angle).T
        axes = rot_t.T  # rows: ex, ey, d (the lab x, y axes and the beam in the sample frame)
        m_axes = self._m @ rot_t  # (k, 3, 3): M ex, M ey, M d as columns
        c_m = np.einsum("ki,kij->kj", self._c, m_axes)  # c·M ex, c·M ey, c·M d
        ex_m = axes @ m_axes  # (k, 3, 3): row r, column s = axis_r · M axis_s
        out = np.empty((self._m.shape[0], 11), dtype=np.float64)
        out[:, 0] = ex_m[:, 2, 2]   # a = d·M d
        out[:, 1] = ex_m[:, 0, 2]   # ex·M d
        out[:, 2] = ex_m[:, 1, 2]   # ey·M d
        out[:, 3] = -c_m[:, 2]      # −c·M d
        out[:, 4] = ex_m[:, 0, 0]   # ex·M ex
        out[:, 5] = ex_m[:, 1, 1]   # ey·M ey
        out[:, 6] = ex_m[:, 0, 1]   # ex·M ey
        out[:, 7] = c_m[:, 0]       # ex·M c (M symmetric)
        out[:, 8] = c_m[:, 1]       # ey·M c
        out[:, 9] = self._cmc       # c·M c − 1
        out[:, 10] = self._mu
        return out

    def line_integrals(
        self, pose: Pose, shape: tuple[int, int], pixel_size: PixelSize
    ) -> FloatImage:
        """∫μ dl for every detector pixel (dimensionless), shape ``(rows, cols)``.

        Computed by a compiled kernel that visits, per detector row and ellipsoid, only
        the columns whose ray meets the ellipsoid; :meth:`line_integrals_at` is the array
        version of the same formulas (the tests hold the two equal)."""
        x, y = detector_coordinates_mm(shape, pixel_size)
        out = np.zeros((y.shape[0], x.shape[1]), dtype=np.float64)
        _integrate_rays(np.ascontiguousarray(x[0]) - pose.x,
                        np.ascontiguousarray(y[:, 0]) - pose.y,
                        self.ray_coefficients(pose), out)
        return out

    def transmit(self, pose: Pose, incident: FloatImage, pixel_size: PixelSize) -> FloatImage:
        """``incident × exp(−∫μ dl)`` per pixel (a new array of ``incident``'s shape):
        the projection in one compiled pass that keeps one row of line integrals and
        takes their exponentials only in the columns the phantom covers (no image of
        the integrals; ``e^x`` without a branch or a call, within 2 units in the last
        place of the C library's ``exp``, 1 exactly where no ray meets the phantom)."""
        out = np.array(incident, dtype=np.float64, order="C")
        self.transmit_into(pose, out, pixel_size, out)
        return out

    def transmit_into(self, pose: Pose, incident: FloatImage, pixel_size: PixelSize,
                      out: FloatImage) -> tuple[int, int, int, int]:
        """``out = incident × exp(−∫μ dl)`` where a ray meets the phantom, ``out`` left as
        it is elsewhere (the caller put ``incident`` there: ``transmit``, or a buffer
        drawn into before, ``PhantomSample.flux_into``). Returns the box
        ``(row0, row1, col0, col1)`` of the pixels a ray of which meets the phantom (the
        only ones written; empty, ``row0 >= row1``, when none does)."""
        if out.shape != incident.shape or out.dtype != np.float64 \
                or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"transmit_into: out must be a writeable C-contiguous float64 "
                             f"array of shape {incident.shape}")
        xs, ys = _ray_axes(incident.shape, pixel_pair(pixel_size))
        beam = np.ascontiguousarray(incident, np.float64)
        if beam.flags.writeable:  # (read-only, as the beam's cached images are: one
            beam = beam.view()  # signature of the kernel, the one built natively)
            beam.flags.writeable = False
        box = _transmit_native(xs - pose.x, ys - pose.y, self.ray_coefficients(pose),
                               self._heights, beam, out)
        return int(box[0]), int(box[1]), int(box[2]), int(box[3])

    def sinogram(
        self,
        angles_deg: Sequence[float] | FloatArray,
        row: int,
        shape: tuple[int, int],
        pixel_size: PixelSize,
        *,
        x: float = 0.0,
        y: float = 0.0,
    ) -> FloatArray:
        """Ideal sinogram ground truth: ∫μ dl of detector ``row`` for each angle.

        Returns an array ``(len(angles_deg), cols)``; ``-log(flat-corrected projection)``
        of a noise-free acquisition must equal it.
        """
        rows = shape[0]
        if not 0 <= row < rows:
            raise ValueError(f"sinogram row must be in [0, {rows}), got {row!r}")
        xs, ys = detector_coordinates_mm(shape, pixel_size)
        y_row = ys[row : row + 1, :]
        return np.stack(
            [
                self.line_integrals_at(xs, y_row, Pose(x, y, float(a)))[0]
                for a in np.asarray(angles_deg, dtype=np.float64)
            ]
        )


# Kak & Slaney's 3D Shepp-Logan ellipsoids in their frame (x, y in the slice plane, z the
# slice axis), in units of the phantom radius: centre, semi-axes (along x, y, z), phi
# (deg, in the x-y plane). The attenuation column uses "modified" (high contrast) values.
_SHEPP_LOGAN_3D: tuple[tuple[float, float, float, float, float, float, float, float], ...] = (
    (0.0, 0.0, 0.0, 0.69, 0.92, 0.90, 0.0, 1.0),
    (0.0, 0.0, 0.0, 0.6624, 0.874, 0.88, 0.0, -0.8),
    (-0.22, 0.0, -0.25, 0.41, 0.16, 0.21, 108.0, -0.2),
    (0.22, 0.0, -0.25, 0.31, 0.11, 0.22, 72.0, -0.2),
    (0.0, 0.35, -0.25, 0.21, 0.25, 0.50, 0.0, 0.1),
    (0.0, 0.1, -0.25, 0.046, 0.046, 0.046, 0.0, 0.1),
    (-0.08, -0.65, -0.25, 0.046, 0.023, 0.02, 0.0, 0.1),
    (0.06, -0.65, -0.25, 0.046, 0.023, 0.02, 90.0, 0.1),
    (0.06, -0.105, 0.625, 0.056, 0.04, 0.10, 90.0, 0.2),
    (0.0, 0.1, 0.625, 0.056, 0.056, 0.10, 0.0, -0.1),
)


def shepp_logan_3d(radius: float = 1.0, mu: float = 2.0) -> EllipsoidPhantom:
    """The 3D Shepp–Logan phantom, scaled to ``radius`` mm with peak attenuation ``mu``/mm.

    Kak & Slaney's slice axis becomes the vertical (rotation) axis ``y``; their slice-plane
    ``y`` becomes the beam direction ``z`` at angle 0. The outer shell has attenuation
    ``mu``, the interior ``0.2 mu``, the inner structures ``0`` to ``0.4 mu`` — all ≥ 0.
    """
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"shepp_logan_3d: radius must be > 0 mm, got {radius!r}")
    if not (math.isfinite(mu) and mu > 0):
        raise ValueError(f"shepp_logan_3d: mu must be > 0 per mm, got {mu!r}")
    ellipsoids = [
        Ellipsoid(
            center=(x0 * radius, z0 * radius, y0 * radius),
            semi_axes=(a * radius, c * radius, b * radius),
            mu=rho * mu,
            phi=phi,
        )
        for x0, y0, z0, a, b, c, phi, rho in _SHEPP_LOGAN_3D
    ]
    return EllipsoidPhantom(ellipsoids)


@dataclass(frozen=True)
class PhantomSample:
    """A transmission sample: incident beam × exp(−∫μ dl) through the posed phantom.

    Parameters
    ----------
    phantom
        The attenuation phantom.
    incident
        The incident beam (its image is also the flat field).
    name
        What the frame files call the sample (NeXus ``/entry/sample/name``).
    """

    phantom: EllipsoidPhantom
    incident: IncidentBeam = field(default_factory=IncidentBeam)
    name: str = "attenuation phantom"

    def flux(self, pose: Pose, shape: tuple[int, int], pixel_size: PixelSize) -> FloatImage:
        """Photons/s per pixel behind the sample at nominal ring current."""
        return self.phantom.transmit(pose, self.incident.image(shape, pixel_size), pixel_size)

    def prepare(self, shape: tuple[int, int], pixel_size: PixelSize) -> None:
        """Make the incident beam's image of ``shape`` now (``Scene.prepare``)."""
        self.incident.image(shape, pixel_size)

    def flux_into(self, pose: Pose, shape: tuple[int, int], pixel_size: PixelSize,
                  buffer: FluxBuffer) -> FloatImage:
        """``flux`` drawn into ``buffer`` (``Scene.flux_parts(into=…)``), the same numbers:
        the incident beam copied in when the buffer does not hold it yet, then only the
        pixels the phantom covered last time put back to the incident beam and those it
        covers now drawn (the phantom is a few percent of a frame, whose copy and fresh
        pages cost more than the projection)."""
        incident = self.incident.image(shape, pixel_size)
        out = buffer.array(incident.shape)
        held, buffer.held = buffer.held, None  # (nothing claimed while it is redrawn)
        if isinstance(held, _Drawn) and held.incident is incident:
            row0, row1, col0, col1 = held.box
            out[row0:row1, col0:col1] = incident[row0:row1, col0:col1]
        else:
            out[...] = incident
        box = self.phantom.transmit_into(pose, incident, pixel_size, out)
        buffer.held = _Drawn(incident, box)
        assert buffer.image is not None  # (array() made it)
        return buffer.image


@dataclass(frozen=True, eq=False)
class _Drawn:
    """What a ``FluxBuffer`` holds after ``PhantomSample.flux_into``: ``incident`` (the
    beam's cached image, kept so that its identity means these values) but in ``box``
    ``(row0, row1, col0, col1)``, where the phantom was drawn."""

    incident: FloatImage
    box: tuple[int, int, int, int]


@njit(inline="always")
def _row_chords(xs: FloatArray, yr: float, coef: FloatArray, k: int,
                acc: FloatArray) -> tuple[int, int]:  # pragma: no cover - compiled
    """Add ellipsoid ``k``'s chord × μ of the rays at ``(xs[col], yr)`` to ``acc[col]``;
    returns the interval of columns ``[lo, hi)`` visited (empty: ``lo >= hi``). The
    discriminant is a concave quadratic in ``X``, so the columns a ray of which meets the
    ellipsoid form one interval, found first."""
    n_cols = xs.shape[0]
    x0 = xs[0]
    dx = xs[1] - xs[0] if n_cols > 1 else 1.0
    a, bx, by, b0 = coef[k, 0], coef[k, 1], coef[k, 2], coef[k, 3]
    cxx, cyy, cxy, cx, cy, c0, mu = (coef[k, 4], coef[k, 5], coef[k, 6], coef[k, 7],
                                     coef[k, 8], coef[k, 9], coef[k, 10])
    scale = 2.0 * mu / a
    bb = by * yr + b0  # b = bx X + bb
    c1 = 2.0 * cxy * yr - 2.0 * cx  # c = cxx X² + c1 X + cc0
    cc0 = cyy * yr * yr - 2.0 * cy * yr + c0
    qa = bx * bx - a * cxx  # disc = qa X² + qb X + qc, qa < 0
    qb = 2.0 * bx * bb - a * c1
    qc = bb * bb - a * cc0
    if qa >= 0.0:
        lo, hi = 0, n_cols
    else:
        det = qb * qb - 4.0 * qa * qc
        if det <= 0.0:
            return 0, 0
        r = np.sqrt(det)
        xa, xb = (-qb + r) / (2.0 * qa), (-qb - r) / (2.0 * qa)
        if dx > 0:
            lo = max(int(np.floor((min(xa, xb) - x0) / dx)), 0)
            hi = min(int(np.ceil((max(xa, xb) - x0) / dx)) + 1, n_cols)
        else:
            lo = max(int(np.floor((max(xa, xb) - x0) / dx)), 0)
            hi = min(int(np.ceil((min(xa, xb) - x0) / dx)) + 1, n_cols)
    cols = xs[lo:hi]  # (views indexed from 0: the loop below runs several columns per
    sums = acc[lo:hi]  # instruction, square roots included; from lo it ran one at a time)
    for j in range(hi - lo):  # (no branch; where the ray misses, the chord adds 0,
        # which changes no sum)
        xr = cols[j]
        b = bx * xr + bb
        c = cxx * xr * xr + c1 * xr + cc0
        disc = b * b - a * c
        sums[j] += scale * np.sqrt(disc if disc > 0.0 else 0.0)
    return lo, hi


@njit(cache=True, nogil=True)
def _integrate_rays(xs: FloatArray, ys: FloatArray, coef: FloatArray,
                    out: FloatArray) -> None:  # pragma: no cover - compiled
    """Add every ellipsoid's chord × μ to ``out[row, col]`` (rays at ``(xs[col], ys[row])``,
    ``xs`` evenly spaced), row by row (``_row_chords``)."""
    for i in range(ys.shape[0]):
        for k in range(coef.shape[0]):
            _row_chords(xs, ys[i], coef, k, out[i])


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
"""ln 2 to its top 32 bits: ``k·_LN2_HI`` is exact for every ``k`` of ``_exp_parts``."""
_LN2_LO = 1.90821492927058770002e-10
"""ln 2 − ``_LN2_HI``."""
_EXP_TERMS = tuple(1.0 / math.factorial(n) for n in range(13, -1, -1))
"""Taylor coefficients of ``e^r``, highest power first (to ``r¹³``: the next term is below
4e-18 for ``|r| <= ln 2 / 2``)."""


@njit(inline="always")
def _exp_parts(x: float) -> tuple[float, np.int64]:  # pragma: no cover - compiled
    """``e^x = p · 2^k`` for ``−708 <= x <= 709`` (``x`` clamped to that): ``p`` and the
    bits of the double ``2^k``. ``k`` is ``x/ln 2`` rounded, ``p`` the Taylor polynomial
    of ``e^r`` at ``r = x − k ln 2`` (Cody and Waite's two-part ln 2), all without a
    branch or a call, so a loop of them runs several pixels per instruction where the C
    library's ``exp`` is a call per pixel; within 2 units in the last place of it."""
    x = min(max(x, -708.0), 709.0)
    k = np.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 0.0
    for c in _EXP_TERMS:
        p = p * r + c
    return p, (np.int64(k) + np.int64(1023)) << np.int64(52)


@njit(cache=True, nogil=True)
def _transmit(xs: FloatArray, ys: FloatArray, coef: FloatArray, heights: FloatArray,
              incident: FloatArray, out: FloatArray
              ) -> tuple[int, int, int, int]:  # pragma: no cover - compiled
    """``out = incident · exp(−Σ chord × μ)`` in the columns some ellipsoid's interval
    covers (the rays of ``_integrate_rays``; the same sums, ellipsoid by ellipsoid),
    ``out`` untouched elsewhere: per row, the integrals in one row buffer, then their
    exponentials (``_exp_parts``: ``e^0`` is 1 exactly, so a pixel whose ray misses every
    ellipsoid keeps ``incident``'s value) in two loops without a branch. Returns the box
    of rows and columns those intervals cover (``transmit_into``).

    ``heights[k]``: the rows ``ys`` ellipsoid ``k`` can cover (``EllipsoidPhantom``'s,
    wider than it by far more than rounding); the others are not asked, as a ray there
    misses it (``_row_chords`` would find no interval). Most of a frame's rows meet
    few of the ellipsoids, and asking cost more than the chords."""
    n_cols = xs.shape[0]
    acc = np.zeros(n_cols)
    parts = np.empty(n_cols)
    bits = np.empty(n_cols, np.int64)
    scales = bits.view(np.float64)
    # (an ellipsoid whose discriminant in X is not concave, ``_row_chords``' qa >= 0,
    # which no ellipsoid's is but for rounding, is asked on every row)
    everywhere = coef[:, 1] * coef[:, 1] - coef[:, 0] * coef[:, 4] >= 0.0
    row0, row1, col0, col1 = ys.shape[0], 0, n_cols, 0
    for i in range(ys.shape[0]):
        first, last = n_cols, 0
        y = ys[i]
        for k in range(coef.shape[0]):
            if not (everywhere[k] or heights[k, 0] <= y <= heights[k, 1]):
                continue
            lo, hi = _row_chords(xs, y, coef, k, acc)
            if lo < hi:
                first, last = min(first, lo), max(last, hi)
        if first >= last:
            continue
        row0, row1 = min(row0, i), i + 1
        col0, col1 = min(col0, first), max(col1, last)
        sums = acc[first:last]  # (views indexed from 0: consecutive loads and stores)
        beam = incident[i, first:last]
        row = out[i, first:last]
        for j in range(last - first):
            parts[j], bits[j] = _exp_parts(-sums[j])
            sums[j] = 0.0
        for j in range(last - first):
            row[j] = beam[j] * (parts[j] * scales[j])
    return row0, row1, col0, col1


@lru_cache(maxsize=16)
def _ray_axes(shape: tuple[int, int], pixel: tuple[float, float]
              ) -> tuple[FloatArray, FloatArray]:
    """The lab ``x`` of the detector's columns and ``y`` of its rows, mm
    (``detector_coordinates_mm`` as two read-only vectors), made once per detector."""
    x, y = detector_coordinates_mm(shape, pixel)
    xs, ys = np.ascontiguousarray(x[0]), np.ascontiguousarray(y[:, 0])
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


_transmit_native = native_kernel(_transmit)
"""``_transmit`` from the natively built module when there is one (``sme.native``)."""
