"""The fault-injection suite, small enough for ``make test`` (``benchmarks/faults.py`` runs
many more trials): SIGKILL at a random point of a scan (with the default batching writer
and with ``batch_size=1``), a disk that fills up mid-scan, a frame file cut short at a
random byte, a random bit flipped. No flushed frame may be lost, no damage may pass
silently, every killed run must be readable."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from .harness import CLOSE_TIMEOUT_S, Report, damaged_file, disk_full, figures, killed_scan


@pytest.mark.slow
@pytest.mark.parametrize("batch", [0, 1], ids=["batching", "batch1"])
def test_a_killed_scan_loses_no_flushed_frame(tmp_path: Path, batch: int) -> None:
    report = killed_scan(tmp_path, random.Random(1000 + batch), batch=batch, frames=30)
    assert (report.recoverable, report.flushed_frames_lost, report.silent_corruptions) == \
        (1, 0, 0), report.notes


@pytest.mark.slow
def test_a_full_disk_mid_scan_loses_no_flushed_frame(tmp_path: Path) -> None:
    """HDF5 cannot complete the frame file; the frames flushed before are still served
    (their checksums prove them intact). The writer lets go of the file and says so: the
    scan process ends with one error and status 1, soon after the failure, its record
    written at once (it waited the recorder's whole close_timeout for a file HDF5 could
    not close, and could die of SIGSEGV at exit: HDF5's shutdown tripping over the
    half-closed file), and its run and record say it failed. "Soon" is less than half
    that timeout (60 s): a process that waits it fails, while a loaded machine's slow
    exit (several seconds of wall time) does not."""
    report = disk_full(tmp_path, random.Random(7), frames=30)
    assert (report.recoverable, report.flushed_frames_lost, report.silent_corruptions,
            report.crashes, report.failures_unrecorded) == (1, 0, 0, 0, 0), report.notes
    ((status, recorded, seconds),) = report.failed_exits
    assert status == 1, report.notes
    assert recorded is not None and recorded < 1, f"the record took {recorded} s"
    assert seconds < CLOSE_TIMEOUT_S / 2, \
        f"{seconds:.1f} s from the failure to the process's end"


@pytest.mark.slow
def test_damaged_files_never_pass_silently(tmp_path: Path) -> None:
    rng = random.Random(11)
    total = Report()
    for kind in ("truncated", "truncated", "flipped", "flipped", "flipped", "flipped"):
        total.add(damaged_file(tmp_path, rng, kind))
    assert total.silent_corruptions == 0, total.notes
    assert total.detected >= total.attempted  # every damaged file was reported
    assert "faults.silent_corruptions = 0" in figures(total)
