"""The detector's fly-scan interface (prepare / kickoff / complete / collect) and the
motion history that position capture relies on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataflow.hdf5 import open_frames, read_counters
from devices.beamline import Beamline
from devices.fly import FlyParameters
from devices.rotation import ContinuousRotation, RotationStage
from fpga.designs.params import ChainParams

from . import fly_steps

P = ChainParams(64, 64, 16)
SMALL = ChainParams(32, 32, 16)
"""The interpreter beamline's firmware: a quarter of P's pixels is a quarter of the
interpreter's ticks per frame, most of a fly's time here (the compiled beamlines keep P,
whose simulation the compiled cache holds)."""


@pytest.fixture
def beamline(tmp_path: Path) -> Iterator[Beamline]:
    bl = Beamline.create(tmp_path, params=SMALL, backend="interp", time_scale=0.001)
    bl.shutter.set("open").wait(5)
    bl.use_phantom()
    yield bl
    bl.det.unstage()
    bl.close()


@pytest.mark.parametrize("kwargs, match", [
    ({"frames": 0}, "frames must be an int >= 1"),
    ({"frames": True}, "frames must be an int >= 1"),
    ({"frames": 2, "exposure": True}, "exposure must be a number > 0"),
    ({"frames": 2, "exposure": "0.1"}, "exposure must be a number > 0"),
    ({"frames": 2.0}, "frames must be an int >= 1"),
    ({"frames": 2, "exposure": -1.0}, "exposure must be a number > 0"),
    ({"frames": 2, "exposure": 0.1, "period": 0.05}, "shorter than the exposure"),
    ({"frames": 2, "period": float("nan")}, "period must be a number > 0"),
])
def test_fly_parameters_are_checked(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FlyParameters(**kwargs)  # type: ignore[arg-type]


def test_protocol_order_is_enforced(beamline: Beamline) -> None:
    det = beamline.det
    with pytest.raises(RuntimeError, match="prepare\\(\\) before stage\\(\\)"):
        det.prepare(FlyParameters(frames=2))
    det.stage()
    with pytest.raises(RuntimeError, match="kickoff\\(\\) needs a prepare"):
        det.kickoff()
    with pytest.raises(RuntimeError, match="complete\\(\\) before kickoff"):
        det.complete()
    with pytest.raises(TypeError, match="expected FlyParameters"):
        det.prepare({"frames": 2})  # type: ignore[arg-type]


def test_internal_triggers_follow_the_period(beamline: Beamline) -> None:
    """Internal triggers every period × time_scale; no frame before its trigger."""
    det = beamline.det
    det.time_scale = 0.5
    fly_steps.fly(det, FlyParameters(frames=5, exposure=0.02, period=0.1), 30)
    fly = det.fly
    assert fly is not None and fly.started is not None
    triggers = np.array([f.trigger_time for f in fly.frames])
    np.testing.assert_allclose(np.diff(triggers), 0.05, atol=1e-6)
    assert all(f.done_time >= f.trigger_time for f in fly.frames)
    assert fly.max_lag == max(f.done_time - f.trigger_time for f in fly.frames)
    docs, page = fly_steps.collect(det)
    assert [name for name, _ in docs] == ["stream_resource", "stream_datum"]
    assert docs[1][1]["indices"] == {"start": 0, "stop": 5}
    assert page["data"]["det_frame_number"] == [0, 1, 2, 3, 4]
    assert list(det.collect_pages()) == []  # each frame is collected once
    # time stamps: the detector clock, kickoff + k × period in detector seconds
    stamps = page["timestamps"]["det_roi_sum"]
    np.testing.assert_allclose(np.array(stamps) - fly.started, [0, 0.1, 0.2, 0.3, 0.4],
                               atol=1e-6)
    assert all(page["timestamps"][key] == stamps for key in page["data"])
    assert page["data"]["det_trigger_time"] == stamps


def test_frames_of_a_fast_simulation_keep_their_own_increasing_times(beamline: Beamline
                                                                     ) -> None:
    """time_scale=0 triggers at once in wall time, but each frame keeps its own time on
    the detector's clock, from its firmware frame number."""
    det = beamline.det
    det.time_scale = 0.0
    fly_steps.fly(det, FlyParameters(frames=12, exposure=0.05), 30)
    _, page = fly_steps.collect(det)
    stamps = np.array(page["timestamps"]["det_frame_number"])
    assert len(set(stamps)) == 12 and np.all(np.diff(stamps) > 0)
    np.testing.assert_allclose(np.diff(stamps), 0.05, atol=1e-6)
    first = page["data"]["det_frame_number"][0]
    assert det.fly is not None
    assert [f.index for f in det.fly.frames] == [n - first for n in
                                                 page["data"]["det_frame_number"]]


def test_unstage_stops_a_running_acquisition_and_keeps_only_announced_frames(
        beamline: Beamline) -> None:
    """Frames announced by collect_asset_docs stay in the file; those written after the
    last announcement (no event will ever reference them: the plan was aborted) go."""
    det = beamline.det
    det.time_scale = 1.0  # 100 frames/s of triggers: the unstage comes first
    fly_steps.arm(det, FlyParameters(frames=1000, exposure=0.01, period=0.01))
    docs: list[tuple[str, dict[str, Any]]] = []
    deadline = time.monotonic() + 30
    while not docs and time.monotonic() < deadline:
        time.sleep(0.1)
        docs = list(det.collect_asset_docs())
    announced = docs[-1][1]["indices"]["stop"]
    while len(det.fly.frames) <= announced and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.05)  # at least one frame written after the announcement
    status = det.complete()
    assert det.files.fly is not None
    path = det.files.fly.path
    det.unstage()
    # a stop asked for is not the acquisition's failure (bluesky would record that
    # instead of the operator's abort); the acquisition says it stopped early
    assert status.done and status.success and det.fly.stopped_early  # type: ignore[union-attr]
    assert len(det.fly.frames) > announced > 0  # type: ignore[union-attr]
    with open_frames(path) as reader:
        assert len(reader) == announced
    assert read_counters(path)["good"] >= announced
    # the reused buffers (link streams, batch arrays) went with the acquisition's end
    fly = det.fly
    assert fly is not None and fly._spare_links.empty() and fly._spare_slots.empty()


def test_a_step_trigger_is_refused_while_a_fly_acquisition_runs(beamline: Beamline) -> None:
    """A trigger() would drive the fly's firmware and readout from another thread (its
    frame numbered among the fly's, decoded into the fly's batch arrays): refused, and
    the fly scan completes whole; once it is done, triggering works again."""
    det = beamline.det
    det.time_scale = 1.0  # (triggers over about a second)
    fly_steps.arm(det, FlyParameters(frames=20, exposure=0.01, period=0.05))
    with pytest.raises(RuntimeError, match="trigger\\(\\) while a fly acquisition is still "
                                           "running"):
        det.trigger()
    with pytest.raises(RuntimeError, match="prepare\\(\\) while a fly acquisition"):
        det.prepare(FlyParameters(frames=2))
    det.complete().wait(60)
    assert det.fly is not None
    assert [f.index for f in det.fly.frames] == list(range(20))
    det.trigger().wait(30)


def test_a_step_frame_triggered_while_armed_is_not_the_fly_scans_first_collect(
        beamline: Beamline) -> None:
    """prepare → trigger → kickoff: the step frame no event read is dropped at kickoff
    (as a re-trigger drops it), so the fly's first collect announces the fly's frames,
    all of them in the fly's file, and its readings are theirs."""
    det = beamline.det
    det.stage()
    det.prepare(FlyParameters(frames=3, exposure=0.01)).wait(5)
    det.trigger().wait(30)  # armed, not started
    det.kickoff().wait(5)
    det.complete().wait(60)
    docs = list(det.collect_asset_docs())
    resources = [d for name, d in docs if name == "stream_resource"]
    datums = [d for name, d in docs if name == "stream_datum"]
    assert resources and all("_fly" in r["uri"] for r in resources)
    assert sum(d["indices"]["stop"] - d["indices"]["start"] for d in datums) == 3
    pages = list(det.collect_pages())
    numbers = [n for p in pages for n in p["data"][det.frame_number.name]]
    assert len(numbers) == 3 and np.all(np.diff(numbers) == 1)


@pytest.mark.parametrize("value", [np.float32(0.01), np.int64(1), np.float64(0.5), 2])
def test_numpy_and_python_numbers_are_taken_as_exposure_and_period(value: object) -> None:
    """Exposures read from numpy arrays or HDF5 attributes are numbers too; they are
    kept as Python floats."""
    for params in (FlyParameters(frames=2, exposure=value),  # type: ignore[arg-type]
                   FlyParameters(frames=2, exposure=0.001, period=value)):  # type: ignore[arg-type]
        given = params.exposure if params.period is None else params.period
        assert type(given) is float and given == float(value)  # type: ignore[arg-type]


def test_a_float32_exposure_equal_to_its_period_is_taken() -> None:
    """np.float32(0.1) is 0.10000000149 s: a period of 0.1 s is that exposure, not one
    shorter than it (a period shorter by more than rounding still is)."""
    params = FlyParameters(frames=3, exposure=np.float32(0.1), period=0.1)  # type: ignore[arg-type]
    assert params.period == 0.1
    with pytest.raises(ValueError, match="shorter than the exposure"):
        FlyParameters(frames=3, exposure=0.1, period=0.0999)


def test_a_frame_count_beyond_the_frame_counter_is_refused() -> None:
    """More frames than the firmware's 32-bit frame counter numbers apart cannot be told
    apart: refused when the parameters are made (a typo such as 10**12 must not reach
    kickoff, which would build a trigger per frame)."""
    with pytest.raises(ValueError, match="frames must be an int >= 1 and <= 4294967296"):
        FlyParameters(frames=10**12, exposure=0.01)


def test_kickoff_of_a_long_acquisition_does_not_build_every_trigger(beamline: Beamline) -> None:
    """The trigger times are computed as the acquisition reaches them: a billion frames
    kick off at once, and unstage ends the acquisition."""
    det = beamline.det
    fly_steps.arm(det, FlyParameters(frames=10**9, exposure=0.01))
    assert det.fly is not None and det.fly.started
    det.unstage()
    assert det.fly.stopped_early


def test_position_capture_reads_the_angle_at_each_trigger(beamline: Beamline) -> None:
    det, rot = beamline.det, beamline.rotation
    trigger = fly_steps.fly_on_rotation(det, rot, ContinuousRotation(10.0, 100.0, 90.0),
                                        10.0, 100.0, frames=6)
    assert det.fly is not None
    angles = [f.angle for f in det.fly.frames]
    np.testing.assert_allclose(angles, trigger.angles(6), atol=0.05)
    assert trigger.angles(6) == pytest.approx([17.5, 32.5, 47.5, 62.5, 77.5, 92.5])


def test_position_at_remembers_finished_moves() -> None:
    """After a move ends, its positions in the past stay what they were."""
    stage = RotationStage(name="rot", time_scale=0.01)
    t0 = time.time()
    stage.set(90.0).wait(5)
    t1 = time.time()
    stage.set(0.0).wait(5)
    mid = stage.position_at(t0 + 0.5 * (t1 - t0))
    assert 0.0 < mid < 90.0
    assert stage.position_at(t1) == pytest.approx(90.0)
    assert stage.position == pytest.approx(0.0)
    stage.destroy()


def test_frames_drawn_into_reused_link_buffers_are_the_firmware_of_their_counts(
        beamline: Beamline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sensor draws each frame straight into a one-frame link stream's words, and the
    streams the firmware is done with are filled again: every frame in the file is still
    the firmware's output for that frame's own counts, in order, whichever buffer carried
    it; fewer buffers than frames are made; ``last_counts`` is a copy the reuse leaves
    alone, and after every batch it is that batch's last frame (its link is not drawn
    into again before the copy is made); the batches after the first are decoded into
    batch arrays the writer hands back, and the file still has every frame's image."""
    import devices.fly as fly_module
    from devices.firmware import Firmware

    det = beamline.det
    det.time_scale = 0.0  # all triggers at once: the buffer is full, links come back
    drawn: dict[int, np.ndarray] = {}  # each frame's counts by its noise number
    count = det.count

    def recording(flux: Any, factor: float, exposure: float, out: Any = None,
                  frame: int | None = None) -> Any:
        if len(drawn) % 16 >= 8:  # at times slower than the firmware: it waits for frames
            time.sleep(0.01)
        counts = count(flux, factor, exposure, out=out, frame=frame)
        assert out is None or counts is out
        assert frame is not None
        drawn[frame] = np.array(counts, dtype=np.uint32)
        return counts

    def sent() -> list[np.ndarray]:  # the counts in trigger order
        return [drawn[k] for k in sorted(drawn)]

    made: list[int] = []  # the streams frame_link made
    used: list[int] = []  # the stream each frame was drawn into
    import devices.fly_workers as workers_module

    frame_link = workers_module.frame_link
    spare_link = fly_module.FlyAcquisition._spare_link

    def tracking(params: ChainParams, reuse: Any = None) -> Any:
        got = frame_link(params, reuse=reuse)
        assert got is not None
        made.append(id(got[0]))
        return got

    def using(self: Any) -> Any:
        got = spare_link(self)
        used.append(id(got[0]))
        return got

    readbacks: list[bool] = []
    batch_arrays: list[Any] = []  # what each batch's images are a view of (None: stacked)
    store = det.store_fly_frames

    def checking(images: Any, frames: Any, last: Any, counts: Any) -> None:
        time.sleep(0.03)  # the workers draw meanwhile, into whatever they are given
        store(images, frames, last, counts)  # the readback is the batch's last frame's
        readbacks.append(np.array_equal(det.last_counts, sent()[frames[-1].index]))
        batch_arrays.append(images.base)

    monkeypatch.setattr(det, "count", recording)
    monkeypatch.setattr(det, "store_fly_frames", checking)
    monkeypatch.setattr(workers_module, "frame_link", tracking)
    monkeypatch.setattr(fly_module.FlyAcquisition, "_spare_link", using)
    n = fly_module.QUEUE_FRAMES + 3 * fly_module.BATCH
    fly_steps.fly(det, FlyParameters(frames=n, exposure=0.01), 120)
    list(det.collect_asset_docs())  # (announced: the file keeps them)
    assert det.files.fly is not None
    path = det.files.fly.path
    last = det.last_counts
    det.unstage()
    assert len(drawn) == len(used) == n and set(used) == set(made) and len(set(made)) < n
    assert readbacks and all(readbacks), readbacks
    # the readout decoded the batches after the first into batch arrays, used again once
    # written (the file's frames are checked below)
    decoded = [a for a in batch_arrays[1:] if a is not None]
    assert batch_arrays[0] is None and len(decoded) == len(batch_arrays) - 1
    assert len({id(a) for a in decoded}) < len(decoded)
    reference = Firmware(SMALL, "interp")
    reference.configure(det.chain_config(), det.tables)
    want = [frame.image for frame in reference.acquire(sent())]
    with open_frames(path) as reader:
        got = list(reader.read())
    assert len(got) == n
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {i}")
    assert last is not None and last.dtype == np.uint32
    np.testing.assert_array_equal(last, sent()[-1])


def test_the_workers_draw_frames_side_by_side(beamline: Beamline,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The frames are drawn by WORKERS threads at once (never more), each from the image
    sampled for it into its own buffer (not drawn into again before its counts are
    done), and the file has every frame, in trigger order."""
    import devices.fly as fly_module

    det = beamline.det
    det.time_scale = 0.0  # (all triggers at once: the workers set the pace)
    flux_at, count = det.flux_at, det.count
    mine = threading.local()  # the image this thread sampled last
    lock = threading.Lock()
    drawing, most, frames = [0], [0], []

    def sampling(t: float, into: Any = None, state: Any = None) -> Any:
        image, factor = flux_at(t, into, state)
        mine.image = image.copy()
        return image, factor

    def counting(flux: Any, factor: float, exposure: float, out: Any = None,
                 frame: int | None = None) -> Any:
        np.testing.assert_array_equal(flux, mine.image)
        with lock:
            drawing[0] += 1
            most[0] = max(most[0], drawing[0])
        time.sleep(0.05)
        np.testing.assert_array_equal(flux, mine.image)  # (its buffer left alone)
        with lock:
            drawing[0] -= 1
            frames.append(frame)
        return count(flux, factor, exposure, out=out, frame=frame)

    monkeypatch.setattr(det, "flux_at", sampling)
    monkeypatch.setattr(det, "count", counting)
    try:
        fly_steps.fly(det, FlyParameters(frames=8, exposure=0.001))
        fly = det.fly
        assert fly is not None
        assert [f.index for f in fly.frames] == list(range(8))
        assert [f.frame_number for f in fly.frames] == \
            list(range(fly.frames[0].frame_number, fly.frames[0].frame_number + 8))
    finally:
        det.unstage()
    assert most[0] == fly_module.WORKERS
    assert sorted(frames) == list(range(min(frames), min(frames) + 8))  # (noise numbers)


def test_fly_frames_are_those_drawn_one_after_another(tmp_path: Path) -> None:
    """Frames drawn on several threads are the frames of the same exposures drawn one
    after another on one (each trigger's counts have the noise of its place in the
    sequence): a fly of a still sample against a twin detector's sequential exposures
    through the reference firmware (the beam without noise: the same flux at any time)."""
    from devices.beam import BeamMonitor
    from devices.firmware import Firmware

    n = 12
    fly_bl = Beamline.create(tmp_path / "fly", params=P, backend="compiled")
    twin = Beamline.create(tmp_path / "twin", params=P, backend="compiled")
    try:
        for bl in (fly_bl, twin):
            bl.use_phantom()
            bl.shutter.set("open").wait(5)
            bl.det.scene.beam = BeamMonitor(name="beam", noise=0.0, update_period=None)
        det = fly_bl.det
        det.time_scale = 0.0
        fly_steps.fly(det, FlyParameters(frames=n, exposure=0.002))
        list(det.collect_asset_docs())
        assert det.files.fly is not None
        path = det.files.fly.path
        det.unstage()
        other = twin.det
        flux, factor = other.flux_at(time.time())
        sent = [other.count(flux, factor, 0.002) for _ in range(n)]
        reference = Firmware(P, "interp")
        reference.configure(other.chain_config(), other.tables)
        want = [frame.image for frame in reference.acquire(sent)]
        with open_frames(path) as reader:
            got = list(reader.read())
        assert len(got) == n
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            np.testing.assert_array_equal(a, b, err_msg=f"frame {i}")
    finally:
        fly_bl.close()
        twin.close()


def _fly_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "-fly-" in t.name and t.is_alive()]


def test_prepare_after_a_failed_acquisition_waits_for_its_workers(beamline: Beamline) -> None:
    """The sensor fails while the writer still holds a decoded batch: a new prepare()
    (a plan retrying without unstaging) must not let that batch land in the new file."""
    det = beamline.det
    det.time_scale = 0.0
    det.stage()
    store, count = det.store_fly_frames, det.count
    calls = {"store": 0, "count": 0}

    def slow_first_store(*args: Any, **kwargs: Any) -> None:
        calls["store"] += 1
        if calls["store"] == 1:
            time.sleep(1.0)  # the writer holds the batch while the sensor fails
        store(*args, **kwargs)

    def failing_count(*args: Any, **kwargs: Any) -> Any:
        calls["count"] += 1
        if calls["count"] == 20:
            raise ValueError("flux must be finite")
        return count(*args, **kwargs)

    det.store_fly_frames = slow_first_store  # type: ignore[method-assign]
    det.count = failing_count  # type: ignore[method-assign]
    det.prepare(FlyParameters(frames=40, exposure=0.001)).wait(5)
    det.kickoff().wait(5)
    with pytest.raises(Exception, match="flux must be finite"):
        det.complete().wait(10)
    det.count = count  # type: ignore[method-assign]
    det.prepare(FlyParameters(frames=4, exposure=0.001)).wait(5)
    assert _fly_threads() == []  # the failed acquisition's workers have ended
    det.kickoff().wait(5)
    det.complete().wait(30)
    docs = list(det.collect_asset_docs())
    (page,) = det.collect_pages()
    datum = [d for name, d in docs if name == "stream_datum"][-1]
    assert datum["indices"] == {"start": 0, "stop": 4}
    assert len(page["data"]["det_frame_number"]) == 4
    assert det.files.fly is not None
    with open_frames(det.files.fly.path) as reader:
        assert len(reader) == 4


def test_unstage_waits_for_a_long_firmware_batch(beamline: Beamline,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A firmware batch longer than cancel's warning interval (a slow board) ends before
    unstage returns: no worker outlives it into the next staging."""
    import devices.fly_limits as limits

    monkeypatch.setattr(limits, "JOIN_WARN_S", 0.2)
    det = beamline.det
    det.time_scale = 0.0
    acquire = det.firmware.acquire
    inside = threading.Event()

    def slow_acquire(*args: Any, **kwargs: Any) -> Any:
        inside.set()
        time.sleep(1.0)
        return acquire(*args, **kwargs)

    monkeypatch.setattr(det.firmware, "acquire", slow_acquire)
    fly_steps.arm(det, FlyParameters(frames=8, exposure=0.001))
    assert inside.wait(10)
    det.unstage()
    assert _fly_threads() == []


def test_a_file_that_cannot_be_closed_does_not_leave_the_detector_staged(
        beamline: Beamline, monkeypatch: pytest.MonkeyPatch) -> None:
    """unstage() on a full disk raises the error, but unstages: the next run stages."""
    from dataflow.hdf5 import FrameWriter

    det = beamline.det
    det.time_scale = 0.0
    fly_steps.fly(det, FlyParameters(frames=2, exposure=0.001), 30)
    close = FrameWriter.close

    def disk_full(self: FrameWriter) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(FrameWriter, "close", disk_full)
    with pytest.raises(OSError, match="No space"):
        det.unstage()
    monkeypatch.setattr(FrameWriter, "close", close)
    det.stage()  # not RedundantStaging
    det.unstage()


def test_frames_decoded_a_few_at_a_time_reach_the_writer_in_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers drawing slower than the (compiled) firmware hand it a few frames at a
    time: the decoded frames wait for more (up to HOLD_S) and the writer appends several
    in one call, in order, each call at most BATCH frames; frames that no next frame
    follows in time (the draw of the next one stalls) are written without waiting for
    it, by the other worker."""
    import devices.fly as fly_module

    bl = Beamline.create(tmp_path, params=P, backend="compiled", time_scale=0.001)
    bl.shutter.set("open").wait(5)
    bl.use_phantom()
    det = bl.det
    det.time_scale = 0.0  # (all triggers at once: the workers set the pace)
    monkeypatch.setattr(fly_module.limits, "HOLD_S", 0.3)  # (a margin for a busy machine)
    n, stall_at = 14, 7
    count, reserve = det.count, det.reserve_frames
    before_stall: list[int] = []
    first: list[int] = []

    def reserving(frames: int) -> int:
        first.append(reserve(frames))
        return first[-1]

    def slow(flux: Any, factor: float, exposure: float, out: Any = None,
             frame: int | None = None) -> Any:
        fly = det.fly
        assert fly is not None and frame is not None
        if frame - first[-1] == stall_at:  # the frames before it reach the file meanwhile
            deadline = time.monotonic() + 10
            while len(fly.frames) < stall_at and time.monotonic() < deadline:
                time.sleep(0.01)
            before_stall.append(len(fly.frames))
        else:
            time.sleep(0.01)  # (the compiled firmware's 64×64 frame takes far less)
        return count(flux, factor, exposure, out=out, frame=frame)

    calls: list[list[int]] = []
    store = det.store_fly_frames

    def recording(images: Any, frames: Any, last: Any, counts: Any) -> None:
        calls.append([f.index for f in frames])
        store(images, frames, last, counts)

    monkeypatch.setattr(det, "reserve_frames", reserving)
    monkeypatch.setattr(det, "count", slow)
    monkeypatch.setattr(det, "store_fly_frames", recording)
    try:
        det.stage()
        det.prepare(FlyParameters(frames=n, exposure=0.01)).wait(5)
        det.kickoff().wait(5)
        det.complete().wait(120)
        list(det.collect_asset_docs())  # (announced: flushed for readers)
        path = det.files.fly.path  # type: ignore[union-attr]
    finally:
        det.unstage()
        bl.close()
    assert [i for call in calls for i in call] == list(range(n))
    assert all(1 <= len(call) <= fly_module.BATCH for call in calls)
    assert len(calls) < n - 2, calls  # several frames a call, not one
    assert before_stall == [stall_at], (before_stall, calls)
    with open_frames(path) as reader:
        assert len(list(reader.read())) == n
