"""``dataflow.synthetic_run``: a run written without a beamline is stored as a detector's
run is (its frames read back from the catalog, one event per frame with its index), and
a tomography run with a projection count that does not match its angles is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataflow.catalog import Catalog
from dataflow.synthetic_run import write_frames_run, write_tomo_run


def test_each_stack_is_a_stream_of_external_frames_with_an_index_reading(
        tmp_path: Path) -> None:
    stacks = {"primary": np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5),
              "dark": np.full((2, 4, 5), 7, np.uint16)}
    with Catalog(tmp_path / "data") as catalog:
        uid = write_frames_run(catalog, {"plan_name": "p", "extra": 1}, stacks,
                               source="here", file_prefix="s_", data_key="cam_image",
                               reading="x", reading_dtype="number")
        run = catalog.run(uid)
        start = run.metadata["start"]
        assert (start["plan_name"], start["extra"]) == ("p", 1)
        assert run.metadata["stop"]["exit_status"] == "success"
        assert sorted(run) == ["dark", "primary"]
        for stream, frames in stacks.items():
            assert np.array_equal(run[stream]["cam_image"][:], frames)
            assert list(run[stream]["x"].read()) == [float(i) for i in range(len(frames))]
            key = run[stream].metadata["data_keys"]["x"]
            assert (key["source"], key["dtype"]) == ("here", "number")
        assert sorted(p.name for p in catalog.raw_dir.glob("*.h5")) == [
            f"s_dark_{uid[:8]}.h5", f"s_primary_{uid[:8]}.h5"]


def test_a_tomo_run_has_one_projection_per_angle(tmp_path: Path) -> None:
    frames = np.zeros((3, 2, 2), np.uint16)
    with Catalog(tmp_path / "data") as catalog:
        uid = write_tomo_run(catalog, frames[:1], frames[:1], frames, [0.0, 60.0, 120.0],
                             source="here")
        start = catalog.run(uid).metadata["start"]
        assert (start["plan_name"], start["detector"], start["angles"],
                start["num_projections"]) == ("tomo_scan", "det", [0.0, 60.0, 120.0], 3)
        assert list(catalog.run(uid)["primary"]["frame"].read()) == [0, 1, 2]
        with pytest.raises(ValueError, match="3 projections for 2 angles"):
            write_tomo_run(catalog, frames, frames, frames, [0.0, 90.0], source="here")
