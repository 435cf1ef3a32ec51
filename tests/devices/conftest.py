"""Fixtures for the device tests: a real RunEngine and fast-running simulated hardware."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bluesky import RunEngine

from devices.beam import BeamMonitor
from devices.motion import SimMotor
from devices.rotation import RotationStage
from devices.shutter import FastShutter

#: Wall seconds per physical second in the tests (100 times faster than real time).
TIME_SCALE = 0.01


@pytest.fixture
def RE() -> Iterator[RunEngine]:
    """A fresh RunEngine (its own event loop), halted at the end if still running."""
    engine = RunEngine({})
    yield engine
    if engine.state != "idle":
        engine.halt()


@pytest.fixture
def sample_x() -> Iterator[SimMotor]:
    """Horizontal sample stage, ±25 mm, 5 mm/s, 50 mm/s², 100× faster than real time."""
    motor = SimMotor(name="sample_x", limits=(-25.0, 25.0), velocity=5.0,
                     acceleration=50.0, time_scale=TIME_SCALE, update_period=0.005)
    yield motor
    motor.stop()
    motor.destroy()


@pytest.fixture
def sample_y() -> Iterator[SimMotor]:
    """Vertical sample stage, ±10 mm."""
    motor = SimMotor(name="sample_y", limits=(-10.0, 10.0), velocity=2.0,
                     acceleration=20.0, time_scale=TIME_SCALE)
    yield motor
    motor.stop()
    motor.destroy()


@pytest.fixture
def rotation() -> Iterator[RotationStage]:
    """Rotation stage, ±720 deg, 90 deg/s."""
    stage = RotationStage(name="rotation", time_scale=TIME_SCALE)
    yield stage
    stage.stop()
    stage.destroy()


@pytest.fixture
def shutter() -> Iterator[FastShutter]:
    """Fast shutter with a 10 ms (physical) actuation, starting closed."""
    device = FastShutter(name="shutter", actuation_time=0.01, time_scale=1.0)
    yield device
    device.destroy()


@pytest.fixture
def beam() -> Iterator[BeamMonitor]:
    """Beam monitor at 400 mA with noise updates every 20 ms."""
    device = BeamMonitor(name="ring", update_period=0.02)
    yield device
    device.destroy()
