"""Corrupt and truncated frame files: a clear ``HDF5ReadError`` naming the file, at once.

Reading a truncated file in SWMR mode used to hang (HDF5 retries metadata reads whose
checksum fails); ``FrameReader`` now checks a complete file without SWMR first, and a file
cut short serves only the frames its checksums prove intact (``dataflow.cut_short``). A byte
flipped inside the raw chunk data is not detected by HDF5 (no checksum on raw data): the
frames read back differ, and the SHA-256 digest recorded when the file was closed is what
catches it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from dataflow.catalog import check_frame_files
from dataflow.hdf5 import DEFAULT_DATASET, FrameWriter, HDF5ReadError, file_sha256, open_frames
from dataflow.integrity import ChecksumError

SHAPE = (32, 16)


def frames(n: int) -> np.ndarray:
    return (np.arange(n * SHAPE[0] * SHAPE[1], dtype=np.uint32) % 65521).astype(
        np.uint16).reshape(n, *SHAPE)


@pytest.fixture
def good(tmp_path: Path) -> Path:
    with FrameWriter(tmp_path, "good.h5", SHAPE, layout=(4, 16, 16)) as w:
        w.append_many(frames(12))
    return tmp_path / "good.h5"


@pytest.mark.parametrize("cut", [0.002, 0.1, 0.5, 0.9, -1])
def test_truncated_file_serves_intact_frames_only_at_once(good: Path, cut: float) -> None:
    """A closed file cut short is refused as a whole (naming it) when its metadata was
    lost, else each frame reads back as written or as an error naming file and frame."""
    data = good.read_bytes()
    keep = len(data) - 1 if cut == -1 else max(1, int(len(data) * cut))
    path = good.with_name("cut.h5")
    path.write_bytes(data[:keep])
    t0 = time.perf_counter()
    served = 0
    try:
        reader = open_frames(path)
    except HDF5ReadError as exc:
        assert str(exc).startswith(f"{path}: not a readable HDF5 file (truncated"), exc
    else:
        with reader:
            for i in range(len(reader)):
                try:
                    frame = reader.frame(i)
                except HDF5ReadError as exc:
                    assert str(exc).startswith(f"{path}: "), exc
                    assert f"frame {i} " in str(exc) or f"read {i} " in str(exc), exc
                    continue
                np.testing.assert_array_equal(frame, frames(i + 1)[i])
                served += 1
    assert time.perf_counter() - t0 < 5  # SWMR mode alone retried for minutes
    if cut in (0.9, -1):
        assert served >= 4  # the frames before the cut are intact: they are served


def test_truncated_file_reports_both_sizes(good: Path) -> None:
    size = good.stat().st_size
    path = good.with_name("half.h5")
    path.write_bytes(good.read_bytes()[:size // 4])
    with pytest.raises(HDF5ReadError, match=rf"\(truncated: {size // 4} bytes, its superblock "
                                            rf"says {size}\)"):
        open_frames(path)


@pytest.mark.parametrize("data", [b"", b"\x00" * 4096, bytes(range(256)) * 4,
                                  b"\x89HDF\r\n\x1a\n" + b"\xff" * 100])
def test_empty_or_random_bytes_are_not_a_frame_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "junk.h5"
    path.write_bytes(data)
    with pytest.raises(HDF5ReadError, match=rf"^{path}: not a readable HDF5 file"):
        open_frames(path)


def test_file_whose_dataset_is_a_group(tmp_path: Path) -> None:
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as f:
        f.create_group(DEFAULT_DATASET)
    with pytest.raises(HDF5ReadError, match=rf"^{path}: '/entry/data/data' is not a 3-D"):
        open_frames(path)


def test_flipped_byte_in_chunk_data_is_caught_by_the_frame_checksum(good: Path) -> None:
    """HDF5 keeps no checksum of raw data, so plain h5py reads the changed frame; the
    writer's per-frame CRC-32 makes it an error naming the file and frame, and the
    file's digest differs too."""
    recorded = good.with_name("good.h5.sha256").read_text().split()[0]
    assert file_sha256(good) == recorded
    with h5py.File(good, "r") as f:
        offset = f[DEFAULT_DATASET].id.get_chunk_info(0).byte_offset
    data = bytearray(good.read_bytes())
    data[offset + 3] ^= 0x40
    good.write_bytes(bytes(data))
    with h5py.File(good, "r") as f:  # what any reader without the check gets
        assert np.count_nonzero(f[DEFAULT_DATASET][0] != frames(1)[0]) == 1
    with open_frames(good) as r:
        with pytest.raises(ChecksumError, match=rf"^{good}: frame 0 is damaged \(its "
                                                r"CRC-32 is 0x[0-9a-f]{8}, the writer "
                                                r"stored 0x[0-9a-f]{8}\)$"):
            r.frame(0)
        with pytest.raises(ChecksumError, match="frame 0 is damaged"):
            r.read(np.s_[0:4])
        np.testing.assert_array_equal(r.frame(4), frames(5)[4])  # other frames are fine
    assert file_sha256(good) != recorded


def test_file_left_open_by_a_killed_writer_is_still_read(tmp_path: Path) -> None:
    """A file whose writer was SIGKILLed is marked 'open for write'; it is read in SWMR
    mode (not refused as corrupt) and every flushed frame is there."""
    code = (f"import os, signal, sys; sys.path.insert(0, {os.getcwd()!r})\n"
            "import numpy as np\nfrom dataflow.hdf5 import FrameWriter\n"
            f"w = FrameWriter({str(tmp_path)!r}, 'killed.h5', {SHAPE!r}, flush_every=1)\n"
            f"for i in range(6): w.append(np.full({SHAPE!r}, i, np.uint16))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr
    with open_frames(tmp_path / "killed.h5") as r:
        assert len(r) == 6 and int(r.frame(5)[0, 0]) == 5


# -- through the catalog -------------------------------------------------------------------

def test_check_frame_files_lists_the_good_files(run_with_frames: tuple[Any, Path]) -> None:
    run, path = run_with_frames
    assert path.suffix == ".h5" and path.is_file()
    assert run["primary"]["cam_image"][0].shape == (40, 24)


def test_truncated_run_file_is_named_before_tiled_reads_it(
        run_with_frames: tuple[Any, Path]) -> None:
    run, path = run_with_frames
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(HDF5ReadError, match=rf"^{path}: not a readable HDF5 file \(truncated: "
                                            r"1000 bytes.*\(data key primary/cam_image\)$"):
        check_frame_files(run)


def test_missing_run_file_is_named(run_with_frames: tuple[Any, Path]) -> None:
    run, path = run_with_frames
    path.unlink()
    with pytest.raises(HDF5ReadError, match=rf"^{path}: no such frame file \(data key "
                                            r"primary/cam_image\)$"):
        check_frame_files(run)


def test_a_chunk_past_the_end_is_named_once_and_found_in_one_pass(good: Path) -> None:
    """A file cut inside its last chunk that still opens (as SWMR readers open it): the
    chunk and both sizes, in one message; the check reads the chunk index once (a
    thousand-frame megapixel file has 16,000 chunks)."""
    from dataflow.hdf5_read import DEFAULT_DATASET, _open_checked

    size = good.stat().st_size
    path = good.with_name("cut_chunk.h5")
    path.write_bytes(good.read_bytes()[:size - 10])
    with pytest.raises(HDF5ReadError) as caught:
        _open_checked(path, DEFAULT_DATASET, swmr=True)
    message = str(caught.value)
    assert message == (f"{path}: not a readable HDF5 file (truncated?): chunk (8, 16, 0) "
                       f"ends at byte {size}, the file has {size - 10} bytes")

    many = good.with_name("many_chunks.h5")
    with FrameWriter(good.parent, many.name, SHAPE, layout=(1, 1, SHAPE[1])) as w:
        w.append_many(frames(256))             # a chunk per row: 256 × 32 = 8192 chunks
    t0 = time.perf_counter()
    f, ds = _open_checked(many, DEFAULT_DATASET, swmr=True)
    assert ds.shape == (256, *SHAPE)
    took = time.perf_counter() - t0
    f.close()
    assert took < 1.0, f"8192 chunks checked in {took:.2f} s (chunk by chunk: ~10 s)"


def test_the_catalog_waits_out_a_brief_non_swmr_handle_of_its_own_process(
        run_with_frames: tuple[Any, Path]) -> None:
    """The embedded catalog serves in the process that also reads the frame files; a
    reader's checksum check opens a file without SWMR for a moment, and HDF5 refuses a
    second open with the other SWMR flag: the catalog's read waits it out instead of
    answering 422 (a Dask reduction reading through an in-process server failed so)."""
    import threading

    run, path = run_with_frames
    held = h5py.File(path, "r")  # (no SWMR: as dataflow.integrity's check opens it)
    threading.Timer(0.3, held.close).start()
    frame = np.asarray(run["primary"]["cam_image"][1])
    assert frame.shape == (40, 24)
    assert not held.id.valid


def test_a_frame_lost_from_a_file_that_opens_is_one_error_at_the_command_line(
        run_with_frames: tuple[Any, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A file cut short that still opens (its intact frames are served) and whose first
    frame is lost: ``smeflow catalog show --plot`` shows the run, then fails with the
    catalog's words naming the file and where its data ends — it said "internal error:
    ClientError: 422: ... http://local-tiled-app/api/v1/array/full/..." — and writes no
    picture."""
    from sme.cli import main

    run, path = run_with_frames
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    check_frame_files(run)  # (it opens: the check before Tiled reads it passes)
    picture = path.parent.parent / "frame.png"
    status = main(["catalog", "show", run.metadata["start"]["uid"], "--data",
                   str(path.parent.parent), "--plot", str(picture)])
    err = capsys.readouterr().err
    assert status == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"smeflow catalog: error: {path}: "), line
    assert "truncated" in line and line.endswith("(the catalog's answer, HTTP 422)"), line
    assert "http://" not in line, line
    assert not picture.exists()
