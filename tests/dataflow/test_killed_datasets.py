"""Closing a killed writer's file compares every dataset of it, not one frame dataset.

smeflow's own writers put one frame dataset in a file (one file per stream, one per
fly acquisition), but a run's announcements may name several datasets of one file (two
data keys of a device writing one file), and every file holds side datasets (CRCs,
angles, counters) and attributes. ``close_killed_file`` compared only the dataset it
was given: a copy changed anywhere else would have replaced the file without an error.
The files here are written by a SWMR writer in another process that is killed before it
closes them (``os._exit``), as a killed scan leaves its file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import dataflow.killed_file as killed_file
from dataflow.hdf5_files import file_sha256
from dataflow.integrity import read_superblock
from dataflow.killed_file import close_killed_file
from dataflow.repair import RepairReport, _close_files

FIRST, SECOND, CRC = "/entry/data/data", "/entry/data2/data", "entry/instrument/crc"

WRITER = """
import os, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'w', libver=('v110', 'v110'))
entry = f.create_group('entry')
entry.attrs['NX_class'] = 'NXentry'
entry.create_dataset('end_time', data='')
first = f.create_dataset('entry/data/data', shape=(0, 8, 8), maxshape=(None, 8, 8),
                         dtype='u2', chunks=(1, 8, 8))
second = f.create_dataset('entry/data2/data', shape=(0, 4, 16), maxshape=(None, 4, 16),
                          dtype='u4', chunks=(1, 4, 16))
crc = f.create_dataset('entry/instrument/crc', shape=(0,), maxshape=(None,), dtype='u4',
                       chunks=(16,))
first.attrs['units'] = 'counts'
f.swmr_mode = True
rng = np.random.default_rng(7)
for n in range(1, 6):
    first.resize((n, 8, 8)); first[n - 1] = rng.integers(0, 4000, (8, 8))
    second.resize((n + 2, 4, 16)); second[n + 1] = rng.integers(0, 2**20, (4, 16))
    crc.resize((n,)); crc[n - 1] = n * 1000003
    for d in (first, second, crc):
        d.flush()
os._exit(0)
"""


def killed_file_with_two_frame_datasets(path: Path) -> None:
    subprocess.run([sys.executable, "-c", WRITER, str(path)], check=True, timeout=60)
    assert read_superblock(path).open_for_write


def contents(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r", swmr=True) as f:
        return {name: f[name][()] for name in (FIRST, SECOND, CRC)}


def test_every_frame_dataset_and_side_dataset_is_kept_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "two.h5"
    killed_file_with_two_frame_datasets(path)
    before = contents(path)
    closed = close_killed_file(path, {FIRST: 5, SECOND: 7})
    assert closed is not None and closed.frames == 12 and closed.end_time_removed
    assert closed.datasets == 3  # both frame datasets and the CRCs (end_time removed)
    with h5py.File(path, "r") as f:  # closed: no SWMR needed
        for name, value in before.items():
            np.testing.assert_array_equal(f[name][()], value)
        assert "end_time" not in f["entry"] and f[FIRST].attrs["units"] == "counts"


def _damage(name: str, attribute: bool = False) -> Any:
    """``_clear_flags`` that also changes ``name`` in the copy (a close gone wrong)."""
    clear = killed_file._clear_flags

    def clear_and_damage(copy: Path) -> None:
        clear(copy)
        with h5py.File(copy, "r+") as f:
            if attribute:
                f[name].attrs["NX_class"] = "NXcollection"
            else:
                f[name][1] = f[name][1] + 1
    return clear_and_damage


@pytest.mark.parametrize(("damaged", "attribute"), [
    (SECOND, False),  # the second frame dataset of the file
    (CRC, False),  # a side dataset (the writer's CRCs)
    ("entry", True),  # a group's attribute
])
def test_a_copy_changed_anywhere_is_refused_and_the_file_left_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damaged: str, attribute: bool) -> None:
    path = tmp_path / "two.h5"
    killed_file_with_two_frame_datasets(path)
    digest = file_sha256(path)
    monkeypatch.setattr(killed_file, "_clear_flags", _damage(damaged, attribute))
    name = damaged.strip("/") + ("/" if attribute else "")
    with pytest.raises(OSError, match=rf"^{re.escape(str(path))}: {re.escape(name)} "
                                      "changed when it was closed: left as it was$"):
        close_killed_file(path, {FIRST: 5})  # (the run names one frame dataset only)
    assert file_sha256(path) == digest and read_superblock(path).open_for_write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two.h5"]

    # through the repair: the file's two data keys both kept, the problem named
    report = RepairReport("uid", "catalog")
    report.files[path] = {FIRST: 5, SECOND: 7}
    _close_files(report, lambda: None)
    assert report.closed == [] and len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(f"{path}: left marked open for write: {path}: "
                                         f"{name} changed")
    assert file_sha256(path) == digest
