"""Argument validation: one clear error at call time, and no document from the RunEngine."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import ophyd.sim
import pytest
from bluesky import RunEngine
from ophyd import Component as Cpt
from ophyd import Device, Signal

from plans import (
    PlanArgumentError,
    diffraction_count,
    diffraction_scan,
    fly_tomo_scan,
    tomo_scan,
)
from plans.validate import (
    image_keys,
    motor_limits,
    require_exposure,
    require_int,
    require_md,
    require_number,
    require_within_limits,
    require_xy_positions,
)


class LimitedExposure(Signal):  # type: ignore[misc]
    """An exposure signal that, like a real camera, refuses exposures above 1 s."""

    def check_value(self, value: Any) -> None:
        if value > 1.0:
            raise ValueError("exposure above the 1 s maximum")


# -- the helpers ---------------------------------------------------------------------------


def test_message_names_plan_argument_value_and_what_is_allowed() -> None:
    with pytest.raises(PlanArgumentError) as info:
        require_int("tomo_scan", "num_projections", 0, minimum=1)
    assert str(info.value) == "tomo_scan: num_projections must be an int >= 1, got 0"
    assert (info.value.plan, info.value.argument, info.value.value) == (
        "tomo_scan", "num_projections", 0,
    )
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", [True, 2.0, "3", None, -1])
def test_require_int_rejects_non_ints_and_small_values(value: Any) -> None:
    with pytest.raises(PlanArgumentError, match=r"^p: n must be an int >= 0, got "):
        require_int("p", "n", value, minimum=0)


def test_require_int_accepts_numpy_ints() -> None:
    assert require_int("p", "n", np.int64(3), minimum=0) == 3


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "1", None, True])
def test_require_number_rejects_non_finite_and_non_numbers(value: Any) -> None:
    with pytest.raises(PlanArgumentError, match=r"^p: x must be a finite number, got "):
        require_number("p", "x", value)


def test_require_number_positive() -> None:
    assert require_number("p", "t", np.float32(0.5), positive=True) == 0.5
    with pytest.raises(PlanArgumentError, match=r"^p: t must be a finite number > 0, got -0.1$"):
        require_number("p", "t", -0.1, positive=True)


def test_limits_come_from_the_device(sample_x: Any) -> None:
    assert motor_limits(sample_x) == (-25.0, 25.0)
    assert motor_limits(ophyd.sim.motor) is None  # SynAxis has no limits: anything goes
    assert require_within_limits("p", "x", 1e6, ophyd.sim.motor) == 1e6
    sample_x.high_limit_travel.put(5.0)  # limits changed on the device are honoured
    with pytest.raises(
        PlanArgumentError,
        match=re.escape("p: x must be within the limits [-25, 5] mm of 'sample_x', got 6.0"),
    ):
        require_within_limits("p", "x", 6.0, sample_x)


def test_exposure_needs_a_settable_signal_and_a_value_the_detector_accepts() -> None:
    assert require_exposure("p", ophyd.sim.det, None) is None
    with pytest.raises(
        PlanArgumentError,
        match=re.escape("p: exposure must be None for detector 'det', which has no settable "
                        "'exposure' signal, got 0.1"),
    ):
        require_exposure("p", ophyd.sim.det, 0.1)

    class Det:
        name = "d"
        exposure = LimitedExposure(name="d_exposure", value=0.1)

    assert require_exposure("p", Det(), 0.5) is Det.exposure
    with pytest.raises(PlanArgumentError, match=r"a value the detector accepts \(exposure above"):
        require_exposure("p", Det(), 2.0)


def test_md_must_be_a_mapping_with_str_keys() -> None:
    assert require_md("p", None) == {}
    assert require_md("p", {"a": 1}) == {"a": 1}
    with pytest.raises(PlanArgumentError, match=r"^p: md must be None or a mapping with str keys"):
        require_md("p", {1: "a"})
    with pytest.raises(PlanArgumentError, match=r"^p: md must be None or a mapping"):
        require_md("p", [("a", 1)])


def test_xy_positions(sample_x: Any, sample_y: Any) -> None:
    array = np.array([[0.0, 1.0], [2.0, -3.0]])
    assert require_xy_positions("p", "positions", array, sample_x, sample_y) == [
        (0.0, 1.0), (2.0, -3.0),
    ]
    with pytest.raises(PlanArgumentError, match=r"^p: positions must be a non-empty sequence"):
        require_xy_positions("p", "positions", [], sample_x, sample_y)
    with pytest.raises(PlanArgumentError, match=re.escape("p: positions[1] must be an (x, y) pair")):
        require_xy_positions("p", "positions", [(0, 0), (1, 2, 3)], sample_x, sample_y)
    with pytest.raises(PlanArgumentError,
                       match=re.escape("p: positions[0][1] (y) must be a finite number, got nan")):
        require_xy_positions("p", "positions", [(0, float("nan"))], sample_x, sample_y)
    with pytest.raises(
        PlanArgumentError,
        match=re.escape("p: positions[1][1] (y) must be within the limits [-10, 10] mm of "
                        "'sample_y', got 12.0"),
    ):
        require_xy_positions("p", "positions", [(0, 0), (1, 12.0)], sample_x, sample_y)


# -- the plans: error at call time, nothing emitted --------------------------------------


PROJECTIONS = "an int from 1 to 1000000 (the start document lists every angle)"


def _tomo_cases(cam: Any, rotation: Any, sample_x: Any, shutter: Any) -> list[tuple[Any, str]]:
    base = dict(det=cam, rotation=rotation, sample_x=sample_x, shutter=shutter)

    def call(**kwargs: Any) -> Any:
        args = {**base, "out_position": 20.0, **kwargs}
        return lambda: tomo_scan(**args)

    return [
        (call(num_projections=0), f"tomo_scan: num_projections must be {PROJECTIONS}, got 0"),
        (call(num_projections=2.5), f"tomo_scan: num_projections must be {PROJECTIONS}, got 2.5"),
        (call(num_projections=10**12),  # (a typo: refused before any angle is computed)
         f"tomo_scan: num_projections must be {PROJECTIONS}, got 1000000000000"),
        (call(n_darks=-1), "tomo_scan: n_darks must be an int >= 0, got -1"),
        (call(n_flats=-2), "tomo_scan: n_flats must be an int >= 0, got -2"),
        (call(exposure=-0.1), "tomo_scan: exposure must be a finite number > 0, got -0.1"),
        (call(exposure=0), "tomo_scan: exposure must be a finite number > 0, got 0"),
        (call(stop=400.0),
         "tomo_scan: stop must be within the limits [-360, 360] deg of 'rotation', got 400.0"),
        (call(start=float("nan")), "tomo_scan: start must be a finite number, got nan"),
        (call(start=10.0, stop=10.0),
         "tomo_scan: stop must be different from start (10) for 90 projections, got 10.0"),
        (call(out_position=30.0),
         "tomo_scan: out_position must be within the limits [-25, 25] mm of 'sample_x', got 30.0"),
        (call(in_position=-26.0),
         "tomo_scan: in_position must be within the limits [-25, 25] mm of 'sample_x', got -26.0"),
        (call(md="sample 7"), "tomo_scan: md must be None or a mapping with str keys, got 'sample 7'"),
        (call(det="cam"),
         "tomo_scan: det must be a detector with trigger(), read(), describe() and a name, "
         "got 'cam'"),
        (call(shutter="shutter"), "tomo_scan: shutter must be a device with set(), got 'shutter'"),
    ]


def test_tomo_scan_rejects_each_bad_argument_before_any_document(
    RE: RunEngine, docs: Any, cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    for make_plan, message in _tomo_cases(cam, rotation, sample_x, shutter):
        with pytest.raises(PlanArgumentError, match="^" + re.escape(message) + "$"):
            RE(make_plan())
    assert docs.docs == []
    assert cam.triggers == 0 and cam.stage_count == 0
    assert rotation.position == 0.0 and sample_x.position == 0.0 and shutter.state == "closed"


def test_tomo_scan_validates_at_call_time_not_when_iterated(
    cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    """The error comes from the call itself: the generator is never even created."""
    with pytest.raises(PlanArgumentError, match="num_projections"):
        tomo_scan(cam, rotation, sample_x, shutter, out_position=20.0, num_projections=0)


def test_tomo_scan_exposure_on_a_detector_without_exposure_signal(
    RE: RunEngine, docs: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    camera = ophyd.sim.SynSignal(lambda: np.zeros((4, 4)), name="camera")  # no exposure
    with pytest.raises(PlanArgumentError, match="which has no settable 'exposure' signal"):
        RE(tomo_scan(camera, rotation, sample_x, shutter, out_position=20.0, exposure=0.1))
    assert docs.docs == []


def test_diffraction_plans_reject_bad_arguments_before_any_document(
    RE: RunEngine, docs: Any, cam: Any, sample_x: Any, sample_y: Any, shutter: Any
) -> None:
    cases: list[tuple[Any, str]] = [
        (lambda: diffraction_scan(cam, sample_x, sample_y, [(0, 0)], num=0),
         "diffraction_scan: num must be an int >= 1, got 0"),
        (lambda: diffraction_scan(cam, sample_x, sample_y, [(0, 0), (30.0, 0)]),
         "diffraction_scan: positions[1][0] (x) must be within the limits [-25, 25] mm of "
         "'sample_x', got 30.0"),
        (lambda: diffraction_scan(cam, sample_x, sample_y, []),
         "diffraction_scan: positions must be a non-empty sequence of (x, y) pairs, got []"),
        (lambda: diffraction_scan(cam, sample_x, sample_y, [(0, 0)], exposure=-1.0),
         "diffraction_scan: exposure must be a finite number > 0, got -1.0"),
        (lambda: diffraction_scan(cam, sample_x, "y", [(0, 0)]),
         "diffraction_scan: sample_y must be a positioner with set(), read(), describe()"),
        (lambda: diffraction_scan(cam, sample_x, sample_y, [(0, 0)], shutter=42),
         "diffraction_scan: shutter must be a device with set(), got 42"),
        (lambda: diffraction_count(cam, 0), "diffraction_count: num must be an int >= 1, got 0"),
        (lambda: diffraction_count(cam, 3, delay=-1.0),
         "diffraction_count: delay must be a finite number >= 0, got -1.0"),
        (lambda: diffraction_count(cam, 3, exposure=float("inf")),
         "diffraction_count: exposure must be a finite number > 0, got inf"),
        (lambda: diffraction_count(None, 3),
         "diffraction_count: det must be a detector with trigger(), read(), describe() and a "
         "name, got None"),
    ]
    for make_plan, message in cases:
        with pytest.raises(PlanArgumentError, match="^" + re.escape(message)):
            RE(make_plan())
    assert docs.docs == []
    assert cam.triggers == 0 and shutter.state == "closed"


# -- the detector must take images -----------------------------------------------------------


class FlyCounter(Device):  # type: ignore[misc]
    """Fly-capable (the methods exist) but with a scalar reading only: no image."""

    counts = Cpt(Signal, value=0, kind="hinted")

    def prepare(self, value: Any) -> None: ...
    def kickoff(self) -> None: ...
    def complete(self) -> None: ...
    def describe_collect(self) -> dict[str, Any]: return {}
    def collect_pages(self) -> list[Any]: return []


def test_image_keys_are_the_keys_of_two_dimensional_data() -> None:
    assert image_keys(ophyd.sim.det.describe()) == []
    assert image_keys(ophyd.sim.img.describe()) == ["img"]  # external FILESTORE, 10×10
    assert image_keys({"a": {"shape": []}, "b": {"shape": [64]},
                       "d_image": {"shape": [64, 64], "external": "STREAM:"}}) == ["d_image"]


NO_IMAGE = ("det must be an area detector: its describe() needs an image data key (a shape of "
            "2 or more dimensions, e.g. external 'STREAM:' frames), but {name!r} describes only "
            "{keys!r}, got ")


def test_plans_refuse_a_detector_without_images_before_any_document(
    RE: RunEngine, docs: Any, rotation: Any, sample_x: Any, sample_y: Any, shutter: Any
) -> None:
    """A motor (or a scalar counter) given as the detector would make a run without a
    single frame: refused at the call, nothing moves."""
    motor_keys = sorted(sample_x.describe())
    counter = FlyCounter(name="counter")
    cases: list[tuple[Any, str]] = [
        (lambda: tomo_scan(sample_x, rotation, sample_x, shutter, out_position=20.0),
         "tomo_scan: " + NO_IMAGE.format(name="sample_x", keys=motor_keys)),
        (lambda: diffraction_scan(sample_x, sample_x, sample_y, [(0.0, 0.0)]),
         "diffraction_scan: " + NO_IMAGE.format(name="sample_x", keys=motor_keys)),
        (lambda: diffraction_count(ophyd.sim.det, 3, shutter=shutter),
         "diffraction_count: " + NO_IMAGE.format(name="det", keys=["det"])),
        (lambda: fly_tomo_scan(counter, rotation, sample_x, shutter, out_position=20.0,
                               exposure=0.01),
         "fly_tomo_scan: " + NO_IMAGE.format(name="counter", keys=["counter_counts"])),
        (lambda: fly_tomo_scan(sample_y, rotation, sample_x, shutter, out_position=20.0,
                               exposure=0.01),
         "fly_tomo_scan: det must be a fly-capable detector with prepare(), kickoff(), "
         "complete(), describe_collect(), collect_pages(), got "),
    ]
    for make_plan, message in cases:
        with pytest.raises(PlanArgumentError, match="^" + re.escape(message)):
            RE(make_plan())
    assert docs.docs == []
    assert rotation.position == 0.0 and sample_x.position == 0.0 and shutter.state == "closed"


def test_fly_tomo_blames_start_or_stop_for_a_run_up_or_run_out_past_the_limits(
    smeflow_beamline: Any,
) -> None:
    """The stage (limits ±720 deg, 360 deg/s²) at 40 deg/s needs 2.22 deg to stop or to
    reach speed: the angle that is too close to the limit is at fault, not exposure."""
    bl = smeflow_beamline
    seen: list[str] = []
    bl.RE.subscribe(lambda name, doc: seen.append(name))

    def call(start: float, stop: float) -> Any:
        return fly_tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter, out_position=20.0,
                             start=start, stop=stop, exposure=0.05, num_projections=10)

    with pytest.raises(PlanArgumentError, match="^" + re.escape(
            "fly_tomo_scan: stop must be <= 717.778 deg: at 40 deg/s the stage needs 2.22222 "
            "deg to stop, and the run-out angle 722.222 deg would be outside the limits "
            "[-720, 720] deg of 'rotation', got 720.0") + "$"):
        call(700, 720)
    with pytest.raises(PlanArgumentError, match="^" + re.escape(
            "fly_tomo_scan: start must be >= -717.778 deg: at 40 deg/s the stage needs "
            "2.22222 deg to reach speed, and the run-up angle -721.222 deg would be outside "
            "the limits [-720, 720] deg of 'rotation', got -719.0") + "$"):
        call(-719, -699)
    with pytest.raises(PlanArgumentError, match=r"^fly_tomo_scan: stop must be >= -717\.778 "
                       r"deg: .* run-out angle -722\.222 deg"):
        call(-700, -720)  # turning backwards: the run-out is below stop
    call(700, 717)  # 2.22 deg of room: fine
    assert seen == []
