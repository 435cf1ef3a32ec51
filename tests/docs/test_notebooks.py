"""The notebooks of ``docs/notebooks`` run top to bottom, and what their figures show is right.

Each notebook is executed with nbclient in a fresh kernel of this environment, in a
temporary folder (the files it writes go there), followed by one extra cell — kept here,
not in the notebook — that checks its results and the data drawn in its figures against
values computed independently. Committed notebooks carry no outputs (they are stripped).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "docs" / "notebooks"

CHECKS: dict[str, str] = {
    "01-firmware.ipynb": '''
import numpy as np
expected = np.cumsum(valid & (values >= hits.HitCounter.THRESHOLD))
assert np.array_equal(trace.column("hits.count")[1:], expected)
drawn = axes[2].lines[0].get_ydata()
assert np.array_equal(drawn, expected), "the hit-count panel does not show the count"
assert np.array_equal(axes[0].lines[0].get_ydata(), values)
assert axes[0].lines[1].get_ydata()[0] == 1000
assert np.array_equal(axes[1].lines[0].get_ydata(), valid.astype(int))
assert axes[2].get_xlabel() == "tick (clock cycles)" and axes[0].get_title()
assert Path("hits.vcd").read_text().startswith("$")
assert result.passed and result.ticks == 64 and not result.mismatches, result.summary()
assert same
carried = int(outputs["hits.count"][-1])  # the second batch continues the first
big_expected = (carried + np.cumsum(big_valid & (big_values >= 1000))) % 65536
assert np.array_equal(big["hits.count"], big_expected)
''',
    "02-beamline.ipynb": '''
import numpy as np
start = run.metadata["start"]
assert start["plan_name"] == "tomo_scan" and run.metadata["stop"]["exit_status"] == "success"
assert run["primary"]["det_image"].shape == (60, 256, 256)
# the live plot shows every projection's ROI sum against its angle, as stored
line = ax_live.lines[0]
assert np.allclose(line.get_xdata(), run["primary"]["rotation"].read())
assert np.array_equal(line.get_ydata(), np.asarray(run["primary"]["det_roi_sum"].read()))
assert np.array_equal(ax_rec.images[0].get_array(), mu)
assert np.array_equal(ax_sino.images[0].get_array(), sino)
assert ax_rec.get_xlabel() == "x (mm)" and "FBP" in ax_rec.get_title()
assert derived.metadata["start"]["raw_uid"] == uid
# databroker sees the same run: v1 header and table, v2 dataset
assert header.start["uid"] == uid and uid in [h.start["uid"] for h in hits]
assert np.array_equal(table["det_roi_sum"].to_numpy(), line.get_ydata())
assert np.array_equal(dataset["det_roi_sum"].values, line.get_ydata())
# the slice holds the attenuation the projections saw (sum = mean line integral)
dark = np.asarray(run["dark"]["det_image"].read(), dtype=float)[:, row].mean(0)
flat = np.asarray(run["flat"]["det_image"].read(), dtype=float)[:, row].mean(0)
t = np.clip((sino - dark) / (flat - dark), 1e-6, None)
seen = (-np.log(t)).sum(axis=1).mean()
assert seen > 1.0 and abs(slice_.sum() / seen - 1) < 0.05, (slice_.sum(), seen)
''',
    "03-diffraction.ipynb": '''
import numpy as np
assert run.metadata["start"]["geometry"] == geometry.to_metadata()  # recorded with the run
assert frames.shape == (6, 256, 256) and 1 <= mask.sum() <= 6
# the plot shows both integrations, and they agree to 1e-4 of the highest peak on every bin
assert np.array_equal(ax.lines[0].get_ydata(), mean_ours)
assert np.array_equal(ax.lines[1].get_ydata(), mean_pyfai)
assert np.allclose(tth, tth_pyfai)
assert np.abs(mean_ours - mean_pyfai).max() < 1e-4 * scale
assert np.array_equal(ax_diff.lines[0].get_ydata(), (mean_ours - mean_pyfai) / scale)
# the strongest peak is CeO2 (111) at 2θ = 2 asin(λ / 2d), within a bin
d111 = 5.411 / np.sqrt(3)
expected = np.degrees(2 * np.arcsin(wavelength_A / (2 * d111)))
assert abs(tth[np.argmax(mean_ours)] - expected) < (tth[1] - tth[0]) * 1.5
assert ax_diff.get_xlabel() == "2θ (deg)"
''',
    "04-scale.ipynb": '''
import numpy as np
from analysis.reduce import reduce_run
assert start["scheduler"] == "local" and start["workers"] == 2
assert start["raw_uid"] == raw_uid and summary.exit_status == "success"
assert np.array_equal(ax_img.images[0].get_array(), mu)
assert np.array_equal(ax_line.lines[0].get_ydata(), mu[mu.shape[0] // 2])
assert ax_img.get_xlabel() == "x (mm)" and "Dask" in ax_img.get_title()
# the Dask volume is bitwise the single-process one (the notebook stopped the server)
server.start()
with RemoteCatalog(server.url, KEY, raw_dir=DATA / "raw") as again:
    single = again.run(reduce_run(again, raw_uid).uid)
    assert np.array_equal(np.asarray(single["primary"]["reconstruction"].read()),
                          np.asarray(again.run(summary.uid)["primary"]["reconstruction"].read()))
    # what the slice holds is the attenuation the projections saw: the sum over the
    # slice equals the mean over angles of the summed -log(transmission) of that row
    rawrun = again.run(raw_uid)
    dark = np.asarray(rawrun["dark"]["det_image"].read(), dtype=float)[:, row].mean(0)
    flat = np.asarray(rawrun["flat"]["det_image"].read(), dtype=float)[:, row].mean(0)
    proj = np.asarray(rawrun["primary"]["det_image"].read(), dtype=float)[:, row]
    t = np.clip((proj - dark) / (flat - dark), 1e-6, None)
    seen = (-np.log(t)).sum(axis=1).mean()
    assert seen > 1.0, seen
    assert abs(slice_.sum() / seen - 1) < 0.05, (slice_.sum(), seen)
server.stop()
''',
}


def notebook_names() -> list[str]:
    return sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def test_every_notebook_is_checked() -> None:
    assert notebook_names() == sorted(CHECKS), "a notebook without checks, or checks " \
        "without a notebook"


@pytest.mark.parametrize("name", notebook_names())
def test_committed_notebook_has_no_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{name}: cells {dirty} have outputs; strip them before committing"


@pytest.mark.slow
@pytest.mark.parametrize("name", notebook_names())
def test_notebook_runs_and_its_figures_are_right(name: str, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for extra in NOTEBOOKS.glob("*.poni"):  # inputs a notebook reads beside itself
        shutil.copy(extra, tmp_path)
    nb.cells.append(nbformat.v4.new_code_cell(CHECKS[name]))
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
