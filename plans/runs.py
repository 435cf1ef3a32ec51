"""Typed building blocks shared by smeflow's plans: a run, staging, and guaranteed cleanup.

:func:`recorded_run` is bluesky's ``run_wrapper`` with one difference: when the
RunEngine interrupts the plan (``RE.abort(reason)``, ``RE.stop()``), the plan does not
close the run itself but lets the RunEngine do it, because only the RunEngine knows the
operator's reason. ``run_wrapper`` closes the run with ``reason=None`` in that case, so
the stop document of an aborted run says ``exit_status="abort"`` with an empty reason (a
known upstream behaviour, e.g. DiamondLightSource/blueapi#1306). Failures (exceptions)
are closed by the plan with ``exit_status="fail"`` and the exception text, as in bluesky —
except that a failed device status is replaced by the device's own error
(:func:`failure_reason`), so the stop document says why the detector failed.

:func:`staged` and :func:`with_cleanup` are annotated front ends to
:func:`bluesky.preprocessors.stage_wrapper` and :func:`bluesky.preprocessors.finalize_wrapper`
(bluesky's preprocessors carry no type annotations).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import FailedStatus, MsgGenerator, RunEngineControlException

__all__ = ["failure_reason", "recorded_run", "staged", "with_cleanup"]

T = TypeVar("T")


def recorded_run(plan: MsgGenerator[Any], md: Mapping[str, Any]) -> MsgGenerator[str]:
    """Run ``plan`` inside ``open_run(md)`` / ``close_run``; return the run's uid.

    On an exception the run is closed with ``exit_status="fail"`` and the exception's
    text as reason, then the exception propagates. On a RunEngine interruption (abort,
    stop) the run is left for the RunEngine to close with its own exit status and reason.
    """
    uid: str = yield from bps.open_run(dict(md))
    try:
        yield from plan
    except RunEngineControlException:
        raise
    except Exception as err:
        yield from bps.close_run(exit_status="fail", reason=failure_reason(err))
        raise
    yield from bps.close_run()
    return uid


def failure_reason(err: BaseException) -> str:
    """The text a failed run's stop document keeps: for a failed device status (bluesky's
    ``FailedStatus``, whose own text is only the status's repr) the device's error."""
    if isinstance(err, FailedStatus) and err.args:
        status = err.args[0]
        cause = status.exception() if callable(getattr(status, "exception", None)) else None
        if cause is not None:
            return f"{type(cause).__name__}: {cause}"
    return str(err)


def staged(plan: MsgGenerator[T], devices: Sequence[Any]) -> MsgGenerator[T]:
    """``plan`` with ``devices`` staged before it and unstaged after it (also on error)."""
    result: T = yield from bpp.stage_wrapper(plan, devices)  # type: ignore[no-untyped-call]
    return result


def with_cleanup(
    plan: MsgGenerator[T], cleanup: Callable[[], MsgGenerator[Any]]
) -> MsgGenerator[T]:
    """``plan`` followed by ``cleanup()``, which also runs when ``plan`` fails or is aborted.

    ``cleanup`` cannot run when the generator is merely ``close()``-d: Python forbids a
    closing generator to yield. The RunEngine never does that; it throws the interruption
    into the plan, and the cleanup runs.
    """
    result: T = yield from bpp.finalize_wrapper(plan, cleanup)  # type: ignore[no-untyped-call]
    return result
