"""Provenance records: digests of the files a run wrote, signatures, and ``catalog verify``.

Real RunEngine, real embedded Tiled catalog, real HDF5 files; the catalog writer is
subscribed before the recorder, as in production.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import pytest
from bluesky import RunEngine
from bluesky.plans import count
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dataflow.catalog import Catalog
from dataflow.cli import main
from dataflow.hdf5 import file_sha256, open_frames, read_counters
from dataflow.provenance import (
    ERRORS_KEY,
    METADATA_KEY,
    KeyFileError,
    Outcome,
    ProvenanceError,
    ProvenanceRecorder,
    Status,
    canonical_json,
    check_signature,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    public_key_path,
    read_sidecar,
    record_path,
    sign_record,
    uri_to_path,
    verify_catalog_run,
    verify_run,
)


@dataclass
class Env:
    """A RunEngine writing into the module's catalog, with a provenance recorder."""

    RE: RunEngine
    recorder: ProvenanceRecorder
    catalog: Catalog
    frame_cam: Any

    def take(self, cam: Any = None, n: int = 3, **md: Any) -> str:
        """One ``count`` of a test camera; returns the uid once the record is written."""
        cam = cam or self.frame_cam(name="cam", folder=self.catalog.raw_dir)
        (uid,) = self.RE(count([cam], n), **md)
        assert self.recorder.wait(30)
        return str(uid)

    def verify(self, uid: str, **kwargs: Any) -> Any:
        return verify_run(self.catalog.run(uid),
                          record_dir=self.catalog.raw_dir / "provenance", **kwargs)


def make_env(catalog: Catalog, frame_cam: Any, **kwargs: Any) -> Env:
    RE = RunEngine()
    catalog.subscribe(RE)  # the catalog writer first, the recorder after it
    recorder = ProvenanceRecorder.for_catalog(catalog, **kwargs)
    recorder.subscribe(RE)
    return Env(RE, recorder, catalog, frame_cam)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "beamline.pem"
    generate_key(path)
    return path


@pytest.fixture(scope="module")
def signed(catalog: Catalog, frame_cam: Any, key: Path) -> Env:
    return make_env(catalog, frame_cam, signing_key=key, instrument="test-beamline")


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory: pytest.TempPathFactory, frame_cam: Any) -> Iterator[Env]:
    """A catalog whose records are not signed (the signed env's catalog requires
    signatures once its recorder registered its key)."""
    with Catalog(tmp_path_factory.mktemp("unsigned")) as catalog:
        yield make_env(catalog, frame_cam)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def statuses(report: Any, kind: str | None = None) -> list[Status]:
    return [c.status for c in report.checks if kind is None or c.kind == kind]


def only_file(env: Env, uid: str) -> Path:
    (entry,) = env.catalog.run(uid).metadata[METADATA_KEY]["files"]
    return uri_to_path(entry["uri"])


def flip_byte(path: Path, offset: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


# -- recording --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def beamline(signed: Env) -> Any:
    """A simulated beamline (real firmware chain) writing into the signed env's catalog."""
    from devices.beamline import Beamline
    from fpga.designs.params import ChainParams

    return Beamline.create(signed.catalog.raw_dir, params=ChainParams(64, 64, 16))


def test_beamline_run_records_the_detector_digests_signed(signed: Env, key: Path,
                                                          beamline: Any) -> None:
    bl = beamline
    (uid,) = signed.RE(count([bl.det], 3), sample="phantom")
    assert signed.recorder.wait(30) and signed.recorder.failures == []

    run = signed.catalog.run(uid)
    record = run.metadata[METADATA_KEY]
    (entry,) = record["files"]
    path = uri_to_path(entry["uri"])
    # the digest the detector got when it closed the file, read from the sidecar
    assert entry["sha256"] == bl.det.digests[str(path)] == read_sidecar(path)
    assert entry["digest_source"] == "sidecar"
    assert entry["size"] == path.stat().st_size
    assert entry["data_key"] == "det_image" and entry["dataset"] == "/entry/data/data"
    assert entry["attributes"]["backend"] == "compiled"
    assert entry["attributes"]["exposure"] == pytest.approx(0.1)
    assert record["run_uid"] == uid and record["exit_status"] == "success"
    assert record["instrument"] == "test-beamline" and record["smeflow_version"]
    assert "inputs" not in record
    public = load_public_key(public_key_path(key))
    assert record["signature"]["key_id"] == key_id(public)
    assert check_signature(record).valid  # survives the round trip through Tiled
    on_disk = json.loads(record_path(signed.catalog.raw_dir / "provenance", uid).read_text())
    assert canonical_json(on_disk) == canonical_json(dict(signed.recorder.records[uid]))

    report = signed.verify(uid, trusted_keys=[public])
    assert report.ok, report.lines()
    assert statuses(report) == [Status.OK] * 7
    assert [c.kind for c in report.checks] == ["record", "file", "frames", "events",
                                               "documents", "catalog", "signature"]
    assert report.checks[2].detail == "3 frames intact on disk"
    assert report.checks[3].detail == "3 events, as the stop document says"
    assert record["format"] == 2
    assert record["documents"]["counts"] == {"descriptor": 1, "event": 3, "start": 1,
                                             "stop": 1, "stream_datum": 3,
                                             "stream_resource": 1}
    assert "trusted key" in report.checks[-1].detail


def test_verify_cli_prints_one_line_per_check_and_exits_0(
        signed: Env, key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uid = signed.take()
    status, out, err = cli(capsys, "verify", uid[:8], "--data", str(signed.catalog.root),
                           "--trusted-key", str(public_key_path(key)))
    assert (status, err) == (0, "")
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines[:7]] == ["OK"] * 7
    assert str(only_file(signed, uid)) in lines[1]
    assert lines[-1] == f"run {uid}: all 7 checks OK"


def test_readout_counters_in_the_file_show_in_the_provenance(signed: Env,
                                                              beamline: Any) -> None:
    from devices.detector import READOUT_COUNTERS

    uid = signed.take(beamline.det, n=4)
    (entry,) = signed.catalog.run(uid).metadata[METADATA_KEY]["files"]
    path = uri_to_path(entry["uri"])
    with open_frames(path) as frames:
        written = len(frames)
    assert written == 4
    counters = entry["counters"]
    assert set(counters) == set(READOUT_COUNTERS)
    assert counters["good"] == written
    assert counters["corrupt"] == counters["dropped"] == 0
    assert counters == read_counters(path)
    assert check_signature(signed.catalog.run(uid).metadata[METADATA_KEY]).valid


def test_files_without_counters_record_none(unsigned: Env) -> None:
    uid = unsigned.take()
    (entry,) = unsigned.catalog.run(uid).metadata[METADATA_KEY]["files"]
    assert entry["counters"] == {} and "counters_error" not in entry
    # the frame dataset's own attributes are NeXus's (an image, linked under the detector)
    # and where the writer keeps each frame's CRC-32
    assert entry["attributes"] == {"interpretation": "image", "target": "/entry/data/data",
                                   "frame_crc32": "/entry/data/data_crc32"}


# -- what verify finds ------------------------------------------------------------------


def test_a_flipped_byte_is_named_changed_and_the_cli_exits_1(
        signed: Env, capsys: pytest.CaptureFixture[str]) -> None:
    uid = signed.take()
    path = only_file(signed, uid)
    flip_byte(path)  # inside the second frame's pixels
    report = signed.verify(uid)
    assert not report.ok
    bad, frames = report.failures
    assert (bad.status, bad.kind) == (Status.CHANGED, "file")
    assert str(path) in bad.subject and "sha256 recorded" in bad.detail
    # the frames on disk are checked too: the damaged frame is named
    assert (frames.status, frames.kind, frames.subject) == (Status.MISSING, "frames",
                                                            "primary/cam_image")
    assert "1 of 3 announced frames intact" in frames.detail
    assert f"{path}" in frames.detail and "frame 1" in frames.detail
    status, out, err = cli(capsys, "verify", uid, "--data", str(signed.catalog.root))
    assert (status, err) == (1, "")
    changed = [line for line in out.splitlines() if line.startswith("CHANGED")]
    assert len(changed) == 1 and str(path) in changed[0]
    assert out.strip().splitlines()[-1] == f"run {uid}: 2 of 7 checks FAILED"


def test_a_deleted_file_is_missing(signed: Env) -> None:
    uid = signed.take()
    path = only_file(signed, uid)
    path.unlink()
    report = signed.verify(uid)
    bad, frames = report.failures
    assert (bad.status, bad.detail) == (Status.MISSING, "file not found")
    assert str(path) in bad.subject
    assert (frames.status, frames.kind) == (Status.MISSING, "frames")
    assert frames.detail.startswith("0 of 3 announced frames intact on disk")


def test_a_tampered_record_has_a_bad_signature(signed: Env) -> None:
    uid = signed.take()
    run = signed.catalog.run(uid)
    record = json.loads(json.dumps(run.metadata[METADATA_KEY]))
    record["files"][0]["sha256"] = "0" * 64
    run.update_metadata(metadata={METADATA_KEY: record})
    report = signed.verify(uid)
    assert Status.BAD_SIGNATURE in statuses(report, "signature")
    assert "record changed since it was signed" in report.failures[-1].detail
    assert Status.CHANGED in statuses(report, "file")  # the file no longer matches it
    assert Status.CHANGED in statuses(report, "record")  # nor the copy next to the data
    assert any(line.startswith("BAD SIGNATURE") for line in report.lines())


def test_unsigned_records_verify_digests_only_and_say_so(
        unsigned: Env, key: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uid = unsigned.take()
    report = unsigned.verify(uid)
    assert report.ok and "signature" not in unsigned.catalog.run(uid).metadata[METADATA_KEY]
    sig = report.checks[-1]
    assert sig.status is Status.UNSIGNED and "unsigned" in sig.detail and sig.ok
    assert sig.line().startswith("UNSIGNED      signature record  unsigned")
    # requiring a trusted key makes an unsigned record a failure
    status, out, _ = cli(capsys, "verify", uid, "--data", str(unsigned.catalog.root),
                         "--trusted-key", str(public_key_path(key)))
    assert status == 1 and "UNSIGNED" in out and "a trusted key was required" in out
    flip_byte(only_file(unsigned, uid))
    assert statuses(unsigned.verify(uid), "file") == [Status.CHANGED]


def test_a_stripped_signature_fails_where_records_are_signed(signed: Env) -> None:
    """Removing the signature (from both copies) used to pass as an honest unsigned
    record; the catalog's record folder says its records are signed, so it fails."""
    uid = signed.take()
    run = signed.catalog.run(uid)
    record = json.loads(json.dumps(run.metadata[METADATA_KEY]))
    del record["signature"]
    run.replace_metadata(metadata={**run.metadata, METADATA_KEY: record})  # not a merge
    assert "signature" not in signed.catalog.run(uid).metadata[METADATA_KEY]
    path = record_path(signed.catalog.raw_dir / "provenance", uid)
    path.write_text(json.dumps(record))
    report = signed.verify(uid)
    assert not report.ok and statuses(report, "signature") == [Status.UNSIGNED]
    assert "the signature was stripped" in report.failures[-1].detail


def ledger_lines(env: Env, uid: str) -> tuple[Path, list[str]]:
    path = env.catalog.raw_dir / "provenance" / f"{uid}.documents.jsonl"
    return path, path.read_text().splitlines()


@pytest.mark.parametrize("change", ["edit", "reorder", "remove", "add"])
def test_any_change_to_the_documents_breaks_the_chain(unsigned: Env, change: str) -> None:
    uid = unsigned.take(n=4)
    path, lines = ledger_lines(unsigned, uid)
    names = [json.loads(line)[0] for line in lines]
    assert names[0] == "start" and names[-1] == "stop" and names.count("event") == 4
    i = names.index("event")
    if change == "edit":
        name, doc = json.loads(lines[i])
        doc["data"]["cam_total"] += 1
        lines[i] = json.dumps([name, doc], sort_keys=True, separators=(",", ":"))
    elif change == "reorder":
        lines[i], lines[i + 2] = lines[i + 2], lines[i]
    elif change == "remove":
        del lines[i]
    else:
        lines.insert(i, lines[i])
    path.write_text("\n".join(lines) + "\n")
    report = unsigned.verify(uid)
    (bad,) = report.failures
    assert (bad.status, bad.kind) == (Status.CHANGED, "documents")
    assert "a document was changed, added, removed or reordered" in bad.detail


def test_a_change_in_the_catalog_shows_against_the_ledger(tmp_path: Path,
                                                          frame_cam: Any) -> None:
    """Tiled keeps events in its own tables: an edit there (or of the start document in
    the run's metadata) shows when the catalog is compared with the ledger. The catalog
    is closed while its database is edited, as an intruder with the files would."""
    import sqlite3

    root = tmp_path / "data"
    with Catalog(root) as catalog:
        env = make_env(catalog, frame_cam)
        uid = env.take(n=3, sample="CeO2")
        assert env.verify(uid).ok
        before = int(catalog.run(uid)["primary"].read()["cam_total"][1])
    with sqlite3.connect(root / "tables.db") as con:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        changed = 0
        for name in names:
            cols = [r[1] for r in con.execute(f'PRAGMA table_info("{name}")')]
            if "cam_total" in cols and "seq_num" in cols:
                changed += con.execute(f'UPDATE "{name}" SET cam_total = cam_total + 7 '
                                       "WHERE seq_num = 2").rowcount
    assert changed == 1
    with Catalog(root) as catalog:
        env = make_env(catalog, frame_cam)
        run = catalog.run(uid)
        assert int(run["primary"].read()["cam_total"][1]) == before + 7
        report = env.verify(uid)
        (bad,) = report.failures
        assert (bad.status, bad.kind) == (Status.CHANGED, "catalog")
        assert "cam_total of event 2" in bad.detail
        start = dict(run.metadata["start"])
        run.update_metadata(metadata={"start": {**start, "sample": "Si"}})
        details = [c.detail for c in env.verify(uid).failures]
        assert "the start document in the catalog differs from the ledger" in details


def test_a_valid_signature_by_an_unknown_key_is_untrusted(signed: Env, tmp_path: Path) -> None:
    other = generate_key(tmp_path / "other.pem")
    uid = signed.take()
    report = signed.verify(uid, trusted_keys=[other])
    assert statuses(report, "signature") == [Status.UNTRUSTED] and not report.ok


def test_files_added_to_or_removed_from_the_record_are_named(unsigned: Env) -> None:
    uid = unsigned.take()
    run = unsigned.catalog.run(uid)
    real = only_file(unsigned, uid)
    record = json.loads(json.dumps(run.metadata[METADATA_KEY]))
    ghost = real.with_name("ghost.h5")
    ghost.write_bytes(b"not in the catalog")
    record["files"] = [{"uri": f"file://localhost{ghost}", "data_key": "cam_image",
                        "sha256": file_sha256(ghost), "size": ghost.stat().st_size}]
    run.update_metadata(metadata={METADATA_KEY: record})
    report = unsigned.verify(uid)
    by_status = {c.status: c for c in report.failures}
    assert str(real) in by_status[Status.ADDED].subject
    assert "cam_image" in by_status[Status.ADDED].subject
    assert str(ghost) in by_status[Status.REMOVED].subject


def test_derived_runs_record_and_verify_their_inputs(signed: Env) -> None:
    raw_uid = signed.take()
    raw = only_file(signed, raw_uid)
    inputs = [{"uri": f"file://localhost{raw}", "sha256": file_sha256(raw)}]
    derived_uid = signed.take(raw_uid=raw_uid, inputs=inputs, smeflow_version="0.1.0")
    record = signed.catalog.run(derived_uid).metadata[METADATA_KEY]
    assert record["inputs"] == inputs and record["raw_uid"] == raw_uid
    report = signed.verify(derived_uid)
    assert report.ok and statuses(report, "input") == [Status.OK]
    flip_byte(raw)
    report = signed.verify(derived_uid)
    (bad,) = report.failures
    assert (bad.status, bad.kind) == (Status.CHANGED, "input") and str(raw) in bad.subject


def test_a_run_without_a_record_is_unverifiable_not_failed(
        catalog: Catalog, frame_cam: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """A run written without the provenance recorder: its frames and events are checked
    (OK) and the record's absence is ``NO RECORD``; the run is ``UNVERIFIABLE`` (exit 3),
    not failed. A damaged frame file of such a run still fails it (exit 1)."""
    from dataflow.catalog import check_frame_files

    RE = RunEngine()
    catalog.subscribe(RE)
    (uid,) = RE(count([frame_cam(name="cam", folder=catalog.raw_dir)], 3))
    report = verify_run(catalog.run(uid), record_dir=catalog.raw_dir / "provenance")
    assert statuses(report) == [Status.NO_RECORD, Status.OK, Status.OK]
    assert [c.kind for c in report.checks] == ["record", "frames", "events"]
    assert not report.ok and report.failures == [] and report.unverifiable
    assert report.outcome is Outcome.UNVERIFIABLE
    status, out, err = cli(capsys, "verify", uid, "--data", str(catalog.root))
    assert (status, err) == (3, "")
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"NO RECORD     record    {uid}  no provenance record")
    assert lines[-1] == (f"run {uid}: UNVERIFIABLE: no provenance record (files, documents "
                         "and signature not checked); the other 2 checks OK")
    assert lines == verify_catalog_run(catalog, uid).lines()

    (path,) = check_frame_files(catalog.run(uid))
    flip_byte(path)  # inside the second frame's pixels
    report = verify_catalog_run(catalog, uid)
    assert report.outcome is Outcome.FAILED and report.unverifiable and not report.ok
    (bad,) = report.failures
    assert (bad.status, bad.kind) == (Status.MISSING, "frames")
    status, out, err = cli(capsys, "verify", uid, "--data", str(catalog.root))
    assert (status, err) == (1, "")
    assert out.strip().splitlines()[-1] == (f"run {uid}: 1 of 3 checks FAILED; no "
                                            "provenance record")


def test_a_recorded_beamline_run_verifies_from_python_as_from_the_shell(
        smeflow_beamline: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """User report U13: docs/provenance.md's snippet, a signed run of the beamline's
    detector: ``verify_catalog_run`` is what ``smeflow catalog verify`` prints (all OK);
    ``verify_run`` without the record folder says how to give it instead of failing
    silently on the ledger."""
    RE, catalog, det = smeflow_beamline.RE, smeflow_beamline.catalog, smeflow_beamline.det
    key = tmp_path / "beamline.pem"
    generate_key(key)
    recorder = ProvenanceRecorder.for_catalog(catalog, signing_key=key)
    recorder.subscribe(RE)
    (uid,) = RE(count([det], 2))
    assert recorder.wait(30)
    report = verify_catalog_run(catalog, uid)
    assert report.ok, "\n".join(report.lines())
    assert {"documents", "catalog", "signature"} <= {c.kind for c in report.checks}
    status, out, _ = cli(capsys, "verify", uid, "--data", str(catalog.root))
    assert status == 0 and out.splitlines() == report.lines()
    assert verify_catalog_run(catalog, uid[:8]).lines() == report.lines()
    bare = verify_run(catalog.run(uid))
    (failed,) = bare.failures
    assert (failed.status, failed.kind) == (Status.ERROR, "documents")
    assert "pass record_dir=" in failed.detail and "verify_catalog_run" in failed.detail


# -- failures while recording never abort the scan ---------------------------------------


def test_an_unwritable_record_folder_does_not_abort_the_scan(
        catalog: Catalog, frame_cam: Any, tmp_path: Path) -> None:
    blocked = tmp_path / "provenance"
    blocked.write_text("a file where the folder should be")
    RE = RunEngine()
    catalog.subscribe(RE)
    recorder = ProvenanceRecorder(catalog.client, blocked)
    recorder.subscribe(RE)
    (uid,) = RE(count([frame_cam(name="cam", folder=catalog.raw_dir)], 2))
    assert recorder.wait(30)
    run = catalog.run(uid)
    assert run.metadata["stop"]["exit_status"] == "success"
    ledger, record = recorder.failures  # the document ledger, then the record file
    assert {ledger.run_uid, record.run_uid} == {uid}
    assert ledger.stage == "opening the document ledger" and str(blocked) in ledger.message
    assert str(blocked) in record.stage
    assert METADATA_KEY in run.metadata  # the catalog copy still made it
    assert str(blocked) in run.metadata[ERRORS_KEY][0]
    # the files verify; the documents, never written to a ledger, are reported uncovered
    report = verify_run(run)
    assert [(c.status, c.kind) for c in report.failures] == [(Status.MISSING, "documents")]
    assert "no document chain" in report.failures[0].detail
    assert Status.OK in statuses(report, "file")


class _UnreachableCatalog:
    def __getitem__(self, key: str) -> Any:
        raise ConnectionError("catalog server unreachable")


def test_an_unreachable_catalog_leaves_the_record_file(tmp_path: Path,
                                                      frame_cam: Any) -> None:
    # a catalog of its own: the shared one's records are signed, so an unsigned one fails
    with Catalog(tmp_path / "data") as catalog:
        RE = RunEngine()
        catalog.subscribe(RE)
        recorder = ProvenanceRecorder(_UnreachableCatalog(), catalog.raw_dir / "provenance")
        recorder.subscribe(RE)
        (uid,) = RE(count([frame_cam(name="cam", folder=catalog.raw_dir)], 2))
        assert recorder.wait(30)
        assert "unreachable" in recorder.failures[0].message
        run = catalog.run(uid)
        assert METADATA_KEY not in run.metadata
        report = verify_run(run, record_dir=catalog.raw_dir / "provenance")
        assert report.ok, report.lines()
        assert "not in the catalog metadata" in report.checks[0].detail


def test_a_file_never_closed_is_hashed_as_found_after_the_timeout(
        catalog: Catalog, frame_cam: Any) -> None:
    class LeakyCam(frame_cam):  # type: ignore[misc,valid-type]
        def stage(self) -> list[Any]:  # says it closes its file itself (run_files
            staged: list[Any] = super().stage()  # would close it before the stop)...
            self.writer.owner_closes = True
            return staged

        def unstage(self) -> list[Any]:  # ... and forgets to
            unstaged: list[Any] = super(frame_cam, self).unstage()
            return unstaged

    RE = RunEngine()
    catalog.subscribe(RE)
    recorder = ProvenanceRecorder.for_catalog(catalog, close_timeout=0.2)
    recorder.subscribe(RE)
    cam = LeakyCam(name="leaky", folder=catalog.raw_dir)
    (uid,) = RE(count([cam], 2))
    assert recorder.wait(30)
    cam.writer.close()
    (failure,) = recorder.failures
    assert "within 0.2 s" in failure.message and str(cam.writer.path) in failure.message
    (entry,) = catalog.run(uid).metadata[METADATA_KEY]["files"]
    assert entry["digest_source"] == "computed"


def test_a_file_finalised_by_another_hdf5_handle_gets_its_final_digest(
        unsigned: Env) -> None:
    """A reader in the same process (the embedded catalog, a live view) keeps the file
    open past the writer's close(): the last bytes are written later, so the writer's
    .sha256 is stale and the recorder must hash the file once it is really closed."""
    base = unsigned.frame_cam
    readers: list[Any] = []

    class WatchedCam(base):  # type: ignore[misc,valid-type]
        def stage(self) -> list[Any]:  # closes its file at unstage itself (else
            staged: list[Any] = super().stage()  # run_files closes it before the stop)
            self.writer.owner_closes = True
            return staged

        def unstage(self) -> list[Any]:
            path = self.writer.path
            readers.append(h5py.File(path, "r", swmr=True))
            unstaged: list[Any] = super().unstage()
            threading.Timer(0.3, readers[0].close).start()
            return unstaged

    cam = WatchedCam(name="watched", folder=unsigned.catalog.raw_dir)
    uid = unsigned.take(cam)
    (entry,) = unsigned.catalog.run(uid).metadata[METADATA_KEY]["files"]
    path = uri_to_path(entry["uri"])
    assert cam.digests[-1] != file_sha256(path)  # the writer's digest was provisional
    assert not path.with_name(path.name + ".sha256").exists()  # so it wrote no sidecar
    assert entry["digest_source"] == "computed" and "note" not in entry
    assert entry["sha256"] == file_sha256(path)
    assert unsigned.verify(uid).ok


# -- keys -------------------------------------------------------------------------------


def test_generate_key_writes_a_private_0600_key_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    public = generate_key(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert key_id(load_private_key(path).public_key()) == key_id(public)
    assert key_id(load_public_key(public_key_path(path))) == key_id(public)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match=r"k.pem: file exists; refusing to overwrite"):
        generate_key(path)
    assert path.read_bytes() == before
    (tmp_path / "only.pem.pub").write_text("x")
    with pytest.raises(KeyFileError, match=r"only.pem.pub: file exists"):
        generate_key(tmp_path / "only.pem")
    assert not (tmp_path / "only.pem").exists()  # nothing half-made
    with pytest.raises(KeyFileError, match=r"folder .*nowhere does not exist"):
        generate_key(tmp_path / "nowhere" / "k.pem")


def test_key_file_errors_are_one_clear_message(tmp_path: Path) -> None:
    good = tmp_path / "good.pem"
    generate_key(good)
    with pytest.raises(KeyFileError, match=r"missing.pem: no such private key file"):
        load_private_key(tmp_path / "missing.pem")
    os.chmod(good, 0o644)
    with pytest.raises(KeyFileError, match=r"permissions 0644 are too open.*chmod 600"):
        load_private_key(good)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    garbage.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"garbage.pem: not a PEM private key"):
        load_private_key(garbage)
    pub = public_key_path(good)
    pub.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"not a PEM private key \(this is a public key\)"):
        load_private_key(pub)
    ec_key = tmp_path / "ec.pem"
    ec_key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    ec_key.chmod(0o600)
    with pytest.raises(KeyFileError, match=r"ec.pem: an EC key, expected an Ed25519 private key"):
        load_private_key(ec_key)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(encrypted_pem(good, b"secret"))
    locked.chmod(0o600)
    with pytest.raises(KeyFileError, match="encrypted"):
        load_private_key(locked)
    with pytest.raises(KeyFileError, match="holds a private key; give the public key"):
        load_public_key(ec_key)
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_public_key(garbage)
    with pytest.raises(KeyFileError, match="no such private key file"):
        ProvenanceRecorder(None, tmp_path, signing_key=tmp_path / "absent.pem")


def encrypted_pem(path: Path, password: bytes) -> bytes:
    os.chmod(path, 0o600)
    key = load_private_key(path)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(password))


def test_keygen_and_verify_cli_errors_are_one_line(
        signed: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cli.pem"
    status, out, err = cli(capsys, "keygen", str(path))
    assert status == 0 and err == "" and "cli.pem.pub" in out
    assert load_private_key(path)
    status, out, err = cli(capsys, "keygen", str(path))
    assert (status, out) == (1, "") and err.count("\n") == 1 and "refusing to overwrite" in err
    root = str(signed.catalog.root)
    status, out, err = cli(capsys, "verify", "not-a-uid!", "--data", root)
    assert (status, out) == (1, "") and err.count("\n") == 1 and "not a uid" in err
    status, out, err = cli(capsys, "verify", "1", "--data", root, "--trusted-key",
                           str(tmp_path / "nokey.pub"))
    assert (status, out) == (1, "") and err.count("\n") == 1 and "no such public key" in err


# -- pieces -----------------------------------------------------------------------------


def test_canonical_json_and_signatures(key: Path) -> None:
    assert canonical_json({"b": [1, 2.5], "a": "é"}) == '{"a":"é","b":[1,2.5]}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    record = sign_record({"run_uid": "abc", "files": []}, load_private_key(key))
    assert check_signature(record).valid
    assert check_signature({**record, "files": [{}]}).reason.startswith("signature does")
    forged = {**record, "signature": {**record["signature"], "key_id": "0" * 64}}
    assert check_signature(forged).reason == "key_id does not match the public key"
    assert not check_signature({"run_uid": "abc"}).signed


def test_uris_and_record_paths_are_checked(tmp_path: Path) -> None:
    assert uri_to_path("file://localhost/data/x.h5") == Path("/data/x.h5")
    assert uri_to_path("file:///data/x.h5") == Path("/data/x.h5")
    for bad in ("http://host/x.h5", "file://elsewhere/x.h5", "file:x.h5"):
        with pytest.raises(ProvenanceError, match="uri"):
            uri_to_path(bad)
    for uid in ("../etc/passwd", "a/b", ""):
        with pytest.raises(ProvenanceError, match="not a plain uid"):
            record_path(tmp_path, uid)
