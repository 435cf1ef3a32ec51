"""``dataflow.hdf5_reserve``: frames written into a frame file by other processes at the
places its writer reserved give the file ``append_many`` writes; nothing unwritten is
announced; bad requests are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from dataflow.hdf5 import FrameWriter, open_frames
from dataflow.hdf5_reserve import ReservedFrameWriter, chunk_offsets, write_frames_at

SHAPE = (6, 10)


def _stack(n: int) -> np.ndarray:
    return np.random.default_rng(7).random((n, *SHAPE), dtype=np.float32)


def _tree(path: Path) -> dict[str, tuple[object, ...]]:
    """Every dataset's shape, dtype, chunks, attributes and values, by name (of the end
    times, the value's length: when the last frame came differs between two files)."""
    out: dict[str, tuple[object, ...]] = {}

    def visit(name: str, node: object) -> None:
        if isinstance(node, h5py.Dataset):
            attrs = {k: str(v) for k, v in node.attrs.items()}
            value = node[()]
            out[name] = (node.shape, node.dtype.str, node.chunks, attrs,
                         len(value) if name.startswith("entry/end_time") else
                         np.asarray(value).tobytes())  # (a scalar string is bytes)

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def test_frames_written_by_another_process_make_the_appended_file(tmp_path: Path) -> None:
    frames = _stack(7)
    reserved = ReservedFrameWriter(tmp_path, "r.h5", SHAPE, dtype=np.float32,
                                   data_key="v", layout="per_frame", attrs={"a": 1})
    offsets = reserved.reserve(4) + reserved.reserve(3)
    code = ("import sys, numpy as np; from dataflow.hdf5_reserve import write_frames_at; "
            "f = np.load(sys.argv[1]); o = [int(v) for v in sys.argv[2].split(',')]; "
            "print(','.join(map(str, write_frames_at(sys.argv[3], o, f, np.float32))))")
    np.save(tmp_path / "late.npy", frames[2:])
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "late.npy"),
                          ",".join(map(str, offsets[2:])), str(reserved.path)],
                         capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout
    reserved.set_checksums(2, [int(v) for v in out.split(",")])
    reserved.set_checksums(0, write_frames_at(reserved.path, offsets[:2], frames[:2],
                                              np.float32))
    docs = list(reserved.asset_docs())
    reserved.close()
    appended = FrameWriter(tmp_path, "a.h5", SHAPE, dtype=np.float32, data_key="v",
                           layout="per_frame", attrs={"a": 1})
    appended.append_many(frames)
    appended.close()
    assert _tree(reserved.path) == _tree(appended.path)
    with open_frames(reserved.path) as reader:  # (checks every frame's CRC-32)
        assert np.array_equal(reader.read(), frames)
    assert [name for name, _ in docs] == ["stream_resource", "stream_datum"]
    assert docs[1][1]["indices"] == {"start": 0, "stop": 7}


def test_nothing_unwritten_is_announced(tmp_path: Path) -> None:
    writer = ReservedFrameWriter(tmp_path, "r.h5", SHAPE, dtype=np.float32,
                                 layout="per_frame")
    offsets = writer.reserve(3)
    writer.set_checksums(0, write_frames_at(writer.path, offsets[:2], _stack(2), np.float32))
    with pytest.raises(ValueError, match=r"1 reserved frame.*not written yet \(first 2"):
        list(writer.asset_docs())
    with pytest.raises(ValueError, match="not all of them are reserved frames"):
        writer.set_checksums(1, [0, 0])  # frame 1 has one already
    with pytest.raises(ValueError, match="not all of them are reserved frames"):
        writer.set_checksums(2, [0, 0])  # frame 3 does not exist
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ValueError, match="frames to reserve"):
            writer.reserve(bad)  # type: ignore[arg-type]
    writer.close()


def test_only_one_uncompressed_chunk_per_frame(tmp_path: Path) -> None:
    for kwargs in ({"layout": "tomo"}, {"layout": "per_frame", "compression": "gzip"}):
        with pytest.raises(ValueError, match="one uncompressed chunk per frame"):
            ReservedFrameWriter(tmp_path, "r.h5", SHAPE, dtype=np.float32, **kwargs)
        assert not (tmp_path / "r.h5").exists()


def test_bad_writes_are_refused(tmp_path: Path) -> None:
    writer = ReservedFrameWriter(tmp_path, "r.h5", SHAPE, dtype=np.float32,
                                 layout="per_frame")
    offsets = writer.reserve(2)
    with pytest.raises(ValueError, match="2 frame offsets for frames of shape"):
        write_frames_at(writer.path, offsets, _stack(3), np.float32)
    with pytest.raises(ValueError, match="dtype float64, the file holds float32"):
        write_frames_at(writer.path, offsets, _stack(2).astype(np.float64), np.float32)
    with pytest.raises(ValueError, match="frame offset -1"):
        write_frames_at(writer.path, [offsets[0], -1], _stack(2), np.float32)
    with pytest.raises(FileNotFoundError):  # never created
        write_frames_at(tmp_path / "missing.h5", offsets, _stack(2), np.float32)
    assert not (tmp_path / "missing.h5").exists()
    link = tmp_path / "link.h5"
    link.symlink_to(writer.path)
    with pytest.raises(OSError):  # not followed
        write_frames_at(link, offsets, _stack(2), np.float32)
    writer.close()


def test_chunk_offsets_walked_or_asked_one_by_one_agree(tmp_path: Path) -> None:
    """The one walk of the chunk index gives each frame's chunk offset as asking for the
    chunks one by one does (the way left for an HDF5 without H5Dchunk_iter)."""

    class OneByOne:  # the low-level dataset id of an h5py without chunk_iter
        def __init__(self, dsid: object) -> None:
            self.get_chunk_info_by_coord = dsid.get_chunk_info_by_coord  # type: ignore[attr-defined]

    writer = ReservedFrameWriter(tmp_path, "r.h5", SHAPE, dtype=np.float32, data_key="v",
                                 layout="per_frame")
    first = writer.reserve(3)
    later = writer.reserve(4)
    dsid = writer._ds.id
    assert later == chunk_offsets(dsid, 3, 7) == chunk_offsets(OneByOne(dsid), 3, 7)
    assert first == chunk_offsets(OneByOne(dsid), 0, 3)
    assert len(set(first + later)) == 7 and min(first + later) > 0
    writer.set_checksums(0, np.zeros(7, np.uint32))
    writer.close()
