"""Argument checks that run when a plan is *called*, before it yields a single message.

A bluesky plan is a generator: its body runs only when the RunEngine pulls the first
message, by which time the run may already be open. smeflow's public plans are therefore
ordinary functions that check every argument with the helpers below and only then return
the generator that does the work. A bad argument raises :class:`PlanArgumentError` at the
call site: nothing moves, no run opens, no document is emitted.

Every message has the same shape, so users (and tests) can rely on it::

    tomo_scan: num_projections must be an int >= 1, got 0

The device protocols (:class:`PlanDetector`, :class:`PlanMotor`) say what a plan needs
from a device (bluesky's ``Readable``/``Triggerable``/``Movable``), not how the device is
built: any ophyd device that has these methods works, simulated or real.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from bluesky.protocols import Movable, Readable, Triggerable

__all__ = [
    "PlanArgumentError",
    "PlanDetector",
    "PlanMotor",
    "image_keys",
    "motor_limits",
    "require_detector",
    "require_exposure",
    "require_image_detector",
    "require_int",
    "require_md",
    "require_motor",
    "require_movable",
    "require_number",
    "require_within_limits",
    "require_xy_positions",
]


class PlanArgumentError(ValueError):
    """A plan was called with an argument it cannot use (raised before any message).

    Parameters
    ----------
    plan
        Name of the plan that rejected the argument (``"tomo_scan"``).
    argument
        Name of the argument, with an index where that helps (``"positions[3]"``).
    value
        The rejected value, shown with ``repr``.
    allowed
        What would have been accepted, phrased to follow "must be".
    """

    def __init__(self, plan: str, argument: str, value: Any, allowed: str) -> None:
        self.plan = plan
        self.argument = argument
        self.value = value
        self.allowed = allowed
        super().__init__(f"{plan}: {argument} must be {allowed}, got {_show(value)}")


def _show(value: Any) -> str:
    """``repr`` of a value, shortened so that a big array does not flood the message."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


@runtime_checkable
class PlanDetector(Readable[Any], Triggerable, Protocol):
    """What a plan needs from a detector: ``trigger``, ``read``, ``describe`` and ``name``."""


@runtime_checkable
class PlanMotor(Readable[Any], Movable[Any], Protocol):
    """What a plan needs from a motor: ``set`` to move and ``read``/``describe`` to record."""


def require_int(plan: str, argument: str, value: Any, *, minimum: int,
                maximum: int | None = None, why: str = "") -> int:
    """``value`` as an ``int`` from ``minimum`` to ``maximum`` (no bound when ``None``;
    ``why`` says why there is one); bools and floats rejected."""
    allowed = f"an int >= {minimum}" if maximum is None else \
        f"an int from {minimum} to {maximum}{why}"
    if isinstance(value, bool):
        raise PlanArgumentError(plan, argument, value, allowed)
    try:
        number = operator.index(value)
    except TypeError:
        raise PlanArgumentError(plan, argument, value, allowed) from None
    if number < minimum or (maximum is not None and number > maximum):
        raise PlanArgumentError(plan, argument, value, allowed)
    return number


def require_number(
    plan: str, argument: str, value: Any, *, positive: bool = False
) -> float:
    """``value`` as a finite ``float`` (strictly positive when ``positive``)."""
    allowed = "a finite number > 0" if positive else "a finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PlanArgumentError(plan, argument, value, allowed)
    number = float(value)
    if not math.isfinite(number) or (positive and number <= 0):
        raise PlanArgumentError(plan, argument, value, allowed)
    return number


def require_md(plan: str, md: Any) -> dict[str, Any]:
    """Copy of the user metadata: ``None`` or a mapping with string keys."""
    if md is None:
        return {}
    if not isinstance(md, Mapping) or not all(isinstance(key, str) for key in md):
        raise PlanArgumentError(plan, "md", md, "None or a mapping with str keys")
    return dict(md)


def require_detector(plan: str, argument: str, det: Any) -> PlanDetector:
    """``det`` if it can be triggered and read (bluesky ``Triggerable`` + ``Readable``)."""
    if not isinstance(det, PlanDetector):
        raise PlanArgumentError(
            plan, argument, det, "a detector with trigger(), read(), describe() and a name"
        )
    return det


def image_keys(description: Mapping[str, Any]) -> list[str]:
    """The data keys of a ``describe()`` result that hold images: a shape of 2 or more
    dimensions (``[rows, cols]``, in the event or external, e.g. ``external="STREAM:"``)."""
    keys = []
    for key, data_key in description.items():
        shape = data_key.get("shape") if isinstance(data_key, Mapping) else None
        if isinstance(shape, Sequence) and not isinstance(shape, str) and len(shape) >= 2:
            keys.append(key)
    return keys


def require_image_detector(plan: str, argument: str, det: Any) -> PlanDetector:
    """``det`` if it is a detector (:func:`require_detector`) whose ``describe()`` has an
    image data key (:func:`image_keys`): a motor or a scalar counter would give a run
    without a single frame."""
    detector = require_detector(plan, argument, det)
    name = detector.name
    try:
        description = detector.describe()
    except Exception as err:
        raise PlanArgumentError(plan, argument, det, f"a detector whose describe() works "
                                f"({type(err).__name__}: {err})") from err
    if not isinstance(description, Mapping) or not image_keys(description):
        keys = sorted(description) if isinstance(description, Mapping) else description
        raise PlanArgumentError(
            plan, argument, det,
            "an area detector: its describe() needs an image data key (a shape of 2 or more "
            f"dimensions, e.g. external 'STREAM:' frames), but {name!r} describes only "
            f"{_show(keys)}")
    return detector


def require_motor(plan: str, argument: str, motor: Any) -> PlanMotor:
    """``motor`` if it can be moved and read (bluesky ``Movable`` + ``Readable``)."""
    if not isinstance(motor, PlanMotor):
        raise PlanArgumentError(
            plan, argument, motor, "a positioner with set(), read(), describe() and a name"
        )
    return motor


def require_movable(plan: str, argument: str, device: Any) -> Movable[Any]:
    """``device`` if it has ``set`` (e.g. a shutter taking ``"open"``/``"closed"``)."""
    if not isinstance(device, Movable):
        raise PlanArgumentError(plan, argument, device, "a device with set()")
    return device


def motor_limits(motor: Any) -> tuple[float, float] | None:
    """A positioner's soft limits ``(low, high)``, or ``None`` when it has none.

    Follows ophyd's convention: ``low >= high`` (typically ``(0, 0)``) means unlimited.
    """
    limits = getattr(motor, "limits", None)
    if limits is None:
        return None
    try:
        low, high = (float(limits[0]), float(limits[1]))
    except (TypeError, ValueError, IndexError):
        return None
    return (low, high) if low < high else None


def require_within_limits(plan: str, argument: str, value: float, motor: Any) -> float:
    """``value`` if ``motor`` can go there: inside its limits and accepted by its checks.

    The limits come from the device (``motor.limits``); a device's own
    ``check_value`` is consulted as well, so device-specific constraints surface here
    rather than half-way through a scan.
    """
    name = getattr(motor, "name", repr(motor))
    limits = motor_limits(motor)
    if limits is not None and not limits[0] <= value <= limits[1]:
        units = getattr(motor, "egu", "")
        unit_text = f" {units}" if units else ""
        raise PlanArgumentError(
            plan,
            argument,
            value,
            f"within the limits [{limits[0]:g}, {limits[1]:g}]{unit_text} of {name!r}",
        )
    check_value = getattr(motor, "check_value", None)
    if callable(check_value):
        try:
            check_value(value)
        except Exception as err:
            raise PlanArgumentError(
                plan, argument, value, f"a position {name!r} accepts ({err})"
            ) from err
    return value


def require_exposure(plan: str, det: Any, exposure: Any) -> Movable[Any] | None:
    """Check ``exposure`` and return the detector's ``exposure`` signal to set it with.

    ``None`` means "leave the detector's exposure as it is" and needs no signal. A number
    must be finite and > 0 seconds, the detector must have a settable ``exposure``
    attribute, and the signal's own ``check_value`` (if any) must accept it.
    """
    if exposure is None:
        return None
    seconds = require_number(plan, "exposure", exposure, positive=True)
    signal = getattr(det, "exposure", None)
    if not isinstance(signal, Movable):
        name = getattr(det, "name", repr(det))
        raise PlanArgumentError(
            plan,
            "exposure",
            exposure,
            f"None for detector {name!r}, which has no settable 'exposure' signal",
        )
    check_value = getattr(signal, "check_value", None)
    if callable(check_value):
        try:
            check_value(seconds)
        except Exception as err:
            raise PlanArgumentError(
                plan, "exposure", exposure, f"a value the detector accepts ({err})"
            ) from err
    return signal


def require_xy_positions(
    plan: str, argument: str, positions: Any, x_motor: Any, y_motor: Any
) -> list[tuple[float, float]]:
    """A non-empty list of ``(x, y)`` pairs of finite numbers inside both motors' limits.

    Accepts any sequence of pairs (lists, tuples, an ``(N, 2)`` numpy array).
    """
    allowed_seq = "a non-empty sequence of (x, y) pairs"
    if isinstance(positions, str | bytes | Mapping):
        raise PlanArgumentError(plan, argument, positions, allowed_seq)
    try:
        items = list(positions)
    except TypeError:
        raise PlanArgumentError(plan, argument, positions, allowed_seq) from None
    if not items:
        raise PlanArgumentError(plan, argument, positions, allowed_seq)
    checked: list[tuple[float, float]] = []
    for index, item in enumerate(items):
        where = f"{argument}[{index}]"
        pair_ok = isinstance(item, Sequence) or hasattr(item, "__len__")
        if not pair_ok or isinstance(item, str | bytes) or len(item) != 2:
            raise PlanArgumentError(plan, where, item, "an (x, y) pair of finite numbers")
        x = require_number(plan, f"{where}[0] (x)", item[0])
        y = require_number(plan, f"{where}[1] (y)", item[1])
        require_within_limits(plan, f"{where}[0] (x)", x, x_motor)
        require_within_limits(plan, f"{where}[1] (y)", y, y_motor)
        checked.append((x, y))
    return checked
