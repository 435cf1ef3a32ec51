"""Verifying a run against its provenance record: ``verify_run`` and its report.

``verify_run`` re-hashes every file the record names, compares the record's file list
with the files the catalog lists for the run (``run_files``), checks every frame the
catalog announces on disk (``dataflow.disk_check``: present, complete, matching its
CRC-32) and the events against the stop document, the document ledger's chain and the
catalog against it, the record's signature (against trusted keys when given) and, for
derived runs, the inputs' digests.
The record is taken from the run's catalog metadata, else from its ``<uid>.json`` copy;
when both exist they must agree. ``smeflow catalog verify UID`` prints one line per
check (``VerificationReport.lines``).

A run without a record (written without the provenance recorder) is not a failed run but
an unverifiable one (``Outcome.UNVERIFIABLE``): what needs no record (its frames on disk,
its events) is still checked, and any of those failing makes it ``FAILED``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sme.progress import progress

from ..disk_check import check_run_on_disk
from ..hdf5 import file_sha256
from ..killed_file import open_for_write
from ..relocate import previous_roots
from .errors import ProvenanceError
from .keys import (
    ALGORITHM,
    canonical_json,
    check_signature,
    key_id,
    public_key_bytes,
    registered_signing_keys,
)
from .ledger import LEDGER_SUFFIX, compare_with_catalog, read_ledger
from .record import (
    ERRORS_KEY,
    METADATA_KEY,
    RECORD_DIR_NAME,
    load_record_file,
    plain,
    record_path,
    uri_to_path,
)


class Status(enum.StrEnum):
    """Outcome of one check; ``ok`` below says which count as passing."""

    OK = "OK"
    UNSIGNED = "UNSIGNED"
    CHANGED = "CHANGED"
    MISSING = "MISSING"
    OPEN = "OPEN"
    ADDED = "ADDED"
    REMOVED = "REMOVED"
    BAD_SIGNATURE = "BAD SIGNATURE"
    UNTRUSTED = "UNTRUSTED"
    NO_RECORD = "NO RECORD"
    ERROR = "ERROR"


class Outcome(enum.StrEnum):
    """What a report says of the run as a whole (``smeflow catalog verify``'s summary
    word; its exit status is ``EXIT_STATUS``)."""

    VERIFIED = "VERIFIED"
    """A record, and every check passed."""
    FAILED = "FAILED"
    """At least one check failed (a changed or missing file, a bad signature, ...)."""
    UNVERIFIABLE = "UNVERIFIABLE"
    """No record to check the files, documents and signature against; what needs none
    (frames on disk, events) passed."""


EXIT_STATUS = {Outcome.VERIFIED: 0, Outcome.FAILED: 1, Outcome.UNVERIFIABLE: 3}
"""``smeflow catalog verify``'s exit status per outcome (1 also for an error such as an
unknown run, 2 for a malformed command line)."""


@dataclass(frozen=True)
class Check:
    """One verified item: a file, an input, the record, or the signature."""

    status: Status
    kind: str
    subject: str
    detail: str = ""
    ok: bool = False

    def line(self) -> str:
        """``STATUS  kind  subject  detail`` as ``smeflow catalog verify`` prints it."""
        return f"{self.status.value:<13} {self.kind:<9} {self.subject}" + \
            (f"  {self.detail}" if self.detail else "")


@dataclass
class VerificationReport:
    """Everything ``verify_run`` checked; ``ok`` only when every check passed (a run
    without a record is never ``ok``, nor failed: ``unverifiable``)."""

    run_uid: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when there is at least one check and none failed."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def unverifiable(self) -> bool:
        """True when the run has no provenance record to verify it against."""
        return any(c.status is Status.NO_RECORD for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        """The checks that did not pass (a missing record is not one of them)."""
        return [c for c in self.checks if not c.ok and c.status is not Status.NO_RECORD]

    @property
    def outcome(self) -> Outcome:
        """``FAILED`` when a check failed, else ``VERIFIED`` when every check passed,
        else (no record, or nothing checked) ``UNVERIFIABLE``."""
        if self.failures:
            return Outcome.FAILED
        return Outcome.VERIFIED if self.ok else Outcome.UNVERIFIABLE

    def add(self, status: Status, kind: str, subject: str, detail: str = "",
            ok: bool | None = None) -> None:
        """Append a check (``ok`` defaults to ``status == OK``)."""
        self.checks.append(Check(status, kind, subject, detail,
                                 status is Status.OK if ok is None else ok))

    def lines(self) -> list[str]:
        """One line per check, then notes, then a summary line."""
        out = [c.line() for c in self.checks] + [f"NOTE          {n}" for n in self.notes]
        bad, n, outcome = len(self.failures), len(self.checks), self.outcome
        if outcome is Outcome.VERIFIED:
            summary = f"all {n} checks OK"
        elif outcome is Outcome.FAILED:
            summary = f"{bad} of {n} checks FAILED" + \
                ("; no provenance record" if self.unverifiable else "")
        else:
            others = n - sum(c.status is Status.NO_RECORD for c in self.checks)
            summary = ("UNVERIFIABLE: no provenance record (files, documents and signature "
                       f"not checked); the other {others} checks OK")
        out.append(f"run {self.run_uid}: {summary}")
        return out


def run_files(run_node: Any, *, local_only: bool = False) -> dict[Path, list[str]]:
    """The external files the catalog lists for a run: local path → data keys.

    Works on any Tiled client node of a bluesky run (embedded or over HTTP): streams'
    ``data_keys`` marked external, and the assets of those arrays' data sources. An
    asset that is not a local file raises ``ProvenanceError``, or is left out with
    ``local_only`` (a repair closes the local files it can reach).
    """
    out: dict[Path, list[str]] = {}
    for stream_name in run_node:
        stream = run_node[stream_name]
        data_keys = (stream.metadata or {}).get("data_keys") or {}
        for key, desc in data_keys.items():
            if not isinstance(desc, Mapping) or "external" not in desc:
                continue
            sources = stream[key].include_data_sources().data_sources() or []
            for source in sources:
                for asset in source.assets:
                    try:
                        path = uri_to_path(asset.data_uri)
                    except ProvenanceError:
                        if local_only:
                            continue
                        raise
                    out.setdefault(path, []).append(str(key))
    return out


def _short(digest: Any) -> str:
    return f"{str(digest)[:16]}…" if digest else "(none)"


def _relocated(path: Path, roots: tuple[Path, Sequence[Path]] | None) -> Path:
    """``path`` as recorded, or — when the catalog folder was moved or copied since
    (``dataflow.relocate``) — the same file under the folder's current root (a copy
    verifies its own files, even while the original is still there)."""
    if roots is None:
        return path
    here, previous = roots
    for old in previous:
        if path.is_relative_to(old):
            return here / path.relative_to(old)
    return path


def _check_file(report: VerificationReport, kind: str, entry: Mapping[str, Any],
                cache: dict[Path, str],
                roots: tuple[Path, Sequence[Path]] | None = None) -> Path | None:
    uri = entry.get("uri")
    label = str(entry.get("data_key") or "") if kind == "file" else ""
    try:
        path = _relocated(uri_to_path(str(uri)), roots)
    except ProvenanceError as exc:
        report.add(Status.ERROR, kind, str(uri), str(exc))
        return None
    subject = f"{path}" + (f" ({label})" if label else "")
    recorded = entry.get("sha256")
    if not isinstance(recorded, str):
        why = entry.get("error") or "no digest recorded"
        report.add(Status.MISSING, kind, subject, f"not verifiable: {why}")
        return path
    if not path.exists():  # anything else in its place is refused by file_sha256
        report.add(Status.MISSING, kind, subject, "file not found")
        return path
    size = entry.get("size")
    try:
        now_size = path.stat().st_size
        if isinstance(size, int) and now_size != size:
            report.add(Status.CHANGED, kind, subject,
                       f"size recorded {size} bytes, now {now_size}")
            return path
        if path not in cache:
            cache[path] = file_sha256(path)
    except OSError as exc:
        report.add(Status.ERROR, kind, subject, f"cannot read: {exc.strerror or exc}")
        return path
    if cache[path] != recorded.lower():
        report.add(Status.CHANGED, kind, subject,
                   f"sha256 recorded {_short(recorded)}, now {_short(cache[path])}")
    else:
        report.add(Status.OK, kind, subject, f"sha256 {_short(recorded)}")
    return path


def _find_record(run_node: Any, uid: str, record_dir: Path | None,
                 report: VerificationReport) -> dict[str, Any] | None:
    md = run_node.metadata or {}
    in_catalog = md.get(METADATA_KEY)
    file_record: dict[str, Any] | None = None
    file_path = None
    if record_dir is not None:
        file_path = record_path(record_dir, uid)
        if os.path.lexists(file_path):
            try:
                file_record = load_record_file(file_path)
            except ProvenanceError as exc:  # a stored copy damaged fails, as one changed
                report.add(Status.CHANGED, "record", str(file_path),
                           "damaged: " + str(exc).removeprefix(f"{file_path}: "))
    for err in md.get(ERRORS_KEY) or []:
        report.notes.append(f"while recording: {err}")
    record: dict[str, Any]
    if isinstance(in_catalog, Mapping):
        record = dict(plain(in_catalog))
        where = "in the catalog"
        if file_record is not None:
            if canonical_json(file_record) != canonical_json(record):
                report.add(Status.CHANGED, "record", str(file_path),
                           "differs from the record in the catalog")
            else:
                where += f", same as {file_path}"
    elif file_record is not None:
        record, where = file_record, f"from {file_path} (not in the catalog metadata)"
    else:
        where = f" nor in {file_path}" if file_path else ""
        report.add(Status.NO_RECORD, "record", uid,
                   f"no provenance record in the catalog{where}")
        return None
    report.add(Status.OK, "record", uid,
               f"{where}; recorded {record.get('recorded')} by smeflow "
               f"{record.get('smeflow_version')} on {record.get('host')}")
    return record


def verify_catalog_run(catalog: Any, ref: str | int, *,
                       trusted_keys: Sequence[Ed25519PublicKey] | None = None
                       ) -> VerificationReport:
    """``smeflow catalog verify REF`` from Python: :func:`verify_run` of the run ``ref``
    (uid, uid prefix or scan number) of ``catalog`` (a ``dataflow.catalog.Catalog``),
    with the catalog's record folder ``raw_dir/provenance`` — where
    ``ProvenanceRecorder.for_catalog`` keeps the record's copy, the document ledger and
    the registered signing keys."""
    return verify_run(catalog.run(ref), trusted_keys=trusted_keys,
                      record_dir=Path(catalog.raw_dir) / RECORD_DIR_NAME)


def verify_run(run_node: Any, *, trusted_keys: Sequence[Ed25519PublicKey] | None = None,
               record_dir: str | os.PathLike[str] | None = None) -> VerificationReport:
    """Check a run's files, digests and signature against its provenance record.

    Parameters
    ----------
    run_node
        The run as any Tiled client node (``Catalog.run(ref)``, or over HTTP).
    trusted_keys
        When given, the record must be signed by one of these keys.
    record_dir
        Folder of ``<uid>.json`` records: the fallback when the catalog metadata has no
        record, and a second copy that must agree with it; its document ledgers and
        registered keys. Without it the document chain cannot be checked (an ``ERROR``):
        :func:`verify_catalog_run` passes a catalog's own.

    Returns
    -------
    VerificationReport
        One check per file (``OK``/``CHANGED``/``MISSING``), per file the catalog lists
        but the record does not (``ADDED``) or the reverse (``REMOVED``), per input of a
        derived run, and for the signature (``OK``/``UNSIGNED``/``BAD SIGNATURE``/
        ``UNTRUSTED``).
    """
    start = (run_node.metadata or {}).get("start") or {}
    uid = str(start.get("uid", ""))
    report = VerificationReport(uid)
    record = _find_record(run_node, uid, Path(record_dir) if record_dir else None, report)
    if record is None:
        _check_on_disk(report, run_node)
        return report
    if record.get("run_uid") != uid:
        report.add(Status.CHANGED, "record", uid,
                   f"the record belongs to run {record.get('run_uid')!r}")
    cache: dict[Path, str] = {}
    recorded_paths: set[Path] = set()
    roots = None
    if record_dir is not None:  # <catalog>/raw/provenance: the catalog's roots
        catalog_root = Path(record_dir).resolve().parent.parent
        roots = (catalog_root, previous_roots(catalog_root))
    files = record.get("files")
    if not isinstance(files, list):
        report.add(Status.ERROR, "record", uid, "record has no list of files")
        files = []
    for entry in progress(files, desc="checking files", unit="file"):
        if isinstance(entry, Mapping):
            path = _check_file(report, "file", entry, cache, roots)
            if path is not None:
                recorded_paths.add(path)
    try:
        listed = run_files(run_node)
    except Exception as exc:
        report.add(Status.ERROR, "catalog", uid,
                   f"cannot list the run's files: {type(exc).__name__}: {exc}")
    else:
        for path in sorted(set(listed) - recorded_paths):
            report.add(Status.ADDED, "file", f"{path} ({', '.join(listed[path])})",
                       "listed by the catalog, not in the provenance record")
        for path in sorted(recorded_paths - set(listed)):
            report.add(Status.REMOVED, "file", str(path),
                       "in the provenance record, no longer listed by the catalog")
    for entry in record.get("inputs") or []:
        if isinstance(entry, Mapping):
            _check_file(report, "input", entry, cache, roots)
    _check_on_disk(report, run_node)
    _check_documents(report, record, run_node, Path(record_dir) if record_dir else None)
    registered = registered_signing_keys(record_dir) if record_dir else []
    _check_signature(report, record, trusted_keys, registered)
    return report


def _check_on_disk(report: VerificationReport, run_node: Any) -> None:
    """The frames on disk against the catalog's announcements (each intact: extent,
    chunks, CRC-32), the events against the stop document."""
    uid = report.run_uid
    try:
        found = check_run_on_disk(run_node)
    except Exception as exc:
        report.add(Status.ERROR, "frames", uid,
                   f"cannot check the frames on disk: {type(exc).__name__}: {exc}")
        return
    for name, announced in sorted(found.announced.items()):
        have = found.frames.get(name, 0)
        if have == announced:
            report.add(Status.OK, "frames", name, f"{announced} frames intact on disk")
            continue
        why = "; ".join(p[len(name) + 2:] for p in found.problems if p.startswith(f"{name}: "))
        report.add(Status.MISSING, "frames", name,
                   f"{have} of {announced} announced frames intact on disk" +
                   (f": {why}" if why else ""))
    stop = (run_node.metadata or {}).get("stop")
    if not isinstance(stop, Mapping):
        report.add(Status.MISSING, "stop", uid, "no stop document: the run is incomplete "
                   "(still running, or killed: smeflow catalog repair)")
        return
    for path in sorted(p for p in found.files if open_for_write(p)):
        report.add(Status.OPEN, "frames", str(path), "still marked open for write (SWMR) "
                   "by its killed writer: h5py without SWMR, nexusformat and DIALS refuse "
                   f"it; smeflow catalog repair {uid} closes it")
    counted = stop.get("num_events") or {}
    for stream in sorted(set(counted) | set(found.events)):
        have, says = found.events.get(stream, 0), counted.get(stream)
        distinct = found.sequence.get(stream, have)
        if says is None and not have:
            continue
        # bluesky counts seq_nums: a reading taken again after a pause or suspender's
        # rewind is one more event under a seq_num already counted
        retaken = f" ({have - distinct} taken again after a rewind)" if have > distinct else ""
        if says is None or int(says) not in (distinct, have):
            report.add(Status.CHANGED, "events", f"stream {stream}",
                       f"{have} events{retaken} in the catalog, the stop document says "
                       f"{says or 0}")
        else:
            report.add(Status.OK, "events", f"stream {stream}",
                       f"{have} events{retaken}, as the stop document says")


def _check_documents(report: VerificationReport, record: Mapping[str, Any], run_node: Any,
                     record_dir: Path | None) -> None:
    """The ledger's chain against the record's, then the catalog against the ledger."""
    uid = report.run_uid
    summary = record.get("documents")
    if not isinstance(summary, Mapping):
        if int(record.get("format") or 1) >= 2:
            report.add(Status.MISSING, "documents", uid, "the record has no document chain")
        else:
            report.notes.append("a format-1 record: the run's documents are not covered")
        return
    if record_dir is None:
        report.add(Status.ERROR, "documents", uid, "no record folder to find the ledger in: "
                   "pass record_dir= (the catalog's raw/provenance), or verify with "
                   "verify_catalog_run(catalog, uid) as `smeflow catalog verify` does")
        return
    name = summary.get("ledger")
    if name != f"{uid}{LEDGER_SUFFIX}":
        report.add(Status.CHANGED, "documents", uid, f"the record names ledger {name!r}")
        return
    path = record_dir / name
    try:
        docs, chain = read_ledger(path)
    except ProvenanceError as exc:
        report.add(Status.MISSING, "documents", str(path), str(exc))
        return
    if chain.digest.hex() != summary.get("chain") or chain.count != summary.get("count"):
        report.add(Status.CHANGED, "documents", str(path),
                   f"chain over {chain.count} documents is {_short(chain.digest.hex())}, the "
                   f"record says {_short(summary.get('chain'))} over {summary.get('count')}: "
                   "a document was changed, added, removed or reordered")
        return
    report.add(Status.OK, "documents", str(path),
               f"chain {_short(chain.digest.hex())} over {chain.count} documents")
    try:
        problems = compare_with_catalog(docs, run_node)
    except Exception as exc:
        report.add(Status.ERROR, "catalog", uid,
                   f"cannot compare with the ledger: {type(exc).__name__}: {exc}")
        return
    for problem in problems:
        report.add(Status.CHANGED, "catalog", uid, problem)
    if not problems:
        report.add(Status.OK, "catalog", uid, "start, stop, events and frame counts agree "
                                              "with the ledger")


def _check_signature(report: VerificationReport, record: Mapping[str, Any],
                     trusted_keys: Sequence[Ed25519PublicKey] | None,
                     registered: Sequence[Ed25519PublicKey] = ()) -> None:
    state = check_signature(record)
    if not state.signed:
        if trusted_keys:
            report.add(Status.UNSIGNED, "signature", "record",
                       "record is unsigned but a trusted key was required")
        elif registered:
            ids = ", ".join(key_id(k)[:16] for k in registered)
            report.add(Status.UNSIGNED, "signature", "record",
                       f"unsigned, but this catalog's records are signed (key {ids}): the "
                       "signature was stripped, or the run was recorded without the key")
        else:
            report.add(Status.UNSIGNED, "signature", "record",
                       "unsigned: digests checked, origin not proven", ok=True)
        return
    who = f"{ALGORITHM} key {key_id(state.key)[:16]}" if state.key else ALGORITHM
    if not state.valid:
        report.add(Status.BAD_SIGNATURE, "signature", who, state.reason)
        return
    assert state.key is not None
    if trusted_keys is None:
        report.add(Status.OK, "signature", who,
                   "valid (key not checked against a trusted key)")
        return
    trusted = {public_key_bytes(k) for k in trusted_keys}
    if public_key_bytes(state.key) in trusted:
        report.add(Status.OK, "signature", who, "valid, trusted key")
    else:
        report.add(Status.UNTRUSTED, "signature", who,
                   "valid, but signed by a key that is not among the trusted keys")
