"""The records beside a file's frames (``dataflow.hdf5_records``): counters declared at
creation are written and read back, undeclared ones refused naming the file; the
lost-frame list sits at ``<dataset>_lost``, named by the frame dataset's attribute, also
for a dataset elsewhere than the default."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from dataflow.hdf5 import FrameWriter, read_counters, read_lost
from dataflow.hdf5_read import COUNTERS_DATASET, LOST_ATTR


def test_declared_counters_are_written_and_read_back(tmp_path: Path) -> None:
    with FrameWriter(tmp_path, "c.h5", (4, 4), counters=("good", "corrupt")) as w:
        assert w.counter_names == ("good", "corrupt")
        assert read_counters(w.path) == {"good": 0, "corrupt": 0}
        w.set_counters({"good": 7})
        w.set_counters({"corrupt": 2})
        with pytest.raises(KeyError, match=r"c\.h5: undeclared counter\(s\) lost, zz; "
                                            "declared: good, corrupt"):
            w.set_counters({"zz": 1, "lost": 1, "good": 9})
    assert read_counters(tmp_path / "c.h5") == {"good": 7, "corrupt": 2}
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert list(f[COUNTERS_DATASET].attrs["names"]) == ["good", "corrupt"]


def test_a_file_without_counters_refuses_them_and_reads_none(tmp_path: Path) -> None:
    with FrameWriter(tmp_path, "n.h5", (4, 4)) as w:
        assert w.counter_names == ()
        with pytest.raises(KeyError, match=r"n\.h5: no counters were declared"):
            w.set_counters({"good": 1})
    assert read_counters(tmp_path / "n.h5") == {}


def test_the_lost_list_sits_beside_a_dataset_anywhere(tmp_path: Path) -> None:
    with FrameWriter(tmp_path, "l.h5", (4, 4), dataset="/scan/frames",
                     lost_frames=True) as w:
        w.append_many(np.zeros((2, 4, 4), np.uint16))
        w.add_lost([2, 5])
    with h5py.File(tmp_path / "l.h5", "r") as f:
        assert f["/scan/frames"].attrs[LOST_ATTR] == "/scan/frames_lost"
        assert list(f["/scan/frames_lost"][...]) == [2, 5]
    assert read_lost(tmp_path / "l.h5", "/scan/frames") == [2, 5]


def test_write_values_writes_at_start_and_sets_the_extent(tmp_path: Path) -> None:
    """``write_values`` (the frame writer's checksums and sample positions, through
    HDF5's own calls) leaves what h5py's ``resize`` and slice assignment leave: the
    values at ``start``, the extent ``start + n``, a shorter extent grown again, the
    values before ``start`` kept."""
    from dataflow.hdf5_records import write_values

    with h5py.File(tmp_path / "v.h5", "w") as f:
        ds = f.create_dataset("crc", shape=(0,), maxshape=(None,), dtype="<u4", chunks=(4,))
        write_values(ds, 0, np.arange(6, dtype=np.uint32))
        write_values(ds, 6, np.array([60, 70], np.uint32))
        assert ds.shape == (8,)
        ds.resize(5, axis=0)  # (a failed append cut back)
        write_values(ds, 5, np.array([50, 51, 52, 53, 54], np.uint32))
        pos = f.create_dataset("x", shape=(0,), maxshape=(None,), dtype="<f8", chunks=(64,))
        write_values(pos, 0, np.array([[0.5, 1.0], [1.5, 2.0]])[:, 1])  # (a column: strided)
    with h5py.File(tmp_path / "v.h5", "r") as f:
        np.testing.assert_array_equal(f["crc"][()], [0, 1, 2, 3, 4, 50, 51, 52, 53, 54])
        np.testing.assert_array_equal(f["x"][()], [1.0, 2.0])
