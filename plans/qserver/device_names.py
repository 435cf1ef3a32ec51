"""The standard bluesky plans the queue offers, refusing a device name it does not know.

bluesky-queueserver checks an item's device parameters (``detectors``, a scan's motors,
``mv``'s devices: annotated ``Readable``/``Movable``) as text, and swaps each name for
its device when the plan runs; a name it does not know is left as text. bluesky's plans
then fail deep inside with ``'str' object has no attribute 'name'`` (``count``,
``scan``) or ``... 'parent'`` (``mv``, ``rel_scan``), which is all the queue's history
shows for a typo. :func:`naming_devices` wraps each plan so that such a name is refused,
before the run opens, by an :class:`UnknownDeviceError` naming it and the devices there
are. The wrappers keep the plans' names, signatures and docstrings (what the queue server
lists and checks).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import plans as bp

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


class UnknownDeviceError(ValueError):
    """A plan's device argument is a name the queue server did not know."""


def _device_arguments(plan: str, bound: inspect.BoundArguments) -> Iterator[Any]:
    """The values of a call of ``plan`` that must be devices: the detectors, the motor,
    and the ``*args`` (all of a scan's text is misplaced: its other items are numbers and
    lists; every other one of ``mv``'s)."""
    given = bound.arguments
    detectors = given.get("detectors", ())
    if isinstance(detectors, str):
        yield detectors
    elif isinstance(detectors, Iterable):
        yield from detectors
    if "motor" in given:
        yield given["motor"]
    rest = tuple(given.get("args", ()))
    yield from (rest[::2] if plan in _PAIRS else rest)


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
            for value in _device_arguments(name, bound):
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
