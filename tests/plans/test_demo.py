"""``smeflow demo`` end to end (fewer projections): both runs land in the catalog, the
live reduction adds a derived run to each (a reconstruction equal to an offline
reduction of the same run, 1D patterns), the pictures are written, and the catalog query
it prints finds the tomography run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from analysis.reduce import reduce_run
from dataflow.catalog import Catalog
from dataflow.cli import main as catalog_main
from devices.powder import CEO2, PowderSample
from geometry import PoniGeometry
from plans.demo import run_demo


def peak_positions(x: np.ndarray, y: np.ndarray, half_width: int = 3) -> list[float]:
    """Positions of the local maxima of ``y`` standing 10× above its median (the
    background), each the largest within ``half_width`` bins on either side."""
    floor = 10 * max(float(np.median(y)), 1e-9)
    found = []
    for i in range(len(y)):
        lo, hi = max(0, i - half_width), min(len(y), i + half_width + 1)
        if y[i] > floor and y[i] == y[lo:hi].max():
            found.append(float(x[i]))
    return found


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    result = run_demo(data, out, projections=12, quiet=True)
    for name in ("projection", "sinogram", "reconstruction", "diffraction", "pattern"):
        path = result["files"][name]
        assert path.exists() and path.stat().st_size > 5_000, name
    with Catalog(data) as catalog:
        tomo = catalog.run(result["tomo_uid"])
        assert tomo.metadata["stop"]["exit_status"] == "success"
        assert tomo["primary"]["det_image"].shape == (12, 256, 256)
        assert tomo["dark"]["det_image"].shape[0] == 5
        assert tomo["flat"]["det_image"].shape[0] == 5
        darks = np.asarray(tomo["dark"]["det_image"][:])
        flats = np.asarray(tomo["flat"]["det_image"][:])
        assert np.median(darks) < flats.mean() / 100     # shutter closed (hot pixels count on)
        diff = catalog.run(result["diffraction_uid"])
        assert diff["primary"]["det_image"].shape == (6, 256, 256)

        recon = catalog.run(result["tomo_derived_uid"])
        assert recon.metadata["start"]["raw_uid"] == result["tomo_uid"]
        assert recon.metadata["stop"]["exit_status"] == "success"
        live_volume = np.asarray(recon["primary"]["reconstruction"][:])
        assert live_volume.shape == (256, 256, 256)
        offline = reduce_run(catalog, result["tomo_uid"])
        offline_volume = np.asarray(catalog.run(offline.uid)["primary"]["reconstruction"][:])
        scale = np.abs(offline_volume).max()
        np.testing.assert_allclose(live_volume, offline_volume, rtol=0, atol=1e-5 * scale)
        patterns = catalog.run(result["diffraction_derived_uid"])
        assert patterns.metadata["start"]["raw_uid"] == result["diffraction_uid"]
        assert patterns["primary"]["intensity"].shape == (6, 500)
        # the 1D pattern has the sample's peaks and no others (hot pixels are masked)
        radial = np.asarray(patterns["axis"]["radial"][0])
        pattern = np.asarray(patterns["primary"]["intensity"][:]).mean(axis=0)
        geometry = PoniGeometry.from_metadata(diff.metadata["start"]["geometry"])
        step = float(radial[1] - radial[0])
        model = [math.degrees(r.two_theta(geometry.wavelength))
                 for r in PowderSample(CEO2, geometry).rings()]
        model = [t for t in model if radial[0] + step < t < radial[-1] - step]
        found = peak_positions(radial, pattern)
        assert len(model) >= 2, model
        assert len(found) == len(model), (found, model)
        for seen, expected in zip(found, model, strict=True):
            assert abs(seen - expected) <= 1.5 * step, (found, model)
        derived = {run.metadata["start"]["uid"]
                   for run in catalog.derived_runs(result["tomo_uid"]).values()}
        assert derived == {result["tomo_derived_uid"], offline.uid}
        for what in ("tomo", "diffraction"):
            stop = catalog.run(result[f"{what}_derived_uid"]).metadata["stop"]
            # the live lag: finite and recorded; its size is noisy on a loaded 2-core
            # machine (about 0.5 s for the tomography run, 0.05 s for diffraction)
            assert math.isfinite(stop["lag_max_s"]) and stop["lag_max_s"] >= 0
            assert stop["lag_max_s"] == result["lag_max"][what]
            assert stop["dropped_frames"] == 0
        # provenance: every raw and derived file's digest and counters, checked again
        from dataflow.provenance import verify_run

        for uid in (result["tomo_uid"], result["tomo_derived_uid"],
                    result["diffraction_uid"], result["diffraction_derived_uid"]):
            run = catalog.run(uid)
            record = run.metadata["provenance"]
            assert all(len(f["sha256"]) == 64 for f in record["files"])
            # patterns are in-event arrays: only the diffraction derived run has no file
            assert record["files"] or uid == result["diffraction_derived_uid"]
            assert verify_run(run).ok, verify_run(run).lines()
        raw_files = catalog.run(result["tomo_uid"]).metadata["provenance"]["files"]
        frame_files = [f for f in raw_files if f["data_key"] == "det_image"]
        assert sum(f["counters"]["good"] for f in frame_files) == 22  # 5 + 5 + 12 frames
        # the pixel mask's file is recorded too (it has no readout counters)
        assert [f["counters"] for f in raw_files if f["data_key"] == "det_pixel_mask"] == [{}]
    capsys.readouterr()
    assert catalog_main(["search", "plan_name=tomo_scan", "--data", str(data)]) == 0
    assert result["tomo_uid"][:8] in capsys.readouterr().out
    assert result["report"]["corrupt"] == 0
