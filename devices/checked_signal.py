"""Soft settings that check their value when it is put or set.

ophyd's soft ``Signal.set`` puts in a thread and then waits, without a timeout, until the
value reads back equal to the one asked: a refused value only fails the returned status
(bluesky raises ``FailedStatus(Status(...))``, the reason hidden in its ``__cause__``), and
NaN, which never equals itself, leaves the plan waiting for ever. A
:class:`CheckedSignal` checks and puts at the ``set`` call instead, so ``bps.mv(setting,
bad)`` fails at once with the setting's own error (``beam.noise: must be a finite number
>= 0 mA, got nan``) and nothing changes. The detector's configuration
(:class:`devices.detector_config.ConfigSignal`) is one; the motors' speeds and limits, the
shutter's actuation time and the beam monitor's current and noise are others.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
from ophyd import Signal
from ophyd.status import Status

__all__ = ["CheckedSignal", "SettingError", "finite_number", "finite_real", "label"]


class SettingError(ValueError):
    """A value a setting refuses; the message names the setting, what it must be and the
    value given."""


Check = Callable[["CheckedSignal", Any], Any]
"""A setting's check: the signal and the value put; returns the value to store (normalised,
e.g. ``1`` → ``1.0``) or raises a ``ValueError`` saying why not."""


def label(signal: Signal) -> str:
    """``det.exposure``: the device's name and the signal's attribute, as a user types it."""
    parent = signal.parent
    if parent is None or not signal.attr_name:
        return str(signal.name)
    return f"{parent.name}.{signal.attr_name}"


class CheckedSignal(Signal):  # type: ignore[misc]
    """A soft setting that checks every value when it is put or set.

    ``check`` (see :data:`Check`) both validates and normalises: the stored value is the
    one it returns. ``set`` (what ``bps.mv`` calls) puts synchronously, so a bad value
    raises at the ``set`` call instead of failing a status later; ``check_value`` lets
    plans ask in advance. A parent device with a ``guard_config_put(signal, value)``
    method is asked before each checked put (the detector refuses changes its staging
    cannot take).
    """

    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._check = check

    def checked(self, value: Any) -> Any:
        """``value`` as it would be stored; the check's ``ValueError`` if refused."""
        return self._check(self, value)

    def check_value(self, value: Any) -> None:
        """Raise the check's ``ValueError`` if ``value`` would be refused."""
        self.checked(value)

    def put(self, value: Any, *, force: bool = False, **kwargs: Any) -> None:
        """Check and store ``value`` (``force=True`` skips the check: internal use)."""
        if not force:
            value = self.checked(value)
            guard = getattr(self.parent, "guard_config_put", None)
            if guard is not None:  # (the device may refuse a change while it is staged)
                guard(self, value)
        super().put(value, force=force, **kwargs)

    def set(self, value: Any, *, timeout: float | None = None,
            settle_time: float | None = None, **kwargs: Any) -> Status:
        """Put ``value`` now (a soft signal has nothing to wait for); a finished status."""
        self.put(value)
        status = Status(self, settle_time=settle_time)
        status.set_finished()
        return status


def finite_real(value: Any) -> float | None:
    """``value`` as a finite float, or None (bools, numpy's too, and strings are no numbers
    here)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def finite_number(unit: str | Callable[[Signal], str], low: float | None = None, *,
                  inclusive: bool = True) -> Check:
    """The check of a finite number of ``unit`` (a function of the signal for a unit its
    device chooses, e.g. a motor's ``egu``), at least ``low`` (more than it when not
    ``inclusive``; no bound when None)."""

    def check(signal: CheckedSignal, value: Any) -> float:
        number = finite_real(value)
        units = unit(signal) if callable(unit) else unit
        if low is None:
            allowed = f"a finite number of {units}"
        else:
            allowed = f"a finite number {'>=' if inclusive else '>'} {low:g} {units}"
        if number is None or (low is not None
                              and (number < low or (number == low and not inclusive))):
            raise SettingError(f"{label(signal)}: must be {allowed}, got {value!r}")
        return number

    return check
