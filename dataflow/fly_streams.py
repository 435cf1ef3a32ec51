"""The stream of a flyer declared before its ``kickoff``, so that bluesky's own fly plans
record its frames with ``stream_resource``/``stream_datum`` documents.

bluesky's RunEngine accepts ``stream_resource``/``stream_datum`` from a device's
``collect_asset_docs`` only for a stream declared with
``bps.declare_stream(flyer, name=..., collect=True)``: a collect of an undeclared stream
takes the older route (``describe_collect`` giving ``{stream: data keys}``, external data
announced with ``resource``/``datum``) and refuses a ``stream_resource`` there.
ophyd-async's fly plans declare their detectors' stream before kicking them off;
``bluesky.plans.fly`` and ``fly_during_wrapper`` declare nothing.

:func:`declare_flyer_streams`, a RunEngine preprocessor (:func:`install`; the catalogs'
``subscribe`` installs it), declares the stream of every object that names one in a
``collect_stream`` attribute (such as ``devices.flyer.DetectorFlyer``) just before its
first ``kickoff`` (or ``collect``) in a run, unless the plan declared a stream for it
itself. The RunEngine's own clean-up collect of a flyer a failed plan left uncollected
then finds the stream declared too.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from bluesky import preprocessors as bpp
from bluesky.utils import Msg, MsgGenerator

from .engine_hooks import add_preprocessor

__all__ = ["STREAM_ATTRIBUTE", "declare_flyer_streams", "install"]

STREAM_ATTRIBUTE = "collect_stream"
"""The attribute naming the stream a flyer's ``collect`` fills when no plan declares one."""


def declare_flyer_streams(plan: MsgGenerator[Any]) -> MsgGenerator[Any]:
    """``plan`` with ``declare_stream(flyer, name=flyer.collect_stream, collect=True)``
    before the first ``kickoff`` or ``collect`` of such a flyer in each run whose plan did
    not declare a stream for it (see the module docstring)."""
    declared: set[tuple[Hashable, int]] = set()  # (run key, id of the object)

    def declaring(msg: Msg, stream: str) -> MsgGenerator[Any]:
        declared.add((msg.run, id(msg.obj)))
        yield Msg("declare_stream", None, msg.obj, name=stream, collect=True,  # type: ignore[no-untyped-call]
                  run=msg.run)
        return (yield msg)

    def process(msg: Msg) -> tuple[MsgGenerator[Any] | None, None]:
        if msg.command == "open_run":  # (a run key's earlier run is over)
            declared.difference_update({d for d in declared if d[0] == msg.run})
        elif msg.command == "declare_stream":
            declared.update((msg.run, id(obj)) for obj in msg.args)
        elif msg.command in ("kickoff", "collect") and not msg.args:
            stream = getattr(msg.obj, STREAM_ATTRIBUTE, None)
            if isinstance(stream, str) and (msg.run, id(msg.obj)) not in declared:
                return declaring(msg, stream), None
        return None, None

    result = yield from bpp.plan_mutator(plan, process)  # type: ignore[no-untyped-call]
    return result


def install(RE: Any) -> None:
    """Add :func:`declare_flyer_streams` to ``RE``'s preprocessors (once)."""
    add_preprocessor(RE, declare_flyer_streams)
