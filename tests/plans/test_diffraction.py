"""diffraction_scan and diffraction_count: messages, and runs against the simulated beamline."""

from __future__ import annotations

from typing import Any

import pytest
from bluesky import RunEngine
from bluesky.utils import FailedStatus, Msg

from devices.samples import EmptyBeam, Pose
from plans import diffraction_count, diffraction_scan, grid_positions


def test_grid_positions_row_by_row_and_snaking() -> None:
    assert grid_positions([0, 1, 2], [5, 6]) == [
        (0.0, 5.0), (1.0, 5.0), (2.0, 5.0), (0.0, 6.0), (1.0, 6.0), (2.0, 6.0),
    ]
    assert grid_positions([0, 1, 2], [5, 6, 7], snake=True) == [
        (0.0, 5.0), (1.0, 5.0), (2.0, 5.0), (2.0, 6.0), (1.0, 6.0), (0.0, 6.0),
        (0.0, 7.0), (1.0, 7.0), (2.0, 7.0),
    ]


def _summary(msgs: list[Msg], names: dict[Any, str]) -> list[str]:
    """Messages as short strings, ``wait``/``read``/``create``/``save`` left out."""
    out = []
    for m in msgs:
        if m.command in ("wait", "read", "create", "save"):
            continue
        if m.command == "trigger" and names.get(m.obj) != "cam":
            continue
        target = names.get(m.obj, "")
        args = ",".join(str(a) for a in m.args)
        out.append(f"{m.command} {target} {args}".strip())
    return out


def test_diffraction_scan_messages(
    cam: Any, sample_x: Any, sample_y: Any, shutter: Any
) -> None:
    msgs = list(diffraction_scan(cam, sample_x, sample_y, [(0.0, 1.0), (2.5, -1.0)], num=2,
                                 exposure=0.05, shutter=shutter))
    names = {cam: "cam", cam.exposure: "cam.exposure", sample_x: "x", sample_y: "y",
             shutter: "shutter"}
    assert _summary(msgs, names) == [
        "open_run",
        "set cam.exposure 0.05",
        "stage cam",
        "set shutter open",
        "checkpoint", "set x 0.0", "set y 1.0", "trigger cam",
        "checkpoint", "trigger cam",
        "checkpoint", "set x 2.5", "set y -1.0", "trigger cam",
        "checkpoint", "trigger cam",
        "unstage cam",
        "set shutter closed",
        "close_run",
    ]
    # both stages move together: one wait for the pair
    first_x = next(i for i, m in enumerate(msgs) if m.command == "set" and m.obj is sample_x)
    assert msgs[first_x + 1].obj is sample_y and msgs[first_x + 2].command == "wait"


def test_diffraction_scan_without_shutter_never_touches_it(
    cam: Any, sample_x: Any, sample_y: Any, shutter: Any
) -> None:
    msgs = list(diffraction_scan(cam, sample_x, sample_y, [(0.0, 0.0)]))
    assert all(m.obj is not shutter for m in msgs)
    assert [m.obj for m in msgs if m.command == "read"] == [cam, sample_x, sample_y]


def test_diffraction_scan_run_on_the_beamline(
    RE: RunEngine, docs: Any, cam: Any, sample_x: Any, sample_y: Any, shutter: Any
) -> None:
    positions = [(0.0, 0.0), (20.0, 0.0), (-20.0, 2.0)]
    RE(diffraction_scan(cam, sample_x, sample_y, positions, num=2, exposure=0.01,
                        shutter=shutter, md={"sample": "phantom"}))
    assert docs.counts() == {"primary": 6}
    assert docs.stop["exit_status"] == "success"
    start = docs.start
    assert start["plan_name"] == "diffraction_scan"
    assert start["positions"] == [[0.0, 0.0], [20.0, 0.0], [-20.0, 2.0]]
    assert (start["num"], start["exposure"], start["num_points"]) == (2, 0.01, 6)
    assert start["motors"] == ["sample_x", "sample_y"] and start["sample"] == "phantom"

    events = docs.events()
    seen = [(e["data"]["sample_x"], e["data"]["sample_y"]) for e in events]
    assert seen == [pytest.approx(p) for p in positions for _ in range(2)]
    assert all(e["data"]["shutter"] == "open" for e in events)
    open_beam = EmptyBeam().flux(Pose(), cam.frame_shape, cam.pixel_size).sum() * 0.01
    totals = [e["data"]["cam_total"] for e in events]
    assert totals[0] < 0.95 * open_beam  # the sample in the beam attenuates
    assert totals[2:] == pytest.approx([open_beam] * 4, rel=1e-3)  # sample moved aside
    assert shutter.state == "closed" and cam.unstage_count == 1


def test_diffraction_count_run(
    RE: RunEngine, docs: Any, cam: Any, shutter: Any
) -> None:
    RE(diffraction_count(cam, 3, exposure=0.03, shutter=shutter, md={"sample": "CeO2"}))
    assert docs.counts() == {"primary": 3}
    start = docs.start
    assert (start["plan_name"], start["num_points"], start["exposure"]) == ("diffraction_count", 3, 0.03)
    assert start["sample"] == "CeO2" and start["detectors"] == ["cam"]
    descriptor = docs.one("descriptor")
    assert descriptor["configuration"]["cam"]["data"]["cam_exposure"] == 0.03
    assert all(e["data"]["cam_total"] > 0 for e in docs.events())
    assert shutter.state == "closed"


def test_diffraction_count_closes_the_shutter_on_failure(
    RE: RunEngine, docs: Any, cam: Any, shutter: Any
) -> None:
    cam.fail_at = 2
    with pytest.raises(FailedStatus) as info:
        RE(diffraction_count(cam, 5, shutter=shutter))
    assert "readout failed" in str(info.value.__cause__)
    assert docs.counts() == {"primary": 1}
    assert docs.stop["exit_status"] == "fail"
    assert shutter.state == "closed"
