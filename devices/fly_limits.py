"""The limits of a fly acquisition's pipeline (``devices.fly``): batch sizes, how many
frames it holds in flight, how long decoded frames wait for more; one module that the
acquisition's parts read them from (``limits.HOLD_S``), so that a test or a tuning run
changes them in one place.
"""

from __future__ import annotations

__all__ = ["BATCH", "HOLD_S", "JOIN_WARN_S", "QUEUE_FRAMES", "WORKERS", "WRITE_BATCHES",
           "batch_end"]

JOIN_WARN_S = 5.0
"""How long ``cancel`` waits for a worker before it logs that it is still waiting."""

BATCH = 8
"""Frames the firmware takes in one simulation call at most."""
QUEUE_FRAMES = 32
"""Frames drawn ahead of the firmware at most (the detector's buffer)."""
WORKERS = 2
"""Worker threads that draw frames and run the firmware (one per core here)."""
WRITE_BATCHES = 1
"""Decoded batches waiting for the writer at most (besides the one it writes)."""
HOLD_S = 0.05
"""How long decoded frames wait at most for more to fill a batch for the writer."""


def batch_end(start: int, block: int, most: int = BATCH) -> int:
    """Where a batch for the writer that starts at frame ``start`` of the file ends (the
    frame after its last): at the last end of a file block (``block`` frames, what one
    chunk of the fly file holds) within ``most`` frames, else ``most`` frames on. So a
    batch never spans two blocks when a block is at most ``most`` frames: the file
    writes each block once, where a batch ending inside a block leaves it to be written
    part-filled by the next collect's flush (16 MiB for 8 megapixel frames) and again
    when it fills."""
    end = (start + most) // block * block
    return end if end > start else start + most
