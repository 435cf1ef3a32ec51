"""The firmware detector as a flyer for bluesky's ``bp.fly``.

``bp.fly([flyer])`` kicks the flyer off, waits for it to complete and collects it without
declaring a stream first, which bluesky allows only for flyers that name their streams in
``describe_collect`` (``{stream: {data keys}}``) and announce external data with ``resource``
and ``datum`` documents (``stream_resource`` needs a declared stream). :class:`DetectorFlyer`
is that flyer around a :class:`~devices.detector.FirmwareDetector`:

* ``kickoff()`` stages the detector if nothing else did, arms it with the flyer's
  :class:`~devices.fly.FlyParameters` and starts the acquisition;
* ``complete()`` is the detector's: finished when the last frame is in the file;
* ``collect_asset_docs()`` announces the new frames: one ``resource`` per file (spec
  ``AD_HDF5_SWMR``, the dataset named in its ``resource_kwargs``) and one ``datum`` per
  frame (``point_number``), which Tiled's writer turns into the stream's image array;
* ``collect_pages()`` gives the frames' readings (the firmware's reductions, trigger time
  and time stamps of each frame, the angle latched at its trigger) and the datum ids of
  their images; once every frame of a completed acquisition is collected, a detector the
  flyer staged is unstaged (its file closed).

A plan that declares its stream (``bps.declare_stream(det, name=..., collect=True)``, as
:func:`plans.fly_tomo_scan` does) uses the detector itself, with ``stream_resource`` and
``stream_datum`` documents; this wrapper exists for plans, such as ``bp.fly``, that do not.
Paused, the acquisition goes on, and resuming records each of its frames once
(:meth:`DetectorFlyer.pause`); aborted or stopped from the pause (Ctrl+C, then
``RE.abort()``), the run ends with the frames taken so far, the acquisition stops and a
detector the flyer staged is unstaged (:meth:`DetectorFlyer.collect_asset_docs`).

A run that fails without a pause (an exception in the plan after ``kickoff``) does not
stop what it kicked off: bluesky ``stop()``s only what it ``set``. A run decorator closes
the run with the failure; a run left open is closed by the RunEngine after it collects
every flyer kicked off and not collected (logging what that collect raises). The flyer
watches for its run's ``stop`` document (:class:`devices.streams.RunEndWatch`, armed at
``kickoff``): when the run ends, an acquisition still running stops and a detector
the flyer staged is unstaged, free for the next plan. A collect of a running acquisition
whose ``complete()`` was never asked for is the RunEngine's clean-up of an open run
(bluesky's ``bp.fly`` and ``collect_while_completing`` call ``complete()`` first) or a
plan's partial collect, which the flyer does not support: it stops the acquisition,
unstages a detector it staged and raises :class:`CollectBeforeComplete`. A plan that
stages the flyer (``bpp.stage_decorator([flyer])``, as ophyd-async's fly plans stage
theirs) stops its acquisition when the flyer is unstaged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

from ophyd.status import DeviceStatus

from .detector import FirmwareDetector
from .detector_fly import wait_for_end
from .fly import FlyAcquisition, FlyParameters
from .streams import RunEndWatch

log = logging.getLogger(__name__)

__all__ = ["CollectBeforeComplete", "DetectorFlyer"]

SPEC = "AD_HDF5_SWMR"
"""The ``resource`` spec of the frame files (an HDF5 file written in SWMR mode)."""


class CollectBeforeComplete(RuntimeError):
    """A collect of a running fly acquisition before its ``complete()`` (module docstring)."""


class DetectorFlyer:
    """``det`` as a ``bp.fly`` flyer taking ``params`` per kickoff (module docstring).

    Parameters
    ----------
    det
        The firmware detector.
    params
        Frames, exposure and triggers of each fly acquisition.
    stream
        The event stream of the frames (default ``"primary"``: ``run.primary``,
        ``db[-1].table()``).
    """

    def __init__(self, det: FirmwareDetector, params: FlyParameters, *,
                 stream: str = "primary") -> None:
        if not isinstance(params, FlyParameters):
            raise TypeError(f"DetectorFlyer: params must be FlyParameters, got {params!r}")
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"DetectorFlyer: stream must be a non-empty name, got {stream!r}")
        self.det = det
        self.params = params
        self.stream = stream
        self.name = f"{det.name}_flyer"
        self.parent = None
        self._staged_here = False
        self._resources: dict[str, str] = {}  # file uri -> resource uid
        self._datum_ids: list[str] = []
        self._paged = 0
        self._own: FlyAcquisition | None = None  # the acquisition this flyer kicked off
        self._paused_fly: FlyAcquisition | None = None  # paused in (resume or end next)
        self._resumed_fly: FlyAcquisition | None = None  # resumed without a replay
        self._completing: FlyAcquisition | None = None  # complete() asked since kickoff
        self._run_end = RunEndWatch(self.name, self._run_ended)  # its kickoff's run

    def stage(self) -> list[Any]:
        """Nothing to load (``kickoff`` stages the detector unless it is staged): staging
        the flyer makes its ``unstage`` part of the plan's clean-up."""
        return [self]

    def unstage(self) -> list[Any]:
        """Stop this flyer's acquisition if it still runs and unstage a detector it
        staged (a plan's clean-up: ``bpp.stage_decorator([flyer])``)."""
        self._paused_fly = self._resumed_fly = None
        if self._own is not None and self._own is self.det.fly:
            self._own.cancel()
        self._unstage_detector()
        return [self]

    def close_run_files(self) -> list[str]:
        """Close the detector's files of the run that ends, before its stop document
        (``dataflow.run_files``; ``FirmwareDetector.close_run_files``)."""
        closed: list[str] = self.det.close_run_files()
        return closed

    def _unstage_detector(self) -> None:
        """Unstage the detector if this flyer staged it."""
        if self._staged_here:
            self._staged_here = False
            self.det.unstage()

    def kickoff(self) -> DeviceStatus:
        """Stage the detector (unless staged), arm it and start the acquisition; replayed
        after a pause of this flyer's acquisition (see :meth:`pause`), take it up again."""
        fly, self._paused_fly, self._resumed_fly = self._paused_fly, None, None
        if fly is not None and fly is self.det.fly:
            resumed = DeviceStatus(self)
            resumed.set_finished()
            return resumed
        if self.det.fly is not None and self.det.fly.started and not self.det.fly.done.done:
            raise RuntimeError(f"{self.name}: kickoff() while a fly acquisition runs")
        if not self.det.files.staged:
            self.det.stage()
            self._staged_here = True
        self._datum_ids = []
        self._paged = 0
        self.det.prepare(self.params).wait(10)
        status: DeviceStatus = self.det.kickoff()
        self._own = self.det.fly
        self._completing = None
        self._run_end.arm()
        return status

    def _run_ended(self) -> None:
        """The run of this flyer's kickoff ended: stop its acquisition if it still runs
        (nothing will collect it) and unstage a detector this flyer staged."""
        fly = self._own
        if fly is not None and fly is self.det.fly and not fly.done.done:
            log.warning("%s: the run ended while its fly acquisition ran (%d of %d "
                        "frames); the acquisition is stopped", self.name, len(fly.frames),
                        fly.params.frames)
            fly.cancel()
        self._paused_fly = self._resumed_fly = None
        self._unstage_detector()

    def complete(self) -> DeviceStatus:
        """The acquisition's status: finished with its last frame in the file."""
        status: DeviceStatus = self.det.complete()
        self._completing = self.det.fly
        return status

    def describe_collect(self) -> dict[str, dict[str, Any]]:
        """``{stream: data keys}``: the detector's fly keys, the image announced by datum."""
        keys = dict(self.det.describe_collect())
        image = dict(keys[self.det.image_key])
        image["external"] = "FILESTORE:"
        keys[self.det.image_key] = image
        return {self.stream: keys}

    def collect_asset_docs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``resource`` (once per file) and one ``datum`` per frame written since the last
        call (the detector's own announcement, restated for an undeclared stream). After a
        pause that the RunEngine resumed without replaying ``kickoff`` (a device of the
        plan said ``NoReplayAllowed``, as the detector does when the plan staged it), the
        plan's wait for ``complete`` was dropped: the first collect waits for the
        acquisition's end instead (``devices.detector_fly.wait_for_end``). Paused and
        never resumed, the RunEngine is ending the run (abort, stop, halt: it collects
        what a flyer has): the acquisition stops here, its frames so far collected, and
        a detector this flyer staged is unstaged by the following ``collect_pages``.
        Neither paused nor ``complete()`` asked for since its kickoff, a running
        acquisition is stopped, the detector unstaged if this flyer staged it, and
        :class:`CollectBeforeComplete` raised (module docstring)."""
        resumed, paused = self._resumed_fly, self._paused_fly
        self._resumed_fly = self._paused_fly = None
        fly = self.det.fly
        if resumed is not None and resumed is fly and not resumed.done.done:
            wait_for_end(resumed, self.name)
        elif paused is not None and paused is fly:
            paused.cancel()
        elif fly is not None and fly is self._own and fly is not self._completing \
                and not fly.done.done:
            fly.cancel()
            self._unstage_detector()
            raise CollectBeforeComplete(
                f"{self.name}: collect() before complete() of a running fly acquisition "
                f"({len(fly.frames)} of {fly.params.frames} frames taken); the acquisition "
                "is stopped. Partial collects are not supported: call complete() first "
                "(bp.fly and bps.collect_while_completing do). When the RunEngine collects "
                "a flyer of a failed plan, this is its clean-up.")
        for name, doc in list(self.det.collect_asset_docs()):
            if name == "stream_resource":
                uid = str(uuid.uuid4())
                self._resources[doc["uri"]] = uid
                path = doc["uri"].removeprefix("file://localhost")
                yield "resource", {
                    "uid": uid, "spec": SPEC, "root": "/", "resource_path": path.lstrip("/"),
                    "resource_kwargs": {"dataset": doc["parameters"]["dataset"]},
                    "path_semantics": "posix"}
            elif name == "stream_datum":
                resource = self._resources[self._uri_of(doc["stream_resource"])]
                for i in range(doc["indices"]["start"], doc["indices"]["stop"]):
                    datum_id = f"{resource}/{i}"
                    self._datum_ids.append(datum_id)
                    yield "datum", {"datum_id": datum_id, "resource": resource,
                                    "datum_kwargs": {"point_number": i}}

    def _uri_of(self, stream_resource_uid: str) -> str:
        """The file of the detector's ``stream_resource`` (its fly file)."""
        writer = self.det.files.fly
        if writer is None or writer.stream_resource["uid"] != stream_resource_uid:
            raise RuntimeError(f"{self.name}: frames announced for an unknown file")
        return str(writer.stream_resource["uri"])

    def collect_pages(self) -> Iterator[dict[str, Any]]:
        """The readings of the frames announced by the last ``collect_asset_docs()``,
        with their images' datum ids; unstages a detector the flyer staged once a
        completed acquisition is collected."""
        for page in self.det.collect_pages():
            n = len(next(iter(page["data"].values())))
            ids = self._datum_ids[self._paged:self._paged + n]
            self._paged += n
            stamps = next(iter(page["timestamps"].values()))
            yield {"data": {**page["data"], self.det.image_key: ids},
                   "timestamps": {**page["timestamps"], self.det.image_key: stamps}}
        fly = self.det.fly
        if fly is not None and fly.done.done and self._paged == len(fly.frames):
            self._unstage_detector()

    def pause(self) -> None:
        """The RunEngine pauses (bluesky's ``Pausable``). ``bp.fly`` has no checkpoint
        after its ``kickoff``: resumed, the RunEngine replays ``kickoff``, ``complete``
        and their waits. The acquisition cannot be paused (its triggers go on), so the
        replayed ``kickoff`` takes up the running (or finished, not yet collected) one
        instead of starting a second, and the replayed wait for ``complete`` holds the
        ``collect`` back until its last frame — every frame recorded once."""
        fly = self.det.fly
        self._resumed_fly = None  # (a new pause: resumed or ended, it decides anew)
        if fly is not None and fly is self._own and not (
                fly.done.done and self._paged >= len(fly.frames)):
            self._paused_fly = fly

    def resume(self) -> None:
        """The RunEngine resumes (``Pausable``; not called when it aborts or stops
        instead): a replayed ``kickoff`` takes the acquisition up, else the next collect
        waits for its end (:meth:`collect_asset_docs`)."""
        self._resumed_fly = self._paused_fly

    def stop(self, *, success: bool = False) -> None:
        """Stop a running acquisition (``bps.stop(flyer)``; see the module docstring)."""
        self._paused_fly = self._resumed_fly = None
        if self.det.fly is not None:
            self.det.fly.cancel()
