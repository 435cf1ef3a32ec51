"""ophyd.sim's ``hw().img`` through a catalog-subscribed RunEngine: its ``.npy`` files go
to a temporary folder the catalog does not read. The run must end at the ``resource``
document with one clear error naming the file, and a stop document (``fail``, that
reason); with the folder made readable, the same plan stores the images as ophyd.sim
wrote them."""

from __future__ import annotations

from pathlib import Path

import bluesky.plans as bp
import numpy as np
import pytest
from bluesky import RunEngine
from ophyd.sim import hw

from dataflow.assets import AssetUriError
from dataflow.catalog import Catalog
from dataflow.journal import JOURNAL_DIR


def test_a_file_outside_the_catalog_fails_the_run_at_its_resource(tmp_path: Path) -> None:
    devices = hw()
    folder = devices.img.save_path  # (ophyd.sim's default: a new temporary folder)
    with Catalog(tmp_path / "data") as catalog:
        RE = RunEngine({})
        catalog.subscribe(RE)
        with pytest.raises(AssetUriError, match=r"resource document '[0-9a-f-]+' \(spec "
                           r"NPY_SEQ\): the catalog .* cannot read the data it announces: "
                           rf"asset URI file://localhost{folder}/\w+: resolves to "
                           rf"{folder}/\w+, outside the catalog's data folders"):
            RE(bp.count([devices.det, devices.img], 2))
        (uid,) = list(catalog.client)
        run = catalog.client[uid]
        stop = run.metadata["stop"]
        assert stop["exit_status"] == "fail"
        assert f"readable_storage=[{folder!r}]" in stop["reason"]
        assert str(catalog.raw_dir) in stop["reason"]
        assert stop["num_events"].get("primary", 0) == 0
        assert not list((catalog.root / JOURNAL_DIR).iterdir())  # (the run is whole)
        # the catalog goes on: the next run is written
        (ok,) = RE(bp.count([devices.det], 1))
        assert catalog.client[ok].metadata["stop"]["exit_status"] == "success"


def test_a_readable_folder_stores_ophyd_sims_images(tmp_path: Path) -> None:
    devices = hw()
    folder = Path(devices.img.save_path)
    with Catalog(tmp_path / "data", readable_storage=[folder]) as catalog:
        RE = RunEngine({})
        catalog.subscribe(RE)
        (uid,) = RE(bp.count([devices.det, devices.img], 3))
        run = catalog.client[uid]
        assert run.metadata["stop"]["exit_status"] == "success"
        stored = np.asarray(run["primary"]["img"][:])
    written = sorted(folder.glob("*.npy"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    assert len(written) == 3
    np.testing.assert_array_equal(stored, np.stack([np.load(p) for p in written]))
