"""Fault injection against the acquisition path: what an unlucky user and a failing disk do.

Each trial runs real components — a RunEngine in a child process writing frames with
``FrameWriter`` into an embedded catalog, SIGKILL at a random moment, a file-size limit
that makes the disk "full" mid-scan (``RLIMIT_FSIZE``: the writes fail with EFBIG as on
a full file system), truncated and bit-flipped frame files — then checks, through the
catalog the way a user reads data:

- **recoverable**: the run is found, ``repair`` (when it has no stop document) closes it,
  and every frame the catalog serves reads back as what was acquired or as an error;
- **flushed frames lost**: frames whose event the RunEngine had emitted before the fault
  (so their data was flushed: a frame is announced only after it is flushed) that the
  catalog cannot serve intact — must be 0;
- **silent corruptions**: a frame served without an error whose pixels differ from what
  was acquired, or damage that neither a read nor ``verify`` reports — must be 0;
- **crashes**: scan processes ended by a signal nobody sent them (a segfault) — must
  be 0. A scan the full disk stopped ends with one error and exit status 1, promptly,
  and its run (stop document, provenance record) says it failed.

``tests/faults/test_faults.py`` runs a few trials in ``make test``; ``benchmarks/
faults.py`` runs many and prints ``faults.* = value`` lines.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SHAPE = (128, 128)
"""Frame shape of the trials (32 KiB per frame: the frame file dominates the disk)."""
REPO = Path(__file__).resolve().parents[2]
CLOSE_TIMEOUT_S = 60.0
"""The scan's provenance recorder's ``close_timeout``: how long a failed scan would wait
for a frame file HDF5 could not close, were the writer not letting go of it."""


def expected_frame(index: int) -> np.ndarray:
    """The frame number ``index`` every trial's detector acquires."""
    base = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint32).reshape(SHAPE)
    return ((base * 7 + index * 1009) % 65521).astype(np.uint16)


SCAN = textwrap.dedent('''
    import os, resource, signal, sys, time
    import numpy as np
    from bluesky import RunEngine, plans as bp
    from ophyd import Component, Device, Signal
    from ophyd.status import StatusBase
    from dataflow.catalog import Catalog
    from dataflow.hdf5 import FrameWriter
    from dataflow.provenance import ProvenanceRecorder
    sys.path.insert(0, {repo!r})
    from tests.faults.harness import SHAPE, expected_frame

    data, batch, frames, fsize = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

    class Cam(Device):
        total = Component(Signal, value=0, kind="hinted")

        def stage(self):
            self.writer = FrameWriter(self.folder, "cam.h5", SHAPE, data_key="cam_image")
            self.i = 0
            return super().stage()

        def unstage(self):
            self.writer.close()
            return super().unstage()

        def trigger(self):
            frame = expected_frame(self.i)
            self.writer.append(frame)
            self.i += 1
            self.total.put(int(frame.sum()))
            status = StatusBase()
            status.set_finished()
            return status

        def describe(self):
            d = super().describe()
            d["cam_image"] = {{"source": "faults", "shape": list(SHAPE), "dtype": "array",
                              "dtype_numpy": "<u2", "external": "STREAM:"}}
            return d

        def collect_asset_docs(self):
            yield from self.writer.asset_docs()

    catalog = Catalog(data)
    RE = RunEngine({{}})
    catalog.subscribe(RE, batch_size=batch or None)
    # (the writer lets go of a frame file HDF5 could not complete and tells the recorder,
    # which then hashes it at once; were that broken, it would wait this long)
    recorder = ProvenanceRecorder.for_catalog(catalog, close_timeout={close_timeout})
    recorder.subscribe(RE)
    cam = Cam(name="cam")
    cam.folder = catalog.raw_dir
    RE.subscribe(lambda name, doc: print(name, flush=True) if name == "event" else None)
    if fsize:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, as a full disk gives ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    try:
        RE(bp.count([cam], frames, delay=0.01))
    except Exception as exc:
        print("failed", type(exc).__name__, flush=True)
        waited = time.monotonic()
        recorder.wait(60)
        print("recorder waited", time.monotonic() - waited, flush=True)
        sys.exit(f"scan failed: {{exc}}")  # (one line on stderr, status 1: as the CLI does)
    recorder.wait(60)
''').format(repo=str(REPO), close_timeout=CLOSE_TIMEOUT_S)


@dataclass
class Report:
    """What a set of trials found (see the module docstring)."""

    attempted: int = 0
    recoverable: int = 0
    killed: int = 0
    """Runs whose process was killed mid-scan (SIGKILL)."""
    killed_readable: int = 0
    """Killed runs found, repaired and read back (every frame intact or an error)."""
    flushed_frames_lost: int = 0
    silent_corruptions: int = 0
    crashes: int = 0
    """Scan processes ended by a signal nobody sent them (SIGSEGV at exit)."""
    failed_exits: list[tuple[int | None, float | None, float]] = \
        field(default_factory=list)
    """Scans that failed (a full disk): exit status, seconds the provenance recorder
    then took to finish the run's record, seconds from the failure reaching the plan's
    caller to the process's end."""
    failures_unrecorded: int = 0
    """Failed scans whose stop document or provenance record does not say so."""
    detected: int = 0
    """Damaged frames or files reported as such (an error, a failed verify)."""
    notes: list[str] = field(default_factory=list)

    def add(self, other: Report) -> None:
        """Fold another report into this one."""
        self.attempted += other.attempted
        self.recoverable += other.recoverable
        self.killed += other.killed
        self.killed_readable += other.killed_readable
        self.flushed_frames_lost += other.flushed_frames_lost
        self.silent_corruptions += other.silent_corruptions
        self.crashes += other.crashes
        self.failed_exits += other.failed_exits
        self.failures_unrecorded += other.failures_unrecorded
        self.detected += other.detected
        self.notes += other.notes


def _scan(data: Path, batch: int, frames: int, fsize: int = 0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SCAN, str(data), str(batch), str(frames),
                             str(fsize)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@dataclass
class Ended:
    """How a trial's scan process ended."""

    events: int
    """Events it announced."""
    status: int | None
    """Its exit status (negative: the signal that ended it)."""
    failed_for: float | None
    """Seconds from the scan's failure reaching the plan's caller (its ``failed`` line)
    to the process's end; ``None`` when the scan did not fail."""
    recorder_wait: float | None
    """Seconds the failed scan then waited for its provenance record."""
    stderr: str


def _events_until(proc: subprocess.Popen[str], stop_after: int | None,
                  timeout: float = 300) -> Ended:
    """Events the child announced until ``stop_after`` of them (then SIGKILL) or its end."""
    assert proc.stdout is not None
    seen = 0
    failed_at = waited = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.strip() == "event":
            seen += 1
            if stop_after is not None and seen >= stop_after:
                proc.send_signal(signal.SIGKILL)
                break
        elif line.startswith("failed"):
            failed_at = time.monotonic()
        elif line.startswith("recorder waited"):
            waited = float(line.split()[-1])
    _, err = proc.communicate(timeout=60)
    return Ended(seen, proc.returncode,
                 None if failed_at is None else time.monotonic() - failed_at, waited, err)


def _crashed(ended: Ended, report: Report, label: str, killed: bool = False) -> None:
    """Count a scan process ended by a signal it was not sent."""
    if ended.status is not None and ended.status < 0 and \
            not (killed and ended.status == -signal.SIGKILL):
        report.crashes += 1
        report.notes.append(f"{label}: the scan process died of signal {-ended.status}: "
                            f"{ended.stderr[-600:]}")


def check_run(data: Path, seen: int, report: Report, label: str) -> bool:
    """After a fault: find the run, repair it when it has no stop, read every frame."""
    from dataflow.catalog import Catalog, run_details
    from dataflow.repair import repair_run

    with Catalog(data) as catalog:
        runs = catalog.runs()
        if len(runs) != 1:
            report.notes.append(f"{label}: {len(runs)} runs in the catalog, expected 1")
            report.flushed_frames_lost += seen
            return False
        uid = runs[0].uid
        try:
            if not catalog.run(uid).metadata.get("stop"):
                repair_run(catalog, uid)
            run = catalog.run(uid)
            run_details(run)
        except Exception as exc:
            report.notes.append(f"{label}: not recoverable: {type(exc).__name__}: {exc}")
            report.flushed_frames_lost += seen
            return False
        stream = run.get("primary", None)
        n = int(stream["cam_image"].shape[0]) if stream is not None and \
            "cam_image" in stream else 0
        good = 0
        for i in range(n):
            try:
                frame = np.asarray(stream["cam_image"][i])  # type: ignore[index]
            except Exception as exc:
                report.detected += 1
                if i == 0 or i == n - 1:
                    report.notes.append(f"{label}: frame {i}: {type(exc).__name__}: {str(exc)[-400:]}")
                continue
            if np.array_equal(frame, expected_frame(i)):
                good += 1
            else:
                report.silent_corruptions += 1
                report.notes.append(f"{label}: frame {i} served with other pixels")
        lost = max(0, seen - good)
        report.flushed_frames_lost += lost
        if lost:
            report.notes.append(f"{label}: {lost} of {seen} flushed frames not served "
                                f"({n} announced, {good} intact; stop "
                                f"{(run.metadata.get('stop') or {}).get('exit_status')})")
        report.recoverable += 1
        return True


def killed_scan(root: Path, rng: random.Random, batch: int = 0, frames: int = 40) -> Report:
    """SIGKILL a scan after a random number of events (default batching: the demo's)."""
    report = Report(attempted=1, killed=1)
    data = root / f"killed-{rng.randrange(10**9)}"
    stop_after = rng.randint(1, frames - 1)
    ended = _events_until(_scan(data, batch, frames), stop_after)
    seen = ended.events
    label = f"killed after {seen} events (batch {batch})"
    _crashed(ended, report, label, killed=True)
    if check_run(data, seen, report, label):
        report.killed_readable += 1
    return report


def disk_full(root: Path, rng: random.Random, frames: int = 40) -> Report:
    """The disk fills up mid-scan: writes beyond a file-size limit fail (EFBIG)."""
    from dataflow.catalog import Catalog

    report = Report(attempted=1)
    data = root / f"full-{rng.randrange(10**9)}"
    Catalog(data).close()  # the catalog exists: the limit hits the frame file first
    biggest = max(p.stat().st_size for p in data.rglob("*") if p.is_file())
    frame_bytes = SHAPE[0] * SHAPE[1] * 2
    limit = biggest + frame_bytes * rng.randint(4, frames // 2)
    ended = _events_until(_scan(data, 0, frames, fsize=limit), None)
    label = f"disk full after {ended.events} events"
    _crashed(ended, report, label)
    if ended.failed_for is None:
        report.notes.append(f"{label}: the scan did not fail (status {ended.status})")
    else:
        report.failed_exits.append((ended.status, ended.recorder_wait, ended.failed_for))
    if check_run(data, ended.events, report, label):
        _failure_recorded(data, report, label)
    return report


def _failure_recorded(data: Path, report: Report, label: str) -> None:
    """The failed run's stop document says it failed, and its provenance record says
    its frame file was left by a failed write."""
    from dataflow.catalog import Catalog
    from dataflow.provenance import load_record_file, record_path

    with Catalog(data) as catalog:
        (summary,) = catalog.runs()
        stop = catalog.run(summary.uid).metadata.get("stop") or {}
        path = record_path(catalog.raw_dir / "provenance", summary.uid)
    notes = [str(entry.get("note")) for entry in
             load_record_file(path)["files"]] if path.exists() else []
    if stop.get("exit_status") != "fail" or not any("failed write" in n for n in notes):
        report.failures_unrecorded += 1
        report.notes.append(f"{label}: stop {stop.get('exit_status')!r}, record notes "
                            f"{notes}")


def finished_run(root: Path, frames: int = 12) -> Path:
    """A catalog holding one complete run with its provenance record (the original that
    the damage trials copy and damage); it verifies."""
    from dataflow.catalog import Catalog
    from dataflow.provenance import verify_run

    data = root / "pristine"
    if not data.exists():
        seen = _events_until(_scan(data, 1, frames), None).events
        assert seen == frames, f"the reference scan took {seen} of {frames} frames"
        with Catalog(data) as catalog:
            (summary,) = catalog.runs()
            report = verify_run(catalog.run(summary.uid),
                                record_dir=catalog.raw_dir / "provenance")
            assert report.ok, "\n".join(report.lines())
    return data


def damaged_file(root: Path, rng: random.Random, kind: str) -> Report:
    """A copy of a finished run whose frame file is cut short or has one flipped bit:
    every frame must read back intact or as an error, and ``verify`` must fail."""
    from dataflow.catalog import Catalog
    from dataflow.provenance import verify_run

    report = Report(attempted=1)
    data = root / f"{kind}-{rng.randrange(10**9)}"
    shutil.copytree(finished_run(root), data)
    path = data / "raw" / "cam.h5"
    raw = bytearray(path.read_bytes())
    if kind == "truncated":
        cut = rng.randrange(1, len(raw))
        path.write_bytes(bytes(raw[:cut]))
        what = f"cut at byte {cut} of {len(raw)}"
    else:
        offset, bit = rng.randrange(len(raw)), rng.randrange(8)
        raw[offset] ^= 1 << bit
        path.write_bytes(bytes(raw))
        what = f"bit {bit} of byte {offset} flipped"
    label = f"{kind} file ({what})"
    with Catalog(data) as catalog:
        (summary,) = catalog.runs()
        run = catalog.run(summary.uid)
        n = int(run["primary"]["cam_image"].shape[0])
        wrong = 0
        for i in range(n):
            try:
                frame = np.asarray(run["primary"]["cam_image"][i])
            except Exception:
                report.detected += 1
                continue
            if not np.array_equal(frame, expected_frame(i)):
                wrong += 1
                report.notes.append(f"{label}: frame {i} served with other pixels")
        verified = verify_run(run, record_dir=catalog.raw_dir / "provenance")
        if verified.ok:
            report.notes.append(f"{label}: verify passed")
        else:
            report.detected += 1
        report.silent_corruptions += wrong + (1 if verified.ok else 0)
        report.recoverable += 1
    return report


def run_trials(root: Path, seed: int, killed: int, full: int, truncated: int,
               flipped: int) -> Report:
    """A set of trials; one ``Report`` for all of them."""
    rng = random.Random(seed)
    total = Report()
    for i in range(killed):
        total.add(killed_scan(root, rng, batch=0 if i % 2 == 0 else 1))
    for _ in range(full):
        total.add(disk_full(root, rng))
    for _ in range(truncated):
        total.add(damaged_file(root, rng, "truncated"))
    for _ in range(flipped):
        total.add(damaged_file(root, rng, "flipped"))
    return total


def figures(report: Report) -> list[str]:
    """The ``name = value`` lines of a report."""
    return [f"faults.runs_attempted = {report.attempted}",
            f"faults.runs_recoverable = {report.recoverable}",
            f"faults.killed_runs_readable = {report.killed_readable} of {report.killed}",
            f"faults.flushed_frames_lost = {report.flushed_frames_lost}",
            f"faults.silent_corruptions = {report.silent_corruptions}",
            f"faults.crashes = {report.crashes}",
            f"faults.damage_detected = {report.detected}"]


__all__ = [
    "SHAPE",
    "Ended",
    "Report",
    "check_run",
    "damaged_file",
    "disk_full",
    "expected_frame",
    "figures",
    "finished_run",
    "killed_scan",
    "run_trials",
]
