"""A disk that fills up as the writer closes its file: HDF5 marks the file closed with an
end of file it never wrote. Every frame flushed intact before is still served (its CRC-32
proves it); the others are refused naming the file and the frame; nothing hangs.

The files are made the way a full disk makes them: a child process writes frames with a
file-size limit (``RLIMIT_FSIZE``, writes beyond it fail with EFBIG as on a full disk).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from dataflow.hdf5 import DEFAULT_DATASET, HDF5ReadError, open_frames
from dataflow.integrity import ChecksumError, IncompleteDataError, read_superblock

SHAPE = (64, 64)
LIMIT = 200_000
"""Bytes the child may write: a few chunks of eight 8 KiB frames."""

CHILD = '''
import resource, signal, sys
import numpy as np
sys.path.insert(0, {repo!r})
from dataflow.hdf5 import FrameWriter
folder, plain = sys.argv[1], sys.argv[2] == "plain"
shape = {shape!r}
frames = [((np.arange(shape[0] * shape[1], dtype=np.uint32) * 7 + i * 1009) % 65521)
          .astype(np.uint16).reshape(shape) for i in range(60)]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def fill(append, close):
    # append(i, frame) returns how many frames are flushed and announced so far
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
    try:
        for i, frame in enumerate(frames):
            print("announced", append(i, frame), flush=True)
    except Exception as exc:
        print("failed", type(exc).__name__, flush=True)
    try:
        close()
    except Exception:
        pass


if plain:  # a frame file of another writer: no per-frame checksums
    import h5py
    f = h5py.File(folder + "/full.h5", "w", libver="latest")
    ds = f.create_dataset("/entry/data/data", shape=(0, *shape), maxshape=(None, *shape),
                          chunks=(8, *shape), dtype="<u2")
    f.swmr_mode = True

    def append(i, frame):
        ds.resize(i + 1, axis=0)
        ds[i] = frame
        ds.flush()
        return i + 1

    fill(append, f.close)
else:
    w = FrameWriter(folder, "full.h5", shape)
    announced = [0]

    def append(i, frame):
        w.append(frame)
        announced[0] += sum(d["indices"]["stop"] - d["indices"]["start"]
                            for name, d in w.asset_docs() if name == "stream_datum")
        return announced[0]

    fill(append, w.close)
'''


def acquired(i: int) -> np.ndarray:
    """Frame ``i`` as the child wrote it."""
    base = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint32) * 7 + i * 1009
    return (base % 65521).astype(np.uint16).reshape(SHAPE)


def fill_the_disk(folder: Path, plain: bool = False) -> tuple[Path, int]:
    """Write frames until the disk is "full"; the file and how many frames were flushed
    and announced before."""
    code = CHILD.format(repo=os.getcwd(), shape=SHAPE, limit=LIMIT)
    done = subprocess.run([sys.executable, "-c", code, str(folder),
                           "plain" if plain else "smeflow"],
                          capture_output=True, text=True, timeout=120)
    announced = max([int(line.split()[1]) for line in done.stdout.splitlines()
                     if line.startswith("announced")], default=0)
    assert "failed" in done.stdout, (done.stdout, done.stderr[-2000:])
    path = folder / "full.h5"
    sb = read_superblock(path)
    assert sb.cut_short, sb  # closed, and shorter than the end of file it records
    return path, announced


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    return fill_the_disk(tmp_path_factory.mktemp("full"))


def copy_of(full: tuple[Path, int], tmp_path: Path) -> Path:
    path = tmp_path / "full.h5"
    path.write_bytes(full[0].read_bytes())
    return path


def test_every_flushed_frame_is_served_and_the_rest_refused(full: tuple[Path, int]) -> None:
    path, announced = full
    assert announced >= 8  # at least one chunk of frames went to disk before it filled
    with open_frames(path) as r:
        served = []
        for i in range(len(r)):
            try:
                frame = r.frame(i)
            except HDF5ReadError as exc:
                assert re.match(rf"^{re.escape(str(path))}: frame {i} ", str(exc)), exc
                continue
            np.testing.assert_array_equal(frame, acquired(i))
            served.append(i)
        assert served[:announced] == list(range(announced))
        np.testing.assert_array_equal(r.read(np.s_[:announced, 5, :]),
                                      np.stack([acquired(i)[5] for i in range(announced)]))
        assert len(served) < len(r)  # the frames the disk had no room for are refused


def test_a_frame_never_written_is_named(full: tuple[Path, int]) -> None:
    path, _ = full
    with open_frames(path) as r, pytest.raises(IncompleteDataError, match=(
            rf"^{re.escape(str(path))}: frame {len(r) - 1} (was never completely written|"
            r"lies beyond the end of the file)")):
        r.frame(len(r) - 1)


def test_a_damaged_frame_of_a_cut_file_is_refused(full: tuple[Path, int],
                                                  tmp_path: Path) -> None:
    path = copy_of(full, tmp_path)
    with h5py.File(full[0], "r", swmr=True) as f:  # SWMR: how a cut file still opens
        offset = f[DEFAULT_DATASET].id.get_chunk_info_by_coord((0, 0, 0)).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + SHAPE[1] * 2 * 3 + 1] ^= 0x08  # frame 0, row 3
    path.write_bytes(bytes(data))
    with open_frames(path) as r:
        with pytest.raises(ChecksumError, match=rf"^{re.escape(str(path))}: frame 0 is "
                                                r"damaged \(the file is cut short"):
            r.frame(0)
        with pytest.raises(ChecksumError, match="frame 0 is damaged"):
            r.read(np.s_[:8, 3, 0])  # a part of a frame is verified as a whole frame
        np.testing.assert_array_equal(r.frame(1), acquired(1))


def test_a_damaged_superblock_fails_at_once(full: tuple[Path, int], tmp_path: Path) -> None:
    """In SWMR mode HDF5 retries a superblock that fails its checksum for minutes."""
    path = copy_of(full, tmp_path)
    data = bytearray(path.read_bytes())
    data[12 + 2 * 8 + 3] ^= 0x01  # superblock v3: the end-of-file address grows
    path.write_bytes(bytes(data))
    t0 = time.perf_counter()
    with pytest.raises(IncompleteDataError, match=rf"^{re.escape(str(path))}: not a readable "
                                                  r"HDF5 file \(truncated: \d+ bytes, its "
                                                  r"superblock says \d+\): cannot open it"):
        open_frames(path)
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("version", ["earliest", "latest"])
def test_a_file_cut_inside_its_superblock_is_refused_naming_it(version: str,
                                                               tmp_path: Path) -> None:
    """A file cut anywhere inside its superblock (the signature and part of what
    follows it) is one ``HDF5ReadError`` naming the file — never an ``IndexError`` (the
    fuzz test's 8-byte file) nor an end-of-file address read from fewer bytes than it
    has."""
    whole = tmp_path / "whole.h5"
    with h5py.File(whole, "w", libver=version) as f:
        f["x"] = np.arange(4)
    head = whole.read_bytes()[:96]
    assert read_superblock(whole).version == (0 if version == "earliest" else 3)
    cut = tmp_path / "cut.h5"
    for n in range(8, 48):  # beyond 48 bytes both superblocks are whole
        cut.write_bytes(head[:n])
        try:
            sb = read_superblock(cut)
        except HDF5ReadError as exc:
            assert str(exc).startswith(f"{cut}: "), exc
        else:  # read whole: the end-of-file address is the one the file recorded
            assert sb.end_of_file == read_superblock(whole).end_of_file, n


def test_a_cut_file_without_frame_checksums_is_refused(tmp_path: Path) -> None:
    """Without a checksum nothing tells an intact frame of a cut file from a damaged one."""
    path, announced = fill_the_disk(tmp_path, plain=True)
    assert announced >= 8
    with pytest.raises(IncompleteDataError, match=rf"^{re.escape(str(path))}: not a readable "
                                                  r"HDF5 file \(truncated: .*: '/entry/data/"
                                                  r"data': no per-frame checksums"):
        open_frames(path)
