"""``dataflow.tiled_flush.FlushableTiledWriter`` against ``bluesky_tiled_plugins``'
``TiledWriter``: the same documents written through each into a catalog are stored the
same (every node, data source and value read back, and the run's documents), whenever
``flush()`` is called; a flush writes what the stop would, and a file node is registered
in one request."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky_tiled_plugins import TiledWriter
from event_model import compose_run

import dataflow.inprocess
from dataflow.catalog import Catalog
from dataflow.event_pages import PageNormalizer
from dataflow.hdf5 import FrameWriter
from dataflow.tiled_flush import FlushableTiledWriter

Document = tuple[str, dict[str, Any]]
FLUSH = ("flush", {})
"""A step of a scenario: the flushable writer's ``flush()`` (the other writer skips it)."""


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Catalog, Catalog]]:
    """Two catalogs; the second reads the frame files of the first's ``raw/``. One pair
    per module (opening a catalog costs about a second): every test writes runs of its
    own (new uids, files named after them) and looks them up by uid."""
    folder = tmp_path_factory.mktemp("catalogs")
    ours = Catalog(folder / "ours")
    theirs = Catalog(folder / "theirs", readable_storage=[ours.raw_dir])
    try:
        yield ours, theirs
    finally:
        ours.close()
        theirs.close()


def scenario(raw: Path, flushes: str) -> list[Document]:
    """A derived run's kind of documents: a stream with an integer, a 32-value array (its
    own array node) and an external volume whose slices come in two files (the second
    file's resource named after frames of the first) and three ``stream_datum``; rows in
    two pages and a single event. ``flushes``: where ``FLUSH`` steps go — ``"end"``
    before the stop only, ``"between"`` after the first datum and page and after the
    second file's datum, ``"none"``."""
    run = compose_run(metadata={"plan_name": "reduce", "raw_uid": "0" * 8})
    files = [FrameWriter(raw, f"vol_{i}_{run.start_doc['uid'][:8]}.h5", (6, 5),
                         dtype=np.float32, data_key="reconstruction", layout="per_frame")
             for i in range(2)]
    stream = run.compose_descriptor(name="primary", data_keys={
        "reconstruction": files[0].describe_key("test"),
        "row": {"source": "test", "dtype": "integer", "shape": []},
        "hist": {"source": "test", "dtype": "array", "shape": [32], "dtype_numpy": "<i8"}})
    docs: list[Document] = [("start", dict(run.start_doc)),
                            ("descriptor", dict(stream.descriptor_doc))]
    desc = stream.descriptor_doc["uid"]
    rng = np.random.default_rng(3)
    seq = 0

    def frames(i: int, n: int) -> None:
        nonlocal seq
        files[i].append_many(rng.random((n, 6, 5), dtype=np.float32))
        for name, doc in files[i].asset_docs():
            if name == "stream_resource":
                doc = {**doc, "run_start": run.start_doc["uid"]}
            else:
                start, stop = doc["indices"]["start"], doc["indices"]["stop"]
                doc = {**doc, "descriptor": desc,
                       "seq_nums": {"start": seq + start + 1, "stop": seq + stop + 1}}
            docs.append((name, doc))

    def rows(first: int, n: int) -> None:
        data = {"row": list(range(first, first + n)),
                "hist": [[int(v) for v in rng.integers(0, 99, 32)] for _ in range(n)]}
        docs.append(("event_page", dict(stream.compose_event_page(
            data=data, timestamps={k: [1.7e9 + i for i in range(n)] for k in data},
            seq_num=list(range(first + 1, first + n + 1))))))

    frames(0, 3)
    rows(0, 3)
    if flushes == "between":
        docs.append(FLUSH)
    frames(0, 2)
    docs.append(("event", dict(stream.compose_event(
        data={"row": 3, "hist": list(range(32))}, timestamps={"row": 1.7e9, "hist": 1.7e9},
        seq_num=4))))
    seq = 5
    frames(1, 4)
    if flushes == "between":
        docs.append(FLUSH)
    rows(4, 5)
    for writer in files:
        writer.close()
    if flushes == "end":
        docs.append(FLUSH)
    docs.append(("stop", dict(run.compose_stop())))
    return docs


@pytest.mark.parametrize(("flushes", "batch_size"), [("end", None), ("between", None),
                                                      ("none", None), ("between", 1),
                                                      ("end", 2)])
def test_flushed_runs_are_stored_as_tiledwriter_stores_them(
        catalogs: tuple[Catalog, Catalog], stored_run: Any, flushes: str,
        batch_size: int | None) -> None:
    ours, theirs = catalogs
    docs = scenario(ours.raw_dir, flushes)
    flushable = ours.derived_writer(batch_size)
    assert isinstance(flushable, FlushableTiledWriter)
    options = {} if batch_size is None else {"batch_size": batch_size}
    plain = TiledWriter(theirs.derived.include_data_sources(), normalizer=PageNormalizer,
                        **options)
    for name, doc in docs:
        if (name, doc) == FLUSH:
            flushable.flush()
            continue
        flushable(name, doc)
        plain(name, doc)
    uid = docs[0][1]["uid"]
    a, b = ours.derived[uid], theirs.derived[uid]
    got, want = stored_run(a, ours.raw_dir, ours.root), stored_run(b, ours.raw_dir, theirs.root)
    assert ("primary", "reconstruction") in got and ("primary", "hist") in got
    assert got["primary", "reconstruction"]["data"].shape == (9, 6, 5)
    if flushes == "between":  # (a flush is a batch's end: arrays the catalog writes
        for stored in (got, want):  # itself are chunked by the batches written)
            for entry in stored.values():
                for source in entry.get("sources", []):
                    if source["management"] == "writable" and \
                            source["structure_family"] == "array":
                        source["structure"].pop("chunks")
    stored_run.same(got, want)
    assert list(a.documents()) == list(b.documents())


def _requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The catalog requests made from now on, as ``(method, first path part)``."""
    seen: list[tuple[str, str]] = []
    handle = dataflow.inprocess.InProcessTransport.handle_request

    def logged(self: Any, request: Any) -> Any:
        seen.append((request.method, request.url.path.split("/")[3]))
        return handle(self, request)

    monkeypatch.setattr(dataflow.inprocess.InProcessTransport, "handle_request", logged)
    return seen


def test_a_flush_writes_what_the_stop_would_and_a_file_node_takes_one_request(
        catalogs: tuple[Catalog, Catalog], monkeypatch: pytest.MonkeyPatch) -> None:
    ours, _ = catalogs
    docs = scenario(ours.raw_dir, "none")
    stop = docs.pop()
    writer = ours.derived_writer()
    seen = _requests(monkeypatch)
    for name, doc in docs:
        writer(name, doc)
    assert [method for method, _ in seen] == ["POST", "POST"]  # the run and its stream
    seen.clear()
    writer.flush()
    # the rows' table (created, appended), the 32-value array, the volume's node created
    # with its data source (one request, no PUT /data_source) and its second file's
    assert sorted(seen) == sorted([("POST", "metadata"), ("PATCH", "table"),
                                   ("POST", "metadata"), ("PUT", "array"),
                                   ("POST", "register"), ("PUT", "data_source")])
    seen.clear()
    writer.flush()  # (nothing left)
    assert seen == []
    writer(*stop)
    assert [request for request in seen if request[1] != "stream"] == [("PATCH", "metadata")]


def test_backups_are_refused(catalogs: tuple[Catalog, Catalog], tmp_path: Path) -> None:
    ours, _ = catalogs
    with pytest.raises(TypeError, match="backup_directory"):
        FlushableTiledWriter(ours.derived, backup_directory=str(tmp_path))


def test_a_flush_of_one_run_leaves_the_others_batches(
        catalogs: tuple[Catalog, Catalog], stored_run: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs through one writer (a live reducer's): ``flush(uid)`` writes that run's
    rows and frames only; the other's wait for its stop, and both are stored as
    ``TiledWriter`` stores them."""
    ours, theirs = catalogs
    a, b = scenario(ours.raw_dir, "none"), scenario(ours.raw_dir, "none")
    uid_a, uid_b = a[0][1]["uid"], b[0][1]["uid"]
    flushable = ours.derived_writer()
    plain = TiledWriter(theirs.derived.include_data_sources(), normalizer=PageNormalizer)
    for doc_a, doc_b in zip(a[:-1], b[:-1], strict=True):
        for writer in (flushable, plain):
            writer(*doc_a)
            writer(*doc_b)
    urls: list[str] = []
    handle = dataflow.inprocess.InProcessTransport.handle_request

    def logged(self: Any, request: Any) -> Any:
        urls.append(str(request.url.path))
        return handle(self, request)

    monkeypatch.setattr(dataflow.inprocess.InProcessTransport, "handle_request", logged)
    flushable.flush(uid_a)
    assert len(urls) == 6 and all(uid_a in url for url in urls)
    urls.clear()
    flushable(*a[-1])
    assert not any(uid_b in url for url in urls)
    flushable(*b[-1])
    assert any("/register/" in url and uid_b in url for url in urls)  # (held till its stop)
    for writer, docs in ((plain, a), (plain, b)):
        writer(*docs[-1])
    for uid in (uid_a, uid_b):
        stored_run.same(stored_run(ours.derived[uid], ours.raw_dir, ours.root),
                        stored_run(theirs.derived[uid], ours.raw_dir, theirs.root))
