"""``smeflow catalog show RUN --plot``: what each kind of run is drawn as, with its data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bluesky.plans as bp
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from analysis.reduce import reduce_run
from dataflow.cli import main as catalog_main
from dataflow.plot import draw_run
from plans import diffraction_scan, tomo_scan
from plans.beamline_md import beamline_metadata


@pytest.fixture
def runs(smeflow_beamline: Any) -> dict[str, str]:
    bl = smeflow_beamline
    bl.RE.preprocessors.append(beamline_metadata(bl.beamline))
    (tomo,) = bl.RE(tomo_scan(bl.det, bl.rotation, bl.sample_x, bl.shutter, out_position=20.0,
                              num_projections=6, n_darks=1, n_flats=1))
    bl.beamline.use_powder()
    (diff,) = bl.RE(diffraction_scan(bl.det, bl.sample_x, bl.sample_y, [(0.0, 0.0)], num=2))
    (scalars,) = bl.RE(bp.count([bl.sample_x], 3))
    recon = reduce_run(bl.catalog, tomo, rows=[31, 32, 33]).uid
    patterns = reduce_run(bl.catalog, diff, bins=200).uid
    return {"tomo": tomo, "diff": diff, "scalars": scalars, "recon": recon,
            "patterns": patterns}


def test_each_kind_of_run_is_drawn_with_its_data_titles_and_units_and_show_writes_it(
        smeflow_beamline: Any, runs: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = smeflow_beamline.catalog

    tomo = catalog.run(runs["tomo"])
    fig = draw_run(tomo)
    first, sino = fig.axes[0], fig.axes[1]  # (their colorbars come after them)
    assert np.array_equal(first.images[0].get_array(), tomo["primary"]["det_image"][0])
    assert np.array_equal(sino.images[0].get_array(),
                          np.asarray(tomo["primary"]["det_image"][:, 32, :], dtype=float))
    assert sino.get_ylabel() == "rotation (deg)" and sino.get_title() == "sinogram of row 32"
    assert "tomo_scan" in fig._suptitle.get_text()
    plt.close(fig)

    recon = catalog.run(runs["recon"])
    fig = draw_run(recon)
    ax = fig.axes[0]
    assert np.array_equal(ax.images[0].get_array(), recon["primary"]["reconstruction"][1])
    assert "detector row 32 (2 of 3)" in ax.get_title() and ax.get_xlabel() == "x (pixels)"
    plt.close(fig)

    patterns = catalog.run(runs["patterns"])
    fig = draw_run(patterns)
    ax = fig.axes[0]
    intensity = np.asarray(patterns["primary"]["intensity"].read())
    assert len(ax.lines) == 3  # two patterns and their mean
    assert np.allclose(ax.lines[-1].get_ydata(), intensity.mean(axis=0))
    assert ax.get_xlabel() == "2θ (deg)" and ax.get_ylabel() == "intensity (counts)"
    plt.close(fig)

    fig = draw_run(catalog.run(runs["diff"]))
    assert fig.axes[0].images[0].get_array().shape == (64, 64)
    assert "first frame of 2" in fig.axes[0].get_title()
    plt.close(fig)

    fig = draw_run(catalog.run(runs["scalars"]))
    assert next(line.get_label() for line in fig.axes[0].lines).startswith("sample_x")
    assert fig.axes[0].get_xlabel() == "event number"
    plt.close(fig)

    # from the command line (one set of runs for both: acquiring them is the slow part)
    data = str(smeflow_beamline.catalog.root)
    monkeypatch.chdir(tmp_path)
    assert catalog_main(["show", runs["recon"][:8], "--data", data, "--plot"]) == 0
    png = tmp_path / f"{runs['recon'][:8]}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.rstrip().endswith(f"picture: {png.name}")
    assert catalog_main(["show", runs["tomo"][:8], "--data", data, "--plot", "t.png"]) == 0
    assert (tmp_path / "t.png").stat().st_size > 10_000
    capsys.readouterr()
    assert catalog_main(["show", runs["tomo"][:8], "--data", data, "--plot",
                         str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().endswith("is a folder; give a file name")
    assert catalog_main(["show", runs["tomo"][:8], "--data", data, "--plot",
                         "nowhere/t.png"]) == 2
    assert "folder nowhere does not exist" in capsys.readouterr().err
