"""What ``smeflow queue`` tells the startup profile: the detector's backend and frame size.

The RE Manager imports the startup module in a worker process of its own and passes it
no arguments, so the settings travel in the worker's environment
(``SMEFLOW_QUEUE_BACKEND``, ``SMEFLOW_QUEUE_FRAME``); both sides check them with
:meth:`QueueSettings.parse`, so a bad value is refused by ``smeflow queue`` before
anything starts, and by the profile with the same message if set by hand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from fpga.designs.params import detector_params

__all__ = ["BACKENDS", "QueueSettings", "QueueSettingsError"]

BACKENDS = ("compiled", "interp")
"""Firmware backends a queue's detector can use (GHDL is too slow for a plan queue)."""

BACKEND_VAR = "SMEFLOW_QUEUE_BACKEND"
FRAME_VAR = "SMEFLOW_QUEUE_FRAME"


class QueueSettingsError(ValueError):
    """A backend or frame size the detector cannot have."""


@dataclass(frozen=True)
class QueueSettings:
    """The detector of the queue's beamline: firmware ``backend`` and ``frame`` (rows,
    columns)."""

    backend: str = "compiled"
    frame: tuple[int, int] = (256, 256)

    @classmethod
    def parse(cls, backend: str, frame: str) -> QueueSettings:
        """From text: ``backend`` one of :data:`BACKENDS`, ``frame`` ``HEIGHTxWIDTH``."""
        if backend not in BACKENDS:
            raise QueueSettingsError(f"backend {backend!r}: choose one of "
                                     f"{', '.join(BACKENDS)}")
        match = re.fullmatch(r"\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*", frame)
        if match is None:
            raise QueueSettingsError(f"frame {frame!r}: expected HEIGHTxWIDTH, e.g. 256x256")
        height, width = int(match[1]), int(match[2])
        try:
            detector_params(height, width)
        except ValueError as exc:
            raise QueueSettingsError(f"frame {frame!r}: {exc}") from None
        return cls(backend, (height, width))

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> QueueSettings:
        """The settings ``smeflow queue`` put in ``env`` (defaults where absent)."""
        default = cls()
        return cls.parse(env.get(BACKEND_VAR, default.backend),
                         env.get(FRAME_VAR, "{}x{}".format(*default.frame)))

    def environment(self) -> dict[str, str]:
        """The variables that carry these settings to the worker."""
        return {BACKEND_VAR: self.backend, FRAME_VAR: "{}x{}".format(*self.frame)}
