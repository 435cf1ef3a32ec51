"""databroker (2.x) on smeflow's catalog, as a beamline notebook uses it: the v1 ``Broker``
(``db[-1].table()``, ``db[uid]``, ``db(plan_name=...)``, filled images, queries) and v2
runs (``read()``, ``metadata``, ``documents()``), embedded and over HTTP through a Tiled
profile. Every value is checked against the documents the RunEngine emitted and the HDF5
files read with h5py."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import plans as bp

from dataflow.broker import open_broker, profile_text, write_profile
from dataflow.catalog import Catalog, CatalogError
from dataflow.cli import main as catalog_main
from dataflow.remote import RemoteCatalog
from dataflow.server import ServerHandle
from devices.beamline import Beamline
from fpga.designs.params import ChainParams

KEY = secrets.token_hex(16)
P = ChainParams(16, 32, 16)


class Docs:
    """Every document of every run the RunEngine emitted, by run uid."""

    def __init__(self) -> None:
        self.runs: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._current: str | None = None

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self._current = doc["uid"]
            self.runs[doc["uid"]] = []
        assert self._current is not None
        self.runs[self._current].append((name, doc))

    def events(self, uid: str, stream: str = "primary") -> list[dict[str, Any]]:
        descriptors = {d["uid"] for n, d in self.runs[uid]
                       if n == "descriptor" and d["name"] == stream}
        return [d for n, d in self.runs[uid] if n == "event" and d["descriptor"] in descriptors]

    def one(self, uid: str, name: str) -> dict[str, Any]:
        """The run's one document ``name``, as JSON has it (tuples become lists)."""
        (doc,) = [d for n, d in self.runs[uid] if n == name]
        return plain(doc)


def plain(doc: Any) -> Any:
    """A document as it comes back from the catalog: through JSON."""
    return json.loads(json.dumps(dict(doc)))


def acquire(RE: RunEngine, beamline: Beamline) -> tuple[str, str, float, float]:
    """A count and a scan; returns their uids and a time between them and after them."""
    RE(bps.mv(beamline.shutter, "open"))
    (count_uid,) = RE(bp.count([beamline.det], 2), sample="Ce-O2 (batch 7)")
    time.sleep(0.05)
    between = time.time()
    time.sleep(0.05)
    (scan_uid,) = RE(bp.scan([beamline.det], beamline.sample_x, -1.0, 1.0, 3))
    return count_uid, scan_uid, between, time.time() + 1


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Catalog, Docs, Any]]:
    catalog = Catalog(tmp_path_factory.mktemp("broker") / "data")
    RE = RunEngine({})
    catalog.subscribe(RE)
    docs = Docs()
    RE.subscribe(docs)
    beamline = Beamline.create(catalog.raw_dir, params=P, backend="interp", time_scale=0.001)
    try:
        runs = acquire(RE, beamline)
    finally:
        beamline.close()
    yield catalog, docs, runs
    catalog.close()


def file_frames(start_docs: list[tuple[str, dict[str, Any]]]) -> np.ndarray:
    """The frames of a run, read with h5py from the files its stream_resources name."""
    frames = []
    for name, doc in start_docs:
        if name == "stream_resource":
            path = doc["uri"].removeprefix("file://localhost")
            with h5py.File(path, "r") as f:
                frames.append(np.asarray(f[doc["parameters"]["dataset"]]))
    return np.concatenate(frames)


def check_v1(db: Any, docs: Docs, runs: tuple[str, str, float, float]) -> None:
    count_uid, scan_uid, between, after = runs
    header = db[-1]
    assert plain(header.start) == docs.one(scan_uid, "start")
    assert header.stop["exit_status"] == "success"
    table = header.table()
    events = docs.events(scan_uid)
    assert list(table.index) == [1, 2, 3]
    np.testing.assert_allclose(table["sample_x"], [e["data"]["sample_x"] for e in events])
    np.testing.assert_array_equal(table["det_roi_sum"], [e["data"]["det_roi_sum"]
                                                         for e in events])
    assert "det_image" not in table.columns  # external data only when filled
    filled = header.table(fill=True)
    images = np.stack(list(filled["det_image"]))
    np.testing.assert_array_equal(images, file_frames(docs.runs[scan_uid]))
    assert images.shape == (3, *P.out_shape(False)) and images.any()
    assert db[count_uid].start["sample"] == "Ce-O2 (batch 7)"
    assert db[scan_uid[:8]].start["uid"] == scan_uid
    assert [h.start["uid"] for h in db(plan_name="scan")] == [scan_uid]
    assert [h.start["uid"] for h in db(since=between, until=after)] == [scan_uid]
    assert [h.start["uid"] for h in db("Ce-O2")] == [count_uid]  # FullText, a hyphen
    names = [name for name, _ in db.get_documents(db[count_uid])]
    assert names[0] == "start" and names[-1] == "stop" and names.count("event") == 2


def check_v2(catalog: Any, docs: Docs, runs: tuple[str, str, float, float]) -> None:
    from databroker.queries import Contains, In, Key, PartialUID, ScanID, TimeRange

    count_uid, scan_uid, between, after = runs
    run = catalog[scan_uid]
    assert plain(run.metadata["start"]) == docs.one(scan_uid, "start")
    assert run.metadata["stop"]["uid"] == docs.one(scan_uid, "stop")["uid"]
    data = run.primary.read()
    np.testing.assert_array_equal(data["det_frame_number"],
                                  [e["data"]["det_frame_number"] for e in docs.events(scan_uid)])
    np.testing.assert_array_equal(data["det_image"].values, file_frames(docs.runs[scan_uid]))
    # the run as documents, the RunEngine's own
    got = list(run.documents())
    assert got[0][0] == "start" and plain(got[0][1]) == docs.one(scan_uid, "start")
    assert got[-1][0] == "stop" and plain(got[-1][1]) == docs.one(scan_uid, "stop")
    (descriptor,) = [d for n, d in got if n == "descriptor"]
    emitted = docs.one(scan_uid, "descriptor")["data_keys"]
    exported = plain(descriptor)["data_keys"]  # the writer adds fields (dtype_numpy)
    assert exported.keys() == emitted.keys()
    assert all(exported[k] | emitted[k] == exported[k] for k in emitted)
    events = sorted((d for n, d in got if n == "event"), key=lambda d: d["seq_num"])
    assert [plain(e["data"]) for e in events] == [plain(e["data"])
                                                  for e in docs.events(scan_uid)]
    (resource,) = [d for n, d in got if n == "stream_resource"]
    assert resource["uri"] == docs.one(scan_uid, "stream_resource")["uri"]
    # databroker.queries
    scan_id = docs.one(scan_uid, "start")["scan_id"]
    found = {
        "TimeRange": catalog.search(TimeRange(since=between, until=after)),
        "ScanID": catalog.search(ScanID(scan_id)),
        "PartialUID": catalog.search(PartialUID(scan_uid[:7])),
        "Key": catalog.search(Key("plan_name") == "scan"),
        "Contains": catalog.search(Contains("motors", "sample_x")),
        "In": catalog.search(In("plan_name", ["scan", "rel_scan"])),
    }
    for name, node in found.items():
        assert list(node) == [scan_uid], name
    assert list(catalog.search(TimeRange(until=between))) == [count_uid]


def test_v1_broker_over_the_embedded_catalog(embedded: tuple[Catalog, Docs, Any]) -> None:
    catalog, docs, runs = embedded
    check_v1(open_broker(catalog), docs, runs)


def test_v1_broker_opens_a_catalog_folder(embedded: tuple[Catalog, Docs, Any]) -> None:
    catalog, _, runs = embedded
    db = open_broker(catalog.root)
    assert db[-1].start["uid"] == runs[1]
    db.v2.context.close()


def test_v2_runs_over_the_embedded_catalog(embedded: tuple[Catalog, Docs, Any]) -> None:
    catalog, docs, runs = embedded
    check_v2(open_broker(catalog).v2, docs, runs)


def test_v2_dict_search_means_start_document_keys(embedded: tuple[Catalog, Docs, Any]
                                                  ) -> None:
    """databroker's tutorial form ``db.v2.search({"plan_name": "scan"})`` (user report U4):
    the dict's keys are the start document's, ANDed, as databroker v1's ``db(...)`` and
    ``Key(...)`` read them; bluesky-tiled-plugins 2.0.12 alone finds nothing for it."""
    import warnings

    from databroker.queries import Key, TimeRange

    catalog, _, (count_uid, scan_uid, between, after) = embedded
    db = open_broker(catalog)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation detour either
        assert list(db.v2.search({"plan_name": "scan"})) == [scan_uid]
        assert list(db.v2.search({"plan_name": "count", "sample": "Ce-O2 (batch 7)"})) \
            == [count_uid]
        assert list(db.v2.search({"plan_name": "count", "sample": "another"})) == []
        assert list(db.v2.search({"start.plan_name": "scan"})) == [scan_uid]
        assert list(db.v2.search({})) == [count_uid, scan_uid]
        assert list(db.v2.search(TimeRange(since=between, until=after))
                    .search({"num_points": 3})) == [scan_uid]
        assert list(db.v2.v2.search({"plan_name": "scan"})) == [scan_uid]
    assert list(db.v2.search(Key("plan_name") == "scan")) == [scan_uid]
    with pytest.raises(ValueError, match=r"'num_points': \{'\$gt': 2\} is no start-document"):
        db.v2.search({"num_points": {"$gt": 2}})
    # what docs/catalog.md says of the plugin's own catalog: a dict finds nothing there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert list(catalog.client.search({"plan_name": "scan"})) == []


def test_asking_for_v2_runs_leaves_every_other_client_alone(
        embedded: tuple[Catalog, Docs, Any]) -> None:
    """``catalog.v2`` (databroker's v1 Header uses it) gives v2 runs and nothing else
    changes: tiled 0.2's shallow copy of the structure clients used to turn every run of
    every client in the process into a v2 run (``dataflow.tiled_app``)."""
    from bluesky_tiled_plugins.clients.bluesky_run import BlueskyRunV2, BlueskyRunV3

    catalog, _, runs = embedded
    assert isinstance(catalog.client.v2[runs[1]], BlueskyRunV2)
    open_broker(catalog)[-1].table()
    run = catalog.client[runs[1]]
    assert isinstance(run, BlueskyRunV3)
    assert run["primary"]["det_image"][0, :2, :2].shape == (2, 2)
    with Catalog(catalog.root) as again:
        assert isinstance(again.client[runs[1]], BlueskyRunV3)


def test_databroker_reaches_a_server_through_a_profile(tmp_path: Path) -> None:
    """A served catalog: runs written over HTTP, then a fresh Python session finds the
    server by profile name (``Broker.named``, ``databroker.catalog``) with the key in
    ``TILED_API_KEY``, as databroker's documentation has it."""
    with ServerHandle(tmp_path / "data", KEY) as server:
        with RemoteCatalog(server.url, KEY) as remote:
            RE = RunEngine({})
            remote.subscribe(RE)
            docs = Docs()
            RE.subscribe(docs)
            beamline = Beamline.create(server.data_dir / "raw", params=P, backend="interp",
                                       time_scale=0.001)
            try:
                runs = acquire(RE, beamline)
            finally:
                beamline.close()
            check_v1(open_broker(remote), docs, runs)
            check_v2(open_broker(remote).v2, docs, runs)
        profiles = tmp_path / "profiles"
        assert catalog_main(["profile", "beamline", "--url", server.url,
                             "--dir", str(profiles)]) == 0
        script = textwrap.dedent(f"""
            import json
            import databroker
            from databroker import Broker
            db = Broker.named("beamline")
            header = db[-1]
            frames = databroker.catalog["beamline"][{runs[1]!r}]["primary"]["det_image"]
            last = db.v2[{runs[1]!r}]["primary"]["det_image"]
            run = databroker.catalog["beamline"].v2[{runs[1]!r}]
            print(json.dumps({{
                "uid": header.start["uid"],
                "roi": [int(v) for v in header.table()["det_roi_sum"]],
                "names": [name for name, _ in run.documents()],
                "frames": run.primary.read()["det_image"].values.tolist(),
                "picked": frames[[0, 2]].tolist(),
                "last": last[[-1]].tolist(),
                "newest": [r.metadata["start"]["scan_id"]
                           for r in db.v2.sort(("scan_id", -1)).values()],
            }}))
        """)
        env = {**os.environ, "TILED_PROFILES": str(profiles), "TILED_API_KEY": KEY}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        scan_uid = runs[1]
        assert answer["uid"] == scan_uid
        assert answer["roi"] == [e["data"]["det_roi_sum"] for e in docs.events(scan_uid)]
        assert answer["names"][0] == "start" and answer["names"][-1] == "stop"
        assert answer["names"].count("event") == 3
        np.testing.assert_array_equal(answer["frames"], file_frames(docs.runs[scan_uid]))
        # the profile's arrays index as numpy: frames 0 and 2, the last frame with its axis
        # (Tiled's own client: row 2 of frame 0, and the last frame without it)
        np.testing.assert_array_equal(answer["picked"], file_frames(docs.runs[scan_uid])[[0, 2]])
        np.testing.assert_array_equal(answer["last"], file_frames(docs.runs[scan_uid])[[-1]])
        scan_ids = [d["scan_id"] for run in docs.runs.values() for n, d in run if n == "start"]
        assert answer["newest"] == sorted(scan_ids, reverse=True)
        # without the key the server answers nothing
        env.pop("TILED_API_KEY")
        refused = subprocess.run([sys.executable, "-c", script], env=env,
                                 capture_output=True, text=True, timeout=300,
                                 stdin=subprocess.DEVNULL)
        assert refused.returncode != 0


def test_the_profile_holds_the_address_and_never_the_key(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    import yaml

    path = write_profile("bl-1.x", "http://127.0.0.1:8123/", tmp_path)
    assert yaml.safe_load(path.read_text()) == {
        "bl-1.x": {"uri": "http://127.0.0.1:8123/api/v1/metadata/raw",
                   "structure_clients": {
                       "CatalogOfBlueskyRuns": "dataflow.profile_client:Runs"}}}
    assert write_profile("bl-1.x", "http://127.0.0.1:8123", tmp_path) == path  # same: fine
    with pytest.raises(CatalogError, match="exists with other contents; pass --force"):
        write_profile("bl-1.x", "http://127.0.0.1:9000", tmp_path)
    write_profile("bl-1.x", "http://127.0.0.1:9000", tmp_path, overwrite=True)
    assert "9000" in path.read_text()
    for name in ("", "../x", "a/b", ".hidden", "x" * 65, "a b"):
        with pytest.raises(CatalogError, match="profile name"):
            profile_text(name, "http://h:1")
    for url in ("ftp://h", "h:8000", "http://u:pw@h:1", "http://h:1/?a=1", "http://",
                "http://h:1/elsewhere"):
        with pytest.raises(CatalogError, match="--url"):
            profile_text("x", url)
    # the command line: one line on stderr and exit 1 for a bad name; never a traceback
    assert catalog_main(["profile", "../evil", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "profile name '../evil'" in err
    assert not (tmp_path.parent / "evil.yml").exists()


def test_a_damaged_profile_in_the_way_is_named_and_left(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """A profile of that name cut short, not UTF-8, or a folder: one line naming it (a
    non-UTF-8 one gave the codec's message alone, naming no file), exit 1, left as it
    was; --force replaces a damaged file."""
    whole = profile_text("bl", "http://127.0.0.1:8000").encode()
    path = tmp_path / "bl.yml"
    for damaged in (whole[:len(whole) // 2], b"\xff\xfe" + whole[2:], b""):
        path.write_bytes(damaged)
        assert catalog_main(["profile", "bl", "--dir", str(tmp_path)]) == 1
        assert capsys.readouterr().err == (
            f"smeflow catalog: error: profile {path} exists with other contents; pass "
            "--force to replace it\n")
        assert path.read_bytes() == damaged
    assert catalog_main(["profile", "bl", "--dir", str(tmp_path), "--force"]) == 0
    assert path.read_bytes() == whole
    path.unlink()
    path.mkdir()
    assert catalog_main(["profile", "bl", "--dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (f"smeflow catalog: error: profile {path} cannot be "
                                       "read (Is a directory); move it aside\n")


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:0",
                                 "http://127.0.0.1:", "http://127.0.0.1:eighty"])
def test_a_profile_url_with_an_impossible_port_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str) -> None:
    """User report U12: the port a profile names must be one ``catalog serve --port`` takes
    (1…65535); the typo is refused when the profile is written, not when databroker
    connects, and nothing is written."""
    with pytest.raises(CatalogError, match=r"expected a port number in 1…65535"):
        write_profile("beamline", url, tmp_path)
    assert catalog_main(["profile", "beamline", "--url", url, "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "port number in 1…65535" in err and url in err
    assert not any(tmp_path.iterdir())
    assert write_profile("beamline", "http://127.0.0.1:65535", tmp_path).exists()
