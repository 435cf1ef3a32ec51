"""The HDF5 frame writer and reader: layout, SWMR, asset documents, digests, errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from dataflow.hdf5 import (
    DEFAULT_DATASET,
    FrameMismatchError,
    FrameWriter,
    HDF5ReadError,
    UnsafePathError,
    WriterClosedError,
    open_frames,
    resolve_in_folder,
    tomo_chunks,
)

SHAPE = (32, 20)


def frames(n: int, start: int = 0) -> np.ndarray:
    base = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint16).reshape(SHAPE)
    return np.stack([base + 100 * (start + i) for i in range(n)]).astype(np.uint16)


def test_round_trip_with_append_and_append_many(tmp_path: Path) -> None:
    stack = frames(11)
    with FrameWriter(tmp_path, "scan.h5", SHAPE) as w:
        assert w.append(stack[0]) == 0
        assert w.append_many(stack[1:10]) == range(1, 10)
        assert w.append(stack[10]) == 10
        assert w.n_frames == 11
    with open_frames(tmp_path / "scan.h5") as r:
        assert len(r) == 11 and r.frame_shape == SHAPE and r.dtype == np.uint16
        np.testing.assert_array_equal(r.read(), stack)
        np.testing.assert_array_equal(r.frame(-1), stack[10])
        np.testing.assert_array_equal(r.sinogram(5), stack[:, 5, :])


def test_default_layout_serves_frames_and_sinograms(tmp_path: Path) -> None:
    assert tomo_chunks((512, 512), 2) == (8, 16, 512)  # 128 KiB chunks
    assert tomo_chunks((2048, 2048), 2) == (8, 4, 2048)
    assert tomo_chunks((4, 6), 2) == (8, 4, 6)  # small frames: whole frames per chunk
    with FrameWriter(tmp_path, "t.h5", SHAPE) as w:
        assert w.chunk_shape == tomo_chunks(SHAPE, 2)
    with FrameWriter(tmp_path, "p.h5", SHAPE, layout="per_frame") as w:
        assert w.chunk_shape == (1, *SHAPE)
    with FrameWriter(tmp_path, "e.h5", SHAPE, layout=(4, 8, 20)) as w:
        w.append_many(frames(3))
    with h5py.File(tmp_path / "e.h5", "r") as f:
        ds = f[DEFAULT_DATASET]
        assert ds.chunks == (4, 8, 20) and ds.maxshape == (None, *SHAPE)
        assert ds.compression is None
    with pytest.raises(ValueError, match="layout 'rows'"):
        FrameWriter(tmp_path, "x.h5", SHAPE, layout="rows")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="larger than the frame"):
        FrameWriter(tmp_path, "y.h5", SHAPE, layout=(1, 64, 20))


def test_frames_no_event_announced_can_be_discarded(tmp_path: Path) -> None:
    w = FrameWriter(tmp_path, "d.h5", SHAPE)
    w.append_many(frames(2))
    list(w.asset_docs())                    # frames 0, 1 announced
    w.append(frames(3)[2])                  # a trigger whose event never came
    assert w.discard_unannounced() == 1 and w.n_frames == 2
    assert w.discard_unannounced() == 0     # announced frames are never touched
    w.append(frames(4)[3])
    (_, datum), = w.asset_docs()
    assert datum["indices"] == {"start": 2, "stop": 3}
    w.close()
    with open_frames(tmp_path / "d.h5") as r:
        np.testing.assert_array_equal(r.read(), frames(4)[[0, 1, 3]])


def test_the_first_unannounced_frames_can_be_kept(tmp_path: Path) -> None:
    """A fly acquisition a suspension stopped keeps the frames triggered before the beam
    was lost and drops the later ones (``devices.suspension``)."""
    w = FrameWriter(tmp_path, "k.h5", SHAPE)
    w.append_many(frames(2))
    list(w.asset_docs())                    # frames 0, 1 announced
    w.append_many(frames(6)[2:])            # 2, 3 before the loss; 4, 5 after it
    assert w.discard_unannounced(keep=2) == 2 and w.n_frames == 4
    assert w.discard_unannounced(keep=9) == 0     # (never more than there are)
    (_, datum), = w.asset_docs()
    assert datum["indices"] == {"start": 2, "stop": 4}
    w.close()
    with open_frames(tmp_path / "k.h5") as r:
        np.testing.assert_array_equal(r.read(), frames(4))


@pytest.mark.parametrize("many", [True, False])
def test_a_failed_append_leaves_no_frame_behind(tmp_path: Path, many: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails half-way (here the checksums, after the frames were stored: a
    full disk) takes its frames back out: the closed file holds the frames appended
    before, each with its checksum, and nothing else."""
    import dataflow.hdf5 as hdf5

    w = FrameWriter(tmp_path, "f.h5", SHAPE)
    w.append_many(frames(3))
    list(w.asset_docs())
    crc = hdf5.frame_crc32

    def disk_full(_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hdf5, "frame_crc32", disk_full)
    with pytest.raises(OSError, match="No space"):
        w.append_many(frames(5, 3)) if many else w.append(frames(4)[3])
    monkeypatch.setattr(hdf5, "frame_crc32", crc)
    assert w.n_frames == 3
    w.close()  # (as unstage does after the error)
    with open_frames(tmp_path / "f.h5") as r:
        np.testing.assert_array_equal(r.read(), frames(3))  # (their CRCs checked)
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert [f[name].shape[0] for name in (DEFAULT_DATASET, DEFAULT_DATASET + "_crc32")] \
            == [3, 3]


def test_the_digest_sidecar_is_whole_or_absent(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A sidecar that cannot be written (a full disk) leaves no empty or partial file."""
    import sme.atomic_file as atomic_file

    w = FrameWriter(tmp_path, "s.h5", SHAPE)
    w.append_many(frames(2))
    real_replace = atomic_file.os.replace

    def disk_full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_file.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        w.close()
    monkeypatch.setattr(atomic_file.os, "replace", real_replace)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5"]


def test_compression_is_optional(tmp_path: Path) -> None:
    with FrameWriter(tmp_path, "z.h5", SHAPE, compression="gzip") as w:
        w.append_many(frames(4))
    with h5py.File(tmp_path / "z.h5", "r") as f:
        assert f[DEFAULT_DATASET].compression == "gzip"
    with open_frames(tmp_path / "z.h5") as r:
        np.testing.assert_array_equal(r.read(), frames(4))
    with pytest.raises(ValueError, match="compression 'zip'"):
        FrameWriter(tmp_path, "q.h5", SHAPE, compression="zip")


def test_asset_documents_cover_new_frames_once(tmp_path: Path) -> None:
    w = FrameWriter(tmp_path / "raw", "sub/det.h5", SHAPE, data_key="det_image")
    assert list(w.asset_docs()) == []  # nothing appended: nothing announced
    w.append_many(frames(3))
    docs = list(w.asset_docs())
    assert [name for name, _ in docs] == ["stream_resource", "stream_datum"]
    resource, datum = docs[0][1], docs[1][1]
    assert resource["mimetype"] == "application/x-hdf5"
    assert resource["uri"] == f"file://localhost{tmp_path / 'raw' / 'sub' / 'det.h5'}"
    assert resource["data_key"] == "det_image"
    assert resource["parameters"]["dataset"] == DEFAULT_DATASET
    assert tuple(resource["parameters"]["chunk_shape"]) == w.chunk_shape
    assert datum["stream_resource"] == resource["uid"]
    assert datum["indices"] == {"start": 0, "stop": 3}
    assert list(w.asset_docs()) == []
    w.append(frames(1)[0])
    w.append(frames(1)[0])
    (name, datum2), = w.asset_docs()
    assert name == "stream_datum" and datum2["indices"] == {"start": 3, "stop": 5}
    assert datum2["uid"] != datum["uid"]
    assert w.describe_key()["external"] == "STREAM:"
    assert w.describe_key()["shape"] == list(SHAPE)
    assert w.describe_key()["dtype_numpy"] == "<u2"
    w.close()


def test_close_returns_digest_and_is_idempotent(tmp_path: Path) -> None:
    w = FrameWriter(tmp_path, "d.h5", SHAPE)
    w.append_many(frames(2))
    digest = w.close()
    assert digest == hashlib.sha256((tmp_path / "d.h5").read_bytes()).hexdigest()
    assert w.close() == digest and w.closed
    assert (tmp_path / "d.h5.sha256").read_text() == f"{digest}  d.h5\n"
    with pytest.raises(WriterClosedError, match=r"d\.h5: frame writer is closed"):
        w.append(frames(1)[0])
    with pytest.raises(WriterClosedError):
        w.append_many(frames(1))


def test_shape_and_dtype_mismatch_say_expected_and_got(tmp_path: Path) -> None:
    with FrameWriter(tmp_path, "m.h5", SHAPE) as w:
        with pytest.raises(FrameMismatchError, match=r"frame shape \(20, 32\), expected \(32, 20\)"):
            w.append(np.zeros((20, 32), np.uint16))
        with pytest.raises(FrameMismatchError, match="dtype float64, expected uint16"):
            w.append(np.zeros(SHAPE))
        with pytest.raises(FrameMismatchError, match=r"stack shape \(32, 20\), expected \(n, 32, 20\)"):
            w.append_many(np.zeros(SHAPE, np.uint16))
        with pytest.raises(FrameMismatchError, match="dtype int32, expected uint16"):
            w.append_many(np.zeros((2, *SHAPE), np.int32))
        assert w.n_frames == 0


def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "old.h5").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match=r"old\.h5: file exists; frame files are never overwritten"):
        FrameWriter(tmp_path, "old.h5", SHAPE)
    assert (tmp_path / "old.h5").read_bytes() == b"precious"


@pytest.mark.parametrize("name", ["../escape.h5", "a/../../escape.h5", "/tmp/abs.h5", "", ".",
                                  "link/x.h5"])
def test_names_cannot_escape_the_data_folder(tmp_path: Path, name: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "link").symlink_to(tmp_path)  # a symlink out of the folder
    with pytest.raises(UnsafePathError, match="file name"):
        FrameWriter(data, name, SHAPE)
    assert not (tmp_path / "escape.h5").exists() and not (tmp_path / "x.h5").exists()


def test_names_inside_the_folder_are_fine(tmp_path: Path) -> None:
    assert resolve_in_folder(tmp_path, "a/b/../c.h5") == tmp_path.resolve() / "a" / "c.h5"


SWMR_READER = textwrap.dedent("""
    import sys
    from dataflow.hdf5 import open_frames
    r = open_frames(sys.argv[1])
    print(len(r), flush=True)
    for line in sys.stdin:
        n = r.refresh()
        print(n, int(r.frame(n - 1)[0, 1]), flush=True)
    r.close()
""")


def test_swmr_reader_sees_frames_while_the_writer_is_open(tmp_path: Path,
                                                          repo_root: Path) -> None:
    w = FrameWriter(tmp_path, "live.h5", SHAPE)  # flushes every 8 frames by default
    stack = frames(20)
    w.append(stack[0])
    w.flush()
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    reader = subprocess.Popen([sys.executable, "-c", SWMR_READER, str(w.path)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert reader.stdin is not None and reader.stdout is not None
    try:
        assert reader.stdout.readline().split() == ["1"]
        w.append(stack[1])
        list(w.asset_docs())  # announcing frames flushes them first
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split() == ["2", str(stack[1][0, 1])]
        # 8 unflushed frames: by default flushed at the end of each block of 8 (frames
        # 2..7 with block 0; 8 and 9 wait for block 1's end, never more than 7 unseen)
        w.append_many(stack[2:10])
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split() == ["8", str(stack[7][0, 1])]
        w.append_many(stack[10:16])
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().split() == ["16", str(stack[15][0, 1])]
        assert not w.closed
    finally:
        reader.stdin.close()
        assert reader.wait(timeout=30) == 0
        w.close()


def test_truncated_file_gives_a_clear_error_naming_it(tmp_path: Path) -> None:
    with FrameWriter(tmp_path, "cut.h5", SHAPE) as w:
        w.append_many(frames(16))
    path = tmp_path / "cut.h5"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with open_frames(path) as r, pytest.raises(
            HDF5ReadError, match=rf"^{path}: frame 15 lies beyond the end of the file "
                                 r"\(truncated: its data ends at byte \d+, the file has "
                                 rf"{len(data) // 2} bytes\)$"):
        r.frame(15)


def test_corrupt_file_gives_a_clear_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "junk.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(HDF5ReadError, match=rf"{path}: not a readable HDF5 file"):
        open_frames(path)


def test_corrupt_chunk_gives_a_clear_error_naming_it(tmp_path: Path) -> None:
    with FrameWriter(tmp_path, "bad.h5", SHAPE, compression="gzip") as w:
        w.append_many(frames(8))
    path = tmp_path / "bad.h5"
    with h5py.File(path, "r") as f:
        offset = f[DEFAULT_DATASET].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset:offset + 64] = b"\xff" * 64  # garble the compressed chunk
    path.write_bytes(bytes(data))
    with open_frames(path) as r, pytest.raises(HDF5ReadError, match=rf"{path}: cannot read"):
        r.frame(0)


def test_missing_file_or_dataset_names_them(tmp_path: Path) -> None:
    with pytest.raises(HDF5ReadError, match=r"nope\.h5: no such frame file"):
        open_frames(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(HDF5ReadError, match=r"other\.h5: no readable dataset '/entry/data/data'"):
        open_frames(tmp_path / "other.h5")
    with pytest.raises(HDF5ReadError, match="not a 3-D frame dataset"):
        open_frames(tmp_path / "other.h5", dataset="x")
    with FrameWriter(tmp_path, "ok.h5", SHAPE) as w:
        w.append_many(frames(2))
    with open_frames(tmp_path / "ok.h5") as r:
        with pytest.raises(IndexError, match="frame 2 out of range, file has 2 frames"):
            r.frame(2)
        with pytest.raises(IndexError, match="row 32 out of range"):
            r.sinogram(32)


def test_closing_in_two_halves(tmp_path: Path) -> None:
    """``close_file`` ends the file (no more frames), ``digest`` hashes it, in any thread,
    once; ``close`` is both and answers the same digest."""
    from dataflow.hdf5 import file_sha256

    writer = FrameWriter(tmp_path, "halves.h5", SHAPE)
    writer.append(np.ones(SHAPE, np.uint16))
    with pytest.raises(ValueError, match=r"halves\.h5: digest of a file still open"):
        writer.digest()
    writer.close_file()
    assert writer.closed and writer.sha256 is None
    with pytest.raises(WriterClosedError):
        writer.append(np.ones(SHAPE, np.uint16))
    digests: list[str] = []
    threads = [threading.Thread(target=lambda: digests.append(writer.digest()))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert digests == [file_sha256(writer.path)] * 3 == [writer.close()] * 3
    assert (tmp_path / "halves.h5.sha256").read_text() == f"{digests[0]}  halves.h5\n"


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 5])
def test_file_digest_is_the_sha256_of_every_byte_whatever_the_block(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    """``file_sha256`` reads in blocks into one reused buffer: an empty file, a file
    shorter than, as long as, or a few bytes past a multiple of the block hashes as its
    whole content does (blocks of 4 KiB here, by default and given)."""
    import hashlib

    import dataflow.hdf5_files
    from dataflow.hdf5 import file_sha256

    monkeypatch.setattr(dataflow.hdf5_files, "DIGEST_BLOCK", 4096)
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "bytes.bin"
    path.write_bytes(data)
    assert file_sha256(path) == file_sha256(path, 4096) == hashlib.sha256(data).hexdigest()


def test_no_sidecar_while_another_handle_keeps_the_file_open(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """HDF5 finishes a file (superblock flags, checksum) only when the last handle in the
    process closes, flush or not: a sidecar written at the writer's close would be wrong."""
    from dataflow.hdf5 import file_sha256, open_in_process

    writer = FrameWriter(tmp_path, "shared.h5", SHAPE)
    writer.append(np.ones(SHAPE, np.uint16))
    reader = h5py.File(writer.path, "r", swmr=True)
    try:
        with caplog.at_level("WARNING", logger="dataflow.hdf5"):
            provisional = writer.close()
        assert open_in_process(writer.path)
        assert not (tmp_path / "shared.h5.sha256").exists()
        assert "provisional" in caplog.text and str(writer.path) in caplog.text
    finally:
        reader.close()
    assert not open_in_process(writer.path)
    assert file_sha256(writer.path) != provisional  # the last bytes came with the reader
    assert writer.close() == provisional  # idempotent, still says what close() saw
    # without another handle the sidecar is written and matches the closed file
    with FrameWriter(tmp_path, "alone.h5", SHAPE) as alone:
        alone.append(np.ones(SHAPE, np.uint16))
    assert (tmp_path / "alone.h5.sha256").read_text() == \
        f"{file_sha256(alone.path)}  alone.h5\n"


def test_lost_frames_are_listed_in_the_file(tmp_path: Path) -> None:
    """``lost_frames=True``: the indices given to ``add_lost`` are in the file for
    ``read_lost``, also while it is written; without it there is no list to add to."""
    from dataflow.hdf5 import read_lost

    with FrameWriter(tmp_path, "lost.h5", (4, 4), lost_frames=True) as w:
        w.append_many(np.zeros((3, 4, 4), np.uint16))
        w.add_lost([1])
        assert read_lost(w.path) == [1]
        w.add_lost([4, 6])
    assert read_lost(tmp_path / "lost.h5") == [1, 4, 6]
    with FrameWriter(tmp_path, "none.h5", (4, 4)) as w, \
            pytest.raises(KeyError, match=r"none\.h5: opened without lost_frames=True"):
        w.add_lost([0])
    assert read_lost(tmp_path / "none.h5") == []
