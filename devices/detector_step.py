"""The step-scan side of the firmware detector: one exposure per ``trigger()``, the frame
announced by the event that reads it.

``FirmwareDetector`` (``devices.detector``) takes these methods from :class:`StepScans`:
``trigger()`` exposes a frame in a thread of its own (after an exposure still running),
``acquire_frame`` sends it through the firmware, re-taking a frame lost on the link up to
``RETAKES`` times, and keeps it until ``collect_asset_docs`` announces it in the file of
the event stream reading the detector (a frame no event announced is dropped at the next
trigger); a bluesky ``monitor`` of the detector gets every frame in its own stream
(``_to_monitors``). ``collect_asset_docs`` also announces the frames of a fly
acquisition (``devices.detector_fly``).

This module knows the detector only through :class:`StepHost` (what these methods use
of it); ``devices.detector`` builds on it, never the other way round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
from ophyd.status import DeviceStatus

from .firmware import Firmware, FirmwareError
from .fly import Counts, FlyAcquisition
from .frame_files import FrameFiles
from .modular import ModularFirmware
from .monitor_stream import MonitorStream
from .streams import described_shape, reading_stream

__all__ = ["READOUT_COUNTERS", "RETAKES", "StepHost", "StepScans"]

log = logging.getLogger(__name__)

READOUT_COUNTERS = ("good", "corrupt", "dropped", "framing_errors", "stray_words")
"""Readout counters stored in every frame file (since the firmware was configured)."""
RETAKES = 2
"""A step-scan frame lost on the link (corrupt or missing packet) is re-exposed this
many times before the trigger fails; every loss stays counted in the readout counters."""


class StepHost(Protocol):
    """What the step-scan methods use of the detector they are part of."""

    name: str
    image_key: str
    firmware: Firmware | ModularFirmware
    files: FrameFiles
    fly: FlyAcquisition | None
    time_scale: float
    exposure: Any
    last_counts: np.ndarray | None
    _pending: tuple[np.ndarray, float, float, tuple[float, ...]] | None
    _monitors: dict[Any, MonitorStream]
    _exposing: threading.Thread | None
    _lock: threading.Lock
    _announced: int

    def expose(self, t: float | None, exposure: float, out: Counts | None = None) -> Counts:
        """The sensor counts of an exposure of the scene at wall time ``t``."""

    def publish_frame(self, frame: Any, now: float) -> None:
        """Put a frame's reductions on the readback signals."""

    def sample_position(self, t: float | None) -> tuple[float, ...]:
        """The sample's stages at wall time ``t`` (what the frame files record)."""

    def _counters(self) -> dict[str, int]:
        """The readout counters now."""

    def _configure(self) -> None:
        """Load the configuration signals into the firmware and the sensor."""

    def refuse_while_flying(self, what: str) -> None:
        """Raise if a fly acquisition is running."""

    def await_resumed_fly(self) -> None:
        """Wait for the end of a fly acquisition a pause interrupted."""

    def acquire_frame(self, t: float | None = None, started: float | None = None
                      ) -> np.ndarray:
        """One exposure through the firmware (:meth:`StepScans.acquire_frame`)."""

    def _to_monitors(self, image: np.ndarray, *args: Any) -> None:
        """File a frame into each monitor stream (:meth:`StepScans._to_monitors`)."""

    def _discard_unannounced(self) -> None:
        """Drop an unannounced frame (:meth:`StepScans._discard_unannounced`)."""

    def _check_described_shape(self, stream: str, shape: tuple[int, ...]) -> None:
        """Refuse a frame its stream's descriptor does not describe
        (:meth:`StepScans._check_described_shape`)."""


class StepScans:
    """Step-scan methods of ``FirmwareDetector`` (see the module docstring)."""

    _pending: tuple[np.ndarray, float, float, tuple[float, ...]] | None
    """The frame of the last trigger, its exposure, the wall time that exposure started
    and the sample's position then, until an event announces it (``collect_asset_docs``)."""
    _exposing: threading.Thread | None
    """The thread of the last ``trigger()``'s exposure."""
    last_counts: np.ndarray | None
    """The sensor counts of the last exposure (what went over the link)."""

    def acquire_frame(self: StepHost, t: float | None = None,
                      started: float | None = None) -> np.ndarray:
        """One exposure through the firmware: the frame, published on the readback signals
        and kept until an event announces it (then it is written, ``collect_asset_docs``).
        ``started``: the wall time the exposure started (default: now; a re-take's is
        when it is re-taken). The sample's position at ``t`` (``sample_position``: the
        stages' readbacks when the flux was computed) goes into the file with the frame."""
        exposure = float(self.exposure.get())
        started = time.time() if started is None else started
        for attempt in range(1 + RETAKES):
            if attempt:
                started = time.time()
            counts = self.expose(t, exposure)
            seen = self.firmware.readout.corrupt
            frames = self.firmware.acquire([counts], allow_loss=True)
            if frames:
                break
            corrupt = self.firmware.readout.corrupt > seen
            errors = (self.firmware.readout.errors[-1].message if corrupt
                      else "no packet arrived")
            log.warning("%s: frame lost on the link (%s); %s", self.name,
                        errors, "re-taking it" if attempt < RETAKES else
                        "giving up")
        else:
            raise FirmwareError(f"{self.name}: {1 + RETAKES} exposures in a row were lost on "
                                f"the link ({errors}); counters: "
                                f"{ {k: self.firmware.report()[k] for k in READOUT_COUNTERS} }")
        frame = frames[0]
        self.last_counts = counts
        position = self.sample_position(t)
        with self._lock:
            self._pending = (frame.image, exposure, started, position)
        self.publish_frame(frame, time.time())
        self._to_monitors(frame.image, exposure, started, position)
        return frame.image

    def _to_monitors(self: StepHost, image: np.ndarray, exposure: float,
                     started: float | None = None,
                     position: tuple[float, ...] | None = None) -> None:
        """File a frame just acquired into each monitor stream and emit its event."""
        with self._lock:
            monitors = list(self._monitors.values())
        for monitor in monitors:
            with self._lock:
                docs = self.files.announce(monitor.stream, image, self._counters, exposure,
                                           started, position)
            monitor.emit(docs)

    def trigger(self: StepHost) -> DeviceStatus:
        """Expose one frame; the status finishes when the firmware has sent it.

        The frame is written when an event announces it (``collect_asset_docs``). A frame
        of an earlier trigger that no event announced (the plan was paused or suspended
        and rewound before reading it) is dropped: each event's frame is its own latest
        exposure. A detector that is not staged (in a ``SupplementalData`` baseline)
        loads its configuration into the firmware first and writes each frame to a file
        of its own. Refused (``RuntimeError``) while a fly acquisition runs."""
        self.refuse_while_flying("trigger()")
        status = DeviceStatus(self)
        exposure = float(self.exposure.get())
        previous = self._exposing
        # The exposure starts now, not when its thread first runs (which on a busy machine
        # can be milliseconds later): the frame is ready no earlier than one exposure after
        # the trigger, and the simulation's own time falls inside that exposure.
        start, wall = time.monotonic(), time.time()

        def work() -> None:
            nonlocal start, wall
            if previous is not None and previous.is_alive():
                previous.join()  # an interrupted exposure finishes (and writes) first
                start, wall = time.monotonic(), time.time()
            try:
                self._discard_unannounced()
                if not self.files.staged:
                    self._configure()
                self.acquire_frame(t=wall + exposure * self.time_scale / 2, started=wall)
                left = exposure * self.time_scale - (time.monotonic() - start)
                if left > 0:
                    time.sleep(left)
            except Exception as exc:
                status.set_exception(exc)
            else:
                status.set_finished()

        exposing = threading.Thread(target=work, name=f"{self.name}-exposure", daemon=True)
        self._exposing = exposing
        exposing.start()
        return status

    def _check_described_shape(self: StepHost, stream: str, shape: tuple[int, ...]) -> None:
        """Refuse a frame whose shape is not the one the stream's descriptor gives (bluesky
        describes the detector once per stream of a run; an unstaged detector takes a
        binning change between two reads): nothing is announced nor written."""
        described = described_shape(self, self.image_key)
        if described is not None and list(shape) != described:
            have = "×".join(map(str, shape))
            said = "×".join(map(str, described))
            raise ValueError(f"{self.name}: a {have} frame cannot be read into the "
                             f"{stream!r} stream, whose descriptor gives {self.image_key} "
                             f"{said} frames: the frame shape changed within the run "
                             f"({self.name}.binning); change it between runs, or stage "
                             f"{self.name}, which refuses the change")

    def _discard_unannounced(self: StepHost) -> None:
        """Drop the frame of an earlier trigger that no event announced (``trigger``)."""
        with self._lock:
            dropped, self._pending = self._pending, None
        if dropped is not None:
            log.info("%s: dropped a frame no event announced (the plan re-triggered after "
                     "a pause or suspension)", self.name)

    def collect_asset_docs(self: StepHost, index: int | None = None
                           ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``stream_resource`` (once per file) and ``stream_datum`` for new frames.

        In a step scan: the frame of the last trigger, written now into the file of the
        event stream the RunEngine is reading the detector into (``devices.streams``;
        ``"primary"`` outside a RunEngine). In a fly scan: the frames written since the
        last call, exactly those whose readings the following ``collect_pages()``
        returns (``index`` is not used: one device); after a pause in a fly, the first
        call waits for its end (``FlyScans.await_resumed_fly``)."""
        self.await_resumed_fly()
        with self._lock:
            pending, self._pending = self._pending, None
            if pending is not None:
                image, exposure, started, position = pending
                stream = reading_stream() or "primary"
                self._check_described_shape(stream, image.shape)
                docs = self.files.announce(stream, image, self._counters, exposure, started,
                                           position)
            elif self.files.fly is not None:
                docs = list(self.files.fly.asset_docs())
                self._announced = self.files.fly.n_frames
            else:
                docs = []
        yield from docs
