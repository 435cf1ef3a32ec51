"""Fixtures for the plan tests: a real RunEngine, fast simulated hardware, a small camera.

The camera (:class:`SceneCamera`) is a few lines of ophyd standing in for the real
detector: it has an ``exposure`` configuration signal and, when triggered, integrates the
:class:`devices.samples.Scene` flux over a tiny frame (12×12 pixels). Because the scene
knows the shutter, the beam and the stage positions, the frames prove what the plans
did: darks are zero, flats show the open beam, projections the attenuating phantom, and a
frame taken without beam would be zero.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from ophyd import Component as Cpt
from ophyd import Device, Kind, Signal
from ophyd.status import DeviceStatus

from devices.beam import BeamMonitor
from devices.motion import SimMotor
from devices.phantom import PhantomSample, shepp_logan_3d
from devices.rotation import RotationStage
from devices.samples import Scene
from devices.shutter import FastShutter

#: Wall seconds per physical second for motors (1000 times faster than real time).
TIME_SCALE = 0.001
#: Camera frame shape (rows, cols) and pixel pitch in metres (a 2.4 mm field of view).
FRAME_SHAPE = (12, 12)
PIXEL_SIZE = 200e-6
#: sample_x position that takes the phantom (radius 1 mm) fully out of the field.
OUT_POSITION = 20.0


class SceneCamera(Device):  # type: ignore[misc]
    """A tiny area detector that counts the scene's photons over its exposure.

    ``trigger`` completes after ``exposure * time_scale`` wall seconds and then publishes
    ``image`` (photons per pixel) and ``total`` (their sum). ``fail_at`` makes the n-th
    trigger (1-based) fail, to test how plans end on a detector error.
    """

    exposure = Cpt(Signal, value=0.01, kind=Kind.config)
    total = Cpt(Signal, value=0.0, kind=Kind.hinted)
    image = Cpt(Signal, value=np.zeros(FRAME_SHAPE), kind=Kind.normal)

    def __init__(
        self, *, name: str, scene: Scene, time_scale: float = 0.01, fail_at: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.scene = scene
        self.frame_shape = FRAME_SHAPE
        self.pixel_size = PIXEL_SIZE
        self.time_scale = time_scale
        self.fail_at = fail_at
        self.triggers = 0
        self.stage_count = 0
        self.unstage_count = 0

    def stage(self) -> list[Any]:
        self.stage_count += 1
        return super().stage()  # type: ignore[no-any-return]

    def unstage(self) -> list[Any]:
        self.unstage_count += 1
        return super().unstage()  # type: ignore[no-any-return]

    def trigger(self) -> DeviceStatus:
        self.triggers += 1
        status = DeviceStatus(self)
        if self.fail_at is not None and self.triggers >= self.fail_at:
            status.set_exception(RuntimeError(f"{self.name}: readout failed (simulated)"))
            return status
        seconds = float(self.exposure.get())

        def finish() -> None:
            frame = self.scene.flux_image(FRAME_SHAPE, PIXEL_SIZE) * seconds
            self.image.put(frame)
            self.total.put(float(frame.sum()))
            status.set_finished()

        timer = threading.Timer(seconds * self.time_scale, finish)
        timer.daemon = True
        timer.start()
        return status


class DocCollector:
    """A RunEngine callback that keeps every document, with helpers to look at them."""

    def __init__(self) -> None:
        self.docs: list[tuple[str, dict[str, Any]]] = []
        self._streams: dict[str, str] = {}

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        self.docs.append((name, doc))
        if name == "descriptor":
            self._streams[doc["uid"]] = doc["name"]

    def names(self) -> list[str]:
        """Document names in the order they arrived."""
        return [name for name, _ in self.docs]

    def one(self, name: str) -> dict[str, Any]:
        """The single document called ``name`` (fails if there is not exactly one)."""
        found = [doc for n, doc in self.docs if n == name]
        assert len(found) == 1, f"expected one {name!r} document, got {len(found)}"
        return found[0]

    @property
    def start(self) -> dict[str, Any]:
        return self.one("start")

    @property
    def stop(self) -> dict[str, Any]:
        return self.one("stop")

    def events(self, stream: str = "primary") -> list[dict[str, Any]]:
        """Events of one stream, in order."""
        return [
            doc for name, doc in self.docs
            if name == "event" and self._streams[doc["descriptor"]] == stream
        ]

    def counts(self) -> dict[str, int]:
        """Number of events per stream."""
        result: dict[str, int] = {}
        for name, doc in self.docs:
            if name == "event":
                stream = self._streams[doc["descriptor"]]
                result[stream] = result.get(stream, 0) + 1
        return result


@pytest.fixture
def RE() -> Iterator[RunEngine]:
    """A fresh RunEngine, halted at the end if a test left it paused."""
    engine = RunEngine({})
    yield engine
    if engine.state != "idle":
        engine.halt()


@pytest.fixture
def docs(RE: RunEngine) -> DocCollector:
    """Every document the fixture's RunEngine emits."""
    collector = DocCollector()
    RE.subscribe(collector)
    return collector


@pytest.fixture
def sample_x() -> Iterator[SimMotor]:
    """Horizontal sample stage, ±25 mm, fast."""
    motor = SimMotor(name="sample_x", limits=(-25.0, 25.0), velocity=50.0,
                     acceleration=500.0, time_scale=TIME_SCALE, update_period=0.005)
    yield motor
    motor.stop()
    motor.destroy()


@pytest.fixture
def sample_y() -> Iterator[SimMotor]:
    """Vertical sample stage, ±10 mm, fast."""
    motor = SimMotor(name="sample_y", limits=(-10.0, 10.0), velocity=20.0,
                     acceleration=200.0, time_scale=TIME_SCALE, update_period=0.005)
    yield motor
    motor.stop()
    motor.destroy()


@pytest.fixture
def rotation() -> Iterator[RotationStage]:
    """Rotation stage, ±360 deg."""
    stage = RotationStage(name="rotation", limits=(-360.0, 360.0), time_scale=TIME_SCALE,
                          update_period=0.005)
    yield stage
    stage.stop()
    stage.destroy()


@pytest.fixture
def shutter() -> Iterator[FastShutter]:
    """Fast shutter (10 ms physical actuation, 10 µs here), starting closed."""
    device = FastShutter(name="shutter", actuation_time=0.01, time_scale=TIME_SCALE)
    yield device
    device.destroy()


@pytest.fixture
def beam() -> Iterator[BeamMonitor]:
    """Beam monitor at 400 mA with noise updates every 20 ms."""
    device = BeamMonitor(name="ring", update_period=0.02)
    yield device
    device.destroy()


@pytest.fixture
def scene(
    sample_x: SimMotor, sample_y: SimMotor, rotation: RotationStage, shutter: FastShutter,
    beam: BeamMonitor,
) -> Scene:
    """The Shepp-Logan phantom (1 mm radius) on the stages, in the beam."""
    return Scene(sample_x=sample_x, sample_y=sample_y, rotation=rotation, shutter=shutter,
                 beam=beam, sample=PhantomSample(shepp_logan_3d(radius=1.0)))


@pytest.fixture
def cam(scene: Scene) -> Iterator[SceneCamera]:
    """The small scene camera with a 10 ms exposure (0.1 ms wall)."""
    device = SceneCamera(name="cam", scene=scene)
    yield device
    device.destroy()
