"""``dataflow.integrity.check_frames`` looks up a few chunks near the start of the chunk
index and walks the index once for more (``WALK_STEPS``): HDF5 finds a chunk by
coordinate by going through the index from its first chunk, so a reader of a long file's
last frames (the live reducer after the writer closed it, Tiled serving the last frames)
paid for every chunk before each of theirs. Both ways still refuse what is not on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from dataflow.hdf5 import DEFAULT_DATASET, FrameWriter
from dataflow.integrity import WALK_STEPS, IncompleteDataError, check_frames

FRAME = (16, 32)
CHUNK = (4, 1, 32)  # 16 chunks a block of 4 frames
BLOCKS = 64
"""1024 chunks: looking up a block's 16 chunks at the end costs ~16,000 steps, a walk
16 × 1024."""


class _CountingId:
    """A dataset id that counts the chunk-index steps of what ``check_frames`` asks:
    a lookup of the chunk at position ``i`` of the index ``i + 1``, a walk
    ``WALK_STEPS`` a chunk (the cost model the choice is made on, measured on HDF5 2.0)."""

    def __init__(self, dsid: Any, rows: int, chunk: tuple[int, int, int]) -> None:
        self._id = dsid
        self._per_block = rows // chunk[1]
        self._chunk = chunk
        self.steps = 0
        self.walks = 0

    def get_chunk_info_by_coord(self, coord: tuple[int, ...]) -> Any:
        position = coord[0] // self._chunk[0] * self._per_block + coord[1] // self._chunk[1]
        self.steps += position + 1
        return self._id.get_chunk_info_by_coord(coord)

    def chunk_iter(self, visit: Any) -> Any:
        self.walks += 1
        self.steps += WALK_STEPS * self._id.get_num_chunks()
        return self._id.chunk_iter(visit)


class _Counted:
    """The dataset as ``check_frames`` reads it, its id counting (``_CountingId``)."""

    def __init__(self, ds: h5py.Dataset) -> None:
        self.shape = ds.shape
        self.chunks = ds.chunks
        self.id = _CountingId(ds.id, ds.shape[1], ds.chunks)


@pytest.fixture(scope="module")
def long_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("long")
    frames = np.arange(4 * BLOCKS * FRAME[0] * FRAME[1], dtype=np.uint16).reshape(
        4 * BLOCKS, *FRAME)
    with FrameWriter(folder, "long.h5", FRAME, layout=CHUNK) as w:
        w.append_many(frames)
        return w.path, DEFAULT_DATASET


@pytest.mark.parametrize("frames, most_steps, walks", [
    (range(4 * BLOCKS - 8, 4 * BLOCKS), WALK_STEPS * 16 * BLOCKS, 1),  # the last two blocks
    (range(4 * BLOCKS - 1, 4 * BLOCKS), WALK_STEPS * 16 * BLOCKS, None),  # the last frame
    (range(0, 4), 16 * 17 // 2, 0),  # the first block: 16 lookups near the start
])
def test_the_check_costs_no_more_than_a_walk_of_the_index(
        long_file: tuple[Path, str], frames: range, most_steps: int,
        walks: int | None) -> None:
    path, dataset = long_file
    with h5py.File(path, "r") as f:
        counted = _Counted(f[dataset])
        check_frames(counted, path, frames)  # type: ignore[arg-type]
    assert counted.id.steps <= most_steps
    assert walks is None or counted.id.walks == walks


@pytest.mark.parametrize("frames", [range(0, 4), range(4 * BLOCKS - 8, 4 * BLOCKS)],
                         ids=["looked-up", "walked"])
def test_both_ways_refuse_a_chunk_past_the_end_of_the_file(
        long_file: tuple[Path, str], frames: range) -> None:
    path, dataset = long_file
    with h5py.File(path, "r") as f:
        ds = f[dataset]
        ends = [info.byte_offset + info.size for info in
                (ds.id.get_chunk_info_by_coord((f0, row, 0))
                 for f0 in range(frames.start // 4 * 4, frames.stop, 4)
                 for row in range(FRAME[0]))]
        with pytest.raises(IncompleteDataError, match="lies beyond the end") as refused:
            check_frames(ds, path, frames, file_size=max(ends) - 1)
        assert refused.value.frame in frames
        check_frames(ds, path, frames, file_size=max(ends))


@pytest.mark.parametrize("frames", [range(0, 4), range(4 * BLOCKS - 4, 4 * BLOCKS)],
                         ids=["looked-up", "walked"])
def test_both_ways_refuse_a_chunk_never_written(tmp_path: Path, frames: range) -> None:
    path = tmp_path / "holes.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("d", shape=(4 * BLOCKS, *FRAME), dtype="<u2", chunks=CHUNK)
        for block in range(BLOCKS):  # every chunk but row 5's of the first and last block
            for row in range(FRAME[0]):
                if not (row == 5 and block in (0, BLOCKS - 1)):
                    ds[block * 4:block * 4 + 4, row] = 1
    never = f"frame {frames.start} was never completely written"
    with h5py.File(path, "r") as f, pytest.raises(IncompleteDataError, match=never):
        check_frames(f["d"], path, frames)
