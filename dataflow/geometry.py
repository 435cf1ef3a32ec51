"""Detector geometry: pyFAI's PONI convention, ``.poni`` files, and the rotating-arm 2θ.

A flat detector is described like pyFAI does it: the sample–detector distance ``dist``
measured along the detector normal, the point of normal incidence (PONI) ``poni1``/``poni2``
in metres along the slow (rows) and fast (columns) axes, and three rotations ``rot1``–``rot3``
(radians). Pixel centres sit at ``(i + 0.5) * pixel``. The per-pixel arrays below follow
pyFAI's formulas (float64, vectorised numpy), so that integration results computed from them
can be compared bin by bin with pyFAI.

The rotating-arm geometry (:func:`arm_two_theta`) is the simple model used at the
Copenhagen group's beamline; with no rotations it coincides with a PONI geometry of a
detector normal to the beam, which is how the two are cross-checked.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import SupportsFloat

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: ``.poni`` keys read by :func:`read_poni` (lower case, as pyFAI treats them).
_NUMERIC_KEYS = ("distance", "poni1", "poni2", "rot1", "rot2", "rot3", "wavelength")
_REQUIRED_KEYS = ("detector_config", "distance", "poni1", "poni2", "rot1", "rot2", "rot3")


class PoniError(ValueError):
    """A ``.poni`` file that cannot be read (the message names the file and line)."""


@dataclass(frozen=True)
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
    pixel1, pixel2
        Pixel size along dim 0 and dim 1, m.
    shape
        Detector shape ``(rows, cols)``.
    wavelength
        X-ray wavelength, m (needed for q).
    """

    dist: float
    poni1: float
    poni2: float
    rot1: float = 0.0
    rot2: float = 0.0
    rot3: float = 0.0
    pixel1: float = 75e-6
    pixel2: float = 75e-6
    shape: tuple[int, int] = (1024, 1024)
    wavelength: float = 1.0e-10
    _cache: dict[str, FloatArray] = field(default_factory=dict, init=False, repr=False,
                                          compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in ("dist", "pixel1", "pixel2", "wavelength"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and _finite(value) and float(value) > 0):
                raise ValueError(f"PoniGeometry.{name} must be a positive finite number, "
                                 f"got {value!r}")
        for name in ("poni1", "poni2", "rot1", "rot2", "rot3"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and _finite(value)):
                raise ValueError(f"PoniGeometry.{name} must be a finite number, got {value!r}")
        shape = tuple(self.shape)
        if len(shape) != 2 or not all(isinstance(n, (int, np.integer)) and n > 0
                                      for n in shape):
            raise ValueError(f"PoniGeometry.shape must be two positive ints (rows, cols), "
                             f"got {self.shape!r}")
        object.__setattr__(self, "shape", (int(shape[0]), int(shape[1])))

    # -- metadata --------------------------------------------------------------------

    def to_metadata(self) -> dict[str, object]:
        """The geometry as plain JSON values (for a run's start document).

        Keys are the constructor's arguments; :meth:`from_metadata` reads them back, so a
        reducer finds the geometry a diffraction run was taken with in the run itself."""
        return {"dist": self.dist, "poni1": self.poni1, "poni2": self.poni2,
                "rot1": self.rot1, "rot2": self.rot2, "rot3": self.rot3,
                "pixel1": self.pixel1, "pixel2": self.pixel2,
                "shape": [self.shape[0], self.shape[1]], "wavelength": self.wavelength}

    @classmethod
    def from_metadata(cls, md: object, where: str = "geometry") -> PoniGeometry:
        """The geometry written by :meth:`to_metadata`; ``PoniError`` naming ``where`` and
        the bad key when ``md`` is not such a mapping."""
        if not isinstance(md, dict):
            raise PoniError(f"{where}: expected a mapping of PONI parameters, got {md!r}")
        keys = ("dist", "poni1", "poni2", "rot1", "rot2", "rot3", "pixel1", "pixel2",
                "shape", "wavelength")
        unknown = sorted(set(md) - set(keys))
        if unknown:
            raise PoniError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
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

    def _offsets(self) -> tuple[FloatArray, FloatArray]:
        """Pixel centre offsets from the PONI in the detector plane, m, (rows, cols)."""
        rows, cols = self.shape
        p1 = (np.arange(rows, dtype=np.float64) + 0.5) * self.pixel1 - self.poni1
        p2 = (np.arange(cols, dtype=np.float64) + 0.5) * self.pixel2 - self.poni2
        return p1[:, None], p2[None, :]

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

    def lab_positions(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Pixel centres in the lab frame, m: ``(t1, t2, t3)``, t3 along the beam."""
        cached = self._cache.get("t1")
        if cached is None:
            p1, p2 = self._offsets()
            m = self.rotation_matrix()
            t = [m[k, 0] * p1 + m[k, 1] * p2 + m[k, 2] * self.dist for k in range(3)]
            for k, name in enumerate(("t1", "t2", "t3")):
                self._cache[name] = np.ascontiguousarray(t[k], dtype=np.float64)
        return self._cache["t1"], self._cache["t2"], self._cache["t3"]

    # -- per-pixel arrays -------------------------------------------------------------

    def tth(self) -> FloatArray:
        """Scattering angle 2θ at every pixel centre, rad (pyFAI ``2th_rad``)."""
        t1, t2, t3 = self.lab_positions()
        return np.arctan2(np.hypot(t1, t2), t3)

    def chi(self) -> FloatArray:
        """Azimuth χ at every pixel centre, rad in (−π, π] (pyFAI's ``chi_rad`` with the
        discontinuity at π): ``atan2(t1, t2)``."""
        t1, t2, _ = self.lab_positions()
        return np.arctan2(t1, t2)

    def q(self) -> FloatArray:
        """Scattering vector modulus ``4π/λ · sin(2θ/2)`` at every pixel centre, nm⁻¹."""
        return (4.0e-9 * math.pi / self.wavelength) * np.sin(self.tth() / 2.0)

    def r(self) -> FloatArray:
        """Distance of every pixel centre from the incident beam axis, mm (pyFAI ``r_mm``)."""
        t1, t2, _ = self.lab_positions()
        return np.hypot(t1, t2) * 1000.0

    def cos_incidence(self) -> FloatArray:
        """Cosine of the angle between the detector normal and the ray to each pixel."""
        p1, p2 = self._offsets()
        return self.dist / np.sqrt(self.dist * self.dist + (p1 * p1 + p2 * p2))

    def solid_angle(self) -> FloatArray:
        """Solid angle of each pixel relative to the PONI pixel, ``cos(incidence)³``.

        This is pyFAI's ``solidAngleArray()`` (order 3, relative), the factor that
        ``correctSolidAngle=True`` divides the signal by."""
        return self.cos_incidence() ** 3

    def polarization(self, factor: float) -> FloatArray:
        """pyFAI's polarization correction for polarization ``factor`` in [−1, 1].

        ``P = ½ (1 + cos²2θ − factor · cos 2χ · (1 − cos²2θ))``; 0 is unpolarised, 1 is
        fully horizontally polarised. Integration divides the signal by ``P``."""
        f = float(factor)
        if not (math.isfinite(f) and -1.0 <= f <= 1.0):
            raise ValueError(f"polarization factor must be in [-1, 1], got {factor!r}")
        cos2 = np.cos(self.tth()) ** 2
        return 0.5 * (1.0 + cos2 - f * np.cos(2.0 * self.chi()) * (1.0 - cos2))


# -- .poni files ------------------------------------------------------------------------


def read_poni(path: str | os.PathLike[str]) -> PoniGeometry:
    """Read a pyFAI ``.poni`` file (format version 2/2.1) into a :class:`PoniGeometry`.

    The detector must be described by ``Detector_config`` with ``pixel1``, ``pixel2`` and
    ``max_shape`` (what pyFAI writes for a generic ``Detector``); ``orientation``, when
    present, must be 3 (pyFAI's default, no flip). Malformed input raises
    :class:`PoniError` naming the file and line.
    """
    p = Path(path)
    try:
        content = p.read_bytes()
    except OSError as exc:
        raise PoniError(f"{p}: cannot read .poni file ({exc.strerror or exc})") from None
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = content.count(b"\n", 0, exc.start) + 1
        raise PoniError(f"{p}:{bad_line}: not UTF-8 text (byte {content[exc.start]:#04x})"
                        ) from None
    values: dict[str, tuple[str, int]] = {}
    for lineno, text_line in enumerate(text.split("\n"), start=1):
        stripped = text_line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if ":" not in stripped:
            raise PoniError(f"{p}:{lineno}: expected 'Key: value', got {stripped!r}")
        key, value = (part.strip() for part in stripped.split(":", 1))
        values[key.lower()] = (value, lineno)

    def where(key: str) -> str:
        return f"{p}:{values[key][1]}"

    missing = [k for k in _REQUIRED_KEYS if k not in values]
    if missing:
        raise PoniError(f"{p}: missing key(s) "
                        + ", ".join(_display(k) for k in missing)
                        + " (a version 2 .poni file needs Detector_config, Distance, Poni1, "
                          "Poni2, Rot1, Rot2, Rot3)")
    if "poni_version" in values:
        version = _number(values["poni_version"][0], "poni_version", where("poni_version"))
        if version < 2 or version >= 3:
            raise PoniError(f"{where('poni_version')}: poni_version {version:g} is not "
                            "supported (2 or 2.1 expected)")
    numbers = {k: _number(values[k][0], k, where(k)) for k in _NUMERIC_KEYS if k in values}
    raw, line = values["detector_config"]
    try:
        config = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise PoniError(f"{p}:{line}: Detector_config is not valid JSON ({reason})") from None
    if not isinstance(config, dict):
        raise PoniError(f"{p}:{line}: Detector_config must be a JSON object, got {raw!r}")
    for key in ("pixel1", "pixel2", "max_shape"):
        if key not in config:
            raise PoniError(f"{p}:{line}: Detector_config lacks {key!r} (pixel1, pixel2 and "
                            "max_shape are needed)")
    orientation = config.get("orientation", 3)
    if orientation != 3:
        raise PoniError(f"{p}:{line}: detector orientation {orientation!r} is not supported "
                        "(only 3, pyFAI's default)")
    shape = config["max_shape"]
    if not (isinstance(shape, list) and len(shape) == 2
            and all(isinstance(n, int) and 0 < n < 2**31 for n in shape)):
        raise PoniError(f"{p}:{line}: Detector_config max_shape must be [rows, cols], "
                        f"got {shape!r}")
    pixels = []
    for key in ("pixel1", "pixel2"):
        value = config[key]
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not _finite(value) or value <= 0):
            raise PoniError(f"{p}:{line}: Detector_config {key} must be a positive number, "
                            f"got {value!r}")
        pixels.append(float(value))
    try:
        return PoniGeometry(
            dist=numbers["distance"], poni1=numbers["poni1"], poni2=numbers["poni2"],
            rot1=numbers["rot1"], rot2=numbers["rot2"], rot3=numbers["rot3"],
            pixel1=pixels[0], pixel2=pixels[1], shape=(shape[0], shape[1]),
            wavelength=numbers.get("wavelength", PoniGeometry.wavelength))
    except ValueError as exc:
        raise PoniError(f"{p}: {exc}") from None


def _finite(value: SupportsFloat) -> bool:
    """``math.isfinite`` that says False for an int too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _display(key: str) -> str:
    return {"detector_config": "Detector_config"}.get(key, key.capitalize())


def _number(text: str, key: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PoniError(f"{where}: {_display(key)} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise PoniError(f"{where}: {_display(key)} must be finite, got {text!r}")
    return value


def write_poni(geometry: PoniGeometry, path: str | os.PathLike[str]) -> None:
    """Write ``geometry`` as a pyFAI ``.poni`` file (version 2.1, generic ``Detector``).

    Numbers are written with ``repr`` so that reading the file back gives the same floats;
    pyFAI's ``pyFAI.load`` reads the result."""
    g = geometry
    config = {"pixel1": g.pixel1, "pixel2": g.pixel2, "orientation": 3,
              "max_shape": [g.shape[0], g.shape[1]]}
    lines = [
        "# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis",
        "# Written by smeflow.dataflow.geometry",
        "poni_version: 2.1",
        "Detector: Detector",
        f"Detector_config: {json.dumps(config)}",
        f"Distance: {g.dist!r}",
        f"Poni1: {g.poni1!r}",
        f"Poni2: {g.poni2!r}",
        f"Rot1: {g.rot1!r}",
        f"Rot2: {g.rot2!r}",
        f"Rot3: {g.rot3!r}",
        f"Wavelength: {g.wavelength!r}",
        "",
    ]
    Path(path).write_text("\n".join(lines))


# -- rotating arm -----------------------------------------------------------------------


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
