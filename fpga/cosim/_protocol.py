"""The conversation between the lock-step controller and the cocotb test in GHDL.

The cocotb test runs inside the simulator process, so the controller (which holds the
Python model and the stimulus iterator) serves it over a local authenticated
``multiprocessing.connection``. The address and key travel in one environment variable.

Messages, all tuples whose first item is the tag:

* controller → bench, once: ``(SETUP, inputs, outputs, reset_inputs, reset_expected,
  half_period_ps)`` — port wiring ``(name, signed, length)`` and the reset row.
* bench → controller: ``(NEXT,)`` asks for more ticks; the answer is
  ``(CHUNK, first_tick, [(inputs_raw, expected_raw), ...])`` or ``(END,)``, or
  ``(ABORT, reason)`` when the Python model failed.
* bench → controller, once at the end: ``(DONE, ticks)``, ``(MISMATCH, tick, output_index,
  got)`` (``tick`` is ``-1`` for the reset state) or ``(ERROR, text)``.
"""

from __future__ import annotations

ENV_VAR = "SMEFLOW_LOCKSTEP_SERVER"
"""Environment variable holding ``host:port:authkey-hex`` for the cocotb side."""

SETUP = "setup"
NEXT = "next"
CHUNK = "chunk"
END = "end"
ABORT = "abort"
DONE = "done"
MISMATCH = "mismatch"
ERROR = "error"

RESET_TICK = -1
"""The tick number of the reset state (trace row 0)."""


def encode_address(host: str, port: int, authkey: bytes) -> str:
    """The value of ``ENV_VAR``."""
    return f"{host}:{port}:{authkey.hex()}"


def decode_address(text: str) -> tuple[tuple[str, int], bytes]:
    """``ENV_VAR``'s value → ((host, port), authkey)."""
    host, port, key = text.rsplit(":", 2)
    return (host, int(port)), bytes.fromhex(key)
