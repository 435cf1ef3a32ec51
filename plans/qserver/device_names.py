"""The standard bluesky plans the queue offers, refusing a device name it does not know.

bluesky-queueserver checks an item's device parameters (``detectors``, a scan's motors,
``mv``'s devices: annotated ``Readable``/``Movable``) as text, and swaps each name for
its device when the plan runs; a name it does not know is left as text. bluesky's plans
then fail deep inside with ``'str' object has no attribute 'name'`` (``count``,
``scan``) or ``... 'parent'`` (``mv``, ``rel_scan``), which is all the queue's history
shows for a typo. :func:`naming_devices` wraps each plan so that such a name is refused,
before the run opens, by an :class:`UnknownDeviceError` naming it and the devices there
are. A number given as text where a scan takes a value (``scan [det] sample_x "1" 2 3``:
the queue passes JSON's ``"1"`` as it is, its validation takes anything there, as bluesky
annotates a scan's ``*args`` ``Movable | Any``) is refused the same way, by a
:class:`~plans.validate.PlanArgumentError` naming the value's place (``the start of
sample_x``), instead of being taken for an unknown device, or failing in numpy
(``DTypePromotionError``) or, for ``list_scan``'s positions, at the motor's ``set`` after
the run opened. The wrappers keep the plans' names, signatures and docstrings (what the
queue server lists and checks).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import plans as bp

from plans.validate import PlanArgumentError

__all__ = ["PLANS", "UnknownDeviceError", "naming_devices"]

PLANS: dict[str, Callable[..., Any]] = {
    **{name: getattr(bp, name) for name in (
        "count", "grid_scan", "list_grid_scan", "list_scan", "log_scan", "rel_grid_scan",
        "rel_list_grid_scan", "rel_list_scan", "rel_log_scan", "rel_scan", "scan")},
    "mv": bps.mv,
    "mvr": bps.mvr,
}
"""The standard plans the startup profile offers whose arguments name devices."""

_PAIRS = {"mv", "mvr"}
"""Plans whose ``*args`` alternate a device and its value (text may be a value)."""


_VALUES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("scan", "rel_scan"), ("start", "stop")),
    **dict.fromkeys(("grid_scan", "rel_grid_scan"), ("start", "stop", "number of points")),
    **dict.fromkeys(("list_scan", "rel_list_scan", "list_grid_scan", "rel_list_grid_scan"),
                    ("positions",)),
}
"""What follows each motor in a scan's ``*args`` (bluesky's plans' documented layouts)."""


class UnknownDeviceError(ValueError):
    """A plan's device argument is a name the queue server did not know."""


def _motor_name(motor: Any) -> str:
    return motor if isinstance(motor, str) else str(getattr(motor, "name", motor))


def _check_values(plan: str, bound: inspect.BoundArguments) -> set[int]:
    """Refuse text among a scan's values (:class:`PlanArgumentError`, naming its place);
    returns the indices of ``*args`` that hold values (none when the plan or the layout
    of its ``*args`` is not one of :data:`_VALUES`: bluesky's plan then says what is
    wrong)."""
    values = _VALUES.get(plan)
    rest = tuple(bound.arguments.get("args", ()))
    if values is None:
        return set()
    chunk = 1 + len(values)
    groups = len(rest) // chunk
    trailing = len(rest) - groups * chunk  # (scan's older form ends with the num)
    if not groups or trailing not in ((0, 1) if plan in ("scan", "rel_scan") else (0,)):
        return set()
    for i, value in enumerate(rest):
        if i % chunk == 0 and i < groups * chunk:
            continue
        what = values[i % chunk - 1] if i < groups * chunk else "number of points"
        motor = _motor_name(rest[i - i % chunk]) if i < groups * chunk else None
        where = f"args[{i}] (the {what}" + (f" of {motor})" if motor else ")")
        items = value if isinstance(value, list | tuple) and what == "positions" else [value]
        text = next((v for v in items if isinstance(v, str)), None)
        if text is not None:
            raise PlanArgumentError(plan, where, value, (
                "numbers" if what == "positions" else "a number") + f", not text (write "
                f"{text} without quotes: the queue passes JSON text as it is)")
    return {i for i in range(len(rest)) if i % chunk or i >= groups * chunk}


def _device_arguments(plan: str, bound: inspect.BoundArguments, values: set[int]
                      ) -> Iterator[Any]:
    """The values of a call of ``plan`` that must be devices: the detectors, the motor,
    and the ``*args`` but those at ``values`` (every other one of ``mv``'s; a scan's
    motors, or all of its text when its layout is not known)."""
    given = bound.arguments
    detectors = given.get("detectors", ())
    if isinstance(detectors, str):
        yield detectors
    elif isinstance(detectors, Iterable):
        yield from detectors
    if "motor" in given:
        yield given["motor"]
    rest = tuple(given.get("args", ()))
    yield from (rest[::2] if plan in _PAIRS else
                (v for i, v in enumerate(rest) if i not in values))


def _naming(plan: Callable[..., Any], devices: Callable[[], Iterable[str]]
            ) -> Callable[..., Generator[Any, Any, Any]]:
    signature = inspect.signature(plan)
    name = plan.__name__

    @functools.wraps(plan)
    def queued(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            bound = None  # (the plan's own call raises its error)
        if bound is not None:
            for value in _device_arguments(name, bound, _check_values(name, bound)):
                if isinstance(value, str):
                    raise UnknownDeviceError(
                        f"{name}: no device named {value!r} (the queue server passes a "
                        f"name it does not know as text); the devices are "
                        f"{', '.join(sorted(devices()))}")
        return (yield from plan(*args, **kwargs))

    return queued


def naming_devices(devices: Callable[[], Iterable[str]]
                   ) -> dict[str, Callable[..., Generator[Any, Any, Any]]]:
    """:data:`PLANS`, each refusing a device argument given as text; ``devices()`` lists
    the names there are, for the message."""
    return {name: _naming(plan, devices) for name, plan in PLANS.items()}
