"""A powder sample: Debye–Scherrer rings of a cubic calibrant on a PONI-described detector.

Reflections come from the real crystal structure: all ``(h, k, l)`` with
``d = a / sqrt(h² + k² + l²)`` down to the smallest ``d`` the detector can see, and the
structure factor ``F = Σ_j f_j exp(2πi h·r_j)`` summed over the atoms of the conventional
cell. Systematic absences therefore follow from the structure: CeO₂ (fluorite, Fm-3m,
a = 5.411651 Å) keeps only h, k, l all even or all odd; Si (diamond, Fd-3m,
a = 5.431020 Å) additionally loses all-even reflections with h + k + l = 4n + 2.
Reflections with the same ``h² + k² + l²`` (e.g. Si 333 and 511) fall on one ring; its
multiplicity is the number of such allowed ``(h, k, l)``.

Intensity model (simple, documented; good for a calibrant picture, not for refinement):

* ring strength ``m · |F|² · L(θ) · exp(−2 B s²)`` with the multiplicity ``m``, the
  powder Lorentz factor ``L = 1 / (sin²θ cos θ)``, an isotropic Debye–Waller factor with
  ``B = debye_waller_b`` Å² and ``s = sin θ / λ = 1 / (2d)``;
* atomic form factors ``f_j(s) = Z_j · exp(−FORM_FACTOR_B · s²)`` (a one-parameter
  fall-off, ``FORM_FACTOR_B`` = 3 Å²);
* per pixel: ``Σ_rings strength · exp(−(2θ − 2θ_hkl)² / 2σ²)``, times the polarization
  factor of the pixel (:meth:`PoniGeometry.polarization`, horizontally polarized
  synchrotron beam) and its solid angle (:meth:`PoniGeometry.solid_angle`), scaled so the
  strongest ring peaks at ``peak_flux`` photons/s per pixel before those two factors;
* a background ``background × solid_angle`` (air and diffuse scatter), present whether or
  not the sample is in the beam;
* rings scale with the fraction of the beam width ``beam_width`` (mm) that hits the
  sample (a cylinder of radius ``sample_radius`` mm on the rotation axis), so moving the
  sample X stage away removes them. Rotation does not change an ideal powder pattern.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np

from dataflow.hdf5_nxmx import IncidentBeamSize
from devices.samples import (
    FloatImage,
    PixelSize,
    Pose,
    check_shape,
    frozen_image,
    pixel_pair,
)
from geometry import PoniGeometry

__all__ = [
    "CEO2",
    "FORM_FACTOR_B",
    "SILICON",
    "Atom",
    "CubicCrystal",
    "PowderSample",
    "Reflection",
    "reflections",
]

FORM_FACTOR_B = 3.0
"""Å²; atomic form factors are modelled as ``Z · exp(−FORM_FACTOR_B · s²)``."""

_FCC = ((0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0))


@dataclass(frozen=True)
class Atom:
    """An atom of the basis: element symbol, atomic number, fractional position."""

    symbol: str
    z: int
    position: tuple[float, float, float]


@dataclass(frozen=True)
class CubicCrystal:
    """A cubic crystal: lattice constant, space group, and basis on an F-centred lattice.

    Parameters
    ----------
    name
        Display name.
    space_group
        Hermann–Mauguin symbol (informational).
    a
        Lattice constant, Å.
    basis
        Atoms of the basis; the cell holds each at the four F-centring translations.
    """

    name: str
    space_group: str
    a: float
    basis: tuple[Atom, ...]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and self.a > 0):
            raise ValueError(f"CubicCrystal {self.name!r}: a must be > 0 Å, got {self.a!r}")
        if not self.basis:
            raise ValueError(f"CubicCrystal {self.name!r}: basis is empty")

    def cell(self) -> list[tuple[int, tuple[float, float, float]]]:
        """All atoms of the conventional cell as ``(Z, fractional position)``."""
        out = []
        for atom in self.basis:
            for t in _FCC:
                pos = tuple((p + s) % 1.0 for p, s in zip(atom.position, t, strict=True))
                out.append((atom.z, (pos[0], pos[1], pos[2])))
        return out

    def structure_factor(self, hkl: tuple[int, int, int]) -> complex:
        """``F(hkl) = Σ_j f_j(s) exp(2πi h·r_j)`` with the model form factors."""
        h, k, l = hkl  # noqa: E741
        s = math.sqrt(h * h + k * k + l * l) / (2.0 * self.a)
        total = 0j
        for z, (x, y, w) in self.cell():
            f = z * math.exp(-FORM_FACTOR_B * s * s)
            total += f * complex(
                math.cos(2 * math.pi * (h * x + k * y + l * w)),
                math.sin(2 * math.pi * (h * x + k * y + l * w)),
            )
        return total


CEO2 = CubicCrystal(
    "CeO2",
    "Fm-3m",
    5.411651,
    (
        Atom("Ce", 58, (0.0, 0.0, 0.0)),
        Atom("O", 8, (0.25, 0.25, 0.25)),
        Atom("O", 8, (0.75, 0.75, 0.75)),
    ),
)
"""Ceria (fluorite structure), NIST SRM 674b lattice constant."""

SILICON = CubicCrystal(
    "Si",
    "Fd-3m",
    5.431020,
    (Atom("Si", 14, (0.0, 0.0, 0.0)), Atom("Si", 14, (0.25, 0.25, 0.25))),
)
"""Silicon (diamond structure), NIST SRM 640 lattice constant."""


@dataclass(frozen=True)
class Reflection:
    """One powder ring: all allowed ``(h, k, l)`` sharing ``h² + k² + l²``.

    Attributes
    ----------
    families
        Representative ``(h ≥ k ≥ l ≥ 0)`` of each family on this ring.
    d
        Lattice spacing, Å.
    multiplicity
        Number of allowed ``(h, k, l)`` on the ring.
    f_squared
        ``|F|²`` (mean over the ring's reflections).
    """

    families: tuple[tuple[int, int, int], ...]
    d: float
    multiplicity: int
    f_squared: float

    def two_theta(self, wavelength_m: float) -> float:
        """Bragg angle 2θ = 2 asin(λ / 2d), radians (nan when λ > 2d)."""
        ratio = wavelength_m * 1e10 / (2.0 * self.d)
        return 2.0 * math.asin(ratio) if ratio <= 1.0 else math.nan


def reflections(crystal: CubicCrystal, d_min: float) -> list[Reflection]:
    """Allowed rings of ``crystal`` with ``d >= d_min`` (Å), largest ``d`` first."""
    if not (math.isfinite(d_min) and d_min > 0):
        raise ValueError(f"reflections: d_min must be > 0 Å, got {d_min!r}")
    n_max = int((crystal.a / d_min) ** 2 + 1e-9)
    h_max = math.isqrt(n_max)
    total_z2 = sum(z for z, _ in crystal.cell()) ** 2
    rings: dict[int, list[tuple[tuple[int, int, int], float]]] = {}
    for h, k, l in itertools.product(range(-h_max, h_max + 1), repeat=3):  # noqa: E741
        hkl = (h, k, l)
        n = h * h + k * k + l * l
        if n == 0 or n > n_max:
            continue
        f2 = abs(crystal.structure_factor(hkl)) ** 2
        if f2 <= 1e-9 * total_z2:
            continue  # systematically absent
        rings.setdefault(n, []).append((hkl, f2))
    out = []
    for n in sorted(rings):
        members = rings[n]
        families = sorted(
            {tuple(sorted((abs(c) for c in hkl), reverse=True)) for hkl, _ in members},
            reverse=True,
        )
        out.append(
            Reflection(
                families=tuple((f[0], f[1], f[2]) for f in families),
                d=crystal.a / math.sqrt(n),
                multiplicity=len(members),
                f_squared=sum(f2 for _, f2 in members) / len(members),
            )
        )
    return out


@dataclass(frozen=True)
class PowderSample:
    """Debye–Scherrer rings of ``crystal`` on the detector described by ``geometry``.

    Parameters
    ----------
    crystal
        The powder (e.g. :data:`CEO2` or :data:`SILICON`).
    geometry
        Detector placement and wavelength. When :meth:`flux` is asked for another shape or
        pixel size (e.g. a binned readout), the same PONI (in metres) is used with that
        shape and pixel size.
    peak_flux
        Photons/s per pixel at the peak of the strongest ring (before polarization and
        solid angle), nominal ring current.
    ring_width
        Gaussian σ of the rings in 2θ, degrees.
    background
        Flat background, photons/s per pixel (times the solid angle).
    polarization_factor
        Beam polarization as in pyFAI (0.99 for a synchrotron undulator).
    debye_waller_b
        Isotropic displacement parameter B, Å².
    sample_radius, beam_width
        Sample (capillary) radius and beam width along x, mm.
    beam_height
        Beam height along y, mm: the capillary stands along y, so the whole height
        lights it and the rings do not depend on it; the frame files record it with the
        width (NXmx ``incident_beam_size``, :attr:`beam_size`). The simulation does not
        use it: the default (0.1 mm) is an assumed value, set it to the beamline's.
    """

    crystal: CubicCrystal
    geometry: PoniGeometry
    peak_flux: float = 1000.0
    ring_width: float = 0.02
    background: float = 5.0
    polarization_factor: float = 0.99
    debye_waller_b: float = 0.5
    sample_radius: float = 0.25
    beam_width: float = 0.1
    beam_height: float = 0.1
    _cache: dict[tuple[object, ...], tuple[FloatImage, FloatImage]] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _last_flux: dict[tuple[object, ...], FloatImage] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def name(self) -> str:
        """What the frame files call the sample (NeXus ``/entry/sample/name``)."""
        return f"{self.crystal.name} powder"

    @property
    def beam_size(self) -> IncidentBeamSize:
        """The beam at the sample as the frame files record it (NXmx): its widths in m,
        rectangular — the model lights the width evenly (:meth:`illuminated_fraction`)."""
        return IncidentBeamSize(self.beam_width * 1e-3, self.beam_height * 1e-3,
                                "rectangular")

    def __post_init__(self) -> None:
        if self.geometry.wavelength is None:
            raise ValueError("PowderSample.geometry needs a wavelength (the ring positions "
                             "depend on it)")
        for name in ("peak_flux", "background", "debye_waller_b"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"PowderSample.{name} must be >= 0, got {value!r}")
        for name in ("ring_width", "sample_radius", "beam_width", "beam_height"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"PowderSample.{name} must be > 0, got {value!r}")

    def geometry_for(self, shape: tuple[int, int], pixel_size: PixelSize) -> PoniGeometry:
        """The sample's geometry with the detector's shape and pixel size."""
        p1, p2 = pixel_pair(pixel_size)
        g = self.geometry
        if (g.shape, g.pixel1, g.pixel2) == (shape, p1, p2):
            return g
        return g.replace(shape=shape, pixel1=p1, pixel2=p2)

    def rings(self, geometry: PoniGeometry | None = None) -> list[Reflection]:
        """Reflections whose rings can fall on the detector (with a 5σ margin)."""
        g = geometry or self.geometry
        wavelength = self._wavelength(g)
        tth_max = float(np.max(g.tth())) + math.radians(5.0 * self.ring_width)
        tth_max = min(tth_max, math.pi - 1e-6)
        d_min = wavelength * 1e10 / (2.0 * math.sin(tth_max / 2.0))
        visible = reflections(self.crystal, d_min)
        return [r for r in visible if not math.isnan(r.two_theta(wavelength))]

    @staticmethod
    def _wavelength(g: PoniGeometry) -> float:
        if g.wavelength is None:
            raise ValueError("the powder sample's geometry has no wavelength")
        return g.wavelength

    def ring_strength(self, reflection: Reflection, wavelength_m: float) -> float:
        """``m · |F|² · L(θ) · exp(−2 B s²)`` (arbitrary units) of one ring."""
        theta = reflection.two_theta(wavelength_m) / 2.0
        s = 1.0 / (2.0 * reflection.d)
        lorentz = 1.0 / (math.sin(theta) ** 2 * math.cos(theta))
        return (
            reflection.multiplicity
            * reflection.f_squared
            * lorentz
            * math.exp(-2.0 * self.debye_waller_b * s * s)
        )

    def _images(
        self, shape: tuple[int, int], pixel_size: PixelSize
    ) -> tuple[FloatImage, FloatImage]:
        """(rings at full illumination, background), cached per shape and pixel size."""
        key = (shape, pixel_pair(pixel_size))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        g = self.geometry_for(shape, pixel_size)
        tth = g.tth()
        sigma = math.radians(self.ring_width)
        rings = self.rings(g)
        wavelength = self._wavelength(g)
        strengths = [self.ring_strength(r, wavelength) for r in rings]
        scale = self.peak_flux / max(strengths) if strengths else 0.0
        profile = np.zeros(shape, dtype=np.float64)
        for r, strength in zip(rings, strengths, strict=True):
            centre = r.two_theta(wavelength)
            near = np.abs(tth - centre) < 8.0 * sigma
            delta = tth[near] - centre
            profile[near] += (scale * strength) * np.exp(-0.5 * (delta / sigma) ** 2)
        omega = g.solid_angle()
        ring_image = profile * g.polarization(self.polarization_factor) * omega
        background = self.background * omega
        result = (np.ascontiguousarray(ring_image), np.ascontiguousarray(background))
        self._cache[key] = result
        return result

    def prepare(self, shape: tuple[int, int], pixel_size: PixelSize) -> None:
        """Compute the rings and background of ``shape`` now (``Scene.prepare``)."""
        self._images(shape, pixel_size)

    def illuminated_fraction(self, pose: Pose) -> float:
        """Fraction of the beam width hitting the sample at stage position ``pose.x``."""
        lo = max(-self.beam_width / 2.0, pose.x - self.sample_radius)
        hi = min(self.beam_width / 2.0, pose.x + self.sample_radius)
        return max(hi - lo, 0.0) / self.beam_width

    def flux(self, pose: Pose, shape: tuple[int, int], pixel_size: PixelSize) -> FloatImage:
        """Photons/s per pixel at nominal ring current with the shutter open."""
        shape = check_shape(shape)
        fraction = self.illuminated_fraction(pose)
        # a scan that does not move the sample asks for the same image every frame: keep
        # the last one (read-only) instead of computing it again
        key = (shape, pixel_pair(pixel_size), fraction)
        image = self._last_flux.get(key)
        if image is None:
            ring_image, background = self._images(shape, pixel_size)
            image = frozen_image(ring_image * fraction + background)
            self._last_flux.clear()
            self._last_flux[key] = image
        return image
