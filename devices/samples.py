"""What the detector sees: a :class:`Scene` turns motor, shutter and beam state into photons.

The detector model (which runs the firmware) asks the scene for the *ideal* photon flux
on its pixels and does the counting itself::

    scene = Scene(sample_x=sx, sample_y=sy, rotation=rot, shutter=shutter, beam=beam,
                  sample=PhantomSample(shepp_logan_3d()))
    flux = scene.flux_image((256, 256), pixel_size=20e-6)        # photons/s per pixel
    flux = scene.flux_image((256, 256), 20e-6, t=t_mid_exposure)  # the scene at wall time t

``flux_image`` returns a C-contiguous float64 array of the requested ``shape`` (rows,
cols). It is zero when the shutter is not fully open or the beam is down (at ``t``: a
frame computed after its trigger sees the shutter and the beam as they were at the
trigger, as it sees the motors there); otherwise it is the sample's flux at nominal ring
current times ``current / nominal_current``. Swapping
``scene.sample`` (e.g. to a :class:`~devices.powder.PowderSample` or :class:`EmptyBeam`)
changes the experiment without touching the detector.

Frames (shared by all samples):

* Lab frame: ``x`` horizontal and perpendicular to the beam (detector columns increase
  with ``x``), ``y`` vertical up (detector rows increase downwards), ``z`` along the
  beam. The beam axis hits the detector centre, ``((rows-1)/2, (cols-1)/2)``.
* The sample X stage translates the sample (and the rotation axis) along ``x``, the
  sample Y stage along ``y`` (both in mm); the rotation stage turns it about the vertical
  axis ``y`` by the angle in degrees (counter-clockwise seen from above).
* ``pixel_size`` is in metres (as in PONI files), either one number or
  ``(pixel1, pixel2)`` for (rows, cols).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np
import numpy.typing as npt

from devices.beam import BeamMonitor
from devices.motion import SimMotor
from devices.rotation import RotationStage
from devices.shutter import FastShutter

__all__ = [
    "EmptyBeam",
    "FloatImage",
    "FluxBuffer",
    "IncidentBeam",
    "PixelSize",
    "Pose",
    "Sample",
    "Scene",
    "SceneState",
    "detector_coordinates_mm",
    "pixel_pair",
]

FloatImage = npt.NDArray[np.float64]
PixelSize = float | tuple[float, float]


@dataclass(frozen=True)
class Pose:
    """Where the sample is: stage positions in mm and rotation angle in degrees."""

    x: float = 0.0
    y: float = 0.0
    angle: float = 0.0


@dataclass(frozen=True)
class SceneState:
    """What the scene was at one moment, in a few numbers: the sample's ``pose`` and the
    beam ``factor`` (0 with the shutter not open or no beam). A fly frame's state is
    taken when its trigger passes, its flux image later (``Scene.flux_parts``)."""

    pose: Pose
    factor: float


class Sample(Protocol):
    """Anything that can tell the photon flux it sends to each detector pixel."""

    def flux(self, pose: Pose, shape: tuple[int, int], pixel_size: PixelSize) -> FloatImage:
        """Photons/s per pixel at nominal ring current with the shutter open."""
        ...


def pixel_pair(pixel_size: PixelSize) -> tuple[float, float]:
    """``(pixel1, pixel2)`` in metres from one number or a pair, validated."""
    if isinstance(pixel_size, tuple):
        if len(pixel_size) != 2:
            raise ValueError(f"pixel_size must be a number or (pixel1, pixel2), got {pixel_size!r}")
        pair = (float(pixel_size[0]), float(pixel_size[1]))
    else:
        pair = (float(pixel_size), float(pixel_size))
    if not all(math.isfinite(p) and 0 < p < 1 for p in pair):
        raise ValueError(f"pixel_size must be in metres, > 0 and < 1, got {pixel_size!r}")
    return pair


def check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    """Validate a detector shape ``(rows, cols)``."""
    if len(shape) != 2 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
        raise ValueError(f"shape must be two positive ints (rows, cols), got {shape!r}")
    return int(shape[0]), int(shape[1])


def detector_coordinates_mm(
    shape: tuple[int, int], pixel_size: PixelSize
) -> tuple[FloatImage, FloatImage]:
    """Lab ``x`` (shape ``(1, cols)``) and ``y`` (shape ``(rows, 1)``) of pixel centres, mm."""
    rows, cols = check_shape(shape)
    p1, p2 = pixel_pair(pixel_size)
    x = (np.arange(cols, dtype=np.float64) - (cols - 1) / 2.0) * (p2 * 1e3)
    y = ((rows - 1) / 2.0 - np.arange(rows, dtype=np.float64)) * (p1 * 1e3)
    return x[None, :], y[:, None]


@dataclass(frozen=True)
class IncidentBeam:
    """The incident (flat-field) beam at nominal ring current.

    Parameters
    ----------
    flux_density
        Photons/s per mm² on the beam axis.
    sigma_x, sigma_y
        Gaussian beam-profile widths in mm (``None`` = uniform in that direction), so
        that flat fields are not trivially constant.
    """

    flux_density: float = 1.0e8
    sigma_x: float | None = None
    sigma_y: float | None = 5.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.flux_density) and self.flux_density >= 0):
            raise ValueError(
                f"IncidentBeam.flux_density must be >= 0, got {self.flux_density!r}"
            )
        for name in ("sigma_x", "sigma_y"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"IncidentBeam.{name} must be > 0 mm or None, got {value!r}")

    def image(self, shape: tuple[int, int], pixel_size: PixelSize) -> FloatImage:
        """Photons/s per pixel of the open beam (a cached, read-only array)."""
        return _incident_image(self, check_shape(shape), pixel_pair(pixel_size))


def frozen_image(image: FloatImage) -> FloatImage:
    """A copy of ``image`` nothing can change: its memory an immutable ``bytes`` object
    (numpy refuses to make it, or any view of it, writeable again; a read-only array
    that owns its memory can be made writeable by whoever holds it). What a sample hands
    out for an image it keeps, so that the sensor may keep the terms of its means from
    one exposure to the next (``SensorModel.expose``)."""
    a = np.ascontiguousarray(image, dtype=np.float64)
    return np.frombuffer(a.tobytes(), dtype=np.float64).reshape(a.shape)


class FluxBuffer:
    """A float64 image that a scene's flux is drawn into frame after frame
    (``Scene.flux_parts(into=…)``) instead of a new array each time: a fly scan samples
    the scene a thousand times a second, and a fresh 2 MB image per frame (512×512) cost
    more in page faults and copies than the sample's own work. A sample that can draw
    into it (``flux_into``) refills only what differs from what it drew last time
    (``held``, the sample's note of that); others ignore it.

    ``image`` is a read-only view for the readers (the sensor); the array is written only
    by the sample through :meth:`array`, so ``held`` stays true. Whoever passes the buffer
    must not hand it to the scene again while a reader still uses the last image."""

    def __init__(self) -> None:
        self._array: FloatImage | None = None
        self.image: FloatImage | None = None
        """The last image drawn into the buffer (read-only), ``None`` before the first."""
        self.held: object = None
        """What the buffer holds, in the words of the sample that last drew into it."""

    def array(self, shape: tuple[int, int]) -> FloatImage:
        """The writeable image of ``shape`` (a new one, and ``held`` forgotten, when the
        buffer has another shape or none yet)."""
        if self._array is None or self._array.shape != shape:
            self._array = np.empty(shape, dtype=np.float64)
            view = self._array.view()
            view.flags.writeable = False
            self.image = view
            self.held = None
        return self._array


@lru_cache(maxsize=16)
def _incident_image(
    beam: IncidentBeam, shape: tuple[int, int], pixel: tuple[float, float]
) -> FloatImage:
    x, y = detector_coordinates_mm(shape, pixel)
    area_mm2 = (pixel[0] * 1e3) * (pixel[1] * 1e3)
    px = np.ones_like(x) if beam.sigma_x is None else np.exp(-0.5 * (x / beam.sigma_x) ** 2)
    py = np.ones_like(y) if beam.sigma_y is None else np.exp(-0.5 * (y / beam.sigma_y) ** 2)
    return frozen_image((beam.flux_density * area_mm2) * (py * px))


@dataclass(frozen=True)
class EmptyBeam:
    """No sample in the beam: the detector sees the incident beam (a flat field)."""

    incident: IncidentBeam = IncidentBeam()
    name: str = "none (empty beam)"
    """What the frame files call the sample (NeXus ``/entry/sample/name``)."""

    def flux(self, pose: Pose, shape: tuple[int, int], pixel_size: PixelSize) -> FloatImage:
        """The incident beam image, independent of the pose."""
        return self.incident.image(shape, pixel_size)

    def prepare(self, shape: tuple[int, int], pixel_size: PixelSize) -> None:
        """Make the incident beam's image of ``shape`` now (``Scene.prepare``)."""
        self.incident.image(shape, pixel_size)


class Scene:
    """The beamline's sample environment: stages, shutter, beam and the current sample.

    Parameters
    ----------
    sample_x, sample_y
        Horizontal and vertical sample stages (mm).
    rotation
        Rotation stage (degrees).
    shutter
        Fast shutter; no photons unless it reads ``"open"``.
    beam
        Beam-current monitor; flux scales with ``current / nominal_current``.
    sample
        The sample model (changeable later through :attr:`sample`).
    """

    def __init__(
        self,
        *,
        sample_x: SimMotor,
        sample_y: SimMotor,
        rotation: RotationStage,
        shutter: FastShutter,
        beam: BeamMonitor,
        sample: Sample,
    ) -> None:
        self.sample_x = sample_x
        self.sample_y = sample_y
        self.rotation = rotation
        self.shutter = shutter
        self.beam = beam
        self.sample = sample

    def pose(self, t: float | None = None) -> Pose:
        """Stage positions now, or at wall time ``t`` (seconds since the epoch)."""
        if t is None:
            return Pose(self.sample_x.position, self.sample_y.position, self.rotation.position)
        return Pose(
            self.sample_x.position_at(t),
            self.sample_y.position_at(t),
            self.rotation.position_at(t),
        )

    def beam_factor(self, t: float | None = None) -> float:
        """0 with the shutter not open or no beam, else ``current / nominal_current``: now,
        or at wall time ``t`` (the shutter's and the monitor's state then, which a frame
        triggered at ``t`` but computed later must see)."""
        if t is None:
            return self.beam.beam_factor() if self.shutter.is_open else 0.0
        if self.shutter.state_at(t) != "open":
            return 0.0
        return self.beam.beam_factor(t)

    def prepare(self, shape: tuple[int, int], pixel_size: PixelSize) -> None:
        """Make what every frame of ``shape`` needs from the sample now, before an
        acquisition's clock starts, not at its first frame: the sample's ``prepare`` (the
        powder's rings: 0.6 s at 1 Mpix, paid by each worker drawing the first frames at
        once). Also with the shutter closed: a plan may stage for darks, or stage and
        then open the shutter (``diffraction_scan``); the sample keeps what it made, so
        preparing again costs nothing. Nothing for a sample without ``prepare`` (an image
        drawn here would be thrown away)."""
        shape = check_shape(shape)
        prepare = getattr(self.sample, "prepare", None)
        if prepare is not None:
            prepare(shape, pixel_size)

    def state_at(self, t: float) -> SceneState:
        """The pose and beam factor at wall time ``t`` (``pose``, ``beam_factor``)."""
        return SceneState(self.pose(t), self.beam_factor(t))

    def flux_image(
        self, shape: tuple[int, int], pixel_size: PixelSize, *, t: float | None = None
    ) -> FloatImage:
        """Ideal photon flux on the detector, photons/s per pixel (float64, ``shape``;
        at full beam the sample's own cached image when it is read-only, not a copy).

        Parameters
        ----------
        shape
            Detector shape ``(rows, cols)``.
        pixel_size
            Pixel pitch in metres, one number or ``(pixel1, pixel2)``.
        t
            Wall time at which to take the stage positions, the shutter and the beam
            (default: now).
        """
        image, factor = self.flux_parts(shape, pixel_size, t=t)
        if factor == 1.0 and not image.flags.writeable and image.dtype == np.float64 \
                and image.flags.c_contiguous:
            return image  # full beam: the sample's cached, read-only image, no copy
        return np.ascontiguousarray(image * factor, dtype=np.float64)

    def flux_parts(
        self, shape: tuple[int, int], pixel_size: PixelSize, *, t: float | None = None,
        into: FluxBuffer | None = None, state: SceneState | None = None
    ) -> tuple[FloatImage, float]:
        """``flux_image`` as the sample's image at nominal current (as the sample returns
        it: often its cached, read-only array) and the beam factor to multiply it by —
        for a detector model that folds the factor into its own pass over the pixels
        (``SensorModel.expose(image, t, scale=factor)``) instead of a copy per frame.
        With the shutter closed or no beam at ``t``: zeros and 0.

        ``into``: a buffer for a sample that draws its image into one (``flux_into``:
        the phantom); the image returned is then the buffer's (``FluxBuffer.image``),
        valid until the buffer is passed here again.

        ``state``: the scene's state at ``t`` taken earlier (``state_at``), used instead
        of asking the devices now (whose histories of past states are bounded)."""
        shape = check_shape(shape)
        pixel_pair(pixel_size)
        factor = self.beam_factor(t) if state is None else state.factor
        if factor == 0.0:
            return np.zeros(shape, dtype=np.float64), 0.0
        pose = self.pose(t) if state is None else state.pose
        draw_into = getattr(self.sample, "flux_into", None) if into is not None else None
        if draw_into is not None:
            image = draw_into(pose, shape, pixel_size, into)
        else:
            image = self.sample.flux(pose, shape, pixel_size)
        if image.shape != shape:
            raise ValueError(
                f"sample {type(self.sample).__name__} returned shape {image.shape}, "
                f"expected {shape}"
            )
        return image, factor
