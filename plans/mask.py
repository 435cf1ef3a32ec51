"""Publishing a detector's pixel mask with a run (the ``"mask"`` stream of
:mod:`dataflow.pixel_mask`).

:func:`publish_mask` is a plan stub for inside an open run, before the first frame: it
reads ``det.pixel_mask`` (module gaps, dead and hot pixels, the firmware's mask table)
into the stream ``"mask"`` so that every reducer of the run — live, offline, on Dask —
ignores those pixels. smeflow's own plans call it; wrap a standard plan with
:func:`with_mask`::

    from bluesky import plans as bp, preprocessors as bpp
    RE(bpp.pchain(...))  # or, simply:
    RE(with_mask(bp.count([det], 10), det))
"""

from __future__ import annotations

from typing import Any

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import Msg, MsgGenerator

from dataflow.pixel_mask import MASK_STREAM

__all__ = ["publish_mask", "with_mask"]


def publish_mask(det: Any) -> MsgGenerator[None]:
    """One event of the stream ``"mask"`` with ``det``'s pixel mask; nothing for a
    detector without one (no ``pixel_mask`` child, e.g. ``ophyd.sim``'s)."""
    reader = getattr(det, "pixel_mask", None)
    if reader is None or not callable(getattr(reader, "collect_asset_docs", None)):
        return
    yield from bps.trigger_and_read([reader], name=MASK_STREAM)


def with_mask(plan: MsgGenerator[Any], *detectors: Any) -> MsgGenerator[Any]:
    """``plan`` with the pixel masks of ``detectors`` published right after its
    ``open_run`` (for plans that do not publish them, such as ``bluesky.plans.count``)."""

    def after_open(msg: Msg) -> tuple[MsgGenerator[Any] | None, MsgGenerator[Any] | None]:
        if msg.command != "open_run":
            return None, None

        def masks() -> MsgGenerator[Any]:
            for det in detectors:
                yield from publish_mask(det)

        return None, masks()

    result = yield from bpp.plan_mutator(plan, after_open)  # type: ignore[no-untyped-call]
    return result
