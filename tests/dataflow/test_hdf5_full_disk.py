"""A frame file HDF5 cannot complete (a full disk): the writer lets go of it without
leaving HDF5 anything to crash on, says so in one error, and the provenance recorder
hashes the file as found at once, saying why (``tests/faults`` runs a whole scan)."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count

from dataflow.catalog import Catalog
from dataflow.hdf5 import FrameFileError, failed_write, open_frames
from dataflow.integrity import HDF5ReadError, sidecar_path
from dataflow.provenance import METADATA_KEY, ProvenanceRecorder

FULL = textwrap.dedent('''
    import resource, signal, sys
    import numpy as np
    from dataflow.hdf5 import FrameFileError, FrameWriter, failed_write, open_in_process

    w = FrameWriter(sys.argv[1], "f.h5", (128, 128))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail: EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
    announced = 0
    try:
        for i in range(100):
            w.append(np.full((128, 128), i, np.uint16))
            if list(w.asset_docs()):
                announced = i + 1
    except OSError as exc:
        print("write failed:", exc.errno, flush=True)
    for _ in range(2):
        try:
            w.close()
        except FrameFileError as exc:
            print("close:", exc, flush=True)
    print("failed_write:", failed_write(w.path))
    print("open:", open_in_process(w.path))
    print("announced:", announced, flush=True)
''')


def test_a_file_hdf5_cannot_complete_is_let_go_without_a_crash(tmp_path: Path) -> None:
    """HDF5 cannot close a file whose metadata it cannot write, and leaves a half-torn
    file id that its shutdown at exit (or ``open_in_process`` asking the id's name)
    trips over: the process died of SIGSEGV after the frames were written."""
    done = subprocess.run([sys.executable, "-c", FULL, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Exception ignored" not in done.stderr  # (h5py failing to close ids at exit)
    lines = done.stdout.splitlines()
    assert lines[0] == f"write failed: {errno.EFBIG}"
    path = tmp_path / "f.h5"
    closes = [line for line in lines if line.startswith("close:")]
    assert len(closes) == 2 and closes[0] == closes[1]  # (every later close says it again)
    assert f"{path}: the frame file could not be written to the end (File too large)" \
        in closes[0]
    assert lines[-3:-1] == ["failed_write: File too large", "open: False"]
    announced = int(lines[-1].split()[-1])
    assert announced >= 8
    with open_frames(path) as reader:  # the frames announced before are intact
        for i in range(announced):
            np.testing.assert_array_equal(reader.frame(i), np.full((128, 128), i))
    assert not sidecar_path(path).exists()


DROPPED = textwrap.dedent('''
    import gc, resource, signal, sys
    import numpy as np
    from dataflow.hdf5 import FrameWriter, failed_write

    w = FrameWriter(sys.argv[1], "f.h5", (128, 128))
    path = w.path
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail: EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
    try:
        for i in range(100):
            w.append(np.full((128, 128), i, np.uint16))
            list(w.asset_docs())
    except OSError as exc:
        print("write failed:", exc.errno, flush=True)
    if sys.argv[2] == "collected":
        del w
        gc.collect()
        print("failed_write:", failed_write(path), flush=True)
    elif sys.argv[2] == "cycle":  # (collected at exit, after the atexit handlers)
        w.me = w
        del w
''')


@pytest.mark.parametrize("how", ["collected", "alive_at_exit", "cycle"])
def test_a_failed_writer_dropped_without_close_is_let_go_without_a_crash(
        tmp_path: Path, how: str) -> None:
    """A writer whose disk filled, never closed: h5py's garbage collection of its file
    (or HDF5's shutdown at exit) closed the file HDF5 cannot complete and left its id
    half torn: SIGSEGV at exit, whichever way the writer went. Its finalizer lets go of
    the file as close() does, with one warning."""
    done = subprocess.run([sys.executable, "-c", DROPPED, str(tmp_path), how],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Exception ignored" not in done.stderr
    assert done.stdout.splitlines()[0] == f"write failed: {errno.EFBIG}"
    if how == "collected":
        assert done.stdout.splitlines()[1] == "failed_write: File too large"
    path = tmp_path / "f.h5"
    assert done.stderr.strip() == (f"{path}: a frame writer was dropped without close() "
                                   "and the frame file could not be written to the end "
                                   "(File too large); it was closed as found")
    with open_frames(path) as reader:  # the frames flushed before are intact
        assert len(reader) >= 8
        for i in range(8):
            np.testing.assert_array_equal(reader.frame(i), np.full((128, 128), i))


READER = textwrap.dedent('''
    import os, resource, signal, sys
    import h5py
    import numpy as np
    from dataflow.hdf5 import FrameFileError, FrameWriter, failed_write

    w = FrameWriter(sys.argv[1], "f.h5", (128, 128))
    w.append(np.full((128, 128), 0, np.uint16))
    list(w.asset_docs())
    fd = os.open(w.path, os.O_RDONLY)  # (as the catalog's adapter opens a frame file)
    reader = h5py.File(f"/proc/self/fd/{fd}", "r", swmr=True)
    print("reader:", reader["entry/data/data"].shape[0], flush=True)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail: EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
    announced = 1
    try:
        for i in range(1, 100):
            w.append(np.full((128, 128), i, np.uint16))
            if list(w.asset_docs()):
                announced = i + 1
    except OSError as exc:
        print("write failed:", exc.errno, flush=True)
    try:
        w.close()
    except FrameFileError as exc:
        print("close:", exc, flush=True)
    print("failed_write:", failed_write(w.path), flush=True)
    print("announced:", announced, flush=True)
''')


def test_a_reader_in_the_same_process_holding_the_failed_file(tmp_path: Path) -> None:
    """A same-process reader (opened as the catalog's adapter opens a frame file) holds
    the file when the disk fills: HDF5 shares one open file between the two handles and
    flushes it at every close, so neither can be closed while the file cannot be written
    (closing the reader first fails alike). No crash, and the error says so: it said
    "the file was closed as found", which it was not. HDF5's shutdown then writes a
    superblock ending past the file (403456 of 400000 bytes), still flagged open for
    writing, which the reader refuses as truncated at once (opened as a file being
    written, HDF5 would retry its damaged metadata for minutes: a hang)."""
    done = subprocess.run([sys.executable, "-c", READER, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[:2] == ["reader: 1", f"write failed: {errno.EFBIG}"]
    path = tmp_path / "f.h5"
    (close,) = [line for line in lines if line.startswith("close:")]
    assert lines[-2] == "failed_write: File too large"
    announced = int(lines[-1].removeprefix("announced: "))
    assert announced >= 8
    assert close.endswith(f"{path}: the frame file could not be written to the end (File "
                          f"too large); the {announced} frames announced before were "
                          "written, but another HDF5 handle of this process (a reader) has "
                          "the file open, and HDF5 can close none of its handles while it "
                          "cannot write the file: it is left as found, without its .sha256, "
                          "and may not be readable")
    with pytest.raises(HDF5ReadError, match="truncated"):  # one clear error, at once
        open_frames(path)


def test_the_recorder_hashes_a_failed_file_at_once_and_says_why(
        catalog: Catalog, frame_cam: Any) -> None:
    """A scan whose disk fills up after two frames: the run says it failed, the record
    is written as soon as the writer let go of the file (it waited the close_timeout
    for a file that was never closed), and its entry says the file is incomplete."""

    class FullDiskCam(frame_cam):  # type: ignore[misc,valid-type]
        def trigger(self) -> Any:
            if self._index == 2:  # HDF5 writes from now on fail: the disk is full
                def full() -> None:
                    raise OSError(errno.ENOSPC, "No space left on device")
                self.writer.flush = full
            return super().trigger()

    RE = RunEngine()
    catalog.subscribe(RE)
    recorder = ProvenanceRecorder.for_catalog(catalog, close_timeout=5)
    recorder.subscribe(RE)
    starts: list[str] = []
    RE.subscribe(lambda name, doc: starts.append(doc["uid"]) if name == "start" else None)
    cam = FullDiskCam(name="full", folder=catalog.raw_dir)
    with pytest.raises(OSError, match="No space left on device"):
        RE(count([cam], 4))
    started = time.monotonic()
    assert recorder.wait(30)
    assert time.monotonic() - started < 0.9, "the recorder waited for the file"
    assert not recorder.failures
    path = cam.writer.path
    assert failed_write(path) == "No space left on device"
    with pytest.raises(FrameFileError, match="the 2 frames announced before stay readable"):
        cam.writer.close()
    run = catalog.run(starts[0])
    assert run.metadata["stop"]["exit_status"] == "fail"
    (entry,) = run.metadata[METADATA_KEY]["files"]
    assert entry["digest_source"] == "computed" and not sidecar_path(path).exists()
    assert entry["note"].startswith("left by a failed write (No space left on device)")
    with open_frames(path) as reader:
        assert len(reader) == 2
