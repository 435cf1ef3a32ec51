"""Which shutter and beam a frame sees: those of its trigger's time, also when the frame is
computed later (a fly acquisition's workers run behind its triggers whenever the
simulation is slower than the trigger rate; review R7: frames triggered with the shutter
open were recorded dark, exit status "success")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import numpy as np
import pytest

from devices.beamline import Beamline
from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer
from fpga.designs.params import ChainParams

from . import fly_steps

FRAMES = 12
LATE = 5
"""The frame before whose computation the shutter closes or the beam goes."""


SMALL = ChainParams(32, 32, 16)
"""The interpreter's firmware here (and ``smeflow_beamline``'s, see the fixture below):
32×32 pixels are a quarter of 64×64's ticks per frame, and a frame still takes the
interpreter far longer than a trigger period, so the workers still run behind the
triggers, what these tests are about."""


@pytest.fixture
def smeflow_chain_params() -> ChainParams:
    return SMALL


@pytest.fixture(params=[ChainParams(64, 64, 16)])
def beamline(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Beamline]:
    """An interpreter beamline, 64×64 unless a test parametrizes ``beamline``."""
    bl = Beamline.create(tmp_path, params=request.param, backend="interp", time_scale=0.001)
    bl.shutter.set("open").wait(5)
    bl.use_phantom()
    yield bl
    bl.det.unstage()
    bl.close()


small = pytest.mark.parametrize("beamline", [SMALL], indirect=True, ids=["32x32"])
"""The fly tests' beamline: ``SMALL``."""


def fly_with(beamline: Beamline, monkeypatch: pytest.MonkeyPatch,
             before_late_frame: Callable[[], None]) -> tuple[np.ndarray, list[float], float]:
    """Fly ``FRAMES`` frames triggered at once (``time_scale=0``: every trigger is in the
    past before the scene is sampled for the first frame) and run ``before_late_frame``
    just before the scene is sampled for frame ``LATE``. The frames' ``roi_sum``s, the
    times the scene was asked for, and the wall time at which ``before_late_frame`` had
    run."""
    det = beamline.det
    asked: list[float] = []
    done: list[float] = []
    flux_at = det.flux_at

    def flux_after_the_change(t: float | None, into: Any = None, state: Any = None) -> Any:
        assert t is not None
        if len(asked) == LATE:
            before_late_frame()
            done.append(time.time())
        asked.append(t)
        return flux_at(t, into, state)

    monkeypatch.setattr(det, "flux_at", flux_after_the_change)
    det.time_scale = 0.0
    fly_steps.fly(det, FlyParameters(frames=FRAMES, exposure=0.01))
    _, page = fly_steps.collect(det)
    return np.asarray(page["data"]["det_roi_sum"]), asked, done[0]


@small
def test_fly_frames_triggered_before_the_shutter_closed_have_counts(
        beamline: Beamline, monkeypatch: pytest.MonkeyPatch) -> None:
    roi, asked, closed_at = fly_with(beamline, monkeypatch,
                                     lambda: beamline.shutter.set("closed").wait(5))
    assert beamline.shutter.state == "closed"
    assert len(roi) == len(asked) == FRAMES
    assert max(asked) < closed_at  # every frame was triggered with the shutter open
    dark = np.flatnonzero(roi == 0)
    assert dark.size == 0, f"frames {dark.tolist()} recorded dark"
    assert roi[LATE:].mean() == pytest.approx(roi[:LATE].mean(), rel=0.1)


@small
def test_fly_frames_triggered_before_a_beam_loss_have_counts(
        beamline: Beamline, monkeypatch: pytest.MonkeyPatch) -> None:
    roi, asked, dropped_at = fly_with(beamline, monkeypatch, beamline.beam.drop_beam)
    assert not beamline.beam.beam_up
    assert max(asked) < dropped_at
    assert np.all(roi > 0), f"frames {np.flatnonzero(roi == 0).tolist()} recorded dark"
    assert roi[LATE:].mean() == pytest.approx(roi[:LATE].mean(), rel=0.1)


def test_a_frame_triggered_while_the_beam_was_down_is_dark_when_computed_later(
        beamline: Beamline) -> None:
    """The other way round: the beam came back before the frame was computed."""
    det = beamline.det
    beamline.beam.drop_beam()
    during = time.time()
    beamline.beam.restore_beam()
    beamline.shutter.set("closed").wait(5)
    closed = int(det.expose(None, 0.01).sum())  # (hot pixels count without beam)
    beamline.shutter.set("open").wait(5)
    dark = int(det.expose(during, 0.01).sum())
    lit = int(det.expose(time.time(), 0.01).sum())
    assert dark == pytest.approx(closed, rel=0.05) and lit > 10 * dark


def test_bp_fly_closing_the_shutter_after_the_last_trigger_leaves_every_frame_lit(
        smeflow_beamline: Any) -> None:
    """The reviewer's scenario (bluesky's ``bp.fly`` in real time): 80 frames at 100 Hz
    with the shutter open, closed 0.5 s after the last trigger, while the interpreter's
    frames are still being computed (its workers draw up to 32 frames ahead of the
    firmware, which is slower than the triggers)."""
    bl = smeflow_beamline
    bl.det.time_scale = 1.0
    frames, period = 80, 0.01
    closed_at: list[float] = []

    def close_after_the_last_trigger() -> None:
        give_up = time.time() + 120
        while (fly := bl.det.fly) is None or fly.started is None:  # (until the kickoff)
            if time.time() > give_up:
                return
            time.sleep(0.002)
        time.sleep(max(0.0, fly.started + frames * period + 0.5 - time.time()))
        bl.shutter.set("closed").wait(5)
        closed_at.append(time.time())

    closer = threading.Thread(target=close_after_the_last_trigger)
    closer.start()
    (uid,) = bl.RE(bp.fly([DetectorFlyer(bl.det, FlyParameters(frames=frames,
                                                               exposure=period))]))
    closer.join()
    run = bl.catalog.run(uid)
    assert run.metadata["stop"]["exit_status"] == "success"
    readings = run["primary"].read()
    triggers = np.asarray(readings["det_trigger_time"])
    counts = np.asarray(readings["det_roi_sum"])
    assert len(counts) == frames
    assert triggers[-1] + period < closed_at[0]
    assert np.all(counts > 0), f"frames {np.flatnonzero(counts == 0).tolist()} recorded dark"
