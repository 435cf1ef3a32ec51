"""Frames written a block of chunks at a time (``dataflow.hdf5_blocks``, the default for
uncompressed frame files) against HDF5's own hyperslab writes of the same frames: the
same frames read back, the same bytes in every chunk, through flushes of part-filled
blocks, frames discarded across a block's start, edge chunks and one chunk per frame."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dataflow.hdf5_blocks
from dataflow.hdf5 import DEFAULT_DATASET, FrameWriter, Layout, open_frames

SHAPE = (32, 20)
LAYOUTS: list[Layout] = ["tomo", (4, 5, 20), (3, 32, 20), "per_frame"]


def frames(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65535, (n, *SHAPE), dtype=np.uint16)


def scan(w: FrameWriter) -> np.ndarray:
    """Appends in batches of several sizes, frames announced (flushed) between them,
    then frames discarded back to the last announcement and others appended: what a
    detector paused mid-scan does. Returns the frames the file must hold."""
    kept: list[np.ndarray] = []
    for size, seed, announce in [(1, 1, False), (3, 2, True), (5, 3, False), (1, 4, True),
                                 (8, 5, False), (2, 6, True), (6, 7, False)]:
        batch = frames(size, seed)
        w.append_many(batch)
        kept.append(batch)
        if announce:
            list(w.asset_docs())
    # the last 6 frames were not announced: dropped (across a block's start for k=4)
    assert w.discard_unannounced() == 6
    kept.pop()
    for seed in (8, 9):
        batch = frames(3, seed)
        w.append_many(batch[:1])
        w.append_many(batch[1:])
        kept.append(batch)
    return np.concatenate(kept)


def chunks(path: Path) -> dict[tuple[int, ...], bytes]:
    """Every stored chunk's bytes by offset (for frames the extent covers)."""
    with h5py.File(path, "r") as f:
        ds = f[DEFAULT_DATASET]
        out: dict[tuple[int, ...], bytes] = {}
        for i in range(ds.id.get_num_chunks()):
            info = ds.id.get_chunk_info(i)
            out[tuple(info.chunk_offset)] = ds.id.read_direct_chunk(info.chunk_offset)[1]
        return out


def write(folder: Path, name: str, layout: Layout, direct: bool,
          monkeypatch: pytest.MonkeyPatch) -> tuple[Path, np.ndarray]:
    with monkeypatch.context() as m:
        if not direct:
            m.setattr(dataflow.hdf5_blocks.ChunkBlock, "fits", staticmethod(
                lambda *a: False))
        with FrameWriter(folder, name, SHAPE, layout=layout) as w:
            assert (w._block is not None) == direct
            want = scan(w)
    return folder / name, want


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_file_holds_what_hdf5s_own_writes_leave(tmp_path: Path, layout: Layout,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ours, want = write(tmp_path, "direct.h5", layout, True, monkeypatch)
    theirs, same = write(tmp_path, "h5py.h5", layout, False, monkeypatch)
    np.testing.assert_array_equal(want, same)
    with open_frames(ours) as r:  # (checksums verified on read)
        assert len(r) == len(want) == 26
        np.testing.assert_array_equal(r.read(), want)
    stored, reference = chunks(ours), chunks(theirs)
    assert sorted(stored) == sorted(reference)
    for offset, data in reference.items():
        # a chunk's frames past the extent are the file's business: compare the frames in it
        k, rows, _ = h5py.File(ours, "r")[DEFAULT_DATASET].chunks
        n = min(k, len(want) - offset[0])
        size = n * rows * SHAPE[1] * 2
        assert stored[offset][:size] == data[:size], offset


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_reader_sees_each_announced_frame_while_the_file_is_written(
        tmp_path: Path, layout: Layout) -> None:
    """Every frame announced is readable at once by a reader in this process (through
    HDF5's shared file, whose chunk cache the direct writes must not leave stale) and
    in another one (SWMR)."""
    import subprocess
    import sys

    reader: Callable[[int], np.ndarray]
    with FrameWriter(tmp_path, "live.h5", SHAPE, layout=layout) as w:
        f = h5py.File(w.path, "r", swmr=True)
        ds = f[DEFAULT_DATASET]
        reader = lambda i: np.asarray(ds[i])  # noqa: E731
        written: list[np.ndarray] = []
        for seed in range(11):
            batch = frames(1 + seed % 3, seed)
            w.append_many(batch)
            written.extend(batch)
            list(w.asset_docs())
            ds.refresh()
            assert ds.shape[0] == len(written)
            for i in (0, len(written) - 1, len(written) // 2):
                np.testing.assert_array_equal(reader(i), written[i])
        code = ("import h5py, numpy as np, sys\n"
                f"f = h5py.File({str(w.path)!r}, 'r', swmr=True)\n"
                f"sys.stdout.write(str(int(np.asarray(f[{DEFAULT_DATASET!r}]).sum())))\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert int(done.stdout) == int(np.sum(written, dtype=np.int64))
        f.close()


class Counting:
    """A frame dataset that notes the first frame of each chunk written to it."""

    def __init__(self, ds: h5py.Dataset) -> None:
        self.ds, self.id = ds, self  # (ChunkBlock writes through .id)
        self.firsts: list[int] = []

    def write_direct_chunk(self, offset: tuple[int, ...], data: np.ndarray) -> None:
        self.firsts.append(offset[0])
        self.ds.id.write_direct_chunk(offset, data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.ds, name)


def test_by_default_whole_blocks_are_flushed_and_nothing_twice(tmp_path: Path) -> None:
    """With the default ``flush_every`` (a block of frames), frames appended one by one
    become visible a whole block at a time, also after an announcement in mid-block:
    never more than a block unflushed, and each chunk written once but for the part
    block an announcement writes (again when full)."""
    with FrameWriter(tmp_path, "blocks.h5", SHAPE, layout=(4, 8, 20)) as w:
        assert w._block is not None
        counting = Counting(w._ds)
        w._block.ds = counting
        seen = []
        for i, frame in enumerate(frames(14, 3)):
            w.append(frame)
            if i == 5:
                list(w.asset_docs())  # announced in mid-block: frames 4..5 written now
            seen.append(w._ds.shape[0])
        assert seen == [0, 0, 0, 4, 4, 6, 6, 8, 8, 8, 8, 12, 12, 12]
    # blocks 0, 1 (part, then whole), 2 and, at the close, the part block 3: 4 chunks each
    assert counting.firsts == [0] * 4 + [4] * 8 + [8] * 4 + [12] * 4


@pytest.mark.parametrize("layout", [(1, 8, 64), (1, 63, 64), (2, 8, 64), (1, 64, 64)])
def test_one_frame_chunks_of_fewer_rows_hold_the_whole_frame(tmp_path: Path,
                                                             layout: tuple[int, int, int]
                                                             ) -> None:
    """Review E2: chunks of one frame but fewer rows than the frame, e.g. ``(1, 8, 64)``
    for 64 x 64 frames, were written as one direct chunk per frame, so rows 8.. of
    every frame never reached the file (read back as zeros by h5py)."""
    want = np.random.default_rng(0).integers(0, 60000, (5, 64, 64), dtype=np.uint16)
    with FrameWriter(tmp_path, "a.h5", (64, 64), layout=layout) as w:
        assert w._block is not None
        w.append_many(want[:3])
        w.append(want[3])
        w.append(want[4])
    with h5py.File(w.path, "r") as f:
        np.testing.assert_array_equal(f[DEFAULT_DATASET][...], want)
    with open_frames(w.path) as r:
        np.testing.assert_array_equal(r.read(), want)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[tuple[int, int], tuple[int, int, int]]:
    """A frame shape and a chunk shape ``chunks_for`` accepts for it: whole or partial
    rows and columns, edge chunks (rows or columns not a multiple of the chunk's)."""
    rows, cols = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    r = draw(st.one_of(st.just(rows), st.integers(1, rows)))
    c = draw(st.one_of(st.just(cols), st.integers(1, cols)))
    return (rows, cols), (draw(st.integers(1, 5)), r, c)


# an append of n frames (n >= 1), an announcement (asset_docs: the frames become part of
# the file), a discard of the frames not announced, or a flush
STEPS = st.lists(st.one_of(st.integers(1, 7), st.sampled_from(["announce", "discard",
                                                                "flush"])),
                 min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(layout=layouts(), steps=STEPS,
       dtype=st.sampled_from([np.uint8, np.uint16, np.uint32, np.float32]))
def test_every_accepted_layout_reads_back_as_written(
        layout: tuple[tuple[int, int], tuple[int, int, int]], steps: list[int | str],
        dtype: type) -> None:
    """Whatever chunk shape ``chunks_for`` accepts and whichever way frames arrive
    (batches, announcements in mid-block, discards), h5py — any HDF5 reader — and
    smeflow's reader read back exactly the frames kept."""
    shape, chunk = layout
    rng = np.random.default_rng(len(steps))
    with tempfile.TemporaryDirectory(prefix="hdf5_blocks_") as d:
        with FrameWriter(d, "p.h5", shape, dtype=dtype, layout=chunk) as w:
            assert w.chunk_shape == chunk
            assert (w._block is not None) == (chunk[2] == shape[1])
            kept: list[np.ndarray] = []
            announced = 0
            for step in steps:
                if step == "announce":
                    list(w.asset_docs())
                    announced = len(kept)
                elif step == "discard":
                    w.discard_unannounced()
                    del kept[announced:]
                elif step == "flush":
                    w.flush()
                else:
                    batch = (rng.random((int(step), *shape)) * 250).astype(dtype)
                    w.append_many(batch) if step > 1 else w.append(batch[0])
                    kept.extend(batch)
        want = np.asarray(kept, dtype).reshape(-1, *shape)
        with h5py.File(w.path, "r") as f:
            ds = f[DEFAULT_DATASET]
            assert ds.chunks == chunk
            np.testing.assert_array_equal(ds[...], want)
        if len(want):
            with open_frames(w.path) as r:
                np.testing.assert_array_equal(r.read(), want)
