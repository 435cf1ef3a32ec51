"""The limits of a fly acquisition's pipeline (``devices.fly``): batch sizes, how many
frames it holds in flight, how long decoded frames wait for more; one module that the
acquisition's parts read them from (``limits.HOLD_S``), so that a test or a tuning run
changes them in one place.
"""

from __future__ import annotations

__all__ = ["BATCH", "HOLD_S", "JOIN_WARN_S", "QUEUE_FRAMES", "WORKERS", "WRITE_BATCHES"]

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
