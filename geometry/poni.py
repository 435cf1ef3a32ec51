"""A flat detector placed with pyFAI's PONI parameters, and its per-pixel arrays.

The sample–detector distance ``dist`` is measured along the detector normal, the point of
normal incidence (PONI) ``poni1``/``poni2`` in metres along the slow (rows) and fast
(columns) axes, and three rotations ``rot1``–``rot3`` (radians). Pixel centres sit at
``(i + 0.5) * pixel`` (indices reversed along an axis the detector's orientation flips).
The per-pixel arrays follow pyFAI's formulas (float64, vectorised numpy), so integration
results computed from them can be compared bin by bin with pyFAI.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from geometry.detectors import GENERIC, Detector, DetectorError, detector
from geometry.units import Unit, azimuthal_unit, radial_unit

__all__ = ["PoniError", "PoniGeometry"]

FloatArray = npt.NDArray[np.float64]
_METADATA_KEYS = ("dist", "poni1", "poni2", "rot1", "rot2", "rot3", "pixel1", "pixel2",
                  "shape", "wavelength", "detector", "orientation")


class PoniError(ValueError):
    """A geometry that cannot be read (the message names the file and line, or the
    metadata it came from)."""


def _finite(value: Any) -> bool:
    """``math.isfinite`` that says False for an int too large for a float."""
    try:
        return math.isfinite(value)
    except (OverflowError, TypeError):
        return False


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and _finite(value)


@dataclass(frozen=True, init=False)
class PoniGeometry:
    """A flat detector placed with pyFAI's PONI parameters.

    Parameters
    ----------
    dist
        Sample–detector distance along the detector normal, m.
    poni1, poni2
        Point of normal incidence along the slow (rows, dim 0) and fast (columns, dim 1)
        axes, measured from the detector's first pixel corner, m.
    rot1, rot2, rot3
        Detector rotations, rad, in pyFAI's convention (rot1 and rot2 left-handed about
        the vertical and horizontal axes, rot3 right-handed about the beam).
    pixel1, pixel2, shape
        Pixel size along dim 0 and dim 1 (m) and the shape ``(rows, cols)``; default
        75 µm and 1024 × 1024, or the named ``detector``'s.
    wavelength
        X-ray wavelength, m, or None when unknown (then q and d*² units are refused).
    detector
        A :class:`~geometry.detectors.Detector` or a detector name (``"Pilatus1M"``);
        None for a generic detector of ``pixel1``, ``pixel2`` and ``shape``.
    orientation
        pyFAI's pixel-grid orientation (3, the default, is pyFAI's native one), for a
        detector given by name or generic.
    """

    dist: float
    poni1: float
    poni2: float
    rot1: float
    rot2: float
    rot3: float
    pixel1: float
    pixel2: float
    shape: tuple[int, int]
    wavelength: float | None
    detector: Detector
    _cache: dict[str, Any] = field(repr=False, compare=False, hash=False)

    def __init__(self, dist: float, poni1: float, poni2: float, rot1: float = 0.0,
                 rot2: float = 0.0, rot3: float = 0.0, pixel1: float | None = None,
                 pixel2: float | None = None, shape: tuple[int, int] | None = None,
                 wavelength: float | None = None, detector: Detector | str | None = None,
                 orientation: int | None = None) -> None:
        values = {"dist": dist, "poni1": poni1, "poni2": poni2, "rot1": rot1, "rot2": rot2,
                  "rot3": rot3}
        if not (_real(dist) and float(dist) > 0):
            raise ValueError(f"PoniGeometry.dist must be a positive finite number, got "
                             f"{dist!r}")
        for name in ("poni1", "poni2", "rot1", "rot2", "rot3"):
            if not _real(values[name]):
                raise ValueError(f"PoniGeometry.{name} must be a finite number, got "
                                 f"{values[name]!r}")
        if wavelength is not None and not (_real(wavelength) and float(wavelength) > 0):
            raise ValueError(f"PoniGeometry.wavelength must be a positive finite number or "
                             f"None, got {wavelength!r}")
        for name, value in (("pixel1", pixel1), ("pixel2", pixel2)):
            if value is not None and not (_real(value) and float(value) > 0):
                raise ValueError(f"PoniGeometry.{name} must be a positive finite number, "
                                 f"got {value!r}")
        if shape is not None:
            shape = _check_shape(shape)
        det = _make_detector(detector, pixel1, pixel2, shape, orientation)
        for name, value in values.items():
            object.__setattr__(self, name, float(value))
        object.__setattr__(self, "pixel1", det.pixel1)
        object.__setattr__(self, "pixel2", det.pixel2)
        object.__setattr__(self, "shape", det.shape)
        object.__setattr__(self, "wavelength", None if wavelength is None
                           else float(wavelength))
        object.__setattr__(self, "detector", det)
        object.__setattr__(self, "_cache", {})

    def replace(self, **changes: Any) -> PoniGeometry:
        """A copy with some constructor arguments changed (pyFAI's ``with_params``).

        Changing ``pixel1``, ``pixel2`` or ``shape`` of a generic detector gives a generic
        detector of the new size."""
        args: dict[str, Any] = {name: getattr(self, name) for name in (
            "dist", "poni1", "poni2", "rot1", "rot2", "rot3", "wavelength")}
        if self.detector.is_generic:
            args.update(pixel1=self.pixel1, pixel2=self.pixel2, shape=self.shape,
                        orientation=self.detector.orientation)
        else:
            args["detector"] = self.detector
        args.update(changes)
        return PoniGeometry(**args)

    def binned(self, rows: int, cols: int | None = None) -> PoniGeometry:
        """The same detector read out binned ``rows`` × ``cols`` (``cols``: ``rows``
        unless given): pixels ``rows`` (``cols``) times larger, the shape divided (rows
        and columns left over dropped), the same PONI and rotations — the geometry of a
        frame whose pixels the readout summed in blocks (pyFAI's ``detector.binning``)."""
        cols = rows if cols is None else cols
        for value in (rows, cols):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                    or value < 1:
                raise ValueError(f"PoniGeometry.binned: binning must be positive ints, got "
                                 f"({rows!r}, {cols!r})")
        det = self.detector
        if det.is_generic:
            new = Detector(GENERIC, det.pixel1 * rows, det.pixel2 * cols,
                           (det.shape[0] // rows, det.shape[1] // cols),
                           orientation=det.orientation)
        else:
            try:
                new = detector(det.name, shape=det.max_shape, orientation=det.orientation,
                               module_size=det.module_size,
                               binning=(det.binning[0] * rows, det.binning[1] * cols))
            except DetectorError as exc:
                raise ValueError(f"PoniGeometry.binned: {exc}") from None
        return PoniGeometry(self.dist, self.poni1, self.poni2, self.rot1, self.rot2,
                            self.rot3, wavelength=self.wavelength, detector=new)

    # -- metadata --------------------------------------------------------------------

    def to_metadata(self) -> dict[str, object]:
        """The geometry as plain JSON values (for a run's start document).

        Keys are the constructor's arguments; :meth:`from_metadata` reads them back, so a
        reducer finds the geometry a diffraction run was taken with in the run itself."""
        md: dict[str, object] = {
            "dist": self.dist, "poni1": self.poni1, "poni2": self.poni2, "rot1": self.rot1,
            "rot2": self.rot2, "rot3": self.rot3, "pixel1": self.pixel1,
            "pixel2": self.pixel2, "shape": [self.shape[0], self.shape[1]],
            "wavelength": self.wavelength}
        if not self.detector.is_generic:
            md["detector"] = self.detector.name
        if self.detector.orientation != 3:
            md["orientation"] = self.detector.orientation
        return md

    @classmethod
    def from_metadata(cls, md: object, where: str = "geometry") -> PoniGeometry:
        """The geometry written by :meth:`to_metadata`; ``PoniError`` naming ``where`` and
        the bad key when ``md`` is not such a mapping."""
        if not isinstance(md, dict):
            raise PoniError(f"{where}: expected a mapping of PONI parameters, got {md!r}")
        unknown = sorted(set(map(str, md)) - set(_METADATA_KEYS))
        if unknown:
            raise PoniError(f"{where}: unknown key(s) {', '.join(unknown)}")
        if "dist" not in md or "poni1" not in md or "poni2" not in md:
            raise PoniError(f"{where}: dist, poni1 and poni2 are required")
        values = dict(md)
        if "shape" in values:
            shape = values["shape"]
            if not (isinstance(shape, list | tuple) and len(shape) == 2):
                raise PoniError(f"{where}: shape must be [rows, cols], got {shape!r}")
            values["shape"] = (shape[0], shape[1])
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise PoniError(f"{where}: {exc}") from None

    # -- positions -------------------------------------------------------------------

    def _axis(self, axis: Literal[0, 1], corners: bool) -> FloatArray:
        """Pixel centre (or corner) coordinates along ``axis`` from the PONI, m."""
        n = self.shape[axis]
        index = (np.arange(n + 1, dtype=np.float64) if corners
                 else np.arange(n, dtype=np.float64) + 0.5)
        flipped = {1: (0, 1), 2: (0,), 3: (), 4: (1,)}[self.detector.orientation]
        if axis in flipped:
            index = n - index
        pixel, poni = (self.pixel1, self.poni1) if axis == 0 else (self.pixel2, self.poni2)
        return index * pixel - poni

    def _offsets(self, corners: bool = False) -> tuple[FloatArray, FloatArray]:
        """In-plane offsets from the PONI, m, as broadcastable (rows, 1) and (1, cols)."""
        return self._axis(0, corners)[:, None], self._axis(1, corners)[None, :]

    def rotation_matrix(self) -> FloatArray:
        """The 3×3 matrix taking detector coordinates (d1, d2, d3) to the lab frame.

        ``R = R3 · R2 · R1`` with pyFAI's handedness; lab axes are (1: vertical,
        2: horizontal, 3: along the beam)."""
        c1, s1 = math.cos(self.rot1), math.sin(self.rot1)
        c2, s2 = math.cos(self.rot2), math.sin(self.rot2)
        c3, s3 = math.cos(self.rot3), math.sin(self.rot3)
        r1 = np.array([[1.0, 0.0, 0.0], [0.0, c1, s1], [0.0, -s1, c1]])
        r2 = np.array([[c2, 0.0, -s2], [0.0, 1.0, 0.0], [s2, 0.0, c2]])
        r3 = np.array([[c3, -s3, 0.0], [s3, c3, 0.0], [0.0, 0.0, 1.0]])
        matrix: FloatArray = r3 @ r2 @ r1
        return matrix

    def lab_positions(self, corners: bool = False
                      ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Pixel centres — or, with ``corners``, the ``(rows + 1, cols + 1)`` pixel
        corners — in the lab frame, m: ``(t1, t2, t3)``, t3 along the beam."""
        key = "corners" if corners else "centres"
        cached = self._cache.get(key)
        if cached is None:
            p1, p2 = self._offsets(corners)
            m = self.rotation_matrix()
            cached = tuple(np.ascontiguousarray(m[k, 0] * p1 + m[k, 1] * p2
                                                + m[k, 2] * self.dist, dtype=np.float64)
                           for k in range(3))
            self._cache[key] = cached
        t1, t2, t3 = cached
        return t1, t2, t3

    def array(self, unit: Unit | str, corners: bool = False, scaled: bool = False
              ) -> FloatArray:
        """Per-pixel position in ``unit`` (radial or azimuthal): internal values (2θ in
        rad, q in nm⁻¹, r in m, d*² in nm⁻², χ in rad), or in the unit with ``scaled``;
        at the pixel corners with ``corners``. ``ValueError`` when the unit needs the
        wavelength and the geometry has none."""
        u = _any_unit(unit)
        key = f"{u.space}/{'corners' if corners else 'centres'}"
        values = self._cache.get(key)
        if values is None:
            values = u.values(*self.lab_positions(corners), self.wavelength)
            self._cache[key] = values
        out: FloatArray = values * u.scale if scaled else values
        return out

    # -- per-pixel arrays -------------------------------------------------------------

    def tth(self) -> FloatArray:
        """Scattering angle 2θ at every pixel centre, rad (pyFAI ``2th_rad``)."""
        return self.array("2th_rad")

    def chi(self) -> FloatArray:
        """Azimuth χ at every pixel centre, rad in (−π, π] (pyFAI's ``chi_rad`` with the
        discontinuity at π): ``atan2(t1, t2)``."""
        return self.array("chi_rad")

    def q(self) -> FloatArray:
        """Scattering vector modulus ``4π/λ · sin(2θ/2)`` at every pixel centre, nm⁻¹
        (``ValueError`` without a wavelength)."""
        return self.array("q_nm^-1")

    def r(self) -> FloatArray:
        """Distance of every pixel centre from the incident beam axis, mm (pyFAI ``r_mm``)."""
        return self.array("r_mm", scaled=True)

    def cos_incidence(self) -> FloatArray:
        """Cosine of the angle between the detector normal and the ray to each pixel."""
        p1, p2 = self._offsets()
        return self.dist / np.sqrt(self.dist * self.dist + (p1 * p1 + p2 * p2))

    def solid_angle(self, order: float = 3.0) -> FloatArray:
        """Solid angle of each pixel relative to the PONI pixel, ``cos(incidence)³``.

        This is pyFAI's ``solidAngleArray()`` (order 3, relative), the factor that
        ``correctSolidAngle=True`` divides the signal by; another ``order`` is pyFAI's
        ``solidAngleArray(order=...)``, ``cos(incidence) ** order``."""
        return self.cos_incidence() ** order

    def polarization(self, factor: float) -> FloatArray:
        """pyFAI's polarization correction for polarization ``factor`` in [−1, 1].

        ``P = ½ (1 + cos²2θ − factor · cos 2χ · (1 − cos²2θ))``; 0 is unpolarised, 1 is
        fully horizontally polarised. Integration divides the signal by ``P``."""
        f = float(factor)
        if not (math.isfinite(f) and -1.0 <= f <= 1.0):
            raise ValueError(f"polarization factor must be in [-1, 1], got {factor!r}")
        cos2 = np.cos(self.tth()) ** 2
        return 0.5 * (1.0 + cos2 - f * np.cos(2.0 * self.chi()) * (1.0 - cos2))


def _any_unit(unit: Unit | str) -> Unit:
    try:
        return radial_unit(unit)
    except ValueError:
        pass
    try:
        return azimuthal_unit(unit)
    except ValueError:
        raise ValueError(f"unknown unit {unit!r}") from None


def _check_shape(shape: Any) -> tuple[int, int]:
    try:
        items = tuple(shape)
    except TypeError:
        items = ()
    if len(items) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                  and 0 < n < 2**31 for n in items):
        raise ValueError(f"PoniGeometry.shape must be two positive ints (rows, cols), "
                         f"got {shape!r}")
    return int(items[0]), int(items[1])


def _make_detector(det: Detector | str | None, pixel1: float | None, pixel2: float | None,
                   shape: tuple[int, int] | None, orientation: int | None) -> Detector:
    """The detector of a geometry from the constructor's arguments."""
    try:
        if isinstance(det, Detector):
            if det.is_generic:  # a new size makes a new generic detector
                return Detector(GENERIC, det.pixel1 if pixel1 is None else pixel1,
                                det.pixel2 if pixel2 is None else pixel2,
                                det.shape if shape is None else shape,
                                orientation=det.orientation if orientation is None
                                else orientation)
            given = {"pixel1": pixel1, "pixel2": pixel2, "shape": shape,
                     "orientation": orientation}
            for name, value in given.items():
                if value is not None and value != getattr(det, name):
                    raise ValueError(f"PoniGeometry.{name} {value!r} contradicts detector "
                                     f"{det.name}'s {getattr(det, name)!r}")
            return det
        if det is None or det == GENERIC:
            return Detector(GENERIC, 75e-6 if pixel1 is None else pixel1,
                            75e-6 if pixel2 is None else pixel2,
                            (1024, 1024) if shape is None else shape,
                            orientation=3 if orientation is None else orientation)
        if isinstance(det, str):
            named = detector(det, pixel1, pixel2, None, 3 if orientation is None
                             else orientation)
            if shape is None or shape == named.shape:
                return named
            (b1, b2) = named.binning  # ``shape`` is the (binned) image's
            return detector(det, pixel1, pixel2, (shape[0] * b1, shape[1] * b2),
                            named.orientation)
    except DetectorError as exc:
        raise ValueError(f"PoniGeometry.detector: {exc}") from None
    raise ValueError(f"PoniGeometry.detector must be a Detector, a detector name or None, "
                     f"got {det!r}")
