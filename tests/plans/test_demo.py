"""``smeflow demo`` end to end (fewer projections): both runs land in the catalog, the
pictures are written, and the catalog query it prints finds the tomography run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataflow.catalog import Catalog
from dataflow.cli import main as catalog_main
from plans.demo import run_demo


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
    capsys.readouterr()
    assert catalog_main(["search", "plan_name=tomo_scan", "--data", str(data)]) == 0
    assert result["tomo_uid"][:8] in capsys.readouterr().out
    assert result["report"]["corrupt"] == 0
