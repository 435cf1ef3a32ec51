"""A named pipe, device or directory in a data file's place is refused with one clear error
by every reader of data files a user or the catalog names — never read, never a hang.

A blocking ``open`` of a named pipe waits for a writer for ever, and ``h5py.File`` of one
blocks inside HDF5 holding the GIL: the whole process (the RunEngine with it) freezes.
The readers therefore run in a child process with a timeout, and the catalog test under
``faulthandler``'s watchdog (a C thread, which a held GIL does not stop).
"""

from __future__ import annotations

import faulthandler
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dataflow.catalog import check_frame_files
from dataflow.hdf5 import FrameWriter, open_frames, open_in_process
from dataflow.regular_file import NotRegularFileError, h5_open

SHAPE = (8, 4)

READERS = """
import json, sys
from pathlib import Path
path = Path(sys.argv[1])
calls = {
    "file_sha256": "from dataflow.hdf5 import file_sha256 as f; f(path)",
    "open_frames": "from dataflow.hdf5 import open_frames as f; f(path)",
    "read_counters": "from dataflow.hdf5 import read_counters as f; f(path)",
    "read_superblock": "from dataflow.integrity import read_superblock as f; f(path)",
    "check_file_size": "from dataflow.integrity import check_file_size as f; f(path)",
    "dataset_attributes": "from dataflow.provenance.record import dataset_attributes as f; "
                          "f(path)",
    "load_record_file": "from dataflow.provenance.record import load_record_file as f; f(path)",
    "read_frame_stack": "from analysis.live_runs import read_frame_stack as f; "
                        "f(path, '/entry/data/data', [0])",
    "h5_open": "from dataflow.regular_file import h5_open as f; f(path)",
}
out = {}
for name, code in calls.items():
    try:
        exec(code)
        out[name] = "no error"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
from dataflow.provenance.record import build_record
record = build_record({"uid": "abc"}, [{"uri": "file://localhost" + str(path),
                      "data_key": "det_image", "mimetype": "application/x-hdf5"}],
                      {"exit_status": "success"})
out["build_record"] = record["files"]
print(json.dumps(out))
"""

ERRORS = {
    "file_sha256": "NotRegularFileError: {p}: not a regular file ({kind})",
    "open_frames": "HDF5ReadError: {p}: not a regular file ({kind})",
    "read_counters": "HDF5ReadError: {p}: cannot read counters: not a regular file ({kind})",
    "read_superblock": "HDF5ReadError: {p}: cannot read: not a regular file ({kind})",
    "check_file_size": "HDF5ReadError: {p}: cannot read: not a regular file ({kind})",
    "dataset_attributes": "ProvenanceError: {p}: cannot read the attributes of "
                          "'/entry/data/data': not a regular file ({kind})",
    "load_record_file": "ProvenanceError: {p}: not a readable provenance record: not a "
                        "regular file ({kind})",
    "read_frame_stack": "HDF5ReadError: {p}: not a regular file ({kind})",
    "h5_open": "NotRegularFileError: {p}: not a regular file ({kind})",
}


def _readers(path: Path, repo_root: Path) -> dict[str, Any]:
    try:
        done = subprocess.run([sys.executable, "-c", READERS, str(path)], cwd=repo_root,
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"a reader blocked on {path} for 60 s") from None
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.fixture
def writer_held_fifo(tmp_path: Path) -> Iterator[Path]:
    """A named pipe in a data file's place, with a writer holding it open: an ``open``
    succeeds and reading then blocks (what froze the process inside HDF5)."""
    fifo = tmp_path / "raw.h5"
    os.mkfifo(fifo)
    held = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    yield fifo
    os.close(held)


@pytest.mark.parametrize("kind", ["a named pipe", "a named pipe, held open", "a directory",
                                  "a character device"])
def test_every_reader_refuses_what_is_not_a_regular_file(
        tmp_path: Path, repo_root: Path, kind: str) -> None:
    path = tmp_path / "raw.h5"
    held = None
    if kind.startswith("a named pipe"):
        os.mkfifo(path)
        if kind.endswith("held open"):
            held = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    elif kind == "a directory":
        path.mkdir()
    else:
        path.symlink_to("/dev/zero")  # a digest of it would read for ever
    try:
        got = _readers(path, repo_root)
    finally:
        if held is not None:
            os.close(held)
    name = kind.removesuffix(", held open")
    for reader, message in ERRORS.items():
        assert got[reader] == message.format(p=path, kind=name), reader
    (entry,) = got["build_record"]
    assert entry["sha256"] is None and entry["size"] is None
    assert entry["error"] == f"{path}: not a regular file ({name}) when the run stopped"


def test_a_file_swapped_for_a_pipe_while_it_is_opened_is_read_as_checked(
        tmp_path: Path, repo_root: Path) -> None:
    """The name is swapped for a named pipe between the check and HDF5's open: HDF5
    opens the file that was checked (by its descriptor), not what the name now is."""
    with FrameWriter(tmp_path, "raw.h5", SHAPE) as w:
        w.append(np.full(SHAPE, 7, np.uint16))
    code = f"""
import os, dataflow.regular_file as rf
path = {str(w.path)!r}
checked = rf.open_regular_fd
def swap_after_check(p):
    fd = checked(p)
    os.rename(p, p + ".moved")
    os.mkfifo(p)
    return fd
rf.open_regular_fd = swap_after_check
with rf.h5_open(path) as f:
    print(int(f["/entry/data/data"][0, 0, 0]))
"""
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=repo_root,
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError("HDF5 opened the named pipe swapped in after the check") from None
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["7"]


def test_a_file_opened_by_descriptor_is_still_seen_open_in_this_process(
        tmp_path: Path) -> None:
    """Readers open files as ``/proc/self/fd/<n>``: the writer still sees them open and
    writes no sidecar until the last one closes (``open_in_process`` compares inodes)."""
    writer = FrameWriter(tmp_path, "shared.h5", SHAPE)
    writer.append(np.ones(SHAPE, np.uint16))
    writer.flush()
    reader = open_frames(writer.path)
    try:
        writer.close()
        assert open_in_process(writer.path)
        assert not (tmp_path / "shared.h5.sha256").exists()
    finally:
        reader.close()
    assert not open_in_process(writer.path)
    with h5_open(writer.path) as f:
        assert open_in_process(writer.path) and f["/entry/data/data"].shape == (1, *SHAPE)


def test_h5_open_names_what_stands_in_the_files_place(tmp_path: Path) -> None:
    with pytest.raises(NotRegularFileError, match=rf"^{tmp_path}: not a regular file "
                                                  r"\(a directory\)$"):
        h5_open(tmp_path)
    with pytest.raises(FileNotFoundError):
        h5_open(tmp_path / "missing.h5")


def test_the_catalog_refuses_a_run_file_replaced_by_a_pipe(
        run_with_frames: tuple[Any, Path], writer_held_fifo: Path) -> None:
    """The catalog's checks and its reader of frames (``frame_adapter``) name the pipe;
    a hang here would freeze the test process, so a watchdog ends it after 60 s."""
    run, path = run_with_frames
    path.unlink()
    os.rename(writer_held_fifo, path)
    faulthandler.dump_traceback_later(60, exit=True)
    try:
        with pytest.raises(OSError, match=rf"^{path}: not a regular file \(a named pipe\) "
                                          r"\(data key primary/cam_image\)$"):
            check_frame_files(run)
        with pytest.raises(Exception, match="not a regular file \\(a named pipe\\)"):
            run["primary"]["cam_image"].read()
    finally:
        faulthandler.cancel_dump_traceback_later()
