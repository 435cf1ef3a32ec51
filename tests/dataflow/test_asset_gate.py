"""ophyd.sim's ``hw().img`` through a catalog-subscribed RunEngine: its ``.npy`` files go
to a temporary folder the catalog does not read. The run must end at the ``resource``
document with one clear error naming the file, and a stop document (``fail``, that
reason), whether the catalog is embedded or a server (``RemoteCatalog.subscribe``, with
or without a spool); with the folder made readable, the same plan stores the images as
ophyd.sim wrote them."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import bluesky.plans as bp
import numpy as np
import pytest
from bluesky import RunEngine
from ophyd.sim import hw

from dataflow.assets import AssetUriError
from dataflow.catalog import Catalog
from dataflow.journal import JOURNAL_DIR
from dataflow.remote import RemoteCatalog
from dataflow.server import ServerHandle
from dataflow.spool import spool_files

KEY = secrets.token_hex(16)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    with ServerHandle(tmp_path_factory.mktemp("gate") / "data", KEY) as handle:
        yield handle


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


@pytest.mark.parametrize("spooled", [False, True], ids=["writer", "spooling"])
def test_a_file_outside_the_servers_folders_fails_a_remote_run_at_its_resource(
        server: ServerHandle, tmp_path: Path, spooled: bool) -> None:
    """The remote twin of the first test: the server refused the file only when the run
    was written (HTTP 403 raised at the stop document, the run left without one on the
    server; through a spool, the whole run kept aside as rejected while the scan seemed
    to succeed)."""
    devices = hw()
    folder = devices.img.save_path
    spool = tmp_path / "spool"
    with RemoteCatalog(server.url, KEY, raw_dir=server.data_dir / "raw") as remote:
        RE = RunEngine({})
        remote.subscribe(RE, spool_dir=spool if spooled else None)
        starts: list[str] = []
        RE.subscribe(lambda name, doc: starts.append(doc["uid"]), "start")
        with pytest.raises(AssetUriError, match=r"resource document '[0-9a-f-]+' \(spec "
                           rf"NPY_SEQ\): the catalog at {server.url} cannot read the data it "
                           rf"announces: asset URI file://localhost{folder}/\w+: resolves "
                           rf"to {folder}/\w+, outside the catalog's data folders"):
            RE(bp.count([devices.det, devices.img], 2))
        stop = remote.client[starts[0]].metadata["stop"]
        assert stop["exit_status"] == "fail"
        assert f"Write it under {server.data_dir / 'raw'}." in stop["reason"]
        assert stop["num_events"].get("primary", 0) == 0
        if spooled:
            assert spool_files(spool, include_rejected=True) == []  # (nothing kept aside)
        (ok,) = RE(bp.count([devices.det], 1))
        assert remote.client[ok].metadata["stop"]["exit_status"] == "success"


def test_the_servers_asset_check_answers_its_policy(server: ServerHandle,
                                                    tmp_path: Path) -> None:
    """``POST /smeflow/v1/asset_check``: null inside ``raw/``, the policy's reason
    outside, 422 for a body without a URI."""
    import httpx

    from dataflow.server import ASSET_CHECK_PATH

    def check(body: object) -> httpx.Response:
        return httpx.post(server.url + ASSET_CHECK_PATH, json=body,
                          headers={"Authorization": f"Apikey {KEY}"}, timeout=30)

    inside = check({"uri": f"file://localhost{server.data_dir / 'raw'}/a.h5"})
    assert inside.status_code == 200 and inside.json() == {"refusal": None}
    outside = check({"uri": f"file://localhost{tmp_path}/a.h5"})
    assert outside.status_code == 200
    assert "outside the catalog's data folders" in outside.json()["refusal"]
    for bad in ({"uri": 5}, {}, ["x"]):
        answer = check(bad)
        assert answer.status_code == 422 and "uri" in answer.json()["detail"], bad


@pytest.mark.parametrize(("body", "refused"), [
    (b"<html><body>Sign in</body></html>", None),       # a proxy's login page
    (b'["not", "an", "object"]', None),
    (b'{"refusal": null}', None),
    (b'{"refusal": "outside raw/"}', "outside raw/"),
])
def test_an_asset_check_answer_not_from_the_server_refuses_nothing(
        body: bytes, refused: str | None, caplog: pytest.LogCaptureFixture) -> None:
    """Something else answering the asset check with 200 (a proxy's or a login page's
    HTML, JSON of another shape) is not the server's verdict: the check refuses nothing
    and says so in the log, and the server still checks the file when it gets the run.
    The HTML raised ``JSONDecodeError`` through the RunEngine and aborted the scan."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from dataflow.remote import ServerAssetPolicy

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Answer) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            policy = ServerAssetPolicy(f"http://127.0.0.1:{httpd.server_address[1]}", KEY, 5.0)
            assert policy.refusal("file:///data/raw/x.h5") == refused
        finally:
            httpd.shutdown()
    shaped = refused is not None or body.startswith(b"{")
    assert shaped or "not the check's JSON object" in caplog.text
