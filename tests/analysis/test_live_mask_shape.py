"""A frame file whose NeXus pixel_mask has another shape than its frames (a mask written
for another binning or cut) fails the live reduction as it fails offline."""

from __future__ import annotations

from typing import Any

import bluesky.plans as bp
import numpy as np
import pytest

from analysis.live import LiveReducer
from analysis.reduce import reduce_run
from analysis.reductions import ReductionError


@pytest.mark.parametrize("cut", ["one-row", "half-width"])
def test_a_mask_of_another_shape_fails_live_as_offline(smeflow_beamline: Any,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      cut: str) -> None:
    """A (1, 64) mask must not broadcast over every row of 64x64 frames, nor a (64, 32)
    one fail with numpy's broadcasting error: both end the live derived run as failed,
    naming the shapes, as ``reduce_run`` refuses the raw run."""
    bl = smeflow_beamline
    bl.beamline.use_powder()
    det = bl.det
    full = det.pixel_mask_array
    part = (slice(0, 1), slice(None)) if cut == "one-row" else \
        (slice(None), slice(0, full().shape[1] // 2))
    monkeypatch.setattr(det, "pixel_mask_array", lambda: np.ascontiguousarray(full()[part]))
    live = LiveReducer.for_catalog(bl.catalog)
    bl.RE.subscribe(live)
    try:
        (uid,) = bl.RE(bp.count([det], 3, md={"geometry": bl.geometry.to_metadata()}))
        assert live.wait(uid, timeout=300)
        result = live.results[uid]
    finally:
        live.close()
    with pytest.raises(ReductionError, match="does not match the frames"):
        reduce_run(bl.catalog, uid)
    assert result.exit_status == "fail", (result.exit_status, result.reason)
    assert "does not match the frames (64, 64)" in str(result.reason), result.reason
