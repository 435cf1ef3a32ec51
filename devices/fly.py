"""Continuous (fly) acquisition of the firmware detector: frames on a train of triggers.

In a fly scan the RunEngine does not trigger the detector frame by frame. The plan arms it
with :class:`FlyParameters` (``prepare``), starts it (``kickoff``) and, while the sample
moves continuously, the detector takes ``frames`` exposures, one per trigger; ``complete``
finishes when the last frame is in the HDF5 file, and ``collect`` hands over what was taken
since the previous call: the frames as ``stream_resource``/``stream_datum`` documents (they
are already in the file) and, per frame, the firmware's reductions, the trigger time and
the angle the position-capture unit latched from the rotation stage's encoder.

Triggers come from one of two sources:

* internal: every ``period`` seconds from kickoff (detector seconds, scaled to wall time
  by the detector's ``time_scale`` like its exposures);
* position compare (:class:`PositionTrigger`): the motion controller fires when the
  rotation stage passes the middle of each of ``frames`` equal angular bins between
  ``start`` and ``stop`` during its constant-velocity window — how fly tomography is
  triggered at beamlines (the PSO output of the rotation controller). The detector may be
  kicked off before the rotation (armed, as plans arm detectors before they start the
  motion): its triggers are then computed when the rotation starts, never from the last
  scan's rotation, and an acquisition whose rotation does not start within
  ``ROTATION_WAIT_S`` fails saying so.

Frame ``i`` is exposed around trigger ``i``: the scene is sampled at that instant (motion
blur during the exposure is not modelled): its state (pose, shutter and beam: a few
numbers) as soon as the trigger has passed, its flux image when the pipeline has room
(``devices.fly_states``), so a pipeline minutes behind its triggers still sees each
trigger's scene. A frame is never produced before its trigger;
when the simulation is slower than the trigger rate, frames queue in the detector's buffer
and arrive after their triggers, which :attr:`FlyAcquisition.max_lag` records.

A frame lost on the link (a packet the readout finds corrupt, or one that never arrives)
is not re-taken — its trigger has passed — and does not end the acquisition: the frames
are matched to their triggers by the firmware's frame counter, the lost trigger's index
goes to :attr:`FlyAcquisition.lost` and to the file (``FlyDetector.store_fly_lost``), the
next frame's ``lost_before`` counts it, and the acquisition ends with the frames that
arrived. Frame ``i`` of the file is therefore trigger ``i`` plus the lost triggers before
it; each frame's record (``FlyFrame.index``) names its trigger. An acquisition that loses
every frame fails.

Time stamps: each frame carries the time of the trigger that started its exposure on the
acquisition's clock (:attr:`FlyFrame.time`, the ``timestamps`` of its readings). The frame
is identified by the firmware's frame counter (frame number minus that of the
acquisition's first frame), not by arrival order. With internal triggers the clock is the
detector's own: trigger ``k`` is at ``kickoff + k × period`` in detector seconds, whatever
the simulation's speed (``time_scale`` only stretches how long the simulation waits), so
times are strictly increasing even when the simulation runs as fast as it can
(``time_scale=0``); a simulation running faster than real time therefore stamps its last
frames later than the wall-clock moment they were written, as a real detector would have
taken them. Position-compare triggers are at the (wall-clock) moments the stage passes the
trigger angles.

Two worker threads (:data:`WORKERS`) share the detector's work, and a third writes. Each
worker takes the next trigger that has passed, samples the scene at that moment (the
flux image of the sample as it was then, its angle) and draws the image's counts into
link words (the sensor model, the link serialiser); the frames it drew wait until the
firmware takes them, in trigger order, a batch of up to :data:`BATCH` in one simulation
call. The firmware (with the readout's decoding) is run by whichever worker finds it
free with frames waiting for it in order, before that worker draws another: while one
runs it, the other draws, and the frames drawn meanwhile make the next batch. At most
:data:`QUEUE_FRAMES` frames are drawn ahead of the firmware. Each decoded batch goes to
the writer thread, which hands it to the detector to write (at most
:data:`WRITE_BATCHES` batches wait for it). The compiled parts release the GIL.
Why workers that do everything rather than a thread per stage: on two cores a pipeline
of stage threads left a core idle whenever only one stage could go on (the firmware
waiting for the sensor's next frame, the scene for room in its queue; each hand-over a
thread to wake), while a worker always has a frame to draw or frames to run through the
firmware as long as the pipeline lags its triggers, so both cores work. Each frame's
counts have the sensor noise of its place in the sequence (``reserve_frames`` at
``start``: trigger ``i`` gets the ``i``-th number), so the frames are those drawn one
after another, whichever worker drew them.
When the workers draw slower than the firmware runs, it takes a frame or two at a time:
the frames it decoded wait (up to :data:`HOLD_S`) until they fill a batch of :data:`BATCH`
for the writer, which appends them to the file in one call (a whole chunk of frames: the
file's per-call cost, about 0.2 ms, is paid per batch, not per frame; the writer takes
them itself when both workers are in long draws) — at the end of the acquisition they go
at once.
On a single board (not GHDL) the sensor draws each frame's counts straight into the words
of a one-frame link stream (``devices.sensor_link.frame_link``: no counts array, no copy into
the link), and the streams the firmware is done with carry the next frames: at most the
frames in flight (the buffer's, a batch's, those being drawn) have buffers, and they go at
the acquisition's end. Likewise the readout decodes each batch's images straight into a
batch array (``Readout.decode_into``: no image copied into a stack afterwards), which the
writer hands back once the batch is in the file, and each worker draws its flux images
into one buffer of its own (``devices.samples.FluxBuffer``: the phantom then redraws only
the few percent of the frame it covers, where a new image a frame cost more in fresh
pages and copies than the projection itself).

This module knows the detector only through :class:`FlyDetector` (what a fly acquisition
needs from it); ``devices.detector`` builds on this module, never the other way round. The
parameters and per-frame values are in ``devices.fly_params`` (re-exported here), the
records its threads pass on in ``devices.fly_records``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from ophyd.status import DeviceStatus

from dataflow.packets import ReadoutFrame
from dataflow.readout import FRAME_MOD

from .firmware import Firmware
from .fly_params import (
    Counts,
    FlyDetector,
    FlyFrame,
    FlyParameters,
    PositionTrigger,
    TriggerTimes,
)
from .fly_records import Decoded, Held, Item, match_frames
from .fly_states import OnTimeStates
from .samples import FluxBuffer, SceneState
from .sensor_link import LinkStream, frame_link

log = logging.getLogger(__name__)

JOIN_WARN_S = 5.0
"""How long ``cancel`` waits for a worker before it logs that it is still waiting."""

BATCH = 8
"""Frames the firmware takes in one simulation call at most."""
QUEUE_FRAMES = 32
"""Frames drawn ahead of the firmware at most (the detector's buffer)."""
WORKERS = 2
"""Worker threads that draw frames and run the firmware (one per core here)."""
WRITE_BATCHES = 1
"""Decoded batches waiting for the writer at most (besides the one it writes)."""
HOLD_S = 0.05
"""How long decoded frames wait at most for more to fill a batch for the writer."""


class FlyAcquisition:
    """One armed fly acquisition of ``det`` (made by ``FirmwareDetector.prepare``).

    ``start()`` launches the worker threads; ``done`` is the status ``complete()``
    returns (reported on ``device``, the ophyd device; default ``det``); ``frames``
    grows by each batch just before the detector writes it (``FlyDetector.store_fly_frames``),
    so whoever bounds its reads by the frames in the file finds a record for each;
    ``cancel()`` stops early.
    """

    def __init__(self, det: FlyDetector, params: FlyParameters, exposure: float,
                 device: Any = None) -> None:
        self.det = det
        self.params = params
        self.exposure = float(params.exposure if params.exposure is not None else exposure)
        self.frames: list[FlyFrame] = []
        self.done = DeviceStatus(det if device is None else device)
        self.max_lag = 0.0
        """Largest delay (s) between a trigger and its frame reaching the file."""
        self.started: float | None = None
        self.armed = time.time()
        """When the acquisition was armed (``prepare``): a rotation whose constant
        velocity ended before is not this scan's (``PositionTrigger.ready``)."""
        self.times: TriggerTimes | None = None
        """``(wall, clock)`` of each trigger: set by ``start``, or for position-compare
        triggers armed before their rotation once the rotation starts."""
        self.stopped_early = False
        """Whether ``cancel`` ended the acquisition before its last frame."""
        self.lost: list[int] = []
        """The triggers whose frames were lost on the link (module docstring)."""
        self.progress = 0
        """Frames the sensor has drawn plus frames through the firmware: grows while a
        stage of the pipeline gets on (``devices.detector_fly.wait_for_end`` watches it)."""
        self._first_frame_number: int | None = None
        self.cpu = {"scene": 0.0, "sensor": 0.0, "firmware": 0.0}
        """CPU seconds the workers spent in each stage (sampling the scene, drawing the
        counts, the firmware with its readout): where a frame's time goes."""
        self._cancel = threading.Event()
        self._state = threading.Condition()
        """Guards what the workers share (below, to ``_over``); notified when a frame is
        drawn, the firmware is free again or the acquisition ends."""
        self._states: OnTimeStates | None = None
        """The scene's state at each trigger, taken as soon as it passes (workers take
        them under ``_state``; ``devices.fly_states``)."""
        self._awaiting = False
        """Whether a worker waits for the rotation of triggers armed before it."""
        self._noise = 0
        """The sensor's noise number of trigger 0 (``FlyDetector.reserve_frames``)."""
        self._next = 0
        """The next trigger whose frame is to be drawn."""
        self._ready: dict[int, Item] = {}
        """Frames drawn and not yet taken by the firmware, by trigger."""
        self._through = 0
        """Frames taken by the firmware (the next one it takes is this trigger's)."""
        self._firmware_busy = False
        """Whether a worker runs the firmware stage (one at a time, in trigger order)."""
        self._working = 0
        """Workers still running."""
        self._over = False
        """Whether the last frame went through the firmware (or the acquisition ended)."""
        self._decoded: queue.Queue[Decoded | None] = queue.Queue(WRITE_BATCHES)
        self._threads: list[threading.Thread] = []
        self._writer: threading.Thread | None = None
        self._reuse_links = False
        """Whether the sensor draws each frame into a one-frame link stream's words, whose
        buffers are used again once the firmware is done with them (``start`` decides)."""
        self._spare_links: queue.SimpleQueue[tuple[LinkStream, Counts]] = queue.SimpleQueue()
        """Link streams the firmware is done with and their frames' words, refilled for
        the next frames (never more than the frames in flight: the queue's, a batch's and
        one being built)."""
        self._spare_slots: queue.SimpleQueue[npt.NDArray[np.uint16]] = queue.SimpleQueue()
        """Batch arrays the writer is done with, for the readout to decode the next
        batches' images into (never more than the batches in flight: one being decoded,
        ``WRITE_BATCHES`` waiting, one being written)."""
        self._image_shape: tuple[int, int] | None = None
        """The shape of the images of the last batch (the next ones', as a rule)."""
        self._held: Held | None = None
        """Decoded frames waiting to fill a batch for the writer (firmware stage)."""

    # -- control ---------------------------------------------------------------------

    def _trigger_times(self, t_kickoff: float) -> TriggerTimes | None:
        """``(wall, clock)`` of each trigger for a kickoff at ``t_kickoff``: when the
        simulation acts on it, and its time on the acquisition clock (module docstring);
        ``None`` for position-compare triggers whose rotation has not started (the
        workers wait for it: ``_await_rotation``). Checks the triggers' spacing
        against the exposure."""
        n, trigger = self.params.frames, self.params.trigger
        who = f"{self.det.name}.kickoff"
        if trigger is not None:
            started = trigger.ready(self.armed)
            if started is None:  # (checked now against a rotation about to start)
                pending = trigger.stage.pending
                if pending is not None:
                    self.params.check_exposure(self.exposure, who, pending)
                return None
            times = trigger.times(n, self.armed, started)
            self.params.check_exposure(self.exposure, who, started.rotation)
            return times
        self.params.check_exposure(self.exposure, who)
        period = self.params.period if self.params.period is not None else self.exposure
        step = period * self.det.time_scale
        return TriggerTimes(n, lambda i: (t_kickoff + i * step, t_kickoff + i * period))

    def _await_rotation(self) -> TriggerTimes | None:
        """A worker of position-compare triggers armed before their rotation: wait for
        the rotation to start (``PositionTrigger.wait_times``), then the
        trigger times on it; ``None`` if cancelled first."""
        trigger = self.params.trigger
        assert trigger is not None
        got = trigger.wait_times(self.params.frames, self.armed, self._cancel)
        if got is None:
            return None
        times, started = got
        self.params.check_exposure(self.exposure, f"{self.det.name}.kickoff",
                                   started.rotation)
        self.times = times
        return times

    def start(self) -> None:
        """Compute the trigger times (for position-compare triggers whose rotation has
        not started yet: once it starts) and start the workers."""
        started = time.time()
        # (first: a refused trigger starts nothing)
        self.times = self._trigger_times(started)
        self.started = started
        firmware = self.det.firmware
        self._reuse_links = (type(firmware) is Firmware and firmware.backend != "ghdl"
                             and not firmware.params.pad)
        # (the frame counter of trigger 0: the number the firmware's next frame carries)
        boards = getattr(firmware, "boards", None)  # (a multi-module detector's: in step)
        self._first_frame_number = (boards[0] if boards else firmware).readout.expected_frame
        # (trigger i: the noise number + i)
        self._noise = self.det.reserve_frames(self.params.frames)
        name = self.det.name
        self._writer = threading.Thread(target=self._guard, args=(self._write, None),
                                        name=f"{name}-fly-writer", daemon=True)
        self._working = WORKERS
        self._threads = [
            *(threading.Thread(target=self._guard, args=(self._work, k),
                               name=f"{name}-fly-worker-{k}", daemon=True)
              for k in range(WORKERS)),
            self._writer,
        ]
        for thread in self._threads:
            thread.start()

    def cancel(self) -> None:
        """Stop the workers and wait until they have ended (frames already stored stay in
        the file; nothing is written after this returns, so a new file can be opened).

        A stop that is asked for (``unstage`` after an abort, a stop or a failed plan;
        the flyer's ``stop``) is not the acquisition's failure: ``done`` ends without
        an error if it had not ended, and ``stopped_early`` says so. Failing it would
        make bluesky replace the run's real outcome (the operator's abort, the plan's
        own exception) with this status's failure. An error of a worker still fails
        ``done`` when it happens."""
        self._stop_workers()
        for thread in self._threads:
            if thread is threading.current_thread():
                continue
            thread.join(JOIN_WARN_S)
            while thread.is_alive():  # a long firmware batch (GHDL) finishes first
                log.warning("%s: waiting for %s to finish its batch", self.det.name,
                            thread.name)
                thread.join(JOIN_WARN_S)
        if not self.done.done:
            self.stopped_early = True
            log.info("%s: fly acquisition stopped after %d of %d frames", self.det.name,
                     len(self.frames), self.params.frames)
            self.done.set_finished()

    @property
    def workers_alive(self) -> bool:
        """Whether a worker thread still runs (``start`` to the acquisition's end)."""
        return any(thread.is_alive() for thread in self._threads)

    # -- workers ---------------------------------------------------------------------

    def _guard(self, work: Callable[[Any], None], arg: Any) -> None:
        try:
            work(arg)
        except Exception as exc:
            self._stop_workers()
            if not self.done.done:
                self.done.set_exception(exc)

    def _stop_workers(self) -> None:
        """Ask every worker to end (they see it at their next step or wait)."""
        self._cancel.set()
        with self._state:
            self._state.notify_all()

    def _offer(self, to: queue.Queue[Any], item: Any) -> bool:
        """Put ``item`` into ``to`` when there is room; False if cancelled first."""
        while not self._cancel.is_set():
            try:
                to.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, worker: int) -> None:
        """A worker thread (``WORKERS`` of them): draws the frames whose triggers have
        passed and runs the firmware on those drawn in order (module docstring)."""
        try:
            self._work_all(FluxBuffer())
        finally:
            with self._state:
                self._working -= 1
                last = self._working == 0
                self._state.notify_all()
            if last:  # the spare buffers go with the acquisition's end, not its object
                for spare in (self._spare_links, self._spare_slots):
                    while not spare.empty():
                        spare.get_nowait()

    def _work_all(self, buffer: FluxBuffer) -> None:
        times = self._wait_for_times()
        if times is None:
            return
        n = len(times)
        while True:
            firmware, drawn = self._next_job(times)
            if firmware is not None:
                try:
                    self._run_firmware(firmware, n)
                finally:
                    with self._state:
                        self._firmware_busy = False
                        self._state.notify_all()
            elif drawn is not None:
                self._draw(*drawn, buffer)
            else:
                return

    def _wait_for_times(self) -> TriggerTimes | None:
        """The trigger times: for position-compare triggers armed before their rotation,
        once it starts (one worker waits for it, ``_await_rotation``; the others for that
        one); ``None`` if cancelled first."""
        with self._state:
            while True:
                if self._cancel.is_set():
                    return None
                if self.times is not None:
                    if self._states is None:
                        self._states = OnTimeStates(self.det, self.times)
                    return self.times
                if not self._awaiting:
                    self._awaiting = True
                    break
                self._state.wait(0.1)
        try:
            self._await_rotation()  # (sets ``times``)
        finally:
            with self._state:
                self._awaiting = False
                self._state.notify_all()
        return self._wait_for_times()

    def _next_job(self, times: TriggerTimes) -> tuple[
            list[Item] | None, tuple[int, float, float, SceneState, float] | None]:
        """What this worker does next, waiting until there is something:
        ``(batch, None)`` run the firmware on ``batch`` (the frames drawn in order, maybe
        none: the held ones are due); ``(None, (index, wall, clock, state, angle))`` draw
        the frame of trigger ``index`` (the scene's state and angle taken on time);
        ``(None, None)`` end (done, or cancelled). Takes the states of the triggers
        that have passed meanwhile."""
        n = len(times)
        states = self._states
        assert states is not None
        with self._state:
            while True:
                if self._cancel.is_set() or self._over:
                    return None, None
                now = time.time()
                states.catch_up(now)
                drawable = self._next < n and self._next - self._through < QUEUE_FRAMES
                due = drawable and times[self._next][0] <= now
                held = self._held
                hold_left = HOLD_S if held is None else held.since + HOLD_S - time.monotonic()
                if not self._firmware_busy:
                    ready = 0
                    while self._through + ready in self._ready and ready < BATCH:
                        ready += 1
                    # the firmware first when frames wait for it in order (drawing while
                    # they wait could leave them there: both workers in long draws), when
                    # the held frames are due, and for the acquisition's end
                    if ready or hold_left <= 0 or (self._through == n and self._next == n):
                        room = BATCH - (len(held.out) if held is not None else 0)
                        batch = [self._ready.pop(self._through + k)
                                 for k in range(min(ready, room))]
                        self._through += len(batch)
                        self._firmware_busy = True
                        return batch, None
                if due:
                    index = self._next
                    self._next += 1
                    return None, (index, *times[index], *states.take(index))
                # (until the next trigger or the held frames' time; a busy firmware,
                # a frame drawn or the end notifies)
                wait = min(0.1, times[self._next][0] - now if drawable else 0.1)
                if not self._firmware_busy:
                    wait = min(wait, hold_left)
                self._state.wait(max(wait, 0.0))

    def _draw(self, index: int, wall: float, clock: float, state: SceneState, angle: float,
              buffer: FluxBuffer) -> None:
        """The frame of trigger ``index``: the scene at ``wall`` (its ``state`` then,
        taken on time; the image drawn into this worker's ``buffer``) and its counts,
        drawn into link words; then ready for the firmware."""
        det = self.det
        t0 = time.thread_time()
        flux, factor = det.flux_at(wall, buffer, state)
        t1 = time.thread_time()
        link, into = self._spare_link()
        counts = det.count(flux, factor, self.exposure, out=into,
                           frame=self._noise + index)
        if link is None:
            link = det.firmware.link([counts])
        t2 = time.thread_time()
        with self._state:
            self._ready[index] = Item(index, wall, clock, angle, counts, link, into)
            self.progress += 1
            self.cpu["scene"] += t1 - t0
            self.cpu["sensor"] += t2 - t1
            self._state.notify_all()

    def _spare_link(self) -> tuple[LinkStream | None, Counts | None]:
        """A one-frame link stream for the next frame and its frame's words, for the
        sensor to draw the counts into (``devices.sensor_link.frame_link``): the buffers of a
        stream the firmware is done with when there is one (made here by ``frame_link``
        and handed back as they were: nothing to check again). ``(None, None)`` where the
        words are not one block of the frame (a GHDL board builds its own stream, a
        multi-module detector one per module, padded lines): ``Firmware.link`` then."""
        if not self._reuse_links:
            return None, None
        try:
            return self._spare_links.get_nowait()
        except queue.Empty:
            made = frame_link(self.det.firmware.params)
            assert made is not None  # (``_reuse_links`` says the lines are not padded)
            return made

    def _run_firmware(self, batch: list[Item], n: int) -> None:
        """The firmware stage (one worker at a time): ``batch`` through the firmware, the
        held frames to the writer when they fill a batch or are due, and after the last
        frame the end of the acquisition."""
        t0 = time.thread_time()
        if batch:
            self._process(batch)
        held = self._held
        last = self._through == n
        if held is not None and (last or len(held.out) >= BATCH
                                 or time.monotonic() >= held.since + HOLD_S):
            self._hand_over()
        with self._state:
            self.progress += len(batch)
            self.cpu["firmware"] += time.thread_time() - t0
            if not last or self._over:
                return
            self._over = True  # (the other worker ends; this one ends the acquisition)
        if self._offer(self._decoded, None):
            self._finish(n)

    def _finish(self, n: int) -> None:
        """After the last frame went to the writer: wait for it, then end ``done``."""
        assert self._writer is not None
        self._writer.join()  # done with every batch, or stopped
        if not self._cancel.is_set() and not self.done.done:
            if len(self.frames) + len(self.lost) != n:
                raise RuntimeError(f"{self.det.name}: fly acquisition wrote {len(self.frames)} "
                                   f"of {n} frames and lost {len(self.lost)}")
            if not self.frames:
                raise RuntimeError(f"{self.det.name}: every one of the {n} frames of the fly "
                                   "acquisition was lost on the link; counters: "
                                   f"{self.det.firmware.report()}")
            if self.lost:
                log.warning("%s: the fly acquisition lost %d of %d frames on the link "
                            "(triggers %s); its file lists them", self.det.name,
                            len(self.lost), n, self.lost)
            self.done.set_finished()

    def _match(self, batch: list[Item], out: list[ReadoutFrame]
               ) -> tuple[list[Item], list[int]]:
        """The items of ``batch`` whose frames arrived (``out``) and their indices
        (``match_frames``); the others' frames were lost on the link: recorded (``lost``,
        the file) and their links freed."""
        if self._first_frame_number is None and out:  # (a readout taking any number)
            self._first_frame_number = out[0].frame_number - out[0].lost_before \
                - batch[0].index
        first = self._first_frame_number or 0
        arrived, indices, lost = match_frames(batch, out, first, self.det.name)
        if lost:
            triggers = [item.index for item in lost]
            self.lost += triggers
            self._release(lost)
            numbers = {(first + i) % FRAME_MOD for i in triggers}
            errors = [str(e) for e in self.det.firmware.readout.errors
                      if e.frame_number in numbers]
            log.warning("%s: the frames of fly triggers %s were lost on the link (%s); the "
                        "acquisition goes on", self.det.name, triggers,
                        "; ".join(errors) or "no packet arrived")
            self.det.store_fly_lost(triggers)
        return arrived, indices

    def _process(self, batch: list[Item]) -> None:
        """Run ``batch`` through the firmware; its frames join the held ones (decoded into
        the next slots of their batch array) or, stacked, go to the writer at once."""
        det = self.det
        links = [item.link for item in batch if item.link is not None]
        sent = [item.counts for item in batch]
        held = self._held
        slots = held.slots if held is not None else self._slots()
        first = len(held.out) if held is not None else 0
        if slots is None:
            out = det.firmware.acquire(sent, links=links if len(links) == len(batch) else None,
                                       allow_loss=True)
            decoded = 0
        else:  # the images decoded straight into the batch array's next slots
            readout = det.firmware.readout
            readout.decode_into(slots[first:])
            try:
                out = det.firmware.acquire(sent,
                                           links=links if len(links) == len(batch) else None,
                                           allow_loss=True)
                decoded = readout.decoded_into
            finally:
                readout.decode_into(None)
        batch, indices = self._match(batch, out)
        if not batch:  # (every frame of the batch lost: nothing to hold or write)
            return
        if slots is not None and decoded == len(out):
            self._image_shape = (int(slots.shape[1]), int(slots.shape[2]))
            if held is None:
                held = self._held = Held(slots, time.monotonic(), [], [], [])
            elif held.items:  # (its last frame is not the last any more: its link is free)
                self._release([held.items[-1]])
            held.items += batch
            held.indices += indices
            held.out += out
            self._release(batch[:-1])
            return
        # (the first batch, or the images changed shape: the batch stacked, after the
        # frames held before it)
        images = np.stack([frame.image for frame in out]) if out else \
            np.empty((0, 0, 0), np.uint16)
        self._image_shape = (int(images.shape[1]), int(images.shape[2])) if len(out) else None
        if held is not None:
            self._hand_over()
        self._offer(self._decoded, Decoded(batch, indices, out, images,
                                            self._last_counts(batch), None))
        self._release(batch)

    def _last_counts(self, batch: list[Item]) -> npt.NDArray[np.uint32]:
        """The counts of the batch's last frame as ``uint32`` (a copy when they are the
        words of a link stream, whose buffers the sensor draws into again once released:
        those words are ``uint32`` too, so the cast alone would not copy them)."""
        last = batch[-1]
        counts: npt.NDArray[np.uint32] = last.counts.astype(
            np.uint32, copy=last.words is not None)
        return counts

    def _release(self, items: list[Item]) -> None:
        """The items' link streams back to the spare ones (the firmware is done with them)."""
        if self._reuse_links:
            for item in items:
                if item.link is not None and item.words is not None:
                    self._spare_links.put((item.link, item.words))

    def _hand_over(self) -> None:
        """The held frames to the writer (their last frame's counts copied first)."""
        decoded = self._unhold()
        if decoded is not None:
            self._offer(self._decoded, decoded)

    def _unhold(self) -> Decoded | None:
        """The held frames as a batch for the writer (``None``: none held); their last
        frame's counts copied and its link freed (firmware stage)."""
        held, self._held = self._held, None
        if held is None or not held.items:
            return None
        images = held.slots[:len(held.out)]
        decoded = Decoded(held.items, held.indices, held.out, images,
                          self._last_counts(held.items), held.slots)
        self._release(held.items[-1:])
        return decoded

    def _held_when_due(self) -> Decoded | None:
        """For the writer with nothing to write: the held frames once they have waited
        ``HOLD_S`` and the firmware stage is free (both workers may be in long draws,
        with nobody else to hand them over); ``None`` otherwise."""
        with self._state:
            held = self._held
            if (self._firmware_busy or held is None or not self._decoded.empty()
                    or time.monotonic() < held.since + HOLD_S):
                return None  # (a batch in the queue is older: it goes first)
            self._firmware_busy = True
        try:
            return self._unhold()
        finally:
            with self._state:
                self._firmware_busy = False
                self._state.notify_all()

    def _slots(self) -> npt.NDArray[np.uint16] | None:
        """A ``(BATCH, rows, cols)`` array for the readout to decode the next batch into
        (a spare one when there is one), shaped as the last batch's images; ``None``
        before the first batch and for a firmware of several modules (which assembles
        its frames itself)."""
        shape = self._image_shape
        if shape is None or type(self.det.firmware) is not Firmware:
            return None
        while not self._spare_slots.empty():
            spare = self._spare_slots.get_nowait()
            if spare.shape[1:] == shape:
                return spare
        return np.empty((BATCH, *shape), np.uint16)

    def _write(self, _: None) -> None:
        """The writer thread: each decoded batch to the detector, in order."""
        try:
            self._write_all()
        finally:  # (the batch arrays it handed back go with the acquisition's end)
            while not self._spare_slots.empty():
                self._spare_slots.get_nowait()

    def _write_all(self) -> None:
        while not self._cancel.is_set():
            held = self._held
            wait = 0.1 if held is None else held.since + HOLD_S - time.monotonic()
            try:
                batch = self._decoded.get(timeout=min(max(wait, 0.001), 0.1))
            except queue.Empty:
                batch = self._held_when_due()
                if batch is None:
                    continue
            else:
                if batch is None:
                    return
            self._store(batch)

    def _store(self, batch: Decoded) -> None:
        """A decoded batch to the detector (recorded in ``frames``, then written)."""
        now = time.time()
        frames = [FlyFrame(
            index=index, time=item.clock, trigger_time=item.wall, done_time=now,
            angle=item.angle, roi_sum=int(frame.roi_sum), saturated=int(frame.saturated),
            frame_number=int(frame.frame_number),
            histogram=tuple(frame.histogram.tolist()),
            lost_before=int(frame.lost_before))
            for index, item, frame in zip(batch.indices, batch.items, batch.out,
                                          strict=True)]
        # Recorded before they are written: a reader bounds what it takes by the frames
        # in the file, so every frame it sees in the file has its record here.
        self.frames.extend(frames)
        self.det.store_fly_frames(batch.images, frames, batch.out[-1], batch.counts)
        if batch.slots is not None:  # (written: its images are in the file)
            self._spare_slots.put(batch.slots)
        self.max_lag = max([self.max_lag, *(now - item.wall for item in batch.items)])


__all__ = ["BATCH", "HOLD_S", "JOIN_WARN_S", "QUEUE_FRAMES", "WORKERS", "WRITE_BATCHES",
           "Counts", "FlyAcquisition", "FlyDetector", "FlyFrame", "FlyParameters",
           "PositionTrigger"]
