"""Which event stream a device is being read into (bluesky does not say).

A RunEngine reads a device into an event stream in three steps: ``create(name=STREAM)``,
``read(obj)`` for each device (with ``collect_asset_docs()``, which announces external
data such as a detector's frames), ``save``. Nothing in the ``read`` message or in the
calls a device receives names the stream. A detector that writes its frames to files
needs the name all the same: Tiled's writer binds a ``stream_resource`` to the stream of
its first ``stream_datum`` and serves the first N frames of its dataset, so frames read
into the baseline and into the primary stream must go to datasets of their own, or the
baseline's frames turn up in the primary stream.

:func:`reading_stream` finds it where bluesky keeps it: the RunEngine's run bundler (the
object that builds the event being read) holds the name of the open bundle. The bundler
calls ``collect_asset_docs`` from its own ``read``, so it is on the calling thread's stack
while a device announces its data. Outside a RunEngine bundle (a device driven by hand or
by another orchestrator) there is no stream and the answer is ``None``.

:func:`calling_run` finds, the same way, the RunEngine whose message a device is acting
on and the run that message belongs to: a flyer kicked off in a run learns which run's
end to watch for (``devices.flyer``), since bluesky tells a flyer nothing when a run it
kicked off closes on a plan's failure, and :func:`declared_streams` which streams the plan
declared for it (a flyer checks at ``kickoff`` that its frames have a declared stream).
:func:`rewind_replays` tells a pausing device whether the resume would replay its messages.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import Any

from bluesky.bundlers import RunBundler
from bluesky.run_engine import RunEngine

__all__ = ["RunEndWatch", "calling_run", "declared_streams", "described_shape",
           "reading_stream", "rewind_replays"]

log = logging.getLogger(__name__)


def reading_stream() -> str | None:
    """The name of the event stream the calling device is being read into by a bluesky
    RunEngine (``"primary"``, ``"baseline"``, …), or ``None`` outside a RunEngine bundle
    (see the module docstring)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, RunBundler):
            name = getattr(owner, "_bundle_name", None)
            return name if isinstance(name, str) else None
        frame = frame.f_back
    return None


def described_shape(obj: Any, key: str) -> list[int] | None:
    """The shape the descriptor of the stream ``obj`` is being read into gives its data
    key ``key`` (bluesky describes a device once per stream of a run and keeps it in the
    bundler's stream cache), or ``None`` outside a RunEngine bundle or without one."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, RunBundler):
            cache = getattr(getattr(owner, "_current_stream_cache", None), "describe_cache",
                            None)
            described = cache.get(obj) if isinstance(cache, dict) else None
            shape = described.get(key, {}).get("shape") if isinstance(described, dict) \
                else None
            return list(shape) if isinstance(shape, list | tuple) else None
        frame = frame.f_back
    return None


def calling_run() -> tuple[RunEngine, str] | None:
    """``(RunEngine, run start uid)`` of the RunEngine message the calling device is
    acting on (its ``kickoff``, ``collect``: the engine's command keeps the message's
    run bundler as ``current_run``), or ``None`` outside a RunEngine or a run (see the
    module docstring)."""
    found = _engine_run()
    if found is None:
        return None
    engine, run = found
    uid = getattr(run, "_run_start_uid", None)
    return (engine, uid) if isinstance(run, RunBundler) and isinstance(uid, str) else None


def _engine_run() -> tuple[RunEngine, Any] | None:
    """The RunEngine whose command is on the calling thread's stack and that command's
    ``current_run`` (its message's run bundler; whatever it is), or ``None``."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        engine = frame.f_locals.get("self")
        if isinstance(engine, RunEngine):
            return engine, frame.f_locals.get("current_run")
        frame = frame.f_back
    return None


def rewind_replays(obj: Any) -> bool | None:
    """Whether resuming the pause of the RunEngine on the calling thread's stack (a
    device's ``pause``) would replay a message about ``obj`` (acting on it or naming it,
    as ``declare_stream`` does): one since the last checkpoint, kept for the rewind.
    ``None`` when no RunEngine is on the stack or bluesky keeps its messages elsewhere."""
    found = _engine_run()
    if found is None:
        return None
    cache = getattr(found[0], "_msg_cache", ())
    if cache is None:  # (no checkpoint to rewind to: nothing is replayed)
        return False
    if not isinstance(cache, deque):
        return None
    return any(msg.obj is obj or any(arg is obj for arg in msg.args) for msg in cache)


def declared_streams(obj: Any) -> dict[frozenset[Any], list[str]] | None:
    """The streams declared with ``obj`` (``bps.declare_stream(obj, ..., name=...)``), by
    the set of objects declared together (bluesky's key: ``frozenset([obj])`` for ``obj``
    alone), in the run of the RunEngine message the calling device is acting on (its
    ``kickoff``; the message's run bundler keeps them); ``None`` outside a RunEngine run
    or when bluesky keeps them elsewhere."""
    found = _engine_run()
    if found is None:
        return None
    run = found[1]
    names = getattr(run, "_declared_stream_names", None)
    if not isinstance(run, RunBundler) or not isinstance(names, dict):
        return None
    return {objs: list(declared) for objs, declared in names.items()
            if obj in objs and declared}


class RunEndWatch:
    """Calls ``on_end()`` once when the run a device was kicked off in ends (its ``stop``
    document): the clean-up of something bluesky does not stop itself — it ``stop()``s
    only what it ``set``, so a flyer or a continuous rotation kicked off in a run that
    fails, is aborted, stopped or halted goes on unless it watches its run.

    ``name`` labels the log line when ``on_end`` raises (it must not fail the RunEngine's
    emit)."""

    def __init__(self, name: str, on_end: Callable[[], None]) -> None:
        self._name = name
        self._on_end = on_end
        self._watch: tuple[RunEngine, int] | None = None

    def arm(self) -> None:
        """Watch the run of the RunEngine message the caller is acting on (call it from
        the device's ``kickoff``; :func:`calling_run`); outside a run, nothing."""
        self.disarm()
        found = calling_run()
        if found is None:
            return
        engine, run = found

        def on_stop(name: str, doc: dict[str, Any]) -> None:
            if doc.get("run_start") != run:
                return
            self.disarm()
            try:
                self._on_end()
            except Exception:
                log.exception("%s: could not clean up after its run ended", self._name)

        self._watch = (engine, engine.subscribe(on_stop, "stop"))  # type: ignore[no-untyped-call]

    def disarm(self) -> None:
        """Stop watching (nothing to do when the run ends)."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch[0].unsubscribe(watch[1])  # type: ignore[no-untyped-call]
