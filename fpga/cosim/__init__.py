"""Lock-step co-simulation of exported VHDL (GHDL through cocotb) with the Python model.

``run_lockstep(network, vhdl_dir, stimulus, ticks)`` builds the VHDL, drives the DUT and
the Python model with the same stimulus, compares every top-level output after every tick
and returns a ``LockstepResult``; ``result.check()`` raises ``LockstepMismatch`` naming the
tick, signal and both values of the first difference.
"""

from ._lockstep import (
    LockstepError,
    LockstepMismatch,
    LockstepResult,
    Mismatch,
    run_lockstep,
    vhdl_sources,
)
from ._ports import Port, TopLevel, port_name

__all__ = [
    "LockstepError", "LockstepMismatch", "LockstepResult", "Mismatch", "Port", "TopLevel",
    "port_name", "run_lockstep", "vhdl_sources",
]
