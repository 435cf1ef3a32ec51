"""A fly acquisition's batches for the writer end on the blocks of its file, so the file
writes each block of chunks once (``devices.fly_limits.batch_end``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dataflow.hdf5 import open_frames
from dataflow.hdf5_blocks import ChunkBlock
from devices.beamline import Beamline
from devices.fly import BATCH, FlyParameters
from devices.fly_limits import batch_end
from fpga.designs.params import ChainParams

P = ChainParams(64, 64, 16)


@pytest.mark.parametrize("start, block, end", [
    (0, 8, 8), (1, 8, 8), (7, 8, 8), (8, 8, 16), (12, 8, 16),  # the tomo layout's blocks
    (0, 1, 8), (5, 1, 13),  # one frame a chunk: any end
    (0, 16, 8), (8, 16, 16), (12, 16, 16),  # blocks of two batches
    (0, 3, 6), (4, 3, 12),  # a block that does not divide the batch
])
def test_a_batch_ends_on_the_last_block_end_within_a_batch(start: int, block: int,
                                                           end: int) -> None:
    assert batch_end(start, block) == end
    assert start < end <= start + BATCH


def test_no_batch_for_the_writer_spans_two_blocks_of_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first frames reach the firmware one or two at a time (one worker draws while
    the other runs it), and later batches were BATCH frames from there on: every one of
    them ended inside a block, which each collect then wrote part-filled (a whole block
    of chunks) before the next batch wrote it again. Now each batch ends on a block, and
    the file holds the frames drawn."""
    bl = Beamline.create(tmp_path, params=P, backend="compiled", time_scale=0.001)
    bl.shutter.set("open").wait(5)
    bl.use_phantom()
    det = bl.det
    det.time_scale = 0.0  # (all triggers at once: the workers set the pace)
    n = 45
    count = det.count

    def slow(flux: Any, factor: float, exposure: float, out: Any = None,
             frame: int | None = None) -> Any:
        time.sleep(0.002)  # (the compiled firmware's 64×64 frame takes far less)
        return count(flux, factor, exposure, out=out, frame=frame)

    calls: list[int] = []
    store = det.store_fly_frames

    def recording(images: Any, frames: Any, last: Any, counts: Any) -> None:
        calls.append(len(frames))
        store(images, frames, last, counts)

    writes: list[int] = []
    write_block = ChunkBlock._write_block

    def counting(self: ChunkBlock, extent: int) -> None:
        writes.append(self.base)
        write_block(self, extent)

    monkeypatch.setattr(det, "count", slow)
    monkeypatch.setattr(det, "store_fly_frames", recording)
    monkeypatch.setattr(ChunkBlock, "_write_block", counting)
    try:
        det.stage()
        det.prepare(FlyParameters(frames=n, exposure=0.01)).wait(5)
        block = det.fly_block()
        det.kickoff().wait(5)
        det.complete().wait(120)
        list(det.collect_asset_docs())  # (announced: the last block's part written)
        path = det.files.fly.path  # type: ignore[union-attr]
    finally:
        det.unstage()
        bl.close()
    assert block == 8  # (the default "tomo" layout: 8 frames a chunk)
    assert sum(calls) == n
    starts = [sum(calls[:k]) for k in range(len(calls))]
    spans = [(s, s + c) for s, c in zip(starts, calls, strict=True)]
    assert all(s // block == (e - 1) // block for s, e in spans), spans
    # each block written once, the last (part-filled) one when announced
    assert sorted(writes) == list(range(0, n, block)), (writes, spans)
    with open_frames(path) as reader:
        assert len(list(reader.read())) == n
