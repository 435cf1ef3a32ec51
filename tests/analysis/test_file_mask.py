"""A run of a plan that publishes no mask stream (bluesky's own ``bp.count``) is reduced
with the mask its detector wrote into the frame files (NeXus ``NXdetector/pixel_mask``, as
Dectris detectors write theirs), offline and live: module gaps, dead and hot pixels are
left out of the patterns instead of counting as pixels that saw nothing (review R4: bins
off by up to 100 % with exit_status "success")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps

from analysis.azint import AzimuthalIntegrator
from analysis.live import LiveReducer
from analysis.reduce import reduce_run
from analysis.reduce_chunks import AzintParams, azint_chunk, geometry_from
from analysis.reductions import ReductionError
from analysis.run_read import run_mask
from dataflow.catalog import Catalog
from dataflow.pixel_mask import GAP, PIXEL_MASK_DATASET
from devices.beamline import Beamline
from fpga.designs.layout import DetectorLayout
from fpga.designs.params import ChainParams

LAYOUT = DetectorLayout(ChainParams(48, 64, 16, binning=False), grid=(3, 2), gap=(9, 5))
BINS = 100


@dataclass
class Runs:
    catalog: Catalog
    mask_bits: np.ndarray
    plain: str
    """bp.count: no mask stream."""
    live_patterns: np.ndarray
    """The live reducer's patterns of ``plain``."""


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    catalog = Catalog(tmp_path_factory.mktemp("file-mask") / "data")
    RE: Any = RunEngine({})
    catalog.subscribe(RE)
    live = LiveReducer.for_catalog(catalog)
    RE.subscribe(live)
    bl = Beamline.create(catalog.raw_dir, layout=LAYOUT)
    try:
        RE(bps.mv(bl.shutter, "open"))
        bl.use_powder()
        md = {"geometry": bl.geometry.to_metadata()}
        (plain,) = RE(bp.count([bl.det], 3, md=md))
        bits = bl.det.pixel_mask_array()
        assert live.wait(plain, timeout=120)
        result = live.results[plain]
        assert result.exit_status == "success", result.reason
        patterns = np.asarray(catalog.run(result.derived_uid)["primary"]["intensity"].read())
    finally:
        live.close()
        bl.close()
    yield Runs(catalog, bits, plain, patterns)
    catalog.close()


def test_each_frame_file_holds_the_detectors_pixel_mask(runs: Runs) -> None:
    assert np.count_nonzero(runs.mask_bits & GAP) > 0  # (the gaps are there to mask)
    node = runs.catalog.run(runs.plain)["primary"]["det_image"]
    (uri,) = [a.data_uri for s in node.data_sources() for a in s.assets]
    with h5py.File(uri.removeprefix("file://localhost"), "r") as f:
        mask = f[PIXEL_MASK_DATASET]
        assert mask.compression == "gzip"
        np.testing.assert_array_equal(mask[()], runs.mask_bits)


def test_a_run_without_a_mask_stream_gets_its_frame_files_mask(runs: Runs) -> None:
    run = runs.catalog.run(runs.plain)
    assert "mask" not in run
    got = run_mask(run, run.metadata["start"], runs.mask_bits.shape)
    assert got is not None
    np.testing.assert_array_equal(got, runs.mask_bits != 0)


def test_offline_and_live_reductions_leave_the_masked_pixels_out(runs: Runs) -> None:
    """The bp.count run's patterns, offline and live, are its frames integrated with the
    detector's mask — which, here, moves bins by more than 10 % (module gaps and bad
    pixels counted as empty pixels, as before the fix)."""
    run = runs.catalog.run(runs.plain)
    frames = np.asarray(run["primary"]["det_image"].read())
    integrator = AzimuthalIntegrator(geometry_from(run.metadata["start"]))
    masked = runs.mask_bits != 0

    def integrated(params: AzintParams, mask: np.ndarray) -> np.ndarray:
        return azint_chunk(frames, integrator, params, mask=mask).intensity

    want = integrated(AzintParams(bins=BINS), masked)
    unmasked = integrated(AzintParams(bins=BINS), np.zeros_like(masked))
    lit = want.mean(axis=0) > 0
    assert np.nanmax(np.abs(unmasked[:, lit] / want[:, lit] - 1)) > 0.1
    offline = runs.catalog.run(reduce_run(runs.catalog, runs.plain, bins=BINS).uid)
    np.testing.assert_allclose(np.asarray(offline["primary"]["intensity"].read()), want,
                               rtol=1e-5)
    # (the live reducer's defaults: AzintParams())
    np.testing.assert_allclose(runs.live_patterns, integrated(AzintParams(), masked),
                               rtol=1e-5)


def test_the_run_records_how_many_pixels_its_detector_masks(runs: Runs) -> None:
    config = runs.catalog.run(runs.plain)["primary"].metadata["configuration"]["det"]
    assert config["data"]["det_masked_pixels"] == np.count_nonzero(runs.mask_bits) > 0


def test_a_mask_on_another_machine_is_refused_not_left_out(
        runs: Runs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reduced where the frame files are not (a workstation reading the catalog over
    HTTP): the detector recorded that it masks pixels, so the reduction refuses rather
    than count the gaps (review R14: it logged a warning and wrote a "success" run)."""
    import analysis.run_read

    def another_machines(uri: str) -> Path:  # (as uri_path answers file://host/...)
        raise ReductionError(f"input {uri!r}: not a local file:// URI")

    monkeypatch.setattr(analysis.run_read, "uri_path", another_machines)
    run = runs.catalog.run(runs.plain)
    with pytest.raises(ReductionError, match=r"det_masked_pixels = \d+\) is not on this "
                                             r"machine.*plans\.with_mask"):
        run_mask(run, run.metadata["start"], runs.mask_bits.shape)
    with pytest.raises(ReductionError, match="not on this machine"):
        reduce_run(runs.catalog, runs.plain, bins=BINS)
