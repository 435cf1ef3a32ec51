"""Fly runs recorded before the detector's flyer announced its frames with
``stream_resource``/``stream_datum``: ``bp.fly([DetectorFlyer])`` then wrote a ``resource``
per file and a ``datum`` per frame. ``data/legacy_fly_docs.json`` holds the documents of
such a run as that code recorded them (3 frames of 16×32) and ``data/legacy_fly.h5`` its
frame file. A catalog holding such a run keeps reading its frames bit for bit, and
``legacy_flyer.LegacyFlyer`` (the older flyer, which the repair and provenance tests use)
writes the same documents."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import h5py
import numpy as np
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators

from dataflow.broker import open_broker
from dataflow.catalog import Catalog
from devices.beamline import Beamline
from devices.fly import FlyParameters
from fpga.designs.params import ChainParams

from .legacy_flyer import LegacyFlyer

DATA = Path(__file__).parent / "data"
RECORDED = json.loads((DATA / "legacy_fly_docs.json").read_text())
DOCS: list[tuple[str, dict[str, Any]]] = [(n, d) for n, d in RECORDED["documents"]]


def test_the_recorded_run_announces_its_frames_with_resource_and_datum() -> None:
    for name, doc in DOCS:
        schema_validators[DocumentNames(name)].validate(doc)
    assert [n for n, _ in DOCS] == ["start", "descriptor", "resource", "datum", "datum",
                                    "datum", "event_page", "stop"]


def test_a_catalog_holding_a_resource_and_datum_fly_run_reads_it_bit_for_bit(
        tmp_path: Path) -> None:
    """The recorded documents written into a catalog (its file where the resource now
    says): the Tiled client and databroker v1 and v2 give the file's frames."""
    with Catalog(tmp_path / "data") as catalog:
        path = catalog.raw_dir / Path(RECORDED["file"]).name
        shutil.copy(DATA / "legacy_fly.h5", path)
        writer = catalog.writer()
        for name, doc in DOCS:
            if name == "resource":
                doc = {**doc, "resource_path": str(path).lstrip("/")}
            writer(name, doc)
        uid = DOCS[0][1]["uid"]
        with h5py.File(path, "r") as f:
            on_disk = f["/entry/data/data"][()]
        assert on_disk.shape == (3, 16, 32)
        events = next(doc for name, doc in DOCS if name == "event_page")["data"]
        np.testing.assert_array_equal(on_disk.reshape(3, -1).sum(axis=1, dtype=np.int64),
                                      events["det_roi_sum"])
        tiled = catalog.run(uid)["primary"]["det_image"][:]
        db = open_broker(catalog)
        v2 = db.v2[uid].primary.read()
        v1 = db[uid].table(fill=True)
        for read in (tiled, v2["det_image"].values, np.stack(list(v1["det_image"]))):
            assert read.dtype == on_disk.dtype
            np.testing.assert_array_equal(read, on_disk)
        np.testing.assert_array_equal(v2["det_roi_sum"].values, events["det_roi_sum"])


def _plain(value: Any) -> Any:
    """JSON for numpy values, as the fixture was recorded."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def _shape(doc: Any) -> Any:
    """A document's structure: its keys, recursively, and the values that say how to
    read the frames (spec, dataset, the datum's point number)."""
    if isinstance(doc, dict):
        return {k: (v if k in {"spec", "resource_kwargs", "path_semantics", "root",
                               "external"} else _shape(v)) for k, v in doc.items()}
    return type(doc).__name__ if not isinstance(doc, list) else "list"


def test_the_legacy_flyer_writes_what_the_older_code_wrote(tmp_path: Path) -> None:
    docs: list[tuple[str, dict[str, Any]]] = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    bl = Beamline.create(tmp_path, params=ChainParams(16, 32, 16), backend="compiled",
                         time_scale=0.001)
    try:
        bl.shutter.set("open").wait(5)
        RE(bp.fly([LegacyFlyer(bl.det, FlyParameters(frames=3, exposure=0.01))]))
    finally:
        bl.close()
    assert [n for n, _ in docs] == [n for n, _ in DOCS]
    for (name, doc), (_, recorded) in zip(docs, DOCS, strict=True):
        if name in {"descriptor", "resource", "datum", "event_page"}:
            assert _shape(json.loads(json.dumps(doc, default=_plain))) == _shape(recorded), name
    datums = [doc["datum_kwargs"] for name, doc in docs if name == "datum"]
    assert datums == [{"point_number": i} for i in range(3)]
