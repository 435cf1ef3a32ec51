"""``ProvenanceRecorder``: the bluesky callback that records each run's provenance.

It collects the ``stream_resource`` documents of a run (every file the run announced;
``resource`` documents, ``bp.fly``'s older form, as the catalog's writer converts them)
and, once the run has stopped and its files are closed, builds the record
(``record.build_record``), signs it when given a key, and stores both copies: the
``<uid>.json`` file first, so the record survives an unreachable catalog, then the
catalog metadata. Subscribe it *after* the catalog writer: RunEngine callbacks run in
the order they were subscribed, so the run and its stop document are in the catalog
when the recorder attaches the record.

Failures while recording (unwritable folder, catalog unreachable) are logged and kept
in ``ProvenanceRecorder.failures``; they never raise into the RunEngine, since an
exception in a callback would abort the scan. A record that reached the catalog but not
its file (or the reverse) says so under ``"provenance_errors"`` in the run metadata.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..event_pages import ANNOUNCING, PageNormalizer
from ..hdf5 import failed_write, open_in_process
from .errors import ProvenanceError
from .keys import load_private_key, register_signing_key, sign_record
from .ledger import LedgerWriter
from .record import (
    RECORD_DIR_NAME,
    attach_record,
    build_record,
    sidecar_state,
    uri_to_path,
    write_record_file,
)

log = logging.getLogger(__name__)

SIDECAR_GRACE = 1.0
"""Seconds, plus the time to hash the file at ``HASH_RATE``, that a closed file may
wait for its writer's sidecar before the recorder hashes it itself."""
HASH_RATE = 100e6
"""Bytes per second a writer is assumed to hash at least (a slow, busy machine)."""


def _sidecar_grace(path: Path) -> float:
    """How long after its last handle closed a file's sidecar may still be coming."""
    try:
        return SIDECAR_GRACE + path.stat().st_size / HASH_RATE
    except OSError:
        return SIDECAR_GRACE


@dataclass
class RecorderFailure:
    """One thing the recorder could not do for a run (logged, never raised)."""

    run_uid: str | None
    stage: str
    message: str


@dataclass
class _OpenRun:
    """A run between its start and stop documents: the files it announced and the
    ledger of its documents (``ledger.LedgerWriter``; ``None`` when it could not be
    opened, a failure that the record then lists)."""

    start: dict[str, Any]
    ledger: LedgerWriter | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)
    descriptors: list[dict[str, Any]] = field(default_factory=list)
    normalizer: PageNormalizer | None = None
    """The catalog writer's conversion of ``resource``/``datum`` documents, from the first
    one on (its ``stream_resource`` documents go to ``resources``)."""

    def convert(self, name: str, doc: Mapping[str, Any]) -> None:
        """Show ``doc`` to the conversion of the older frame announcements (started by
        the first ``resource``/``datum``, which is shown the run so far)."""
        if self.normalizer is None:
            if name not in ANNOUNCING:
                return
            self.normalizer = PageNormalizer()
            self.normalizer.subscribe(self._converted, "stream_resource")
            for head in (("start", self.start), *(("descriptor", d) for d in self.descriptors)):
                self.normalizer(*head)
        try:
            self.normalizer(name, doc)
        except RuntimeError:  # at the stop: an event whose datum never came (no file)
            if name != "stop":
                raise

    def _converted(self, name: str, doc: dict[str, Any]) -> None:
        self.resources.append(doc)


class ProvenanceRecorder:
    """Bluesky callback writing each run's provenance record once the run's files are closed.

    The digests are those of the closed files. ``bluesky.plans.count`` and most plans
    unstage the detectors, which closes their files, *after* the stop document, so at
    the stop document a file is usually still open. Then the recorder finishes the
    record in a (non-daemon) thread that waits up to ``close_timeout`` seconds until no
    HDF5 handle in this process has any of the run's files open
    (``dataflow.hdf5.open_in_process``) and each file has its writer's ``.sha256``
    sidecar, or has had neither a handle nor a sidecar for a grace period (the time a
    writer needs to hash the file: ``FrameWriter`` writes no sidecar when another
    handle kept the file open past its close, and other writers write none); then it
    hashes what is there. A file its writer could not complete (a full disk:
    ``dataflow.hdf5.failed_write``) is hashed as found as soon as it is let go, and its
    entry in the record says so. ``wait()`` blocks until pending records are done
    (tests, end of a session).

    Parameters
    ----------
    client
        Runs by uid (``client[uid]``: a Tiled container of runs, ``Catalog.every_run``),
        or ``None`` to write record files only. Subscribe the recorder *after* the catalog writer.
    record_dir
        Folder of the ``<uid>.json`` records (``<raw_dir>/provenance`` for a catalog).
    signing_key
        An Ed25519 private key or the path of one (``generate_key``); loaded now, so a
        bad key fails before the scan, not at its end. ``None``: unsigned records.
    instrument
        Beamline name stored in every record.
    close_timeout
        Seconds to wait after the stop document for the run's files to be closed.
    keep
        How many recent records ``records`` keeps (for inspection and tests).
    """

    def __init__(self, client: Any, record_dir: str | os.PathLike[str], *,
                 signing_key: Ed25519PrivateKey | str | os.PathLike[str] | None = None,
                 instrument: str | None = None, close_timeout: float = 60.0,
                 keep: int = 32) -> None:
        if close_timeout < 0:
            raise ValueError(f"close_timeout {close_timeout}: must be >= 0 seconds")
        self.client = client
        self.record_dir = Path(record_dir)
        self.signing_key = signing_key if isinstance(signing_key, Ed25519PrivateKey | None) \
            else load_private_key(signing_key)
        if self.signing_key is not None:  # records here must be signed from now on
            register_signing_key(self.record_dir, self.signing_key)
        self.instrument = instrument
        self.close_timeout = close_timeout
        self.records: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """The latest records by run uid (at most ``keep``)."""
        self.failures: list[RecorderFailure] = []
        """Everything that went wrong while recording, oldest first."""
        self._keep = max(1, keep)
        self._open: dict[str, _OpenRun] = {}
        self._owner: dict[str, str] = {}
        self._last_uid: str | None = None
        self._lock = threading.Lock()
        self._pending: list[threading.Thread] = []

    @classmethod
    def for_catalog(cls, catalog: Any, **kwargs: Any) -> ProvenanceRecorder:
        """A recorder for a ``dataflow.catalog.Catalog``: its raw and derived runs
        (``every_run``), ``raw_dir/provenance``."""
        return cls(catalog.every_run, Path(catalog.raw_dir) / RECORD_DIR_NAME, **kwargs)

    def subscribe(self, RE: Any) -> int:
        """Subscribe to a RunEngine (after the catalog writer); returns the token."""
        token: int = RE.subscribe(self)
        return token

    def __call__(self, name: str, doc: Mapping[str, Any]) -> None:
        """Handle one document; never raises."""
        uid: str | None = None
        try:
            if name == "start":
                uid = str(doc["uid"])
                self._open[uid] = _OpenRun(dict(doc))
                self._last_uid = uid
                try:
                    self._open[uid].ledger = LedgerWriter(self.record_dir, uid)
                except OSError as exc:
                    self._fail(uid, "opening the document ledger", exc)
            else:
                uid = self._run_of(doc)
            run = self._open.get(uid) if uid is not None else None
            if run is None:
                return
            if name in {"descriptor", "stream_resource", "resource"} and "uid" in doc:
                self._owner[str(doc["uid"])] = str(uid)
            if run.ledger is not None:
                run.ledger.add(name, doc)
            if name == "stream_resource":
                run.resources.append(dict(doc))
            elif name != "start":
                if name == "descriptor":
                    run.descriptors.append(dict(doc))
                try:
                    run.convert(name, doc)
                except Exception as exc:  # (the record then lacks that file: verify says so)
                    self._fail(uid, f"converting the frame announcements at the {name} "
                                    "document", exc)
            if name == "stop":
                del self._open[str(uid)]
                for key in [k for k, v in self._owner.items() if v == uid]:
                    del self._owner[key]
                self._on_stop(run, dict(doc))
        except Exception as exc:  # a callback must never abort the scan
            self._fail(uid, f"handling the {name} document", exc)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every pending record is written; False if ``timeout`` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            threads = list(self._pending)
        for thread in threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
        with self._lock:
            self._pending = [t for t in self._pending if t.is_alive()]
            return not self._pending

    def _run_of(self, doc: Mapping[str, Any]) -> str | None:
        uid = doc.get("run_start")
        if isinstance(uid, str) and uid in self._open:
            return uid
        for key in ("descriptor", "stream_resource", "resource"):
            ref = doc.get(key)
            if isinstance(ref, str) and ref in self._owner:
                return self._owner[ref]
        return self._last_uid if self._last_uid in self._open else None

    def _fail(self, uid: str | None, stage: str, exc: BaseException | str) -> str:
        message = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.failures.append(RecorderFailure(uid, stage, message))
        log.warning("provenance of run %s: %s failed: %s", uid, stage, message)
        return f"{stage}: {message}"

    @staticmethod
    def _unclosed(run: _OpenRun, quiet_since: dict[Path, float]) -> list[Path]:
        """Files still open in this process, or whose writer may still write a sidecar.

        ``quiet_since`` keeps, per file, when it was first seen with neither an HDF5
        handle in this process nor a sidecar; such a file counts as closed once that
        lasted ``_sidecar_grace`` seconds.
        """
        out = []
        now = time.monotonic()
        for resource in run.resources:
            try:
                path = uri_to_path(str(resource.get("uri")))
            except ProvenanceError:
                continue
            if not path.exists():
                continue
            if open_in_process(path):
                quiet_since.pop(path, None)
                out.append(path)
            elif failed_write(path) is not None:  # let go as found: no sidecar is coming
                continue
            elif sidecar_state(path) == "none":
                quiet = now - quiet_since.setdefault(path, now)
                if quiet < _sidecar_grace(path):
                    out.append(path)
        return out

    def _on_stop(self, run: _OpenRun, stop: dict[str, Any]) -> None:
        if not self._unclosed(run, {}):
            self._finish(run, stop, [])
            return
        uid = str(run.start["uid"])
        thread = threading.Thread(target=self._finish_when_closed, args=(run, stop),
                                  name=f"smeflow-provenance-{uid[:8]}")
        with self._lock:
            self._pending = [t for t in self._pending if t.is_alive()]
            self._pending.append(thread)
        thread.start()

    def _finish_when_closed(self, run: _OpenRun, stop: dict[str, Any]) -> None:
        uid = str(run.start["uid"])
        try:
            deadline = time.monotonic() + self.close_timeout
            delay = 0.005
            quiet_since: dict[Path, float] = {}
            while (unclosed := self._unclosed(run, quiet_since)) and \
                    time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(0.2, delay * 2)
            errors = []
            if unclosed:
                names = ", ".join(str(p) for p in unclosed)
                errors.append(self._fail(uid, "waiting for the files to be closed",
                                         f"no digest from the writer within "
                                         f"{self.close_timeout:g} s for {names}; hashed "
                                         "the files as found"))
            self._finish(run, stop, errors)
        except Exception as exc:
            self._fail(uid, "building the record", exc)

    def _finish(self, run: _OpenRun, stop: Mapping[str, Any], errors: list[str]) -> None:
        uid = str(run.start["uid"])
        documents = None
        if run.ledger is not None:
            try:
                documents = run.ledger.close()
            except OSError as exc:
                errors.append(self._fail(uid, "writing the document ledger", exc))
        record = build_record(run.start, run.resources, stop, instrument=self.instrument,
                              documents=documents)
        if self.signing_key is not None:
            record = sign_record(record, self.signing_key)
        with self._lock:
            self.records[uid] = record
            while len(self.records) > self._keep:
                self.records.popitem(last=False)
        try:
            write_record_file(self.record_dir, record)
        except Exception as exc:
            errors.append(self._fail(uid, f"writing the record file in {self.record_dir}",
                                     exc))
        if self.client is None:
            return
        try:
            attach_record(self.client[uid], record, errors)
        except Exception as exc:
            self._fail(uid, "storing the record in the catalog", exc)

