"""Frame files as HDF5's own tools (Debian's hdf5-tools, HDF5 1.10) see them.

References: ``h5dump`` reads what other HDF5 versions than h5py's wrote (the Makefile
installs hdf5-tools); ``h5clear`` is the manual recovery docs/reduction.md gives for a
killed scan's file, and HDF5's documentation of it: "--increment=C  Set the file's EOA to
the maximum of (EOA, EOF) + C ... helps to repair a crashed file where the stored EOA in
the superblock is too small".
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from dataflow.hdf5 import FrameWriter
from dataflow.killed_file import close_killed_file
from tests.dataflow.test_killed_nxmx import written

DATA = "/entry/data/data"


def tool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert shutil.which(str(args[0])), "HDF5's tools are installed by the Makefile"
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=60)


def dumped(path: Path, dataset: str, out: Path, dtype: str, shape: tuple[int, ...]
           ) -> np.ndarray:
    """``dataset`` of ``path`` as h5dump reads it (raw little-endian binary)."""
    done = tool("h5dump", "-d", dataset, "-b", "LE", "-o", out, path)
    assert done.returncode == 0, done.stderr
    return np.fromfile(out, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def test_hdf5_1_10_reads_every_dataset_of_a_frame_file(tmp_path: Path) -> None:
    """With ``libver="latest"`` h5py's HDF5 2.0 wrote the gzip-compressed pixel_mask
    with a layout h5dump 1.10 refused ("bad version number for layout message")."""
    mask = (np.arange(64 * 48, dtype=np.uint32).reshape(64, 48) % 7 == 0).astype(np.uint32)
    frames = np.stack([np.full((64, 48), i + 1, np.uint16) for i in range(3)])
    with FrameWriter(tmp_path, "f.h5", (64, 48), detector_fields={"pixel_mask": mask}) as w:
        for frame in frames:
            w.append(frame)
    path = tmp_path / "f.h5"
    header = tool("h5dump", "-H", path)
    assert header.returncode == 0 and "error" not in header.stderr.lower(), header.stderr
    np.testing.assert_array_equal(
        dumped(path, "/entry/instrument/detector/pixel_mask", tmp_path / "m.bin", "u4",
               mask.shape), mask)
    np.testing.assert_array_equal(dumped(path, DATA, tmp_path / "d.bin", "u2",
                                         frames.shape), frames)


def test_a_killed_scans_file_closed_is_read_by_h5dump(tmp_path: Path) -> None:
    path = written(tmp_path, 70, close=False)
    with h5py.File(path, "r", swmr=True) as f:
        before = f[DATA][()]
    refused = tool("h5dump", "-H", path)
    assert refused.returncode != 0  # (still marked open for write)
    assert close_killed_file(path, {DATA: len(before)}) is not None
    header = tool("h5dump", "-H", path)
    assert header.returncode == 0, header.stderr
    assert '"end_time_estimated"' in header.stdout and '"end_time"' not in header.stdout
    np.testing.assert_array_equal(dumped(path, DATA, tmp_path / "d.bin", "u2",
                                         before.shape), before)


@pytest.mark.parametrize(("options", "kept"), [(["-s", "--increment=0"], True),
                                               (["-s"], False)])
def test_h5clear_by_hand(tmp_path: Path, options: list[str], kept: bool) -> None:
    """docs/reduction.md: ``h5clear -s --increment=0`` keeps every frame; ``-s`` alone
    cuts the file back to the end of allocation the SWMR writer recorded before its
    first frame, and its frames are gone (an error, not zeros)."""
    path = written(tmp_path, 70, close=False)
    with h5py.File(path, "r", swmr=True) as f:
        before = f[DATA][()]
    size = path.stat().st_size
    done = tool("h5clear", *options, path)
    assert done.returncode == 0, done.stderr
    with h5py.File(path, "r") as f:
        if kept:
            assert path.stat().st_size == size
            np.testing.assert_array_equal(f[DATA][()], before)
        else:
            assert path.stat().st_size < size
            with pytest.raises(OSError, match="addr overflow"):
                f[DATA][()]
