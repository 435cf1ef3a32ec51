"""A detector in a bluesky monitor stream: its frames are announced in that stream.

``bps.monitor(det)`` (``monitor_during_wrapper``, ``SupplementalData(monitors=[det])``)
makes the RunEngine emit a descriptor for the stream (``<name>_monitor`` as
``monitor_during_wrapper`` names it) and subscribe a callback to the device; each call of
the callback reads the device and emits an event. For signals that is all, but a
detector's frames are external data: the stream's descriptor declares the image key as
``STREAM:``, so each event's frame must be announced by a ``stream_resource`` (once per
file) and a ``stream_datum`` bound to that stream's descriptor. bluesky does not ask a
monitored device for those documents (it calls ``collect_asset_docs`` only while reading
into a bundled event).

:class:`MonitorStream` supplies them. When the detector is subscribed without an event
type from inside the RunEngine's ``monitor`` (found on the calling thread's stack, as
:mod:`devices.streams` finds the stream being read), it takes the stream's name, its
descriptor and the run's uid from the RunEngine's run bundler. Then, for every frame the
detector acquires while monitored, :meth:`MonitorStream.emit` writes nothing itself: the
detector files the frame into the stream's own file (``devices.frame_files``, a dataset
of its own, so the monitor stream and the primary stream each read back their own
frames), and this class completes the documents that announce it (``run_start``,
``descriptor``, the ``seq_nums`` of the event that follows), emits them and then calls
bluesky's callback, which emits the event with the detector's readings of that frame.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from bluesky.bundlers import RunBundler
from event_model import DocumentNames

__all__ = ["MonitorStream", "NotMonitoredError"]

Document = tuple[str, dict[str, Any]]


class NotMonitoredError(ValueError):
    """A detector was subscribed without an event type outside a RunEngine's monitor."""


class MonitorStream:
    """One bluesky monitor of a detector (see the module docstring).

    Parameters
    ----------
    bundler
        The RunEngine's run bundler that runs the monitor.
    stream
        The monitor stream's name.
    callback
        bluesky's callback: called once per frame, after its documents, it reads the
        detector and emits the event.
    """

    def __init__(self, bundler: RunBundler, stream: str, callback: Callable[..., Any]
                 ) -> None:
        self.bundler = bundler
        self.stream = stream
        self.callback = callback
        descriptor = bundler._descriptors[stream].descriptor_doc
        self.descriptor_uid: str = descriptor["uid"]
        self.run_start: str = str(bundler._run_start_uid)
        self._events = 0
        self._lock = threading.Lock()

    @classmethod
    def attach(cls, device: str, callback: Callable[..., Any]) -> MonitorStream:
        """The monitor the RunEngine is setting up for ``device`` on this thread's stack.

        Raises
        ------
        NotMonitoredError
            Not called from inside a RunEngine ``monitor`` message."""
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, RunBundler) and frame.f_code.co_name == "monitor":
                stream = frame.f_locals.get("name")
                if isinstance(stream, str) and stream in owner._descriptors:
                    return cls(owner, stream, callback)
            frame = frame.f_back
        raise NotMonitoredError(
            f"{device}: a detector is subscribed without an event type only by a bluesky "
            "RunEngine monitor (bps.monitor, monitor_during_wrapper), whose stream "
            "announces its frames; subscribe to a signal of it instead")

    def emit(self, docs: Sequence[Document]) -> None:
        """Emit the documents announcing one frame, then bluesky's event for it."""
        with self._lock:
            self._events += 1
            for name, doc in docs:
                doc = dict(doc)
                if name == "stream_resource":
                    doc["run_start"] = self.run_start
                elif name == "stream_datum":
                    doc["descriptor"] = self.descriptor_uid
                    doc["seq_nums"] = {"start": self._events, "stop": self._events + 1}
                self.bundler.emit_sync(DocumentNames(name), doc)
            self.callback()
