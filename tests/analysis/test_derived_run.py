"""A derived run's volume: closed before it is announced, hashed while its documents go
out, and its digest (stop document's ``outputs``, ``.sha256`` sidecar) the final file's."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dataflow.hdf5
import dataflow.hdf5_close
from analysis.derived_run import DerivedRun
from dataflow.hdf5 import file_sha256, open_in_process
from dataflow.integrity import read_sidecar

RAW_UID = "0123abcd-0000-4000-8000-000000000000"


def test_the_volume_is_hashed_while_its_documents_go_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The consumer of the row events (one page) sees the volume's hashing under way (it used to
    start only after the last document), the file already closed for good: the digest in
    the stop document and the sidecar are the final file's."""
    hashing, announced = threading.Event(), threading.Event()
    hash_file = dataflow.hdf5_close.file_sha256

    def held_hash(path: Any, *step: Any) -> str:
        hashing.set()
        assert announced.wait(10), "the documents never finished"
        return hash_file(path, *step)

    monkeypatch.setattr(dataflow.hdf5_close, "file_sha256", held_hash)
    seen: dict[str, Any] = {}

    def consumer(name: str, doc: dict[str, Any]) -> None:
        if name == "stream_resource":
            path = Path(doc["uri"].removeprefix("file://localhost"))
            seen["closed"] = not open_in_process(path)
        elif name == "event_page" and "hashing" not in seen:
            seen["hashing"] = hashing.wait(10)
            seen["rows"] = (doc["data"]["row"], doc["seq_num"])
            announced.set()
        elif name == "stop":
            seen["stop"] = doc

    volume = np.arange(5 * 6 * 6, dtype=np.float32).reshape(5, 6, 6)
    run = DerivedRun([consumer], {"raw_uid": RAW_UID, "plan_name": "reduce"})
    stop = run.finish_volume(tmp_path, volume, [10, 11, 12, 13, 14], frames=3)
    assert seen["closed"] and seen["hashing"]
    assert seen["rows"] == ([10, 11, 12, 13, 14], [1, 2, 3, 4, 5])  # (one page of them)
    (output,) = stop["outputs"]
    path = Path(output["uri"].removeprefix("file://localhost"))
    assert output["sha256"] == file_sha256(path) == read_sidecar(path)
    assert seen["stop"]["outputs"] == [output]
    with dataflow.hdf5.open_frames(path) as frames:
        assert np.array_equal(frames.read(), volume)


def test_a_reader_of_the_announced_file_leaves_the_digest_final(tmp_path: Path) -> None:
    """The catalog (in this process) may open the volume as soon as its stream_resource
    arrives, while it is being hashed: a read-only handle of a closed file changes none
    of its bytes, so the digest is final and its sidecar is written (a handle still open
    when the writer closed the file is the other case: ``test_hdf5``)."""
    readers: list[Any] = []

    def consumer(name: str, doc: dict[str, Any]) -> None:
        if name == "stream_resource":
            import h5py

            readers.append(h5py.File(doc["uri"].removeprefix("file://localhost"), "r"))

    run = DerivedRun([consumer], {"raw_uid": RAW_UID, "plan_name": "reduce"})
    try:
        stop = run.finish_volume(tmp_path, np.ones((2, 4, 4), np.float32), [0, 1], frames=2)
        path = Path(stop["outputs"][0]["uri"].removeprefix("file://localhost"))
        assert open_in_process(path)
        assert read_sidecar(path) == stop["outputs"][0]["sha256"]
    finally:
        for reader in readers:
            reader.close()
    assert file_sha256(path) == stop["outputs"][0]["sha256"]


def test_a_volume_written_slab_by_slab_holds_one_slab_at_a_time(tmp_path: Path) -> None:
    """``write_volume`` of slabs (what the live reduction writes at a run's stop) lets each
    slab go once it is in the file: when the next one is made, no earlier one is alive
    (two were, the first and the previous: 8 MB at the demo's 256³)."""
    import weakref

    import h5py

    from dataflow.hdf5_read import DEFAULT_DATASET

    made: list[weakref.ref[np.ndarray]] = []
    alive_when_made: list[int] = []

    def slabs() -> Any:
        for k in range(5):
            alive_when_made.append(sum(ref() is not None for ref in made))
            slab = np.full((2, 8, 8), k, np.float32)
            made.append(weakref.ref(slab))
            yield slab
            del slab

    docs: list[tuple[str, dict[str, Any]]] = []
    run = DerivedRun([lambda name, doc: docs.append((name, doc))], {"raw_uid": "r" * 8})
    path = run.write_volume(tmp_path, "volume.h5", slabs(), list(range(10)))
    assert alive_when_made == [0] * 5
    with h5py.File(path, "r") as f:
        volume = f[DEFAULT_DATASET][:]
    np.testing.assert_array_equal(volume, np.repeat(np.arange(5, dtype=np.float32), 2)
                                  [:, None, None] * np.ones((10, 8, 8), np.float32))
    pages = [doc["data"]["row"] for name, doc in docs if name == "event_page"]
    assert pages == [list(range(10))]
