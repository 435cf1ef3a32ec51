"""Waiting for a fly acquisition's end after a pause (``devices.detector_fly.wait_for_end``):
an acquisition that lags its triggers but keeps delivering is waited for; one that stalls,
or whose threads ended, is a clear error."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import pytest
from bluesky.utils import RunEngineInterrupted

import devices.detector_fly
from devices.beamline import Beamline
from devices.detector_fly import wait_for_end
from devices.fly import FlyParameters
from fpga.designs.params import ChainParams

from . import fly_steps


def _slow_sensor(det: Any, monkeypatch: pytest.MonkeyPatch, seconds: float,
                 hold: threading.Event | None = None, after: int = 0) -> None:
    """Each frame's counts take ``seconds``; with ``hold``, the frames after the first
    ``after`` wait for it to be set (a stalled pipeline)."""
    real = det.count
    drawn = [0]

    def count(*args: Any, **kwargs: Any) -> Any:
        drawn[0] += 1
        if hold is not None and drawn[0] > after:
            hold.wait()
        time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(det, "count", count)


def test_a_resumed_fly_lagging_its_triggers_records_every_frame(
        RE: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    """The review's case, scaled: a stall limit of 3 s, a sensor of 0.25 s a frame on
    triggers every 20 ms: the last of 30 frames comes ~7 s after the last trigger (the
    old rule, a margin after the last trigger, gave up at 3.6 s). Paused and resumed,
    the collect waits while the pipeline gets on: every frame is in the run. (The
    compiled firmware: the sensor is what lags, not a slow simulation of the board.)"""
    monkeypatch.setattr(devices.detector_fly, "STALL_S", 3.0)
    bl = Beamline.create(tmp_path, params=ChainParams(64, 64, 16), backend="compiled",
                         time_scale=0.001)
    request.addfinalizer(bl.close)
    bl.shutter.set("open").wait(5)
    det = bl.det
    det.time_scale = 1.0
    _slow_sensor(det, monkeypatch, 0.25)
    docs: list[tuple[str, dict[str, Any]]] = []
    frames = 30

    def body() -> Any:
        yield from bps.prepare(det, FlyParameters(frames=frames, exposure=0.02,
                                                  period=0.02), wait=True)
        yield from bps.declare_stream(det, name="primary", collect=True)
        yield from bps.kickoff(det, wait=True)
        yield from bps.complete(det, wait=True)
        yield from bps.collect(det, name="primary")

    threading.Timer(0.5, RE.request_pause, kwargs={"defer": False}).start()
    with pytest.raises(RunEngineInterrupted):
        RE(bpp.run_wrapper(bpp.stage_wrapper(body(), [det])),  # type: ignore[no-untyped-call]
           lambda name, doc: docs.append((name, doc)))
    RE.resume()
    stop = next(doc for name, doc in docs if name == "stop")
    assert (stop["exit_status"], stop["reason"]) == ("success", "")
    assert stop["num_events"]["primary"] == frames


def test_a_stalled_fly_is_given_up_naming_the_stall(
        smeflow_beamline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices.detector_fly, "STALL_S", 1.0)
    det = smeflow_beamline.det
    det.time_scale = 1.0
    hold = threading.Event()
    _slow_sensor(det, monkeypatch, 0.0, hold, after=3)
    try:
        fly_steps.arm(det, FlyParameters(frames=10, exposure=0.01, period=0.01))
        deadline = time.monotonic() + 60
        while len(det.fly.frames) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=r"det: the fly acquisition has made no "
                                               r"progress for 1 s \(it stalled after 3 of "
                                               r"10 frames\)"):
            wait_for_end(det.fly, "det")
        assert time.monotonic() - t0 < 5
    finally:
        hold.set()
        det.unstage()


def test_a_fly_whose_threads_ended_unfinished_is_given_up(smeflow_beamline: Any) -> None:
    """The workers gone without an end or an error (stopped from inside): no 60 s wait."""
    det = smeflow_beamline.det
    det.time_scale = 1.0
    try:
        fly_steps.arm(det, FlyParameters(frames=500, exposure=0.01, period=0.01))
        fly = det.fly
        fly._cancel.set()  # (the workers end as a cancel ends them; done stays open)
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match=r"det: the fly acquisition's threads ended "
                                               r"after \d+ of 500 frames without finishing "
                                               "it"):
            wait_for_end(fly, "det")
        assert time.monotonic() - t0 < 10
    finally:
        det.unstage()
