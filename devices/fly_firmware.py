"""The firmware stage and the writer of a fly acquisition (``devices.fly``): the frames
drawn, in trigger order, through the firmware and its readout (a batch at a time, by
whichever worker finds the stage free); decoded frames held until they fill a batch for
the writer; lost link frames matched and recorded; the writer thread that hands each
batch to the detector; the acquisition's end after its last frame.

:class:`FirmwareStage` is a part of ``devices.fly.FlyAcquisition``, which holds the state
(declared here as what this part uses) and builds on it, never the other way round.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import numpy as np
import numpy.typing as npt
from ophyd.status import DeviceStatus

from dataflow.packets import ReadoutFrame
from dataflow.readout import FRAME_MOD

from . import fly_limits as limits
from .firmware import Firmware
from .fly_params import Counts, FlyDetector, FlyFrame
from .fly_records import Decoded, Held, Item, match_frames
from .sensor_link import LinkStream

__all__ = ["FirmwareStage"]

log = logging.getLogger("devices.fly")


class FirmwareStage:
    """The firmware stage and the writer of ``devices.fly.FlyAcquisition`` (module
    docstring); the attributes are the acquisition's (set in its ``__init__``)."""

    det: FlyDetector
    done: DeviceStatus
    frames: list[FlyFrame]
    lost: list[int]
    max_lag: float
    progress: int
    cpu: dict[str, float]
    _cancel: threading.Event
    _state: threading.Condition
    _through: int
    _firmware_busy: bool
    _over: bool
    _first_frame_number: int | None
    _decoded: queue.Queue[Decoded | None]
    _writer: threading.Thread | None
    _reuse_links: bool
    _spare_links: queue.SimpleQueue[tuple[LinkStream, Counts]]
    _spare_slots: queue.SimpleQueue[npt.NDArray[np.uint16]]
    _image_shape: tuple[int, int] | None
    _held: Held | None
    _handed: int
    _block: int

    def _offer(self, to: queue.Queue[Any], item: Any) -> bool:
        """Put ``item`` into ``to`` when there is room; False if cancelled first."""
        while not self._cancel.is_set():
            try:
                to.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run_firmware(self, batch: list[Item], n: int) -> None:
        """The firmware stage (one worker at a time): ``batch`` through the firmware, the
        held frames to the writer when they fill a batch or are due, and after the last
        frame the end of the acquisition."""
        t0 = time.thread_time()
        if batch:
            self._process(batch)
        held = self._held
        last = self._through == n
        if held is not None and (last or self._room() <= 0
                                 or time.monotonic() >= held.since + limits.HOLD_S):
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
        self._handed += len(out)
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

    def _room(self) -> int:
        """Frames the held batch can still take (all of a batch when none are held): up
        to the batch's end, which starts where the frames handed to the writer end and
        ends on a block of the file (``limits.batch_end``)."""
        held = len(self._held.out) if self._held is not None else 0
        return limits.batch_end(self._handed, self._block) - self._handed - held

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
        self._handed += len(held.out)
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
                    or time.monotonic() < held.since + limits.HOLD_S):
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
        return np.empty((limits.BATCH, *shape), np.uint16)

    def _write(self, _: None) -> None:
        """The writer thread: each decoded batch to the detector, in order."""
        try:
            self._write_all()
        finally:  # (the batch arrays it handed back go with the acquisition's end)
            while not self._spare_slots.empty():
                self._spare_slots.get_nowait()

    def _write_all(self) -> None:
        while not self._cancel.is_set():
            held = self._held  # (while a worker runs the firmware, it hands them over)
            wait = 0.1 if held is None or self._firmware_busy \
                else held.since + limits.HOLD_S - time.monotonic()
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
