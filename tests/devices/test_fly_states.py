"""The scene's state at each fly trigger is taken when the trigger passes, whatever the
pipeline's lag (``devices.fly_states``; review D16: a fly lagging its triggers by more
than the beam monitor's history failed with StateHistoryError)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import devices.beam
import devices.fly_states as fly_states
from devices.beamline import Beamline
from devices.fly import FlyParameters
from devices.fly_states import OnTimeStates
from devices.samples import Pose, SceneState
from fpga.designs.params import ChainParams

from . import fly_steps


class Recorder:
    """A detector's scene that answers with the time it was asked about."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def scene_state(self, t: float) -> SceneState:
        self.asked.append(t)
        return SceneState(Pose(angle=t), 1.0)

    def angle_at(self, t: float) -> float:
        return t


def test_states_are_taken_once_their_triggers_pass_and_handed_over_in_order() -> None:
    rec = Recorder()
    times = [(float(i), float(i)) for i in range(10)]
    states = OnTimeStates(rec, times)  # type: ignore[arg-type]
    states.catch_up(now=3.5)
    assert rec.asked == [0.0, 1.0, 2.0, 3.0]  # (not 4: it has not passed)
    assert [states.take(i)[1] for i in range(2)] == [0.0, 1.0]
    states.catch_up(now=5.0)
    assert rec.asked == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert [states.take(i)[0].pose.angle for i in range(2, 7)] == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert rec.asked[-1] == 6.0  # (trigger 6, asked for directly: taken then)
    with pytest.raises(RuntimeError, match="trigger 8's state asked for out of order"):
        states.take(8)


def test_a_thread_far_behind_takes_at_most_catch_up_states_per_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fly_states, "CATCH_UP", 4)
    rec = Recorder()
    states = OnTimeStates(rec, [(float(i // 3), 0.0) for i in range(30)])  # type: ignore[arg-type]
    states.catch_up(now=100.0)
    assert len(rec.asked) == 2  # 4 triggers, 3 at one moment: asked once for those
    states.catch_up(now=100.0)
    assert rec.asked == [0.0, 1.0, 2.0]


@pytest.fixture
def lagging(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Beamline]:
    """The review's case scaled down: the beam monitor keeps 8 changes (0.8-1.6 s of its
    0.1 s updates; 4096 = 6.8 min at full scale) and the sensor takes 0.2 s a frame on
    10 ms triggers (two workers: 0.1 s a frame), so the pipeline falls ~5 s behind in 60
    frames."""
    monkeypatch.setattr(devices.beam, "HISTORY", 8)
    bl = Beamline.create(tmp_path, params=ChainParams(64, 64, 16), backend="compiled",
                         time_scale=0.001)
    bl.shutter.set("open").wait(5)
    det = bl.det
    det.time_scale = 1.0
    # The first fly of a process pays one-time costs before its workers take a turn
    # (numba's first dispatch builds its typing context, importing every installed numba
    # extension: ~0.7 s here); the review's case is a pipeline running, so warm it first.
    fly_steps.fly(det, FlyParameters(frames=2, exposure=0.01, period=0.01))
    det.unstage()
    count = det.count

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.2)
        return count(*args, **kwargs)

    monkeypatch.setattr(det, "count", slow)
    yield bl
    bl.det.unstage()
    bl.close()


def test_a_fly_lagging_longer_than_the_beam_history_completes_with_on_time_states(
        lagging: Beamline, monkeypatch: pytest.MonkeyPatch) -> None:
    det = lagging.det
    asked: list[tuple[float, float]] = []  # (trigger time, when its state was taken)
    scene_state = det.scene_state

    def recorded(t: float) -> Any:
        asked.append((t, time.time()))
        return scene_state(t)

    monkeypatch.setattr(det, "scene_state", recorded)
    fly_steps.fly(det, FlyParameters(frames=60, exposure=0.01, period=0.01), 120)
    assert det.fly is not None and len(det.fly.frames) == 60
    assert det.fly.max_lag > 3.0  # (the frames were far behind their triggers...)
    assert [t for t, _ in asked] == [wall for wall, _ in det.fly.times]
    assert max(taken - t for t, taken in asked) < 0.5  # (...their states were not)
    assert np.all(np.asarray([f.roi_sum for f in det.fly.frames]) > 0)
