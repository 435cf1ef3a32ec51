"""The beam lost during a fly acquisition, as a beamline's monitor reports it: a thread
puts a beam-current signal below a suspender's floor, then back."""

from __future__ import annotations

import time
from typing import Any

from ophyd import Signal


def drop_beam_once_flying(bl: Any, beam: Signal, dropped: list[float], *, frames: int,
                          low: float, down_s: float) -> None:
    """Once ``bl.det``'s fly acquisition has ``frames`` frames, note the time in
    ``dropped`` and put ``low`` on ``beam``; ``down_s`` later put 1.0 back."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        fly = bl.det.fly
        if fly is not None and fly.started and len(fly.frames) >= frames:
            dropped.append(time.time())
            beam.put(low)
            time.sleep(down_s)
            beam.put(1.0)
            return
        time.sleep(0.005)
