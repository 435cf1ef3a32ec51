"""The detector's pixel mask travels with the run (the ``mask`` stream) and the offline
reduction ignores those pixels; the firmware zeroes the same pixels in the frames."""

from __future__ import annotations

from typing import Any

import numpy as np
from bluesky import plans as bp

from analysis.azint import AzimuthalIntegrator
from analysis.reduce import reduce_run
from dataflow.pixel_mask import DEAD, MASK_STREAM, OVER_RESPONDING, bin_mask
from plans import diffraction_scan, with_mask


def _mask_of(catalog: Any, uid: str) -> np.ndarray:
    run = catalog.run(uid)
    assert MASK_STREAM in run
    return np.asarray(run[MASK_STREAM]["det_pixel_mask"][0])


def test_count_with_mask_publishes_the_bad_pixels(smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    det = bl.det
    (uid,) = bl.RE(with_mask(bp.count([det], 2), det))
    mask = _mask_of(bl.catalog, uid)
    assert mask.shape == (64, 64) and mask.dtype == np.uint32
    assert np.array_equal(mask & DEAD != 0, det.sensor.dead_mask)
    assert np.array_equal(mask & OVER_RESPONDING != 0, det.sensor.hot_mask)
    assert det.sensor.dead_mask.any() and det.sensor.hot_mask.any()
    frames = np.asarray(bl.catalog.run(uid)["primary"]["det_image"][:])
    assert frames.shape == (2, 64, 64)
    assert not frames[:, mask != 0].any()  # the firmware's mask table zeroes them
    # the primary stream does not carry the mask key
    assert "det_pixel_mask" not in bl.catalog.run(uid)["primary"]


def test_binned_mask_follows_the_frames(smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    det = bl.det
    det.binning.put(True)
    (uid,) = bl.RE(with_mask(bp.count([det], 1), det))
    mask = _mask_of(bl.catalog, uid)
    assert mask.shape == (32, 32)
    full = np.zeros((64, 64), np.uint32)
    full[det.sensor.dead_mask] |= DEAD
    full[det.sensor.hot_mask] |= OVER_RESPONDING
    assert np.array_equal(mask, bin_mask(full))


def test_offline_integration_ignores_masked_pixels(smeflow_beamline: Any) -> None:
    bl = smeflow_beamline
    bl.beamline.use_powder()
    (uid,) = bl.RE(diffraction_scan(bl.det, bl.sample_x, bl.sample_y, [(0.0, 0.0)], num=1,
                                    md={"geometry": bl.geometry.to_metadata()}))
    summary = reduce_run(bl.catalog, uid, bins=50)
    patterns = bl.catalog.run(summary.uid)
    got = np.asarray(patterns["primary"]["intensity"][0])
    frame = np.asarray(bl.catalog.run(uid)["primary"]["det_image"][0])
    mask = _mask_of(bl.catalog, uid) != 0
    integrator = AzimuthalIntegrator(bl.geometry)
    # reduce_run integrates without pixel splitting unless asked (its ``method`` default)
    masked = integrator.integrate1d(frame, 50, mask=mask, method="no").intensity
    unmasked = integrator.integrate1d(frame, 50, method="no").intensity
    np.testing.assert_allclose(got, masked, rtol=1e-6)
    assert not np.allclose(got, unmasked, rtol=1e-6)
