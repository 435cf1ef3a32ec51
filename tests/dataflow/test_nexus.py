"""Frame files are NeXus files: ``nexusformat`` (the NeXus reference library in Python)
opens them, finds the default plot (the frame stack) and the NXdetector with its fields."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from nexusformat.nexus import nxload

from dataflow.hdf5 import FrameWriter


def test_a_frame_file_is_a_nexus_file_with_its_default_plot(tmp_path: Path) -> None:
    frames = np.arange(3 * 8 * 16, dtype=np.uint16).reshape(3, 8, 16)
    with FrameWriter(tmp_path, "f.h5", (8, 16), counters=("good", "corrupt"),
                     detector_fields={"count_time": (0.25, "s"),
                                      "x_pixel_size": (172e-6, "m"),
                                      "description": "smeflow test detector"}) as writer:
        writer.append_many(frames)
        writer.set_counters({"good": 3})
    root = nxload(str(tmp_path / "f.h5"))
    plot = root.plottable_data  # NXroot@default -> NXentry@default -> NXdata@signal
    assert plot.nxpath == "/entry/data" and plot.nxclass == "NXdata"
    np.testing.assert_array_equal(plot.nxsignal.nxdata, frames)
    assert plot.nxsignal.attrs["interpretation"] == "image"
    detector = root["entry/instrument/detector"]
    assert (root["entry"].nxclass, root["entry/instrument"].nxclass, detector.nxclass) == \
        ("NXentry", "NXinstrument", "NXdetector")
    np.testing.assert_array_equal(detector["data"].nxdata, frames)  # the same frames
    assert float(detector["count_time"]) == 0.25 and detector["count_time"].attrs["units"] == "s"
    assert detector["x_pixel_size"].attrs["units"] == "m"
    assert str(detector["description"]) == "smeflow test detector"
    # one dataset with two NeXus paths: the file holds the frames once
    with h5py.File(tmp_path / "f.h5", "r") as f:
        assert f["/entry/data/data"].id == f["/entry/instrument/detector/data"].id


def test_a_dataset_elsewhere_gets_no_nexus_tree(tmp_path: Path) -> None:
    with FrameWriter(tmp_path, "g.h5", (4, 4), dataset="/frames") as writer:
        writer.append(np.zeros((4, 4), np.uint16))
    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert "NX_class" not in f.attrs and "default" not in f.attrs
        assert list(f) == ["frames", "frames_crc32"]  # the frames and each frame's CRC-32
