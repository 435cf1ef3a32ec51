"""The host memory a command may plan to take: what the machine has available, and the
share of it one call or run may take before it is refused (``analysis``' azimuthal
integration, ``smeflow sim``/``smeflow vhdl``'s traces)."""

from __future__ import annotations

import os

__all__ = ["MEMORY_FRACTION", "available_memory"]

MEMORY_FRACTION = 0.5
"""The share of the machine's available memory one call may plan to take."""


def available_memory() -> int:
    """Bytes of memory available to a new allocation without swapping: ``MemAvailable`` of
    ``/proc/meminfo`` (Linux), else the free physical pages (``os.sysconf``)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
