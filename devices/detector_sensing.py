"""What the firmware detector's sensor sees of the scene: the photon flux at a moment,
the counts of an exposure, and where the sample stood.

``FirmwareDetector`` (``devices.detector``) takes these methods from :class:`SceneSensing`:
``expose`` (the counts of one exposure of the scene as it was at a wall time, what a
step scan's trigger sends over the link) is ``count(*flux_at(t), exposure)``; a fly
acquisition (``devices.fly``) calls ``scene_state``, ``flux_at``, ``count`` and
``reserve_frames`` itself, on several threads, so that each frame sees the motors,
shutter and beam of its own trigger. ``sample_axes`` and ``sample_position`` are the
sample's stages the frame files record per frame (NeXus's sample chain).

This module knows the detector only through :class:`SensingHost` (what these methods use
of it); ``devices.detector`` builds on it, never the other way round.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from dataflow.hdf5_nxmx import SampleAxis
from fpga.designs.layout import DetectorLayout

from .fly import Counts
from .samples import FluxBuffer, PixelSize, Scene, SceneState
from .sensor import SensorModel

__all__ = ["SceneSensing", "SensingHost"]


class SensingHost(Protocol):
    """What the sensing methods use of the detector they are part of."""

    scene: Scene
    layout: DetectorLayout
    pixel_size: PixelSize
    sensor: SensorModel

    def flux_at(self, t: float | None, into: FluxBuffer | None = None,
                state: SceneState | None = None) -> tuple[npt.NDArray[np.float64], float]:
        """The scene's flux on the sensor at wall time ``t`` (:meth:`SceneSensing.flux_at`)."""

    def count(self, flux: npt.NDArray[np.float64], factor: float, exposure: float,
              out: Counts | None = None, frame: int | None = None) -> Counts:
        """The sensor counts of an exposure (:meth:`SceneSensing.count`)."""


class SceneSensing:
    """Sensing methods of ``FirmwareDetector`` (see the module docstring)."""

    def expose(self: SensingHost, t: float | None, exposure: float,
               out: Counts | None = None) -> Counts:
        """The sensor counts of ``exposure`` seconds of the scene — motors, shutter and
        beam — as it was at wall time ``t`` (default: now), drawn into ``out`` when given
        (``SensorModel.expose``): ``count(*flux_at(t), exposure, out)``."""
        image, factor = self.flux_at(t)
        return self.count(image, factor, exposure, out)

    def flux_at(self: SensingHost, t: float | None, into: FluxBuffer | None = None,
                state: SceneState | None = None) -> tuple[npt.NDArray[np.float64], float]:
        """The scene's flux on the sensor at wall time ``t`` (default: now): the sample's
        image at nominal beam and the beam's factor, with the motors, shutter and beam as
        they were at ``t`` (a fly frame sampled after its trigger passes the trigger's
        time; ``Scene.flux_parts``, drawn into ``into`` when the sample can). ``state``:
        the scene's state at ``t`` taken on time (``scene_state``), used instead of the
        devices' bounded histories."""
        return self.scene.flux_parts(self.layout.shape, self.pixel_size, t=t, into=into,
                                     state=state)

    def prepare_scene(self: SensingHost) -> None:
        """Fill the sample's caches for this sensor now (``Scene.prepare``): at staging
        and before a fly acquisition's first trigger, not in its first frames."""
        self.scene.prepare(self.layout.shape, self.pixel_size)

    def scene_state(self: SensingHost, t: float) -> SceneState:
        """The scene's pose and beam factor at wall time ``t`` (``Scene.state_at``)."""
        return self.scene.state_at(t)

    def count(self: SensingHost, flux: npt.NDArray[np.float64], factor: float,
              exposure: float, out: Counts | None = None, frame: int | None = None
              ) -> Counts:
        """The sensor counts of ``exposure`` seconds of ``factor × flux`` (``flux_at``'s
        parts), drawn into ``out`` when given, with the noise of ``frame`` when given
        (``SensorModel.expose``)."""
        counts: Counts = self.sensor.expose(flux, exposure, scale=factor, out=out,
                                            frame=frame)
        return counts

    def reserve_frames(self: SensingHost, n: int) -> int:
        """The sensor's noise numbers of its next ``n`` exposures (the first; a fly
        acquisition draws its frames on several threads: ``SensorModel.reserve_frames``)."""
        return self.sensor.reserve_frames(n)

    def sample_axes(self: SensingHost) -> tuple[SampleAxis, ...]:
        """The sample's stages the frame files record per frame, the first nearest the
        sample (NeXus's chain: the rotation stage sits on the two translations,
        ``devices.samples``): the rotation stage (deg, about +y: it turns the sample
        counter-clockwise seen from above), then the ``sample_x`` and ``sample_y`` stages
        (mm, along +x and +y: the scene's lab frame is NeXus's, x horizontal, y up, z along
        the beam)."""
        scene = self.scene
        return (SampleAxis(scene.rotation.name),
                SampleAxis(scene.sample_x.name, (1.0, 0.0, 0.0), "translation", "mm"),
                SampleAxis(scene.sample_y.name, (0.0, 1.0, 0.0), "translation", "mm"))

    def sample_position(self: SensingHost, t: float | None) -> tuple[float, ...]:
        """The sample's position on each of ``sample_axes`` at wall time ``t`` (default:
        now): the stages' readbacks there."""
        pose = self.scene.pose(t)
        return (pose.angle, pose.x, pose.y)
