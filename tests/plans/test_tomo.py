"""tomo_scan: message order (no hardware), and runs against the simulated beamline."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import Msg, RequestAbort
from ophyd.sim import SynAxis, SynSignal

from devices.samples import EmptyBeam, Pose
from plans import IMAGE_KEY, tomo_angles, tomo_scan

OUT = 20.0


def timeline(
    msgs: list[Msg], cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> list[tuple[str, Any, Any, Any]]:
    """For each frame, in order: (stream, shutter setpoint, sample_x target, angle target).

    Walks the messages like a RunEngine would, remembering the last value each ``set``
    asked for, and checks on the way that every frame follows a checkpoint.
    """
    state: dict[Any, Any] = {shutter: None, sample_x: None, rotation: None}
    frames: list[tuple[str, Any, Any, Any]] = []
    checkpoint_since_frame = False
    for msg in msgs:
        if msg.command == "set" and msg.obj in state:
            state[msg.obj] = msg.args[0]
        elif msg.command == "checkpoint":
            checkpoint_since_frame = True
        elif msg.command == "trigger" and msg.obj is cam:
            assert checkpoint_since_frame, "a frame without a checkpoint before it"
            checkpoint_since_frame = False
        elif msg.command == "create":
            frames.append((msg.kwargs["name"], state[shutter], state[sample_x], state[rotation]))
    return frames


def test_tomo_angles() -> None:
    assert tomo_angles(0.0, 180.0, 4) == [0.0, 60.0, 120.0, 180.0]
    assert tomo_angles(0.0, 180.0, 90, endpoint=False)[:3] == [0.0, 2.0, 4.0]
    assert tomo_angles(10.0, -10.0, 3) == [10.0, 0.0, -10.0]
    assert tomo_angles(5.0, 5.0, 1) == [5.0]


def test_messages_darks_closed_then_flats_out_then_projections(
    cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    msgs = list(tomo_scan(cam, rotation, sample_x, shutter, out_position=OUT, in_position=1.5,
                          start=0.0, stop=90.0, num_projections=3, n_darks=2, n_flats=2,
                          exposure=0.05))
    commands = [m.command for m in msgs]
    assert commands[0] == "open_run" and commands[-1] == "close_run"
    # exposure set (and waited for) before staging, staging before the first frame
    assert (msgs[1].command, msgs[1].obj, msgs[1].args) == ("set", cam.exposure, (0.05,))
    assert commands.index("stage") < commands.index("trigger")
    assert commands.index("wait") < commands.index("stage")

    assert timeline(msgs, cam, rotation, sample_x, shutter) == [
        ("dark", "closed", None, None),
        ("dark", "closed", None, None),
        ("flat", "open", OUT, None),
        ("flat", "open", OUT, None),
        ("primary", "open", 1.5, 0.0),
        ("primary", "open", 1.5, 45.0),
        ("primary", "open", 1.5, 90.0),
    ]
    # every event reads the detector, the angle, the sample position and the shutter
    reads = [m.obj for m in msgs if m.command == "read"]
    assert reads == [cam, rotation, sample_x, shutter] * 7
    # the end: unstage, shutter closed and waited for, then the run closes
    assert [(m.command, m.obj) for m in msgs[-5:]] == [
        ("save", None), ("unstage", cam), ("set", shutter), ("wait", None), ("close_run", None),
    ]
    assert msgs[-3].args == ("closed",)


def test_messages_without_darks_and_flats_never_move_the_sample_out(
    cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    msgs = list(tomo_scan(cam, rotation, sample_x, shutter, out_position=OUT, in_position=0.0,
                          num_projections=2, n_darks=0, n_flats=0))
    frames = timeline(msgs, cam, rotation, sample_x, shutter)
    assert [f[0] for f in frames] == ["primary", "primary"]
    assert all(not (m.command == "set" and m.obj is sample_x and m.args[0] == OUT) for m in msgs)
    assert not any(m.command == "set" and m.obj is cam.exposure for m in msgs)


def _drive_until_first_projection(plan: Iterator[Msg]) -> list[Msg]:
    msgs = [next(plan)]
    while not (msgs[-1].command == "create" and msgs[-1].kwargs["name"] == "primary"):
        msgs.append(plan.send(None))
    return msgs


@pytest.mark.parametrize(
    ("error", "close"),
    [
        # an interruption: the RunEngine closes the run itself, with the operator's reason
        (RequestAbort(), []),
        # a failure: the plan closes the run as failed, the exception text as reason
        (RuntimeError("motor fault"), [("close_run", None)]),
    ],
)
def test_interrupted_plan_still_closes_shutter(
    cam: Any, rotation: Any, sample_x: Any, shutter: Any, error: BaseException,
    close: list[tuple[str, Any]],
) -> None:
    """What the RunEngine does on abort or a failure: throw into the plan, run its cleanup."""
    plan = tomo_scan(cam, rotation, sample_x, shutter, out_position=OUT, in_position=0.0,
                     num_projections=5, n_darks=1, n_flats=1)
    head = _drive_until_first_projection(plan)
    assert any(m.command == "set" and m.obj is shutter and m.args == ("open",) for m in head)
    tail: list[Msg] = []
    with pytest.raises(type(error)):
        msg = plan.throw(error)
        while True:
            tail.append(msg)
            msg = plan.send(None)
    assert [(m.command, m.obj) for m in tail] == [
        ("unstage", cam), ("set", shutter), ("wait", None), *close,
    ]
    assert tail[1].args == ("closed",)
    if close:
        assert tail[-1].kwargs == {"exit_status": "fail", "reason": "motor fault"}


def test_closing_the_generator_early_is_clean(
    cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    """``close()`` cannot yield cleanup messages (Python forbids it); it must not raise."""
    plan = tomo_scan(cam, rotation, sample_x, shutter, out_position=OUT, in_position=0.0,
                     num_projections=5)
    _drive_until_first_projection(plan)
    plan.close()


def test_tomo_scan_run_on_the_beamline(
    RE: RunEngine, docs: Any, cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    RE(tomo_scan(cam, rotation, sample_x, shutter, out_position=OUT, start=0.0, stop=180.0,
                 num_projections=6, n_darks=3, n_flats=2, exposure=0.02, endpoint=False,
                 md={"sample": "shepp-logan", "operator": "test"}))

    assert docs.counts() == {"dark": 3, "flat": 2, "primary": 6}
    assert docs.stop["exit_status"] == "success"
    assert docs.stop["num_events"] == {"dark": 3, "flat": 2, "primary": 6}
    start = docs.start
    assert start["plan_name"] == "tomo_scan"
    assert start["angles"] == [0.0, 30.0, 60.0, 90.0, 120.0, 150.0]
    assert (start["num_projections"], start["n_darks"], start["n_flats"]) == (6, 3, 2)
    assert (start["rotation_axis"], start["detector"], start["detectors"]) == ("rotation", "cam", ["cam"])
    assert (start["exposure"], start["sample_x_in"], start["sample_x_out"]) == (0.02, 0.0, OUT)
    assert start["image_key"] == IMAGE_KEY
    assert start["plan_args"]["num_projections"] == 6 and start["plan_args"]["in_position"] == 0.0
    assert (start["sample"], start["operator"]) == ("shepp-logan", "test")

    descriptors = {d["name"]: d for n, d in docs.docs if n == "descriptor"}
    assert set(descriptors) == {"dark", "flat", "primary"}
    assert descriptors["primary"]["configuration"]["cam"]["data"]["cam_exposure"] == 0.02
    assert descriptors["primary"]["data_keys"]["cam_image"]["shape"] == [12, 12]

    darks, flats, projections = docs.events("dark"), docs.events("flat"), docs.events("primary")
    # darks: shutter closed, so the camera saw nothing
    assert all(e["data"]["shutter"] == "closed" and e["data"]["cam_total"] == 0.0 for e in darks)
    # flats: sample out, shutter open: the unattenuated beam
    open_beam = EmptyBeam().flux(Pose(), cam.frame_shape, cam.pixel_size).sum() * 0.02
    for event in flats:
        assert event["data"]["sample_x"] == pytest.approx(OUT)
        assert event["data"]["shutter"] == "open"
        assert event["data"]["cam_total"] == pytest.approx(open_beam, rel=1e-3)  # beam noise
    # projections: sample back in, one per angle in order, attenuated by the phantom
    assert [e["data"]["rotation"] for e in projections] == pytest.approx(start["angles"])
    for event in projections:
        assert event["data"]["sample_x"] == pytest.approx(0.0)
        assert 0.2 * open_beam < event["data"]["cam_total"] < 0.95 * open_beam
    assert "rotation" in darks[0]["data"] and "rotation" in flats[0]["data"]

    assert shutter.state == "closed"
    assert (cam.stage_count, cam.unstage_count) == (3, 3)  # a file per stream
    assert cam.exposure.get() == 0.02


def test_in_position_defaults_to_where_the_stage_is(
    RE: RunEngine, docs: Any, cam: Any, rotation: Any, sample_x: Any, shutter: Any
) -> None:
    sample_x.set(1.5).wait(timeout=5)
    RE(tomo_scan(cam, rotation, sample_x, shutter, out_position=-OUT, num_projections=2,
                 n_darks=1, n_flats=1))
    assert docs.start["sample_x_in"] == pytest.approx(1.5)
    assert docs.start["sample_x_out"] == -OUT
    assert [e["data"]["sample_x"] for e in docs.events("flat")] == [pytest.approx(-OUT)]
    assert [e["data"]["sample_x"] for e in docs.events("primary")] == [pytest.approx(1.5)] * 2
    assert docs.start["exposure"] is None  # the detector's own setting was used


def test_tomo_scan_with_ophyd_sim_devices(RE: RunEngine, docs: Any, shutter: Any) -> None:
    """Any triggerable/readable area detector and any positioner work, limits or not."""
    theta = SynAxis(name="theta")
    stage_x = SynAxis(name="stage_x")

    def gaussian_image() -> np.ndarray:  # a 4×4 frame whose level peaks at theta = 0
        return np.full((4, 4), np.exp(-(theta.position / 30.0) ** 2 / 2))

    det = SynSignal(gaussian_image, name="det")
    RE(tomo_scan(det, theta, stage_x, shutter, out_position=100.0, start=-90.0, stop=90.0,
                 num_projections=5, n_darks=1, n_flats=1))
    assert docs.counts() == {"dark": 1, "flat": 1, "primary": 5}
    assert docs.start["rotation_axis"] == "theta"
    projections = docs.events("primary")
    assert [e["data"]["theta"] for e in projections] == [-90.0, -45.0, 0.0, 45.0, 90.0]
    assert np.asarray(projections[2]["data"]["det"]) == pytest.approx(np.ones((4, 4)))
    assert docs.events("flat")[0]["data"]["stage_x"] == 100.0
    assert shutter.state == "closed"
