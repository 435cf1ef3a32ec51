"""Pauses and beam-loss suspensions that land in the middle of a firmware detector's
exposure, and a beam loss while the RunEngine's loop is busy: the run resumes, every
event has its own frame, and no frame is taken without beam."""

from __future__ import annotations

import threading
import time
from typing import Any

import h5py
import numpy as np
import pytest
from bluesky import plans as bp
from bluesky.suspenders import SuspendBoolLow
from bluesky.utils import RunEngineInterrupted

EXPOSURE = 0.3


@pytest.fixture
def bl(smeflow_beamline: Any) -> Any:
    """The ready beamline with exposures in real time (the interrupts need the time)."""
    smeflow_beamline.det.time_scale = 1.0
    smeflow_beamline.det.exposure.put(EXPOSURE)
    return smeflow_beamline


def _record(RE: Any) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    RE.subscribe(lambda name, doc: seen.append((name, doc)))
    return seen


def _at_event(RE: Any, seq_num: int, action: Any) -> None:
    """Call ``action`` (on the loop thread) when event ``seq_num`` is emitted."""
    def callback(name: str, doc: dict[str, Any]) -> None:
        if name == "event" and doc["seq_num"] == seq_num:
            action()
    RE.subscribe(callback)


def _check_run(bl: Any, seen: list[tuple[str, dict[str, Any]]], n: int) -> list[int]:
    """The run ended well with ``n`` events whose frames are the file's ``n`` frames."""
    events = [doc for name, doc in seen if name == "event"]
    stop = next(doc for name, doc in seen if name == "stop")
    assert stop["exit_status"] == "success", stop
    assert [e["seq_num"] for e in events] == list(range(1, n + 1))
    images = bl.catalog.run(stop["run_start"])["primary"]["det_image"]
    assert images.shape == (n, 64, 64)
    from_catalog = images.read()
    (resource,) = [doc for name, doc in seen if name == "stream_resource"]
    with h5py.File(resource["uri"].removeprefix("file://localhost"), "r") as f:
        in_file = np.asarray(f[resource["parameters"]["dataset"]])
    assert in_file.shape[0] == n  # no orphan frame left in the file
    np.testing.assert_array_equal(in_file, from_catalog)
    return [int(e["data"]["det_roi_sum"]) for e in events]


def test_a_pause_during_an_exposure_retakes_that_frame(bl: Any) -> None:
    seen = _record(bl.RE)
    _at_event(bl.RE, 1, lambda: threading.Timer(EXPOSURE / 3, bl.RE.request_pause).start())
    with pytest.raises(RunEngineInterrupted):
        bl.RE(bp.count([bl.det], 3))
    assert bl.RE.state == "paused"
    bl.RE.resume()
    _check_run(bl, seen, 3)


def test_a_pause_during_an_exposure_then_abort_leaves_no_orphan_frame(bl: Any) -> None:
    """The frame exposed when the pause came is never read into an event: after the
    abort the file holds exactly the frames the events announce, and the catalog too."""
    seen = _record(bl.RE)
    _at_event(bl.RE, 1, lambda: threading.Timer(EXPOSURE / 3, bl.RE.request_pause).start())
    with pytest.raises(RunEngineInterrupted):
        bl.RE(bp.count([bl.det], 3))
    assert bl.RE.state == "paused"
    bl.RE.abort("sample moved")
    stop = next(doc for name, doc in seen if name == "stop")
    assert stop["exit_status"] == "abort"
    events = [doc for name, doc in seen if name == "event"]
    assert len(events) == 1
    (resource,) = [doc for name, doc in seen if name == "stream_resource"]
    (datum,) = [doc for name, doc in seen if name == "stream_datum"]
    assert datum["indices"] == {"start": 0, "stop": 1}
    with h5py.File(resource["uri"].removeprefix("file://localhost"), "r") as f:
        in_file = np.asarray(f[resource["parameters"]["dataset"]])
    assert in_file.shape[0] == len(events)  # the paused exposure never reached the file
    assert int(in_file.sum()) == events[0]["data"]["det_roi_sum"]
    images = bl.catalog.run(stop["run_start"])["primary"]["det_image"].read()
    np.testing.assert_array_equal(images, in_file)


def test_a_beam_loss_during_an_exposure_suspends_and_retakes_that_frame(bl: Any) -> None:
    bl.RE.install_suspender(SuspendBoolLow(bl.beam.available))
    states: list[str] = []
    bl.RE.state_hook = lambda new, old: states.append(new)
    seen = _record(bl.RE)
    _at_event(bl.RE, 1, lambda: threading.Timer(
        EXPOSURE / 3, bl.beam.drop_beam, kwargs={"duration": 0.4}).start())
    bl.RE(bp.count([bl.det], 3))
    assert "suspending" in states
    sums = _check_run(bl, seen, 3)
    assert min(sums) > 0.8 * max(sums)  # every frame with beam


def test_a_beam_loss_while_the_runengine_is_busy_still_suspends(bl: Any) -> None:
    """The beam drops while a slow callback holds the RunEngine's loop (as a catalog write
    can): bluesky's suspender gives up after 0.1 s, and the monitor's next update of the
    beam-available flag trips it again."""
    bl.RE.install_suspender(SuspendBoolLow(bl.beam.available))
    states: list[str] = []
    bl.RE.state_hook = lambda new, old: states.append(new)
    seen = _record(bl.RE)

    def drop_while_busy() -> None:  # runs on the loop; the beam drops in another thread
        threading.Thread(target=bl.beam.drop_beam, kwargs={"duration": 0.6}).start()
        time.sleep(0.3)  # the loop is busy: the suspender cannot make its event

    _at_event(bl.RE, 1, drop_while_busy)
    bl.RE(bp.count([bl.det], 3))
    assert "suspending" in states
    sums = _check_run(bl, seen, 3)
    assert min(sums) > 0.8 * max(sums)  # no frame without beam
