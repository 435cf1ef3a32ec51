"""A fly file's NXmx ``start_time`` (the first frame's trigger, known only when the first
frames come) is in the file with the first frames that land there: a file whose first
append fails (a full disk) or whose writer is killed before those frames are flushed
claims no start for a frame it does not hold. Each writer here runs in a process of its
own, killed (``os._exit``: no HDF5 shutdown) or with its file size limited
(``RLIMIT_FSIZE``: writes past it fail with EFBIG, as on a full disk)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import pytest

from dataflow.hdf5_nexus import iso_time

FIRST = 1_767_268_800.0  # the first frame's trigger (2026-01-01 12:00 UTC)

WRITE = textwrap.dedent("""
    import os, resource, signal, sys
    import numpy as np
    from dataflow.hdf5 import FrameWriter

    folder, room, flush = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "flush"
    w = FrameWriter(folder, "fly.h5", (128, 128), start_pending=True)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if room:
        size = os.path.getsize(w.path) + room
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    try:
        if w.start_pending:  # (what a fly detector does with each batch: devices.detector_fly)
            w.set_start_time(float(sys.argv[4]))
        w.append_many(np.ones((4, 128, 128), np.uint16))
        if flush:
            w.flush()
        print("appended", flush=True)
    except OSError as exc:
        print("failed:", type(exc).__name__, flush=True)
    os._exit(0)
""")


def _run(folder: Path, room: int, flush: bool) -> tuple[str, int, bytes]:
    done = subprocess.run([sys.executable, "-c", WRITE, str(folder), str(room),
                           "flush" if flush else "no", str(FIRST)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with h5py.File(folder / "fly.h5", "r", swmr=True) as f:
        return done.stdout.strip(), f["entry/data/data"].shape[0], f["entry/start_time"][()]


@pytest.mark.parametrize("flush", [True, False], ids=["flushed", "not-flushed"])
def test_a_first_append_the_full_disk_refused_claims_no_start(tmp_path: Path,
                                                              flush: bool) -> None:
    said, frames, start = _run(tmp_path, 8_000, flush)
    assert said.startswith("failed") or not flush
    assert (frames, start) == (0, b"")


def test_frames_killed_before_their_flush_claim_no_start(tmp_path: Path) -> None:
    said, frames, start = _run(tmp_path, 0, flush=False)
    assert said == "appended" and (frames, start) == (0, b"")


def test_the_first_frames_that_land_bring_their_start(tmp_path: Path) -> None:
    said, frames, start = _run(tmp_path, 0, flush=True)
    assert said == "appended" and frames == 4
    assert start.decode() == iso_time(FIRST)
