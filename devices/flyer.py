"""The firmware detector as a flyer for bluesky's ``bp.fly``.

``bp.fly([flyer])`` kicks the flyer off, waits for it to complete and collects it.
:class:`DetectorFlyer` is that flyer around a :class:`~devices.detector.FirmwareDetector`:

* ``kickoff()`` stages the detector if nothing else did, arms it with the flyer's
  :class:`~devices.fly.FlyParameters` and starts the acquisition;
* ``complete()`` is the detector's: finished when the last frame is in the file;
* ``describe_collect()`` gives the detector's fly data keys, the image external
  (``"STREAM:"``), and ``collect_asset_docs()`` announces the new frames as the detector
  does: one ``stream_resource`` per file and a ``stream_datum`` for the frames written
  since the last collect, which Tiled's writer turns into the stream's image array;
* ``collect_pages()`` gives the frames' readings (the firmware's reductions, trigger time
  and time stamps of each frame, the angle latched at its trigger); once every frame of
  a completed acquisition is collected, a detector the flyer staged is unstaged (its file
  closed).

bluesky takes ``stream_resource``/``stream_datum`` only for a declared stream
(``bps.declare_stream(flyer, name=..., collect=True)``), which ``bp.fly`` does not
declare: the flyer names its stream in ``collect_stream`` and the RunEngine preprocessor
:func:`dataflow.fly_streams.declare_flyer_streams` (installed by the catalogs'
``subscribe``) declares it before the kickoff. A kickoff in a run with no stream declared
for the flyer fails at once, saying so. Runs that ``bp.fly`` recorded before this, with
``resource``/``datum`` documents, stay readable (the catalog's writer converts them).

Paused, the acquisition goes on and the RunEngine resumes the plan where it was, replaying
nothing (:meth:`DetectorFlyer.pause`): each frame is recorded once. Suspended (a bluesky
suspender tripped: the beam was lost), the acquisition stops and the run fails at once,
its stop document saying why (``devices.suspension``): frames triggered after the
reading that tripped the suspender are dropped. Aborted or stopped
from the pause (Ctrl+C, then ``RE.abort()``), the run ends with the frames taken so far,
the acquisition stops and a detector the flyer staged is unstaged
(:meth:`DetectorFlyer.collect_asset_docs`).

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
from collections.abc import Iterator
from typing import Any

from bluesky.utils import NoReplayAllowed
from ophyd.status import DeviceStatus

from .detector import FirmwareDetector
from .detector_fly import wait_for_end
from .fly import FlyAcquisition, FlyParameters
from .streams import RunEndWatch, declared_streams, rewind_replays
from .suspension import SuspendedMidFly

log = logging.getLogger(__name__)

__all__ = ["CollectBeforeComplete", "DetectorFlyer", "SuspendedMidFly", "UndeclaredStream"]


class CollectBeforeComplete(RuntimeError):
    """A collect of a running fly acquisition before its ``complete()`` (module docstring)."""


class UndeclaredStream(RuntimeError):
    """A kickoff in a run that declared no stream for the flyer (module docstring)."""


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
        ``db[-1].table()``), declared before the kickoff by
        :func:`dataflow.fly_streams.declare_flyer_streams` (``collect_stream``).
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
        self._paged = 0
        self._own: FlyAcquisition | None = None  # the acquisition this flyer kicked off
        self._paused_fly: FlyAcquisition | None = None  # paused in (resume or end next)
        self._resumed_fly: FlyAcquisition | None = None  # resumed without a replay
        self._completing: FlyAcquisition | None = None  # complete() asked since kickoff
        self._run_end = RunEndWatch(self.name, self._run_ended)  # its kickoff's run

    @property
    def collect_stream(self) -> str:
        """The stream the frames go to, for ``dataflow.fly_streams`` to declare."""
        return self.stream

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
        """Stage the detector (unless staged), arm it and start the acquisition. In a
        RunEngine run that declared no stream for the flyer, :class:`UndeclaredStream`
        before anything starts."""
        self._paused_fly = self._resumed_fly = None
        self._check_declared()
        if self.det.fly is not None and self.det.fly.started and not self.det.fly.done.done:
            raise RuntimeError(f"{self.name}: kickoff() while a fly acquisition runs")
        if not self.det.files.staged:
            self.det.stage()
            self._staged_here = True
        self._paged = 0
        self.det.prepare(self.params).wait(10)
        status: DeviceStatus = self.det.kickoff()
        self._own = self.det.fly
        self._completing = None
        self._run_end.arm()
        return status

    def _check_declared(self) -> None:
        """:class:`UndeclaredStream` if the RunEngine run of this kickoff declared no
        stream for the flyer alone (outside a RunEngine, nothing to check). One declared
        with other devices is refused too, naming them: bluesky collects such a stream
        only from devices that write stream documents alone (``WritesStreamAssets``),
        and would fail at the collect, after the acquisition."""
        declared = declared_streams(self)
        if declared is None or frozenset([self]) in declared:
            return
        if declared:  # (only together with other devices)
            others = sorted({getattr(o, "name", repr(o)) for objs in declared for o in objs
                             if o is not self})
            raise UndeclaredStream(
                f"{self.name}: kickoff() in a run that declared its stream only together "
                f"with {', '.join(others)}: bluesky collects a stream of several devices "
                "from stream documents alone (WritesStreamAssets), and this flyer's frames "
                "come with event pages of their readings; declare its stream for it alone: "
                f"bps.declare_stream({self.name}, name={self.stream!r}, collect=True)")
        raise UndeclaredStream(
                f"{self.name}: kickoff() in a run that declared no stream for it: bluesky "
                "records its frames (stream_resource/stream_datum) only into a declared "
                "stream. Subscribe the RunEngine to a smeflow catalog, or add "
                "dataflow.fly_streams.install(RE), which declares it before bp.fly's "
                f"kickoff; or declare it in the plan: bps.declare_stream({self.name}, "
                f"name={self.stream!r}, collect=True)")

    def _run_ended(self) -> None:
        """The run of this flyer's kickoff ended: stop its acquisition if it still runs
        (nothing will collect it) and unstage a detector this flyer staged."""
        fly = self._own
        if fly is not None and fly is self.det.fly and not fly.done.done:
            log.warning("%s: the run ended while its fly acquisition ran (%d of %d "
                        "frames); the acquisition is stopped", self.name, len(fly.frames),
                        fly.params.frames)
            fly.cancel()
        self._own = self._paused_fly = self._resumed_fly = None
        self._unstage_detector()

    def complete(self) -> DeviceStatus:
        """The acquisition's status: finished with its last frame in the file."""
        status: DeviceStatus = self.det.complete()
        self._completing = self.det.fly
        return status

    def describe_collect(self) -> dict[str, Any]:
        """The detector's fly data keys, the image external (``"STREAM:"``)."""
        return dict(self.det.describe_collect())

    def collect_asset_docs(self, index: int | None = None
                           ) -> Iterator[tuple[str, dict[str, Any]]]:
        """``stream_resource`` (once per file) and ``stream_datum`` for the frames written
        since the last call: the detector's own (``index`` is not used: one device).
        After a pause the RunEngine resumed (the flyer said ``NoReplayAllowed``), the
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
        yield from self.det.collect_asset_docs()

    def collect_pages(self) -> Iterator[dict[str, Any]]:
        """The readings of the frames announced by the last ``collect_asset_docs()``;
        unstages a detector the flyer staged once a completed acquisition is collected."""
        for page in self.det.collect_pages():
            self._paged += len(next(iter(page["data"].values())))
            yield page
        fly = self.det.fly
        if fly is not None and fly.done.done and self._paged == len(fly.frames):
            self._unstage_detector()

    def pause(self) -> None:
        """The RunEngine pauses (bluesky's ``Pausable``). A suspension (a bluesky
        suspender tripped) stops a running acquisition and fails the run with
        :class:`~devices.suspension.SuspendedMidFly` (``devices.suspension``). An
        operator's pause does not stop it: the acquisition cannot be paused
        (its triggers go on) nor taken back and replayed from the last checkpoint: its
        frames are announced in the run as they come. So once this flyer kicked off in
        the run, ``NoReplayAllowed`` makes the RunEngine resume the plan where it was,
        replaying neither the stream's declaration nor the kickoff (which would record a
        second descriptor, or the frames twice); the next collect waits for the
        acquisition's end (:meth:`resume`). An acquisition ended and collected before the
        plan's last checkpoint is not replayed: the pause rewinds to that checkpoint as
        bluesky's pauses do (a move the pause stopped is made again, not left short)."""
        fly = self.det.fly
        self._resumed_fly = None  # (a new pause: resumed or ended, it decides anew)
        if fly is None or fly is not self._own:
            return
        self.det.stop_if_suspended(self.name)
        if not (fly.done.done and self._paged >= len(fly.frames)):
            self._paused_fly = fly
        elif rewind_replays(self) is False:
            return  # (ended and collected before the last checkpoint: rewind as for a step)
        raise NoReplayAllowed(f"{self.name}: a fly acquisition was kicked off in this run; "
                              "resuming continues it (its frames are announced as they "
                              "come)")

    def resume(self) -> None:
        """The RunEngine resumes (``Pausable``; not called when it aborts or stops
        instead): the next collect waits for the acquisition's end
        (:meth:`collect_asset_docs`)."""
        self._resumed_fly = self._paused_fly

    def stop(self, *, success: bool = False) -> None:
        """Stop a running acquisition (``bps.stop(flyer)``; see the module docstring)."""
        self._paused_fly = self._resumed_fly = None
        if self.det.fly is not None:
            self.det.fly.cancel()
