"""The demo's live table (plans.demo_table.ScanTable) prints what bluesky's
BestEffortCallback prints with its plots disabled, line for line, for the same documents,
and does not import matplotlib."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Generator
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp
import pytest
from bluesky import RunEngine
from ophyd.sim import SynAxis, SynGauss

from plans.demo_table import ScanTable, hinted_columns

Plan = Generator[Any, Any, Any]


def _devices() -> tuple[SynAxis, SynGauss]:
    motor = SynAxis(name="motor")
    det = SynGauss("det", motor, "motor", center=0, Imax=1, sigma=1)
    return motor, det


def _unhinted(motor: SynAxis, det: SynGauss) -> Plan:
    """A run with motors but no ``dimensions`` hint, and a second stream before the
    primary one (as the demo's tomography has darks and flats)."""
    yield from bps.open_run(md={"motors": ["motor"]})
    yield from bps.trigger_and_read([det], name="dark")
    for x in (-1.0, 0.5):
        yield from bps.mv(motor, x)
        yield from bps.trigger_and_read([motor, det])
    yield from bps.close_run()


PLANS: dict[str, Callable[[SynAxis, SynGauss], Plan]] = {
    "scan": lambda motor, det: bp.scan([det], motor, -1, 1, 4),
    "count": lambda motor, det: bp.count([det], 3),
    "list_scan": lambda motor, det: bp.list_scan([det, motor], motor,
                                                 [0.0, 2.0]),  # type: ignore[arg-type]
    "unhinted": _unhinted,
    "baseline": lambda motor, det: bpp.baseline_wrapper(  # type: ignore[no-untyped-call]
        bp.scan([det], motor, -1, 1, 3), [motor, det]),
}


def _documents(plan: str) -> list[tuple[str, Any]]:
    motor, det = _devices()
    docs: list[tuple[str, Any]] = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append((name, doc)))  # type: ignore[no-untyped-call]
    RE(PLANS[plan](motor, det))
    RE(bp.count([det], 2))  # a second run through the same callback
    return docs


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_table_is_best_effort_callbacks(plan: str, capsys: pytest.CaptureFixture[str]) -> None:
    from bluesky.callbacks.best_effort import BestEffortCallback

    docs = _documents(plan)
    capsys.readouterr()
    bec = BestEffortCallback()  # type: ignore[no-untyped-call]
    bec.disable_plots()  # type: ignore[no-untyped-call]
    for name, doc in docs:
        bec(name, doc)
    expected = capsys.readouterr().out
    table = ScanTable()
    for name, doc in docs:
        table(name, doc)
    got = capsys.readouterr().out
    assert "Transient Scan ID" in expected and "|" in expected  # (it printed a table)
    assert got.splitlines() == expected.splitlines()


def test_columns_are_the_hinted_fields_else_all() -> None:
    descriptor: Any = {"object_keys": {"det": ["det", "det_stats"], "motor": ["motor",
                                                                              "motor_setpoint"]},
                       "hints": {"det": {"fields": ["det"]}}}
    assert hinted_columns(descriptor) == ["det", "motor", "motor_setpoint"]
    descriptor["hints"]["motor"] = {"fields": []}  # an object may hint at nothing
    assert hinted_columns(descriptor) == ["det"]


def test_table_does_not_import_matplotlib() -> None:
    probe = ("import sys; from plans.demo_table import ScanTable; ScanTable(); "
             "import bluesky.utils; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["False"], out
