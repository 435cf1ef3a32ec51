"""The devices' soft settings, moved as a plan moves them: ``bps.mv(signal, value)``.

ophyd's soft ``Signal.set`` puts in a thread and then waits, without a timeout, until the
value reads back equal to the one asked; a refused value failed that thread, so bluesky
raised ``FailedStatus(Status(...))`` with the reason only in its ``__cause__`` (all a
queue server's history shows is the status), and NaN, which never equals itself, hung the
plan for ever. Each setting now checks its value at the ``set`` call: a bad value is one
``ValueError`` naming the setting, what it must be and the value, and nothing changes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import bluesky.plan_stubs as bps
import pytest
from bluesky import RunEngine

from devices.beam import BeamMonitor
from devices.beamline import SampleChanger
from devices.motion import SimMotor
from devices.shutter import FastShutter


@pytest.fixture(scope="module")
def devices() -> Iterator[dict[str, Any]]:
    swapped: list[str] = []
    found = {
        "beam": BeamMonitor(name="beam", update_period=None),
        "shutter": FastShutter(name="shutter", actuation_time=0.01, time_scale=1.0),
        "sample_x": SimMotor(name="sample_x", limits=(-25.0, 25.0), time_scale=0.01),
        "sample": SampleChanger(name="sample", value="phantom",
                                choices={"phantom": lambda: swapped.append("phantom"),
                                         "powder": lambda: swapped.append("powder")}),
        "swapped": swapped,
    }
    yield found
    found["sample_x"].destroy()


#: (device, setting or None for the device itself, bad value, the error's words)
REFUSED: list[tuple[str, str | None, Any, str]] = [
    ("beam", "nominal_current", 0, "beam.nominal_current: must be a finite number > 0 mA, "
                                   "got 0"),
    ("beam", "nominal_current", -1.0, "must be a finite number > 0 mA, got -1.0"),
    ("beam", "nominal_current", math.nan, "must be a finite number > 0 mA, got nan"),
    ("beam", "nominal_current", "400", "must be a finite number > 0 mA, got '400'"),
    ("beam", "noise", math.nan, "beam.noise: must be a finite number >= 0 mA, got nan"),
    ("beam", "noise", -0.5, "beam.noise: must be a finite number >= 0 mA, got -0.5"),
    ("shutter", "actuation_time", -1.0, "shutter.actuation_time: must be a finite number "
                                        ">= 0 s, got -1.0"),
    ("shutter", "actuation_time", math.inf, "got inf"),
    ("sample_x", "velocity", 0, "sample_x.velocity: must be a finite number > 0 mm/s, "
                                "got 0"),
    ("sample_x", "velocity", math.nan, "sample_x.velocity: must be a finite number > 0 "
                                       "mm/s, got nan"),
    ("sample_x", "acceleration", -3.0, "sample_x.acceleration: must be a finite number > 0 "
                                       "mm/s², got -3.0"),
    ("sample_x", "low_limit_travel", math.nan, "sample_x.low_limit_travel: must be a "
                                               "finite number of mm, got nan"),
    ("sample_x", "high_limit_travel", "far", "sample_x.high_limit_travel: must be a "
                                             "finite number of mm, got 'far'"),
    ("sample", None, "unobtainium", "sample: no sample 'unobtainium'; choose one of "
                                    "'phantom', 'powder'"),
]


def _target(devices: dict[str, Any], device: str, setting: str | None) -> Any:
    return devices[device] if setting is None else getattr(devices[device], setting)


@pytest.mark.timeout(30)  # NaN hung ophyd's set before
@pytest.mark.parametrize(("device", "setting", "value", "words"), REFUSED,
                         ids=[f"{d}.{s}={v!r}" for d, s, v, _ in REFUSED])
def test_a_refused_setting_fails_mv_with_its_reason(devices: dict[str, Any], device: str,
                                                    setting: str | None, value: Any,
                                                    words: str) -> None:
    target = _target(devices, device, setting)
    before = target.get()
    with pytest.raises(ValueError, match=re.escape(words)):
        RunEngine({})(bps.mv(target, value))
    assert target.get() == before
    with pytest.raises(ValueError, match=re.escape(words)):
        target.put(value)
    with pytest.raises(ValueError, match=re.escape(words)):
        target.check_value(value)  # what plans may ask beforehand


@pytest.mark.timeout(30)
def test_good_settings_are_set_at_once(devices: dict[str, Any]) -> None:
    RE = RunEngine({})
    beam, motor, shutter = devices["beam"], devices["sample_x"], devices["shutter"]
    RE(bps.mv(beam.nominal_current, 200, beam.noise, 0, shutter.actuation_time, 0.02,
              motor.velocity, 2.5, motor.acceleration, 10, motor.low_limit_travel, -5,
              motor.high_limit_travel, 5))
    assert (beam.nominal_current.get(), beam.noise.get()) == (200.0, 0.0)
    assert shutter.actuation_time.get() == 0.02
    assert (motor.velocity.get(), motor.acceleration.get()) == (2.5, 10.0)
    assert motor.limits == (-5.0, 5.0)
    status = motor.velocity.set(3)
    assert status.done and status.success and motor.velocity.get() == 3.0
    RE(bps.mv(devices["sample"], "powder"))
    assert devices["sample"].get() == "powder" and devices["swapped"] == ["powder"]


#: A motor target as text (what a queue item's JSON or a typed string gives) or a bool.
#: ophyd 1.11's own soft positioners do not coerce text: ``SoftPositioner.set("1")`` stored
#: the string as its position, and ``SynAxis.set("1")`` failed inside its readback with
#: ``TypeError: unsupported operand type(s) for -: 'str' and 'int'``; float("1") made ours
#: move to 1 mm as if a number had been given.
TEXT_TARGETS: list[Any] = ["1", "0.5", " 2 ", "nan", True]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("target", TEXT_TARGETS, ids=repr)
def test_a_motor_target_that_is_no_number_is_refused(devices: dict[str, Any],
                                                     target: Any) -> None:
    motor = devices["sample_x"]
    RunEngine({})(bps.mv(motor, 0.25))
    words = f"motor 'sample_x': target must be a number (not text or a bool), got {target!r}"
    with pytest.raises(ValueError, match="^" + re.escape(words) + "$"):
        RunEngine({})(bps.mv(motor, target))
    with pytest.raises(ValueError, match="^" + re.escape(words) + "$"):
        motor.check_value(target)
    with pytest.raises(ValueError, match="^" + re.escape(words) + "$"):
        motor.set(target)
    assert motor.position == 0.25 and motor.user_setpoint.get() == 0.25


@pytest.mark.timeout(30)
def test_a_motor_target_of_numpy_or_int_still_moves(devices: dict[str, Any]) -> None:
    import numpy as np

    motor = devices["sample_x"]
    for target in (np.float32(0.5), np.int64(1), 2):
        RunEngine({})(bps.mv(motor, target))
        assert motor.position == pytest.approx(float(target))
