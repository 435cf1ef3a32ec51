"""Hostile requests against a real ``smeflow catalog serve`` process: each is one 4xx with
a message naming what was wrong, the server keeps its memory and keeps serving, and
nothing stored changes. Each case says what it was before (tiled 0.2.20).

Tiled's own answers to the same requests, where they were sound, are kept (and checked
here so a Tiled upgrade that changes them is noticed): ``page[limit]`` over 300 (422),
malformed ``slice``/``block`` (422), formats not offered (406), raw asset downloads
(off: 403)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from databroker import Broker
from tiled.client import from_uri
from tiled.queries import Eq

from dataflow.catalog import Catalog
from dataflow.synthetic_run import write_frames_run
from tests.dataflow.test_server_damaged import KEY, Served

FRAMES = np.arange(5 * 4 * 32, dtype=np.uint16).reshape(5, 4, 32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Served, str, dict[str, str]]]:
    """A server on a catalog of two runs of FRAMES: it, the first run's uid, and the
    digests of the catalog's databases when it started."""
    top = tmp_path_factory.mktemp("hostile")
    folder = top / "data"
    with Catalog(folder) as catalog:
        uids = [write_frames_run(catalog, {"plan_name": "count"}, {"primary": FRAMES},
                                 source="test") for _ in range(2)]
    served = Served(folder, top / "server.log")
    try:
        yield served, uids[0], _digests(folder)
    finally:
        served.stop()


def _get(server: Served, target: str) -> httpx.Response:
    return httpx.get(server.url + target, headers={"Authorization": f"Apikey {KEY}"},
                     timeout=60)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("*.db"))}


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


IMAGE = "raw/{uid}/primary/det_image"
TABLE = "raw/{uid}/primary/internal"
REFUSED = {  # path and query -> (status, start of the detail); what it was before
    "slice step 0 (was 500)": ("/api/v1/array/full/" + IMAGE + "?slice=::0",
                               400, "slice '::0': a step of 0"),
    "slice step 0 in a later axis (was 500)": (
        "/api/v1/array/full/" + IMAGE + "?slice=0,1:3:0", 400, "slice '0,1:3:0': a step of 0"),
    "page offset past 64 bits (was 500)": ("/api/v1/search/raw?page[offset]=" + "9" * 20,
                                           400, "page[offset] 99999999999999999999: larger"),
    "sort by a 2000-part key (was 500)": ("/api/v1/search/raw?sort=" + "a." * 2000 + "b",
                                          400, "sort key 'a.a.a."),
    "unknown query type (was 200: every run)": (
        "/api/v1/search/raw?filter[eqq][condition][key]=start.plan_name"
        "&filter[eqq][condition][value]=%22scan%22", 400,
        "filter[eqq][condition][key]: not a query Tiled knows"),
    "unknown field (was 500)": (
        "/api/v1/search/raw?filter[eq][condition][kee]=start.plan_name"
        "&filter[eq][condition][value]=%22scan%22", 400,
        "filter[eq][condition][kee]: the eq query has no field 'kee'"),
    "a query missing a field (was 500)": (
        "/api/v1/search/raw?filter[eq][condition][key]=start.plan_name", 400,
        "filter[eq]: missing 1 required keyword-only argument: 'value'"),
    "value not JSON (was 500)": (
        "/api/v1/search/raw?filter[eq][condition][key]=start.plan_name"
        "&filter[eq][condition][value]=%7Bbad", 400,
        "filter[eq][condition][value] '{bad': not JSON (Expecting property name"),
    "value nested past the recursion limit (was 500)": (
        "/api/v1/search/raw?filter[eq][condition][key]=a&filter[eq][condition][value]="
        + "%5B" * 5000 + "%5D" * 5000, 400, "filter[eq]: a value nested too deep"),
    "comparison operator unknown (was 422, a pydantic list)": (
        "/api/v1/search/raw?filter[comparison][condition][operator]=nope"
        "&filter[comparison][condition][key]=a&filter[comparison][condition][value]=1",
        400, "filter[comparison]: 'nope' is not a valid Operator"),
    "zarr block far past the end (was 200, zeros, +450 MB)": (
        "/zarr/v2/" + IMAGE + "/1000000.0.0", 403, "this server does not serve zarr"),
    "zarr v3 (was 500: 46 TiB asked)": ("/zarr/v3/" + IMAGE + "/c/99999999999/0/0",
                                        403, "this server does not serve zarr"),
    # Tiled's own answers, kept
    "page limit huge": ("/api/v1/search/raw?page[limit]=1000000000000", 422, ""),
    "slice not integers": ("/api/v1/array/full/" + IMAGE + "?slice=a:b", 422, ""),
    "block past the chunks": ("/api/v1/array/block/" + IMAGE + "?block=9,9,9", 422,
                              "Block parameter does not match"),
    "expected_shape of a block wrong": (
        "/api/v1/array/block/" + IMAGE + "?block=0,0,0&expected_shape=1000000000,1,1",
        422, "The expected shape (1000000000, 1, 1) does not match"),
    "format not offered": ("/api/v1/array/full/" + IMAGE + "?format=application/x-nope",
                           406, "None of the media types requested"),
    "raw asset bytes": ("/api/v1/asset/bytes/" + IMAGE + "?id=1&relative_path=../../etc",
                        403, "This Tiled server is configured not to allow"),
    "a column the table lacks (was 500: SELECT  FROM)": (
        "/api/v1/table/full/" + TABLE + "?column=nope", 400, "No such field nope."),
    "a known and an unknown column (was 200: the known one)": (
        "/api/v1/table/full/" + TABLE + "?column=seq_num&column=nope", 400,
        "No such field nope."),
    "a partition past the end (was 200: an empty table)": (
        "/api/v1/table/partition/" + TABLE + "?partition=100000000000", 400,
        "Partition out of range"),
    "a partition -1 (was 200: an empty table)": (
        "/api/v1/table/partition/" + TABLE + "?partition=-1", 400, "Partition out of range"),
    "frame index past the end": ("/api/v1/array/full/" + IMAGE + "?slice=7", 400,
                                 "index 7 out of range: the stream has 5 frames"),
    "encoded ../ in a key": ("/api/v1/metadata/raw/%2e%2e/%2e%2e/etc/passwd", 404,
                             "No such entry"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_hostile_request_is_one_clear_4xx(server: tuple[Served, str, dict[str, str]], case: str) -> None:
    served, uid, _ = server
    target, status, detail = REFUSED[case]
    answer = _get(served, target.format(uid=uid))
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"] == "application/json"
    assert str(answer.json()["detail"]).startswith(detail), answer.json()


def test_an_array_as_html_is_its_image_or_a_406(server: tuple[Served, str, dict[str, str]]
                                               ) -> None:
    """``?format=text/html`` (offered for every array) was an HTTP 500 for any array:
    Tiled's exporter called the PNG and CSV exporters without the media type."""
    import base64
    import io
    import re

    from PIL import Image

    served, uid, _ = server
    target = "/api/v1/array/full/" + IMAGE.format(uid=uid) + "?format=text/html"
    answer = _get(served, target + "&slice=3")
    assert answer.status_code == 200, answer.text[:300]
    found = re.fullmatch(r'<html><body><img src="data:image/png;base64,([^"]+)"/></body>'
                         r'</html>', answer.text)
    assert found is not None, answer.text[:300]
    png = _get(served, target.replace("text/html", "image/png") + "&slice=3")
    assert png.status_code == 200 and base64.b64decode(found[1]) == png.content
    image = np.asarray(Image.open(io.BytesIO(png.content)))  # (Tiled's, scaled to 8 bits)
    assert image.shape == FRAMES[3].shape and (np.diff(image.ravel()) >= 0).all()
    answer = _get(served, target)  # 3-D: neither an image nor a table
    assert answer.status_code == 406
    assert answer.json()["detail"].startswith("The shape of this data (5, 4, 32) is "
                                              "incompatible with the requested format")


def test_a_deep_path_is_answered_at_once_and_keeps_no_memory(
        server: tuple[Served, str, dict[str, str]]) -> None:
    """A 5000-segment path (10 kB) took 48 s and kept 250 MB: smeflow's one-query look-up
    made Tiled try every prefix of a missing path, a join of up to 5000 tables each."""
    served, _, _ = server
    before = _rss_mb(served.proc.pid)
    for depth in (100, 5000):
        started = time.monotonic()
        answer = _get(served, "/api/v1/metadata/" + "/".join(["a"] * depth))
        assert time.monotonic() - started < 5
        assert answer.status_code == 404 and answer.json()["detail"].startswith(
            "No such entry: ['a', 'a'")
    assert _rss_mb(served.proc.pid) - before < 50


def test_the_clients_still_work_and_nothing_stored_changed(
        server: tuple[Served, str, dict[str, str]]) -> None:
    """The guards refuse nothing Tiled's client or databroker send: searches, listings,
    slices with negative steps (answered as numpy would), and the catalog's files are
    unchanged by every request of this module (this test runs last)."""
    served, uid, before = server
    folder = Path(served.proc.args[served.proc.args.index("--data") + 1])
    raw = from_uri(served.url, api_key=KEY)["raw"]
    assert len(raw.search(Eq("start.plan_name", "count"))) == 2
    assert len(raw.search(Eq("start.plan_name", "scan"))) == 0
    assert len(list(Broker(raw)(plan_name="count"))) == 2
    image = raw[uid]["primary"]["det_image"]
    for index in (np.s_[::-1], np.s_[3:0:-2], np.s_[:, ::-1, ::-3], np.s_[0:10**12],
                  np.s_[-2:], np.s_[1, :, 5]):
        np.testing.assert_array_equal(image.read(slice=index), FRAMES[index])
    table = raw[uid]["primary"].base["internal"]
    assert table.read(["seq_num"])["seq_num"].tolist() == [1, 2, 3, 4, 5]
    assert list(table.read().columns) == ["seq_num", "time", "frame", "ts_frame"]
    with pytest.raises(ValueError, match="step cannot be zero"):  # (the client's own)
        image.read(slice=np.s_[::0])
    assert _digests(folder) == before
    assert served.proc.poll() is None
