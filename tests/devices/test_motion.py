"""Motors and the rotation stage, driven directly and through a real RunEngine."""

from __future__ import annotations

import threading
import time

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import numpy as np
import pytest
from ophyd.sim import det
from ophyd.status import MoveStatus
from ophyd.utils.errors import LimitError

from devices.motion import MotorLimitError, SimMotor, trapezoid
from devices.rotation import RotationStage

TIME_SCALE = 0.01


def collect(RE):
    docs: list[tuple[str, dict]] = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    return docs


# -- kinematics ------------------------------------------------------------------------


def test_trapezoid_profile_times_and_positions():
    traj = trapezoid(0.0, 10.0, velocity=5.0, acceleration=50.0)
    # 0.1 s ramp (0.25 mm) each side, 9.5 mm cruise at 5 mm/s
    assert traj.duration == pytest.approx(2.1)
    assert traj.position(0.1) == pytest.approx(0.25)
    assert traj.position(1.05) == pytest.approx(5.0)
    assert traj.position(2.0) == pytest.approx(10.0 - 0.5 * 50 * 0.1**2)
    assert traj.position(5.0) == 10.0
    assert traj.position(-1.0) == 0.0
    # too short to reach the velocity: triangular, peak at half way
    tri = trapezoid(1.0, 0.9, velocity=5.0, acceleration=50.0)
    assert tri.duration == pytest.approx(2 * np.sqrt(0.1 / 50))
    assert tri.position(tri.duration / 2) == pytest.approx(0.95)


def test_trapezoid_rejects_bad_velocity():
    with pytest.raises(ValueError, match="velocity > 0"):
        trapezoid(0, 1, velocity=0.0, acceleration=1.0)


# -- ophyd interface -------------------------------------------------------------------


def test_describe_read_and_configuration(sample_x):
    desc = sample_x.describe()
    assert set(desc) == {"sample_x", "sample_x_user_setpoint"}
    assert desc["sample_x"]["units"] == "mm"
    assert desc["sample_x"]["precision"] == 4
    assert (desc["sample_x"]["lower_ctrl_limit"], desc["sample_x"]["upper_ctrl_limit"]) == (
        -25.0,
        25.0,
    )
    reading = sample_x.read()
    assert set(reading) == set(desc)
    assert reading["sample_x"]["value"] == 0.0
    config = sample_x.read_configuration()
    assert config["sample_x_velocity"]["value"] == 5.0
    assert config["sample_x_acceleration"]["value"] == 50.0
    assert config["sample_x_low_limit_travel"]["value"] == -25.0
    assert config["sample_x_high_limit_travel"]["value"] == 25.0
    assert set(sample_x.describe_configuration()) == set(config)
    assert sample_x.egu == "mm" and sample_x.limits == (-25.0, 25.0)
    assert sample_x.hints == {"fields": ["sample_x"]}


@pytest.fixture
def slow():
    """A motor 4 times faster than real time: moves last ~0.5 s of wall time, long enough
    that a loaded machine (CI runs the suite on every core) still sees them in motion."""
    motor = SimMotor(name="slow", limits=(-100, 100), velocity=10.0, acceleration=100.0,
                     time_scale=0.25, update_period=0.005)
    yield motor
    motor.stop()
    motor.destroy()


def test_set_completes_after_the_move_time_without_blocking(slow):
    expected = slow.move_time(20.0) * 0.25  # 2.1 s physical -> 525 ms
    assert expected == pytest.approx(0.525)
    t0 = time.monotonic()
    status = slow.set(20.0)
    returned = time.monotonic() - t0
    assert isinstance(status, MoveStatus)
    assert not status.done and slow.moving
    assert returned < expected / 2
    status.wait(timeout=5)
    elapsed = time.monotonic() - t0
    assert status.success
    assert elapsed >= expected * 0.95
    assert slow.position == 20.0
    assert slow.read()["slow"]["value"] == 20.0
    assert slow.user_setpoint.get() == 20.0
    assert not slow.moving


def test_readback_mid_move_is_intermediate_and_follows_the_profile(slow):
    status = slow.set(20.0)  # 2.1 s physical -> 525 ms wall
    time.sleep(0.1)
    t = time.time()
    value = slow.read()["slow"]["value"]
    assert 0.0 < value < 20.0
    assert slow.position_at(t) == pytest.approx(value, abs=0.5)
    status.wait(timeout=2)
    assert slow.position == 20.0


def test_readback_subscriptions_fire_during_the_move(slow):
    seen: list[float] = []
    slow.subscribe(lambda value, **kw: seen.append(value), event_type=slow.SUB_READBACK,
                   run=False)
    slow.set(5.0).wait(timeout=2)  # 0.6 s physical -> 150 ms, updates every 5 ms
    assert seen[-1] == 5.0
    assert any(0.0 < v < 5.0 for v in seen)


class _LateClearingMotor(SimMotor):
    """Opens, once, the window a loaded machine opens by chance: the move thread pauses
    between running a finished move's done subscriptions and clearing them."""

    paused = False

    def _reset_sub(self, event_type):  # type: ignore[no-untyped-def]
        if threading.current_thread().name.endswith("-move") and not self.paused:
            self.paused = True
            time.sleep(0.1)
        super()._reset_sub(event_type)


def test_a_move_started_as_the_last_one_ends_is_never_lost():
    # real time: the first move takes 63 ms, the second 180 ms, longer than the pause
    motor = _LateClearingMotor(name="late", limits=(-10, 10), velocity=100.0,
                               acceleration=1000.0, time_scale=1.0, update_period=0.005)
    try:
        motor.set(1.0).wait(timeout=5)  # returns while the move thread still clears subs
        second = motor.set(9.0)         # (a bluesky scan's next point does just this)
        second.wait(timeout=5)
        assert second.success and motor.position == 9.0
    finally:
        motor.stop()
        motor.destroy()


def test_limit_error_before_moving(sample_x):
    with pytest.raises(MotorLimitError, match=r"motor 'sample_x': target 30 mm is outside "
                       r"the limits \[-25, 25\] mm"):
        sample_x.set(30.0)
    assert not sample_x.moving
    assert sample_x.position == 0.0
    assert sample_x.user_setpoint.get() == 0.0
    assert issubclass(MotorLimitError, LimitError)
    with pytest.raises(ValueError, match="must be finite"):
        sample_x.set(float("nan"))


def test_limit_error_fails_the_plan_before_any_motion(RE, sample_x):
    docs = collect(RE)
    with pytest.raises(MotorLimitError, match="sample_x"):
        RE(bps.mv(sample_x, -40.0))
    assert sample_x.position == 0.0 and not sample_x.moving
    assert docs == []


def test_velocity_must_be_positive(sample_x):
    with pytest.raises(ValueError, match=r"sample_x.velocity: must be a finite number > 0 mm/s"):
        sample_x.velocity.put(-1.0)
    with pytest.raises(ValueError, match="limits must satisfy low < high"):
        SimMotor(name="bad", limits=(1.0, -1.0))


def test_stop_halts_where_it_is(slow):
    status = slow.set(20.0)
    time.sleep(0.05)
    slow.stop()
    here = slow.position
    assert 0.0 < here < 20.0
    with pytest.raises(Exception):  # noqa: B017 - ophyd raises its own FailedStatus
        status.wait(timeout=1)
    assert status.done and not status.success
    time.sleep(0.1)
    assert slow.position == here  # stays put
    assert not slow.moving


def test_new_move_supersedes_a_running_one(slow):
    """(On ``slow``: the first move lasts ~0.5 s of wall time. On the 100× ``sample_x``
    its 40 ms could end before the second ``set`` on a loaded machine.)"""
    first = slow.set(20.0)
    second = slow.set(-1.0)
    second.wait(timeout=10)
    assert first.done and not first.success
    assert slow.position == -1.0


# -- bluesky plans ----------------------------------------------------------------------


def test_scan_records_the_readbacks(RE, sample_x):
    docs = collect(RE)
    RE(bp.scan([det], sample_x, -2.0, 2.0, 5))
    events = [d for n, d in docs if n == "event"]
    assert [e["data"]["sample_x"] for e in events] == pytest.approx([-2, -1, 0, 1, 2])
    assert all("det" in e["data"] for e in events)
    descriptor = next(d for n, d in docs if n == "descriptor")
    assert descriptor["data_keys"]["sample_x"]["units"] == "mm"
    assert descriptor["configuration"]["sample_x"]["data"]["sample_x_velocity"] == 5.0
    assert next(d for n, d in docs if n == "stop")["exit_status"] == "success"


def test_rel_scan_list_scan_and_mv(RE, sample_x, sample_y):
    RE(bps.mv(sample_x, 1.0, sample_y, -1.0))
    assert (sample_x.position, sample_y.position) == (1.0, -1.0)
    docs = collect(RE)
    RE(bp.rel_scan([det], sample_x, -0.5, 0.5, 3))
    RE(bp.list_scan([det], sample_y, [0.0, 2.0, -3.0]))
    values = [(d["data"].get("sample_x"), d["data"].get("sample_y"))
              for n, d in docs if n == "event"]
    assert values == [(0.5, None), (1.0, None), (1.5, None),
                      (None, 0.0), (None, 2.0), (None, -3.0)]
    assert sample_x.position == 1.0  # rel_scan returns to the start


# -- rotation stage ---------------------------------------------------------------------


def test_rotation_stage_describe_and_move(rotation):
    assert rotation.egu == "deg"
    assert rotation.describe()["rotation"]["units"] == "deg"
    rotation.set(90.0).wait(timeout=2)
    assert rotation.position == 90.0


def test_continuous_rotation_constant_velocity(rotation):
    status = rotation.start_continuous(0.0, 180.0, velocity=90.0)
    t_start, t_stop = rotation.constant_velocity_window()
    # 180 deg at 90 deg/s = 2 s physical = 20 ms wall
    assert t_stop - t_start == pytest.approx(2.0 * TIME_SCALE)
    times = np.linspace(t_start, t_stop, 7)
    angles = np.array([rotation.position_at(t) for t in times])
    assert angles == pytest.approx(np.linspace(0.0, 180.0, 7), abs=0.01)
    # before start the stage is still accelerating, after stop decelerating
    assert rotation.position_at(t_start - 0.001) < 0.0
    assert rotation.position_at(t_stop + 0.001) > 180.0
    status.wait(timeout=2)
    assert status.success
    ramp = 90.0**2 / (2 * 360.0)
    assert rotation.position == pytest.approx(180.0 + ramp)


def test_continuous_rotation_validation(rotation):
    with pytest.raises(ValueError, match=r"continuous velocity must be in \(0, 360\] deg/s"):
        rotation.start_continuous(0.0, 10.0, velocity=1000.0)
    with pytest.raises(ValueError, match="start != stop"):
        rotation.start_continuous(10.0, 10.0, velocity=10.0)
    with pytest.raises(MotorLimitError, match="run-out angle of 765 deg, outside the limits"):
        rotation.start_continuous(0.0, 720.0, velocity=180.0)
    assert not rotation.moving and rotation.position == 0.0
    with pytest.raises(RuntimeError, match="no continuous rotation"):
        rotation.constant_velocity_window()


def test_continuous_rotation_can_be_stopped():
    stage = RotationStage(name="rot", time_scale=0.05)
    try:
        status = stage.start_continuous(0.0, 360.0, velocity=90.0)
        time.sleep(0.05)
        stage.stop()
        assert status.done and not status.success
        assert stage.position < 360.0
    finally:
        stage.destroy()


def test_motion_runs_on_a_timer_thread(slow):
    before = {t.name for t in threading.enumerate()}
    status = slow.set(20.0)
    during = {t.name for t in threading.enumerate()}
    assert "slow-move" in during - before
    status.wait(timeout=2)
