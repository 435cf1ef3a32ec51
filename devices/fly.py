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
at once. A batch ends on a block of the file (the frames one chunk holds,
``FlyDetector.fly_block``; ``devices.fly_limits.batch_end``): one that ended inside a
block left it to be written part-filled by the next collect, which makes the frames
visible, and again when it filled (a megapixel file's block is 16 MiB).
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
acquisition is built in parts, each its own module that this one builds on: the workers
(``devices.fly_workers``), the firmware stage and the writer (``devices.fly_firmware``),
the scene states taken on time (``devices.fly_states``), the records the threads pass on
(``devices.fly_records``), the pipeline's limits (``devices.fly_limits``, re-exported
here); the parameters and per-frame values are in ``devices.fly_params`` (re-exported
here).
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

from . import fly_limits as limits
from .firmware import Firmware
from .fly_limits import BATCH, HOLD_S, JOIN_WARN_S, QUEUE_FRAMES, WORKERS, WRITE_BATCHES
from .fly_params import (
    Counts,
    FlyDetector,
    FlyFrame,
    FlyParameters,
    PositionTrigger,
    TriggerTimes,
)
from .fly_records import Decoded, Held, Item
from .fly_states import OnTimeStates
from .fly_workers import Workers
from .sensor_link import LinkStream

log = logging.getLogger(__name__)


class FlyAcquisition(Workers):
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
        self._decoded: queue.Queue[Decoded | None] = queue.Queue(limits.WRITE_BATCHES)
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
        self._handed = 0
        """Frames handed to the writer (the file's frames once it has written them)."""
        self._block = 1
        """Frames per block of the fly file (``FlyDetector.fly_block``; ``start`` asks):
        the batches for the writer end on its blocks (``limits.batch_end``)."""

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

    def start(self) -> None:
        """Compute the trigger times (for position-compare triggers whose rotation has
        not started yet: once it starts) and start the workers."""
        self.det.prepare_scene()  # (the sample swapped since staging: not in frame 0's time)
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
        self._block = max(1, int(self.det.fly_block()))
        name = self.det.name
        self._writer = threading.Thread(target=self._guard, args=(self._write, None),
                                        name=f"{name}-fly-writer", daemon=True)
        self._working = limits.WORKERS
        self._threads = [
            *(threading.Thread(target=self._guard, args=(self._work, k),
                               name=f"{name}-fly-worker-{k}", daemon=True)
              for k in range(limits.WORKERS)),
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
            thread.join(limits.JOIN_WARN_S)
            while thread.is_alive():  # a long firmware batch (GHDL) finishes first
                log.warning("%s: waiting for %s to finish its batch", self.det.name,
                            thread.name)
                thread.join(limits.JOIN_WARN_S)
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


__all__ = ["BATCH", "HOLD_S", "JOIN_WARN_S", "QUEUE_FRAMES", "WORKERS", "WRITE_BATCHES",
           "Counts", "FlyAcquisition", "FlyDetector", "FlyFrame", "FlyParameters",
           "PositionTrigger"]
