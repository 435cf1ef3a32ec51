"""HDF5 chunk layout for tomography stacks: frame reads (live view) and sinogram reads
(reconstruction) with smeflow's default layout against per-frame chunks ``(1, H, W)``.

A stack of ``--frames`` frames (default 181 x 512 x 512 uint16, 95 MB) is written with
``dataflow.hdf5.FrameWriter`` in each layout, then read back: one frame, and one
sinogram (one detector row of every frame). Every read opens the file anew (an empty
h5py chunk cache) and first asks the kernel to drop the file from the page cache
(``posix_fadvise(DONTNEED)`` after ``fsync``); where that has no effect (tmpfs, some
overlay file systems) the reads come from memory and measure HDF5's chunk handling
rather than the disk. Throughput counts the useful bytes (the frame, the sinogram), so
the read amplification of a layout shows up as a lower figure. Writing is timed too
(flush policy as the writer's default).

Figures (MB/s, higher is better): ``h5.frame_read_mb_per_s``,
``h5.sinogram_read_mb_per_s`` for the default layout, the same under
``h5.per_frame_chunks.``, their ratios ``….vs_per_frame_chunks``, and the write rates
``h5.write_frames_per_s`` / ``h5.per_frame_chunks.write_frames_per_s``.
``measure_layouts()`` returns them for ``benchmarks/acquisition.py``.

Run: ``python benchmarks/h5_layout.py [--frames N] [--size S] [--repeat R] [--dir DIR]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dataflow.hdf5 import FrameWriter, Layout, open_frames

LAYOUTS: dict[str, Layout] = {"": "tomo", "per_frame_chunks.": "per_frame"}


def drop_page_cache(path: Path) -> None:
    """Ask the kernel to forget the file's cached pages (no root needed; best effort)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _timed_reads(path: Path, read: Callable[[Any, int], np.ndarray], repeat: int) -> float:
    """Median seconds of ``read(reader, i)`` for i in range(repeat), each on a fresh open."""
    times = []
    for i in range(repeat):
        drop_page_cache(path)
        with open_frames(path) as reader:
            t0 = time.perf_counter()
            read(reader, i)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_layouts(n_frames: int = 181, frame_shape: tuple[int, int] = (512, 512),
                    repeat: int = 5, folder: str | os.PathLike[str] | None = None,
                    verbose: bool = True) -> dict[str, float]:
    """Write and read a stack in each layout; returns the ``h5.…`` figures.

    Parameters
    ----------
    n_frames, frame_shape
        The stack: ``n_frames`` uint16 frames of ``frame_shape``.
    repeat
        Reads per figure (median taken), each of a different frame / row.
    folder
        Where the files go (a temporary folder, removed afterwards, by default).
    verbose
        Print one readable line per layout.
    """
    rows, cols = frame_shape
    rng = np.random.default_rng(7)
    stack = rng.poisson(800, size=(n_frames, rows, cols)).astype(np.uint16)
    frame_mb = rows * cols * 2 / 1e6
    sino_mb = n_frames * cols * 2 / 1e6
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for prefix, layout in LAYOUTS.items():
            name = f"stack_{layout}.h5"
            t0 = time.perf_counter()
            with FrameWriter(tmp, name, frame_shape, layout=layout) as writer:
                for frame in stack:
                    writer.append(frame)
                chunks = writer.chunk_shape
            write_s = time.perf_counter() - t0
            path = Path(tmp) / name
            frame_s = _timed_reads(path, lambda r, i: r.frame((n_frames // 3 + 7 * i) % n_frames),
                                   repeat)
            sino_s = _timed_reads(path, lambda r, i: r.sinogram((rows // 3 + 5 * i) % rows),
                                  repeat)
            with open_frames(path) as reader:  # a read is a read: check what came back
                assert np.array_equal(reader.frame(5), stack[5])
                assert np.array_equal(reader.sinogram(9), stack[:, 9, :])
            figures[f"h5.{prefix}frame_read_mb_per_s"] = frame_mb / frame_s
            figures[f"h5.{prefix}sinogram_read_mb_per_s"] = sino_mb / sino_s
            figures[f"h5.{prefix}write_frames_per_s"] = n_frames / write_s
            if verbose:
                frame_chunks = -(-rows // chunks[1]) * -(-cols // chunks[2])
                sino_chunks = -(-n_frames // chunks[0]) * -(-cols // chunks[2])
                print(f"{layout:>9} chunks {chunks}: frame {frame_s * 1e3:6.2f} ms "
                      f"({frame_mb / frame_s:6.0f} MB/s, {frame_chunks} chunks), "
                      f"sinogram {sino_s * 1e3:6.2f} ms ({sino_mb / sino_s:6.1f} MB/s, "
                      f"{sino_chunks} chunks), write {n_frames / write_s:5.0f} frames/s")
    for kind in ("frame_read_mb_per_s", "sinogram_read_mb_per_s"):
        figures[f"h5.{kind}.vs_per_frame_chunks"] = (
            figures[f"h5.{kind}"] / figures[f"h5.per_frame_chunks.{kind}"])
    return figures


def main() -> None:
    """Print the readable lines and then one ``name = value`` line per figure."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--frames", type=int, default=181, help="frames in the stack")
    ap.add_argument("--size", type=int, default=512, help="frame rows = cols")
    ap.add_argument("--repeat", type=int, default=5, help="reads per figure (median)")
    ap.add_argument("--dir", help="folder for the test files (default: system temp)")
    args = ap.parse_args()
    print(f"HDF5 layouts, {args.frames} frames of {args.size}x{args.size} uint16, reads "
          "after dropping the file from the page cache, fresh h5py open per read:")
    figures = measure_layouts(args.frames, (args.size, args.size), args.repeat, args.dir)
    for name, value in figures.items():
        print(f"{name} = {value:.4g}")


if __name__ == "__main__":
    main()
