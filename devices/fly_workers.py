"""The workers of a fly acquisition (``devices.fly``): ``limits.WORKERS`` threads, each
taking the next trigger that has passed — its scene state taken on time
(``devices.fly_states``), the flux image drawn into the worker's own buffer, the counts
into a link stream's words — or, when frames wait for it in order and nobody runs it,
the firmware stage (``devices.fly_firmware``). Position-compare triggers armed before
their rotation are computed here once it starts.

:class:`Workers` is a part of ``devices.fly.FlyAcquisition``, which holds the state
(declared here as what this part uses) and builds on it, never the other way round.
"""

from __future__ import annotations

import queue
import time

from . import fly_limits as limits
from .fly_firmware import FirmwareStage
from .fly_params import Counts, FlyParameters, TriggerTimes
from .fly_records import Item
from .fly_states import OnTimeStates
from .samples import FluxBuffer, SceneState
from .sensor_link import LinkStream, frame_link

__all__ = ["Workers"]


class Workers(FirmwareStage):
    """The worker threads of ``devices.fly.FlyAcquisition`` (module docstring); the
    attributes are the acquisition's (set in its ``__init__``)."""

    params: FlyParameters
    exposure: float
    armed: float
    times: TriggerTimes | None
    _states: OnTimeStates | None
    _awaiting: bool
    _noise: int
    _next: int
    _ready: dict[int, Item]
    _working: int

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
                drawable = self._next < n and self._next - self._through < limits.QUEUE_FRAMES
                due = drawable and times[self._next][0] <= now
                held = self._held
                hold_left = (limits.HOLD_S if held is None
                             else held.since + limits.HOLD_S - time.monotonic())
                if not self._firmware_busy:
                    ready = 0
                    while self._through + ready in self._ready and ready < limits.BATCH:
                        ready += 1
                    # the firmware first when frames wait for it in order (drawing while
                    # they wait could leave them there: both workers in long draws), when
                    # the held frames are due, and for the acquisition's end
                    if ready or hold_left <= 0 or (self._through == n and self._next == n):
                        room = self._room()
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
