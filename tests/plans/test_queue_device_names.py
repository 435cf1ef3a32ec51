"""A device name the queue server does not know, in a standard bluesky plan.

bluesky-queueserver types a plan's device parameters (``detectors``, a scan's motors,
``mv``'s devices) as text when it checks an item, and swaps each name for the device when
the plan runs; a name it does not know (a typo: ``["det9"]``) is left as text, and the
plan failed deep inside bluesky with ``'str' object has no attribute 'name'`` (count,
scan, list_scan, log_scan) or ``... 'parent'`` (mv, mvr, rel_scan) — all the queue's
history shows. The startup profile's plans now name the unknown device and the beamline's
devices before anything runs. The queue's plans are called here as the worker calls
them: with the names it could not resolve left as text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from bluesky import RunEngine
from ophyd.sim import det, motor1, motor2

from plans.qserver.device_names import UnknownDeviceError, naming_devices

DEVICES = ("det", "motor1", "motor2")
plans = naming_devices(lambda: DEVICES)


def _typos() -> list[tuple[str, Callable[[], Any], str]]:
    return [
        ("count", lambda: plans["count"](["det9"]), "det9"),
        ("count", lambda: plans["count"]([det, "det9"], 2), "det9"),
        ("scan", lambda: plans["scan"]([det], "sample_q", -1, 1, 3), "sample_q"),
        ("scan", lambda: plans["scan"]([det], motor1, -1, 1, "motor9", 0, 1, 3), "motor9"),
        ("rel_scan", lambda: plans["rel_scan"]([det], "sample_q", -1, 1, 3), "sample_q"),
        ("grid_scan", lambda: plans["grid_scan"]([det], "sample_q", 0, 1, 2, motor2, 0, 1, 2),
         "sample_q"),
        ("rel_grid_scan", lambda: plans["rel_grid_scan"]([det], motor1, 0, 1, 2, "y", 0, 1, 2),
         "y"),
        ("list_scan", lambda: plans["list_scan"]([det], "sample_q", [0, 1]), "sample_q"),
        ("rel_list_scan", lambda: plans["rel_list_scan"]([det], "sample_q", [0, 1]),
         "sample_q"),
        ("list_grid_scan", lambda: plans["list_grid_scan"]([det], "sample_q", [0, 1], motor2,
                                                           [0, 1]), "sample_q"),
        ("rel_list_grid_scan", lambda: plans["rel_list_grid_scan"]([det], motor1, [0, 1],
                                                                   "q", [0, 1]), "q"),
        ("log_scan", lambda: plans["log_scan"]([det], "sample_q", 1, 2, 3), "sample_q"),
        ("rel_log_scan", lambda: plans["rel_log_scan"](["dett"], motor1, 1, 2, 3), "dett"),
        ("mv", lambda: plans["mv"]("sample_q", 1), "sample_q"),
        ("mv", lambda: plans["mv"](motor1, 1, "sample_q", 2), "sample_q"),
        ("mvr", lambda: plans["mvr"]("sample_q", 1), "sample_q"),
    ]


TYPOS = _typos()


@pytest.mark.parametrize(("name", "plan", "typo"), TYPOS,
                         ids=[f"{n}-{t}-{i}" for i, (n, _, t) in enumerate(TYPOS)])
def test_an_unknown_device_name_is_named_before_the_plan_runs(name: str, plan: Any,
                                                              typo: str) -> None:
    documents: list[str] = []
    RE = RunEngine({})
    RE.subscribe(lambda kind, doc: documents.append(kind))
    with pytest.raises(UnknownDeviceError) as caught:
        RE(plan())
    assert str(caught.value) == (
        f"{name}: no device named {typo!r} (the queue server passes a name it does not "
        f"know as text); the devices are det, motor1, motor2")
    assert documents == []  # refused before the run opened


def test_text_where_a_plan_takes_values_is_left_to_the_plan() -> None:
    """``mv``'s values may be text (``mv sample powder``, ``mv shutter open``); the
    plans run as bluesky's own."""
    from ophyd import Signal

    choice = Signal(name="choice", value="a")
    RE = RunEngine({})
    RE(plans["mv"](choice, "b", motor1, 0.5))
    assert choice.get() == "b" and motor1.position == 0.5
    (uid,) = RE(plans["scan"]([det], motor1, -1, 1, motor2, 0, 1, 3))
    assert uid
    assert plans["count"].__name__ == "count" and plans["scan"].__wrapped__.__module__ == \
        "bluesky.plans"


def test_the_startup_profile_offers_them_as_the_queue_server_sees_bluesky_s(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile's ``count``, ``scan``, ``mv``, … are these plans: the queue server
    lists and checks them with bluesky's own parameters, and a typo is named at run."""
    import importlib
    import sys

    from bluesky import plan_stubs as bps
    from bluesky import plans as bp
    from bluesky_queueserver.manager.profile_ops import existing_plans_and_devices_from_nspace

    monkeypatch.setenv("SMEFLOW_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SMEFLOW_QUEUE_BACKEND", "interp")
    monkeypatch.setenv("SMEFLOW_QUEUE_FRAME", "16x64")
    monkeypatch.delitem(sys.modules, "plans.qserver.startup", raising=False)
    startup = importlib.import_module("plans.qserver.startup")
    try:
        theirs = {"count": bp.count, "scan": bp.scan, "list_scan": bp.list_scan,
                  "mv": bps.mv, "det": startup.det}
        ours = {name: getattr(startup, name) for name in theirs}
        listed = [existing_plans_and_devices_from_nspace(nspace=ns)[0] for ns in (ours, theirs)]
        for name in ("count", "scan", "list_scan", "mv"):
            assert listed[0][name]["parameters"] == listed[1][name]["parameters"], name
            assert listed[0][name]["description"] == listed[1][name]["description"], name
        with pytest.raises(UnknownDeviceError, match=r"^count: no device named 'det9' .*; "
                           r"the devices are beam, det, rotation, sample, sample_x, "
                           r"sample_y, shutter$"):
            RunEngine({})(startup.count([startup.det, "det9"]))
    finally:
        startup._beamline.close()
        startup._catalog.close()
        sys.modules.pop("plans.qserver.startup", None)


def _texts() -> list[tuple[str, Callable[[], Any], str]]:
    return [
        ("scan", lambda: plans["scan"]([det], motor1, "1", 2, 3),
         "scan: args[1] (the start of motor1) must be a number, not text (write 1 without "
         "quotes: the queue passes JSON text as it is), got '1'"),
        ("scan", lambda: plans["scan"]([det], motor1, 1, 2, motor2, 0, "2.5", num=3),
         "scan: args[5] (the stop of motor2) must be a number, not text (write 2.5 without "
         "quotes: the queue passes JSON text as it is), got '2.5'"),
        ("rel_scan", lambda: plans["rel_scan"]([det], motor1, "-1", 1, 3),
         "rel_scan: args[1] (the start of motor1) must be a number, not text (write -1 "
         "without quotes: the queue passes JSON text as it is), got '-1'"),
        ("grid_scan", lambda: plans["grid_scan"]([det], motor1, 0, 1, "2", motor2, 0, 1, 2),
         "grid_scan: args[3] (the number of points of motor1) must be a number, not text "
         "(write 2 without quotes: the queue passes JSON text as it is), got '2'"),
        ("list_scan", lambda: plans["list_scan"]([det], motor1, [0, "1"]),
         "list_scan: args[1] (the positions of motor1) must be numbers, not text (write 1 "
         "without quotes: the queue passes JSON text as it is), got [0, '1']"),
    ]


TEXTS = _texts()


@pytest.mark.parametrize(("name", "plan", "message"), TEXTS,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(TEXTS)])
def test_a_number_given_as_text_is_named_with_its_place_before_the_run(
        name: str, plan: Any, message: str) -> None:
    """The queue passes ``"1"`` as text, and its validation takes it (bluesky annotates a
    scan's ``*args`` ``Movable | Any``); bluesky's own scan then fails in numpy with a
    ``DTypePromotionError`` and list_scan at the motor after the run opened. The queue's
    plans say which value it is, before anything runs."""
    from bluesky import plans as bp
    from bluesky_queueserver.manager.profile_ops import (
        existing_plans_and_devices_from_nspace,
        validate_plan,
    )

    from plans.validate import PlanArgumentError

    listed, devices, _, _ = existing_plans_and_devices_from_nspace(
        nspace={"scan": bp.scan, "det": det, "motor1": motor1})
    accepted, _ = validate_plan({"name": "scan", "args": [["det"], "motor1", "1", 2, 3]},
                                allowed_plans=listed, allowed_devices=devices)
    assert accepted  # (the queue cannot refuse it: hence the check at run)
    with pytest.raises(TypeError, match="DType"):
        RunEngine({})(bp.scan([det], motor1, "1", 2, 3))
    documents: list[str] = []
    RE = RunEngine({})
    RE.subscribe(lambda kind, doc: documents.append(kind))
    with pytest.raises(PlanArgumentError) as caught:
        RE(plan())
    assert str(caught.value) == message
    assert documents == []
