"""A RunEngine preprocessor that records what the simulated beamline was set up for.

``RE.preprocessors.append(beamline_metadata(beamline))`` adds to every run's start
document the sample in the beam (``"sample_in_beam"``: ``"phantom"`` or ``"powder"``,
read when the run opens) and, when it is the powder, the detector ``"geometry"``
(:meth:`geometry.PoniGeometry.to_metadata`) that the reduction (:mod:`analysis.reduce`)
needs to integrate the frames — that of the frames as read out, binned when the detector
bins (:meth:`devices.beamline.Beamline.detector_geometry`). A plan whose own metadata says
``sample_in_beam`` is taken at its word: nothing is added to it. This is how runs queued
through the queue server, whose users cannot pass Python objects, still carry their
geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bluesky import preprocessors as bpp
from bluesky.utils import Msg, MsgGenerator, single_gen

from devices.beamline import Beamline

__all__ = ["beamline_metadata"]


def beamline_metadata(beamline: Beamline) -> Callable[[MsgGenerator[Any]], MsgGenerator[Any]]:
    """The preprocessor for ``beamline`` (see the module docstring)."""

    def add(msg: Msg) -> tuple[MsgGenerator[Any] | None, None]:
        # the replacement passes through here again: leave a marked one alone
        if msg.command != "open_run" or "sample_in_beam" in msg.kwargs:
            return None, None
        sample = beamline.sample.get()
        extra: dict[str, Any] = {"sample_in_beam": sample}
        if sample == "powder":
            extra["geometry"] = beamline.detector_geometry().to_metadata()
        kwargs = {**extra, **msg.kwargs}
        marked = Msg("open_run", msg.obj, *msg.args, run=msg.run, **kwargs)  # type: ignore[no-untyped-call]
        return single_gen(marked), None  # type: ignore[no-untyped-call]

    def preprocessor(plan: MsgGenerator[Any]) -> MsgGenerator[Any]:
        result: MsgGenerator[Any] = bpp.plan_mutator(plan, add)  # type: ignore[no-untyped-call]
        return result

    return preprocessor
