"""The fly-scan side of the firmware detector: bluesky's flyer interface over
``devices.fly``.

``FirmwareDetector`` (``devices.detector``) takes these methods from :class:`FlyScans`:
``prepare(FlyParameters(...))`` arms a continuous acquisition, ``kickoff()`` starts it,
``complete()`` finishes with its last frame, and ``describe_collect()`` /
``collect_pages()`` describe and hand over the frames of a stream declared with
``bps.declare_stream(det, name=..., collect=True)`` (the frames themselves are announced
by the detector's ``collect_asset_docs``). ``store_fly_frames`` and ``angle_at`` are what
``devices.fly.FlyAcquisition`` calls back (its ``FlyDetector``).

This module knows the detector only through :class:`FlyHost` (what these methods use
of it); ``devices.detector`` builds on it, never the other way round.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np
from bluesky.utils import NoReplayAllowed
from ophyd.status import DeviceStatus
from ophyd.utils import WaitTimeoutError

from dataflow.hdf5_angles import AngleFrameWriter
from dataflow.packets import ReadoutFrame

from .fly import Counts, FlyAcquisition, FlyDetector, FlyFrame, FlyParameters
from .frame_files import FrameFiles
from .samples import Scene
from .suspension import frames_before, must_stop, suspended_fly_error, suspension, watch_trips

__all__ = ["STALL_S", "FlyHost", "FlyScans", "wait_for_end"]

STALL_S = 60.0
"""How long a fly acquisition may go without progress (``FlyAcquisition.progress``: a
frame drawn or through the firmware), once the trigger of its next frame has passed,
before a collect waiting for its end gives up (a stalled pipeline; a slow one that lags
its triggers is waited for)."""
_POLL_S = 0.1


def wait_for_end(fly: FlyAcquisition, who: str) -> None:
    """Wait for ``fly`` to finish: its error if it failed. An acquisition that keeps
    delivering frames is waited for however far it lags its triggers (a pause and resume
    took away the plan's own wait for ``complete``); one that makes no progress for
    ``STALL_S`` after its next frame's trigger, or whose worker threads ended without
    finishing it, is a ``RuntimeError`` saying so."""
    seen, since = -1, time.monotonic()
    while True:
        try:
            fly.done.wait(_POLL_S)
            return
        except WaitTimeoutError:
            pass
        now = time.monotonic()
        got = len(fly.frames) + len(fly.lost)
        times = fly.times  # (None: waiting for its rotation, which has its own timeout)
        if fly.progress != seen or times is None:
            seen, since = fly.progress, now
        due = now + times[got][0] - time.time() if times is not None and got < len(times) \
            else now
        if not fly.workers_alive and not fly.done.done:
            raise RuntimeError(f"{who}: the fly acquisition's threads ended after {got} of "
                               f"{fly.params.frames} frames without finishing it; nothing "
                               "more is collected")
        if now - max(since, due) > STALL_S:
            raise RuntimeError(f"{who}: the fly acquisition has made no progress for "
                               f"{STALL_S:g} s (it stalled after {got} of "
                               f"{fly.params.frames} frames); nothing more is collected")


class FlyHost(FlyDetector, Protocol):
    """What the fly-scan methods use of the detector they are part of (and what a fly
    acquisition needs of it, ``FlyDetector``)."""

    scene: Scene
    files: FrameFiles
    fly: FlyAcquisition | None
    kicked_off: bool
    _paused_mid_fly: FlyAcquisition | None
    _resumed_mid_fly: FlyAcquisition | None
    last_counts: np.ndarray | None
    _exposing: threading.Thread | None
    _lock: threading.Lock
    _collected: int
    _announced: int
    exposure: Any
    backend: Any
    roi_sum: Any
    saturated: Any
    histogram: Any
    frame_number: Any
    link_lost: Any

    def sample_position(self, t: float | None) -> tuple[float, ...]:
        """The sample's stages at wall time ``t`` (``FirmwareDetector.sample_position``)."""

    @property
    def image_key(self) -> str:
        """The data key of the frames."""

    def describe(self) -> dict[str, Any]:
        """The detector's data keys (the image key among them)."""

    def publish_frame(self, frame: ReadoutFrame, now: float) -> None:
        """Put a frame's reductions on the readback signals."""

    def _counters(self) -> dict[str, int]:
        """The readout counters now."""

    def stop_if_suspended(self, who: str | None = None) -> None:
        """Stop a fly acquisition the beam loss of a suspension reaches (``FlyScans``)."""

    def _discard_unannounced(self) -> None:
        """Drop the frame of an earlier trigger that no event announced."""


class FlyScans:
    """Fly-scan methods of ``FirmwareDetector`` (see the module docstring)."""

    fly: FlyAcquisition | None
    """The armed or last fly acquisition (``prepare`` makes one)."""
    kicked_off: bool = False
    """Whether a fly acquisition was kicked off since ``stage()`` (``unstage`` clears it)."""
    _paused_mid_fly: FlyAcquisition | None = None
    """A running fly acquisition the RunEngine paused in (and may resume, or end)."""
    _resumed_mid_fly: FlyAcquisition | None = None
    """A fly acquisition a pause interrupted and the RunEngine resumed: the next collect
    waits for its end."""
    last_counts: np.ndarray | None
    """The sensor counts of the last exposure (what went over the link)."""

    def angle_at(self: FlyHost, t: float) -> float:
        """The rotation stage's angle at time ``t`` (what position capture latches)."""
        return float(self.scene.rotation.position_at(t))

    def store_fly_frames(self: FlyHost, images: np.ndarray, frames: Sequence[FlyFrame],
                         last: ReadoutFrame, counts: Counts) -> None:
        """Append a batch of fly-scan frames to the file (``devices.fly`` calls it)."""
        with self._lock:
            writer = self.files.fly
            if writer is None:
                raise RuntimeError(f"{self.name}: kickoff() before prepare(); stage the "
                                   "detector and prepare it first (bluesky plans do)")
            assert isinstance(writer, AngleFrameWriter)  # (a fly file: ``_open_file``)
            if writer.start_pending and frames:  # NeXus start_time: the first frame's trigger
                writer.set_start_time(frames[0].trigger_time)
            # the latched angle, the translations where they stood at the trigger
            writer.append_many(images, [(frame.angle, *self.sample_position(
                frame.trigger_time)[1:]) for frame in frames])
        # (a copy when the counts are the words of a link stream, whose buffers are reused)
        self.last_counts = counts if counts.dtype == np.uint32 else counts.astype(np.uint32)
        self.publish_frame(last, frames[-1].time)

    def fly_block(self: FlyHost) -> int:
        """Frames per block of the fly file (its chunks' frames; 1 before ``prepare``)."""
        with self._lock:
            writer = self.files.fly
            return 1 if writer is None else int(writer.chunk_shape[0])

    def store_fly_lost(self: FlyHost, triggers: Sequence[int]) -> None:
        """Record in the fly file that the frames of ``triggers`` were lost on the link
        (``devices.fly`` calls it; ``dataflow.hdf5.read_lost`` reads them back)."""
        with self._lock:
            writer = self.files.fly
            if writer is not None:
                writer.add_lost(triggers)

    def prepare(self: FlyHost, value: FlyParameters) -> DeviceStatus:
        """Arm a fly acquisition (after ``stage()``); applies ``value.exposure``."""
        if not isinstance(value, FlyParameters):
            raise TypeError(f"{self.name}.prepare: expected FlyParameters, got {value!r}")
        if not self.files.staged:
            raise RuntimeError(f"{self.name}: prepare() before stage(); stage the detector "
                               "first (bluesky plans do)")
        FlyScans.refuse_while_flying(self, "prepare()")
        if self.fly is not None:  # a failed one's workers may still hold a batch to store
            self.fly.cancel()
        if value.trigger is None:  # (position-compare spacing: at kickoff, see there)
            value.check_exposure(float(value.exposure if value.exposure is not None
                                       else self.exposure.get()), f"{self.name}.prepare")
        if value.exposure is not None:
            self.exposure.put(float(value.exposure))
        counters = self._counters()
        with self._lock:
            self.files.open_fly(counters, float(self.exposure.get()))
            self.fly = FlyAcquisition(self, value, float(self.exposure.get()))
            self._collected = self._announced = 0
        status = DeviceStatus(self)
        status.set_finished()
        return status

    def refuse_while_flying(self: FlyHost, what: str) -> None:
        """Raise if a fly acquisition is running: it drives the firmware and its readout
        from its own threads, and another exposure would share them (its frame numbered
        among the fly's, its image decoded into the fly's batch arrays)."""
        if self.fly is not None and self.fly.started and not self.fly.done.done:
            raise RuntimeError(f"{self.name}: {what} while a fly acquisition is still "
                               "running; complete() (or stop the plan) first")

    def pause(self: FlyHost) -> None:
        """The RunEngine pauses (bluesky's ``Pausable``). A fly acquisition kicked off in
        this staging cannot be taken back and replayed from the last checkpoint while it
        runs or has frames not yet collected: its frames are announced in the run as they
        come, and the rotation it follows goes on (the RunEngine stops only what it
        ``set``). So it keeps acquiring into its file, and ``NoReplayAllowed`` makes the
        RunEngine resume the plan where it was (collecting the frames taken meanwhile)
        instead of replaying ``prepare`` and ``kickoff``, which would record the first
        frames twice. Once it is done and every frame collected, pauses rewind as for
        any step (a plan puts a checkpoint there: ``plans.fly_tomo``). Abort and stop
        end it as before. A suspension (a bluesky suspender tripped: the beam was lost)
        stops a running acquisition instead and fails the run with
        :class:`~devices.suspension.SuspendedMidFly` (``devices.suspension``)."""
        fly = self.fly
        self._resumed_mid_fly = None  # (a new pause: resumed or ended, it decides anew)
        self.stop_if_suspended()
        if self.kicked_off and fly is not None and not (
                fly.done.done and self._collected >= len(fly.frames)):
            if not fly.done.done and not fly.params.polled:
                self._paused_mid_fly = fly  # (see FlyParameters.polled and resume)
            raise NoReplayAllowed(f"{self.name}: a fly acquisition is running or has "
                                  "frames to collect; resuming continues it (its frames "
                                  "are already in the run)")

    def stop_if_suspended(self: FlyHost, who: str | None = None) -> None:
        """From ``pause()``: during a suspension (``devices.suspension``), stop a fly
        acquisition whose triggers go on past the moment the beam was lost, or that took
        frames after it; keep in its file the frames triggered before (and those already
        announced), drop the others, and raise :class:`SuspendedMidFly` saying so, in the
        name of ``who`` (default: the detector's)."""
        fly, suspended = self.fly, suspension()
        if suspended is None or fly is None or not self.kicked_off \
                or not must_stop(suspended, fly):
            return
        fly.cancel()
        self._paused_mid_fly = None
        taken, before = len(fly.frames), frames_before(fly.frames, suspended.since)
        with self._lock:
            writer = self.files.fly
            if writer is not None:
                writer.discard_unannounced(max(0, before - self._announced))
                del fly.frames[writer.n_frames:]
        raise suspended_fly_error(who or self.name, suspended, taken, fly.params.frames, before,
                                  self._announced)

    def close_run_files(self: FlyHost) -> list[str]:
        """Close the frame files of the run that ends, before its stop document (the
        RunEngine preprocessor ``dataflow.run_files`` calls it at ``close_run``), with
        the readout counters: a file the disk cannot complete (``FrameFileError``) then
        fails the run. The staging goes on into new files; a fly acquisition armed or
        still running keeps its file until ``unstage`` (a finished one's threads are
        let end first). Returns the paths closed."""
        if not self.files.staged:  # (a plan that staged inside its run: unstaged already)
            return []
        fly = self.fly
        keep_fly = fly is not None and not fly.done.done
        if fly is not None and not keep_fly:
            fly.cancel()  # (done: its threads end, nothing more is stored)
        counters = self._counters()
        with self._lock:
            return self.files.end_run(counters, keep_fly)

    def await_resumed_fly(self: FlyHost) -> None:
        """Before a collect: wait for the end of a fly acquisition that a pause
        interrupted (unless its plan polls, ``FlyParameters.polled``), so that the frames
        taken after the resume are collected, not left out of the run."""
        fly, self._resumed_mid_fly = self._resumed_mid_fly, None
        if fly is not None and fly is self.fly and not fly.done.done:
            wait_for_end(fly, self.name)

    def resume(self: FlyHost) -> None:
        """The RunEngine resumes (``Pausable``; not called when it aborts or stops
        instead): nothing to restart (see :meth:`pause`), but the wait the pause
        interrupted is gone, so the next collect waits (:meth:`await_resumed_fly`)."""
        self._resumed_mid_fly, self._paused_mid_fly = self._paused_mid_fly, None

    def kickoff(self: FlyHost) -> DeviceStatus:
        """Start the armed fly acquisition (after a step exposure still running has
        finished, its frame dropped if no event read it); the status finishes once it
        runs."""
        if self.fly is None or self.fly.started is not None:
            raise RuntimeError(f"{self.name}: kickoff() needs a prepare() with "
                               "FlyParameters first")
        exposing = self._exposing
        if exposing is not None and exposing.is_alive():
            exposing.join()  # (a trigger()'s frame goes through the firmware first)
        # A step frame no event read (a trigger() after prepare()) is dropped, as a
        # re-trigger drops it: the fly's first collect announces the fly's frames only.
        self._discard_unannounced()
        watch_trips()  # (a suspension then dates the beam's loss by the reading that tripped)
        self.fly.start()  # (checks the triggers' spacing against the exposure)
        self.kicked_off = True
        status = DeviceStatus(self)
        status.set_finished()
        return status

    def complete(self: FlyHost) -> DeviceStatus:
        """The status of the running fly acquisition: finished with its last frame."""
        if self.fly is None or self.fly.started is None:
            raise RuntimeError(f"{self.name}: complete() before kickoff()")
        return self.fly.done

    def describe_collect(self: FlyHost) -> dict[str, Any]:
        """Data keys of a fly stream: the image (external), the firmware's reductions,
        the trigger time and the angle latched at each trigger."""
        source = f"smeflow:firmware:{self.backend.get()}"
        keys: dict[str, Any] = {}
        for signal in (self.roi_sum, self.saturated, self.histogram, self.frame_number,
                       self.link_lost):
            key = dict(signal.describe()[signal.name])
            key["source"] = source
            keys[signal.name] = key
        keys[f"{self.name}_trigger_time"] = {"source": source, "dtype": "number",
                                             "shape": [], "units": "s"}
        rotation = self.scene.rotation
        keys[rotation.name] = {"source": f"smeflow:position-capture:{rotation.name}",
                               "dtype": "number", "shape": [], "units": "deg",
                               "precision": 4}
        keys[self.image_key] = self.describe()[self.image_key]
        return keys

    def collect_pages(self: FlyHost) -> Iterator[dict[str, Any]]:
        """The readings of the frames announced by the last ``collect_asset_docs()``."""
        if self.fly is None:
            return
        with self._lock:
            rows = self.fly.frames[self._collected:self._announced]
            self._collected = self._announced
        if not rows:
            return
        rotation = self.scene.rotation.name
        columns: dict[str, list[Any]] = {
            self.roi_sum.name: [r.roi_sum for r in rows],
            self.saturated.name: [r.saturated for r in rows],
            self.histogram.name: [list(r.histogram) for r in rows],
            self.frame_number.name: [r.frame_number for r in rows],
            self.link_lost.name: [r.lost_before for r in rows],
            f"{self.name}_trigger_time": [r.time for r in rows],
            rotation: [r.angle for r in rows],
        }
        stamps = [r.time for r in rows]  # each frame's own time (see devices.fly)
        yield {"data": columns, "timestamps": {key: stamps for key in columns}}
