"""Live reduction: a bluesky callback that reduces every frame while the run is acquired.

:class:`LiveReducer` is a document callback (``reducer(name, doc)``) that needs nothing
but documents, so it can be subscribed to a RunEngine or fed from a 0MQ dispatcher. For
each raw run with a reduction (:func:`analysis.reduce.reduction_for`: tomography or
diffraction) it

1. follows ``stream_resource``/``stream_datum`` documents (a flyer's ``resource``/``datum``
   documents and datum ids in events, as ``bp.fly`` recorded them before
   ``dataflow.fly_streams``, brought to those as the catalog's writer does:
   :mod:`analysis.live_documents`) and reads each frame from the announced HDF5 file
   (SWMR read mode, :func:`dataflow.hdf5.open_frames`) as soon as both its
   ``stream_datum`` and its event (which carries the rotation angle of a fly scan) have
   arrived; the file is opened, read and closed at once under h5py's lock, so
   a reader never holds a raw file open when the detector closes it (:func:`read_frames`);
2. takes the run's pixel mask from its ``"mask"`` stream (:mod:`dataflow.pixel_mask`,
   published before the first frame) and ignores those pixels in every reduction;
3. reduces each frame at once with the functions of :mod:`analysis.reduce` — darks and flats are
   collected, each projection is normalised and back-projected into a running sum on the
   OpenCL device (slices are written at the raw run's stop); each diffraction frame
   becomes a 1D pattern event of the derived run immediately;
4. writes the derived run (see :mod:`analysis.reduce`): it starts with the raw run, so
   that creating it in the catalog (and, for diffraction, the integrator) is done
   before the first frame comes, and it ends at the raw run's
   stop. The raw files are not known yet when it starts and their SHA-256 only once they
   are closed: the start document has ``"inputs": []``, the stop document the complete
   list with digests;
5. measures its lag behind acquisition: per frame, the wall time at which the reduced
   result exists minus the time of the frame's event (the ``stream_datum`` arrival when
   no event comes); ``lag_max_s``/``lag_mean_s`` go into the derived stop document (and
   a per-pattern ``lag`` column for diffraction) and are attributes of the callback.

Never aborting the scan (bluesky aborts a run when a callback raises): ``__call__`` only
copies the document into a bounded inbox and returns; a worker thread does everything
else, and OpenCL contexts are created there. Every exception of the worker is caught,
logged and recorded: that derived run ends with ``exit_status="fail"`` and the reason
(an error before its first frame still produces a derived run, started and failed), and
the raw run continues untouched.

Inbox policy when full: only *frame documents* (``stream_datum``, ``event``,
``event_page``) count against ``capacity``; run structure documents (start,
descriptor, stream_resource, resource, datum, stop) and the pixel mask's documents are
always accepted, so a derived run always ends and never goes without its mask.
A frame document waits at most ``put_timeout`` seconds (holding the RunEngine's thread
that long); if the inbox is still full it is dropped — a reduction is lost, never raw
data, which the detector and the catalog writer handle on their own — and counted
(``dropped_documents``, and ``dropped_frames`` in the derived stop document). After a
drop the inbox sheds frame documents without waiting until it has drained to half its
capacity, so a worker that cannot keep up costs the acquisition at most one timeout.
A projection whose ``stream_datum`` was dropped is missing from the reconstruction
(which is then made from the remaining angles); one whose event was dropped takes its
angle from the start document's ``"angles"``. A frame announced by a ``datum`` is
named only by its event: a dropped event drops (and counts) its frame.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from event_model import unpack_event_page

from analysis.fbp import slices_per_group
from analysis.live_documents import RunDocuments
from analysis.live_inbox import DEFAULT_CAPACITY, DEFAULT_PUT_TIMEOUT, FRAME_DOCS, Inbox
from analysis.live_reduction import begin_derived, complete, record_failure, reduce_ready
from analysis.live_runs import Frame, LiveRunResult, RunState, read_frames
from analysis.reduce import (
    AzintParams,
    Callback,
    ReductionError,
    TomoAccumulator,
    TomoParams,
    TomoReferences,
    geometry_from,
    image_key,
    reduction_for,
)
from dataflow.pixel_mask import MASK_STREAM
from geometry import PoniGeometry

if TYPE_CHECKING:
    from analysis.azint import AzimuthalIntegrator
    from dataflow.catalog import RunCatalog

__all__ = ["DEFAULT_CAPACITY", "DEFAULT_PUT_TIMEOUT", "LiveReducer", "LiveRunResult",
           "read_frames"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 16
"""Frames the worker reduces in one call at most."""


class LiveReducer:
    """Reduce runs while they are acquired; see the module docstring.

    Parameters
    ----------
    callbacks
        Document callbacks that receive the derived runs (e.g. ``catalog.derived_writer()``
        and a provenance recorder), called from the worker thread in order.
    derived_dir
        Folder the derived HDF5 files go into as ``derived/<file>.h5`` (the catalog's
        ``raw_dir``, which Tiled can read).
    rows
        Tomography: detector rows to reconstruct (default all).
    bins, unit
        Diffraction: number of bins and radial unit (default, or ``None``:
        ``DEFAULT_BINS``, ``DEFAULT_UNIT``, as for ``reduce_run``).
    capacity, put_timeout
        Inbox bound (frame documents) and how long ``__call__`` may wait when it is full.
    max_batch
        Frames reduced together when the worker has fallen behind.
    device
        OpenCL device choice (contexts are created in the worker thread).
    """

    def __init__(self, callbacks: Sequence[Callback], derived_dir: str | Path, *,
                 rows: Sequence[int] | None = None, bins: int | None = None,
                 unit: str | None = None,
                 capacity: int = DEFAULT_CAPACITY, put_timeout: float = DEFAULT_PUT_TIMEOUT,
                 max_batch: int = DEFAULT_MAX_BATCH, device: str | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity {capacity}: must be >= 1")
        if not (put_timeout >= 0 and math.isfinite(put_timeout)):
            raise ValueError(f"put_timeout {put_timeout}: must be a finite number >= 0")
        if max_batch < 1:
            raise ValueError(f"max_batch {max_batch}: must be >= 1")
        self.callbacks = list(callbacks)
        self.derived_dir = Path(derived_dir).resolve()
        self.tomo = TomoParams(tuple(rows) if rows is not None else None, device=device)
        self.azint = AzintParams.given(bins, unit, device)
        self.put_timeout = float(put_timeout)
        self.max_batch = max_batch
        self.results: dict[str, LiveRunResult] = {}
        self.errors: list[str] = []
        self.dropped_documents = 0
        self._inbox = Inbox(capacity)
        self._runs: dict[str, RunState] = {}
        self._desc_run: dict[str, str] = {}
        self._resource_run: dict[str, str] = {}
        """``resource``/``stream_resource`` uid → run (a ``datum`` names only its resource)."""
        self._documents: dict[str, RunDocuments] = {}
        self._mask_descriptors: dict[str, str | None] = {}
        """Descriptor uid → run of the mask streams: their documents are never dropped."""
        self._last: LiveRunResult | None = None
        self._integrators: dict[PoniGeometry, AzimuthalIntegrator] = {}
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._work, name="smeflow-live-reducer",
                                        daemon=True)
        self._thread.start()

    @classmethod
    def for_catalog(cls, catalog: RunCatalog, *, batch_size: int | None = None,
                    extra_callbacks: Sequence[Callback] = (), **kwargs: Any) -> LiveReducer:
        """A reducer writing derived runs into ``catalog`` (its own ``TiledWriter`` with
        ``batch_size``, then ``extra_callbacks``), derived files under its ``raw_dir``."""
        return cls([catalog.derived_writer(batch_size), *extra_callbacks], catalog.raw_dir,
                   **kwargs)

    # -- the RunEngine's side ----------------------------------------------------------

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Queue a document (never raises; see the inbox policy in the module docstring)."""
        try:
            item = copy.deepcopy(doc)
            if name == "descriptor" and item.get("name") == MASK_STREAM:
                self._mask_descriptors[item["uid"]] = item.get("run_start")
            elif name == "stop":
                for uid in [d for d, r in self._mask_descriptors.items()
                            if r == item.get("run_start")]:
                    del self._mask_descriptors[uid]
            if name in FRAME_DOCS and item.get("descriptor") not in self._mask_descriptors:
                if not self._inbox.put(name, item, self.put_timeout):
                    with self._lock:
                        self.dropped_documents += 1
                    # only what the count needs: a dropped document must not stay alive
                    self._inbox.put_control("_dropped", (name, {
                        k: item[k] for k in ("descriptor", "indices", "seq_num")
                        if k in item}))
            else:
                self._inbox.put_control(name, item)
        except Exception as exc:  # pragma: no cover - deepcopy of a document
            log.exception("live reducer: cannot queue %s document", name)
            self.errors.append(f"queueing {name}: {type(exc).__name__}: {exc}")

    # -- results -----------------------------------------------------------------------

    @property
    def lag_max(self) -> float:
        """Largest per-frame lag of the last finished run, s (NaN before any)."""
        return self._last.lag_max if self._last else math.nan

    @property
    def lag_mean(self) -> float:
        """Mean per-frame lag of the last finished run, s (NaN before any)."""
        return self._last.lag_mean if self._last else math.nan

    def wait(self, raw_uid: str | None = None, timeout: float | None = 120.0) -> bool:
        """Wait until every document received so far (or raw run ``raw_uid``'s stop) has
        been handled; False on timeout."""
        if raw_uid is None:
            return self._inbox.join(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            while not (raw_uid in self.results and self.results[raw_uid].finished):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._done.wait(remaining)
        return True

    def warm_up(self, frame_shape: tuple[int, int], geometry: PoniGeometry | None = None,
                wait: bool = True) -> None:
        """Build the OpenCL kernels for ``frame_shape`` (and integrate with ``geometry``)
        in the worker thread now, so that the first frames of a run do not wait for them
        (about 2 s on PoCL). Failures are logged, not raised."""
        self._inbox.put_control("_warm", (tuple(frame_shape), geometry))
        if wait:
            self._inbox.join(None)

    def close(self, timeout: float | None = 120.0) -> None:
        """Handle what is queued, then stop the worker thread."""
        self._inbox.put_control("_close", None)
        self._thread.join(timeout)

    # -- the worker --------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            name, doc = self._inbox.get()
            try:
                if name == "_close":
                    return
                if name == "_warm":
                    self._warm(*doc)
                else:
                    self._dispatch(name, doc)
            except Exception as exc:  # the worker must survive everything
                log.exception("live reducer: %s document", name)
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            finally:
                self._inbox.task_done()

    def _dispatch(self, name: str, doc: Any) -> None:
        if name == "start":
            self._start(doc)
            return
        run = self._run_of(name, doc)
        if run is None:
            return
        if run.reduction is None or run.failed:
            if name == "stop":
                self._finish(run)
            return
        if name == "resource":  # (its datums name only it)
            self._resource_run[doc["uid"]] = run.start["uid"]
        try:
            if name == "_dropped":
                self._on_dropped(run, doc)
            else:
                by_datum = name in ("event", "event_page") and \
                    self._frames_by_datum(run, doc.get("descriptor", ""))
                for emitted, converted in self._documents[run.start["uid"]](name, doc,
                                                                            by_datum):
                    self._handle(run, emitted, converted)
            if run.ready and (len(run.ready) >= self.max_batch or self._inbox.empty()):
                reduce_ready(run, self.tomo, self.azint)
        except Exception as exc:
            self._fail(run, exc)
            if name == "stop":
                self._finish(run)

    def _handle(self, run: RunState, name: str, doc: dict[str, Any]) -> None:
        """One document as the catalog's writer sees it (``RunDocuments``)."""
        getattr(self, f"_on_{name}", self._ignore)(run, doc)
        if run.ready and (len(run.ready) >= self.max_batch or name == "stop"):
            reduce_ready(run, self.tomo, self.azint)
        if name == "stop":
            complete(run, doc, self.callbacks, self.tomo, self.derived_dir)
            self._finish(run)

    def _warm(self, shape: tuple[int, int], geometry: PoniGeometry | None) -> None:
        rows = list(range(shape[0])) if self.tomo.rows is None else \
            [r for r in self.tomo.rows if 0 <= r < shape[0]] or [0]
        # the kernels depend on the slices per group, not on the number of slices: warm
        # them on one group (a 1024 x 1024 frame's full volume would be 4 GB, twice)
        rows = rows[:slices_per_group(len(rows))]
        refs = TomoReferences(np.zeros(shape, np.float32), np.ones(shape, np.float32))
        acc = TomoAccumulator(refs, rows, floor=self.tomo.floor, device=self.tomo.device)
        for _ in range(2):  # the first add and the later ones run different kernels
            acc.add(np.ones((1, *shape), np.uint16), [0.0])
        acc.result()
        if geometry is not None:
            self._integrator(geometry).integrate1d(np.zeros(geometry.shape, np.uint16),
                                                   self.azint.bins, unit=self.azint.unit,
                                                   error_model=self.azint.error_model,
                                                   method=self.azint.method)

    def _integrator(self, geometry: PoniGeometry) -> AzimuthalIntegrator:
        integrator = self._integrators.get(geometry)
        if integrator is None:
            from analysis.azint import AzimuthalIntegrator

            integrator = AzimuthalIntegrator(geometry, device=self.azint.device)
            self._integrators[geometry] = integrator
        return integrator

    def _ignore(self, run: RunState, doc: Any) -> None:
        """Documents the reduction does not need (``RunDocuments`` keeps ``resource`` and
        ``datum`` documents and emits what they announce as ``stream_*`` documents)."""

    def _run_of(self, name: str, doc: Any) -> RunState | None:
        if name == "_dropped":
            inner_name, inner = doc
            return self._run_of(inner_name, inner)
        if name in ("descriptor", "stop", "stream_resource", "resource"):
            uid = doc.get("run_start")
        elif name in ("datum", "datum_page"):
            uid = self._resource_run.get(doc.get("resource", ""))
        else:
            uid = self._desc_run.get(doc.get("descriptor", ""))
        return self._runs.get(uid) if uid else None

    def _start(self, doc: dict[str, Any]) -> None:
        reduction = reduction_for(doc)
        result = LiveRunResult(doc["uid"], reduction)
        with self._lock:
            self.results[doc["uid"]] = result
        run = RunState(doc, reduction, result)
        self._runs[doc["uid"]] = run
        self._documents[doc["uid"]] = RunDocuments()
        if reduction is None:
            result.exit_status = "skipped"
            return
        try:
            if reduction == "azint1d":  # a bad geometry fails now, before the first frame
                geometry = geometry_from(doc)
                run.integrator = self._integrator(geometry)
                run.integrator.plan1d(self.azint.bins, unit=self.azint.unit,
                                      method=self.azint.method)
                # the pattern streams are declared with the mask (live_reduction's
                # _prepare_azint), else the first patterns: the radial range is that of
                # the pixels the run's mask leaves
                begin_derived(run, self.callbacks, self.azint.metadata(geometry))
            else:
                begin_derived(run, self.callbacks, self.tomo.metadata())
        except Exception as exc:
            self._fail(run, exc)

    def _on_descriptor(self, run: RunState, doc: dict[str, Any]) -> None:
        self._desc_run[doc["uid"]] = run.start["uid"]
        run.descriptors[doc["uid"]] = doc
        if run.role(doc["uid"]) is None:
            return
        run.image_keys[doc["uid"]] = image_key(
            doc.get("data_keys") or {}, run.start,
            where=f"run {run.start['uid']} stream {doc.get('name')!r}")

    def _on_stream_resource(self, run: RunState, doc: dict[str, Any]) -> None:
        run.resources[doc["uid"]] = doc
        self._resource_run[doc["uid"]] = run.start["uid"]
        if doc.get("uri") not in run.uris and doc.get("mimetype") == "application/x-hdf5":
            run.uris.append(str(doc["uri"]))

    def _on_stream_datum(self, run: RunState, doc: dict[str, Any]) -> None:
        desc = doc["descriptor"]
        if run.role(desc) is None:
            return
        resource = run.resources.get(doc["stream_resource"])
        if resource is None:
            raise ReductionError(f"stream_datum {doc['uid']}: unknown stream_resource "
                                 f"{doc['stream_resource']}")
        if resource.get("data_key") != run.image_keys.get(desc):
            return
        now = time.time()
        idx, seqs = doc["indices"], doc["seq_nums"]
        if seqs["stop"] - seqs["start"] != idx["stop"] - idx["start"]:
            raise ReductionError(f"stream_datum {doc['uid']}: {idx} frames for seq_nums "
                                 f"{seqs}: expected one frame per event")
        for k in range(idx["stop"] - idx["start"]):
            key = (desc, seqs["start"] + k)
            frame = Frame(desc, key[1], doc["stream_resource"], idx["start"] + k, now)
            frame.event = run.early_events.pop(key, None)
            if frame.event is not None:
                run.ready.append(frame)
            else:
                run.pending[key] = frame

    def _on_event(self, run: RunState, doc: dict[str, Any]) -> None:
        desc = doc["descriptor"]
        if run.role(desc) is None:
            return
        key = (desc, int(doc["seq_num"]))
        frame = run.pending.pop(key, None)
        if frame is None:
            run.early_events[key] = doc
            return
        frame.event = doc
        run.ready.append(frame)

    def _on_event_page(self, run: RunState, doc: dict[str, Any]) -> None:
        for event in unpack_event_page(doc):  # type: ignore[arg-type]
            self._on_event(run, dict(event))

    def _on_dropped(self, run: RunState, item: tuple[str, dict[str, Any]]) -> None:
        name, doc = item
        desc = doc.get("descriptor", "")
        if run.role(desc) is None:
            return
        if name == "stream_datum":
            run.result.dropped_frames += doc["indices"]["stop"] - doc["indices"]["start"]
        elif name in ("event", "event_page") and self._frames_by_datum(run, desc):
            seq = doc.get("seq_num")
            run.result.dropped_frames += len(seq) if isinstance(seq, list) else 1

    @staticmethod
    def _frames_by_datum(run: RunState, desc: str) -> bool:
        """Whether the frames of stream ``desc`` are named by datum ids in its events
        (``resource``/``datum``), not by ``stream_datum`` documents."""
        key = run.image_keys.get(desc)
        spec = run.descriptors.get(desc, {}).get("data_keys", {}).get(key, {}) if key else {}
        external = spec.get("external")
        return external is not None and not str(external).startswith("STREAM:")

    def _on_stop(self, run: RunState, doc: dict[str, Any]) -> None:
        # frames whose event never came (dropped, or a flyer without events)
        run.ready.extend(run.pending.values())
        run.pending.clear()

    def _fail(self, run: RunState, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        log.error("live reducer: run %s: %s", run.start.get("uid"), reason)
        self.errors.append(f"run {run.start.get('uid')}: {reason}")
        self.errors += record_failure(run, reason, self.callbacks)

    def _finish(self, run: RunState) -> None:
        uid = run.start["uid"]
        self._runs.pop(uid, None)
        for desc in [d for d, r in self._desc_run.items() if r == uid]:
            del self._desc_run[desc]
        for resource in [d for d, r in self._resource_run.items() if r == uid]:
            del self._resource_run[resource]
        self._documents.pop(uid, None)
        with self._done:
            run.result.finished = True
            self._last = run.result
            self._done.notify_all()
