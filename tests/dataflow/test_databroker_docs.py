"""databroker's and Tiled's documented snippets, adapted only in the catalog's name, on
smeflow scans of every kind: a count, a scan, a fly scan, a run without events and a run
whose process was killed mid-scan.

The snippets: databroker v1 (``db[-1]``, ``header.table()``, ``header.data(field)``,
``header.config_data(device)``, ``header.stream_names``, ``db.get_table``, ``db(...)``),
databroker v2's tutorials ("Get Data from a Run", "Get Metadata": ``catalog[scan_id]``,
``list(run)``, ``run.primary.read()``, ``run.metadata["start"]``, ``run.documents()``,
``search(TimeRange(...))``, ``search(Key(...) == ...)``) and Tiled's "10 minutes to
Tiled" (``keys()[...]``, ``values()``, ``items()``). The reference is what the RunEngine
emitted: every answer is checked against its documents.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plans as bp
from databroker.queries import Key, TimeRange
from event_model import unpack_event_page

from dataflow.broker import open_broker
from dataflow.catalog import Catalog
from devices.beamline import Beamline
from devices.fly_params import FlyParameters
from devices.flyer import DetectorFlyer
from fpga.designs.params import ChainParams

sys.path.insert(0, str(Path(__file__).parent))
from test_kill import killed_scan  # (the killed run, as test_kill makes it)


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The data folder's Broker and, by kind, each run's documents as emitted."""
    data = tmp_path_factory.mktemp("data")
    docs: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    with Catalog(data) as catalog:
        RE = RunEngine({})
        catalog.subscribe(RE)
        RE.subscribe(lambda name, doc: docs.setdefault(
            doc["uid"] if name == "start" else list(docs)[-1], []).append((name, doc)))
        bl = Beamline.create(catalog.raw_dir, params=ChainParams(16, 32, 16),
                             backend="interp", time_scale=0.001)
        try:
            bl.shutter.set("open").wait(5)
            kinds = {"count": RE(bp.count([bl.det], 3))[0],
                     "scan": RE(bp.scan([bl.det], bl.sample_x, -1, 1, 3))[0],
                     "fly": RE(bp.fly([DetectorFlyer(bl.det, FlyParameters(frames=3))]))[0],
                     "empty": RE(bp.count([bl.det], 0))[0]}
        finally:
            bl.close()
    killed_scan(data, 0, 3)
    db = open_broker(data)
    kinds["killed"] = db[-1].start["uid"]
    yield {"db": db, "uids": kinds, "docs": {k: docs.get(u, []) for k, u in kinds.items()}}
    db.v2.context.close()


def emitted(scans: dict[str, Any], kind: str, name: str) -> list[dict[str, Any]]:
    """The documents ``name`` of the run ``kind`` (events: a fly's event pages unpacked)."""
    found = [doc for n, doc in scans["docs"][kind] if n == name]
    if name == "event":
        for n, page in scans["docs"][kind]:
            if n == "event_page":
                found.extend(unpack_event_page(page))
    return found


@pytest.mark.parametrize("kind", ["count", "scan", "fly"])
def test_v1_snippets_on_runs_with_events(scans: dict[str, Any], kind: str) -> None:
    db = scans["db"]
    header = db[scans["uids"][kind]]
    (descriptor,) = emitted(scans, kind, "descriptor")
    events = emitted(scans, kind, "event")
    assert header.stream_names == ["primary"]
    assert header.stop["exit_status"] == "success"
    table = header.table()
    internal = {k for k, v in descriptor["data_keys"].items() if not v.get("external")}
    assert set(table.columns) == internal | {"time"} and len(table) == len(events)
    assert list(table.index) == list(range(1, len(events) + 1))
    np.testing.assert_array_equal(table["det_roi_sum"], [e["data"]["det_roi_sum"] for e in events])
    assert list(header.data("det_roi_sum")) == [e["data"]["det_roi_sum"] for e in events]
    frames = list(header.data("det_image"))
    assert len(frames) == len(events) and frames[0].shape == (16, 32)
    assert set(header.table(fill=True).columns) == set(table.columns) | {"det_image"}
    for device, config in descriptor["configuration"].items():  # (a fly's: its flyer's)
        assert header.config_data(device)["primary"] == [config["data"]]
    assert db.get_table(header).equals(table)
    assert scans["uids"][kind] in {h.start["uid"] for h in db(plan_name=header.start["plan_name"])}


def test_v1_snippets_on_runs_without_events(scans: dict[str, Any]) -> None:
    db = scans["db"]
    empty, killed = db[scans["uids"]["empty"]], db[scans["uids"]["killed"]]
    assert empty.stream_names == [] and empty.table().shape == (0, 0)
    assert list(empty.data("det_roi_sum")) == []
    assert not killed.stop  # the process was killed: no stop document
    assert len(killed.table()) == 0 and "det_roi_sum" in killed.table().columns
    assert list(killed.data("det_roi_sum")) == []
    for found in db(plan_name="count"):
        assert found.table().shape[0] == len(found.table(fill=True))


@pytest.mark.parametrize("kind", ["count", "scan", "fly", "empty", "killed"])
def test_v2_tutorial_snippets(scans: dict[str, Any], kind: str) -> None:
    catalog = scans["db"].v2
    uid = scans["uids"][kind]
    start = scans["db"][uid].start
    run = catalog[start["scan_id"]]
    assert run.metadata["start"]["uid"] == uid == catalog[uid].metadata["start"]["uid"]
    events = emitted(scans, kind, "event")
    if kind == "empty":
        assert list(run) == []
    else:
        assert list(run) == ["primary"]
        ds = run.primary.read()
        if events:
            assert ds["det_image"].shape == (len(events), 16, 32)
            assert ds["det_roi_sum"].values.tolist() == [e["data"]["det_roi_sum"]
                                                         for e in events]
    names = [name for name, _ in run.documents()]
    assert names[0] == "start" and names.count("event") == len(events)
    assert (names[-1] == "stop") is (kind != "killed")
    assert uid in catalog.search(TimeRange(since=start["time"] - 1))
    assert uid not in catalog.search(TimeRange(until=start["time"] - 1))
    assert uid in catalog.search(Key("plan_name") == start["plan_name"])


def test_tiled_listing_snippets(scans: dict[str, Any]) -> None:
    catalog = scans["db"].v2
    written = list(scans["uids"].values())  # in the order they were taken
    assert list(catalog) == written
    assert catalog.keys()[0] == written[0] and catalog.keys()[-1] == written[-1]
    assert catalog.keys()[:2] == written[:2]
    assert catalog.values()[0].metadata["start"]["uid"] == written[0]
    assert [key for key, _ in catalog.items()] == written
    assert catalog[-1].metadata["start"]["uid"] == written[-1]
