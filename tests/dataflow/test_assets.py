"""One URI policy for every asset, at registration and at read time, and frames that are
not completely on disk refused on every read through the catalog.

Before: an asset registered as ``sqlite:`` or ``duckdb:`` (any case) bypassed Tiled's
path check and the server read any host file; a truncated or never-written frame came back
as zeros; a flipped bit as changed pixels.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count
from bluesky_tiled_plugins import TiledWriter
from event_model import compose_run
from tiled.client.utils import ClientError

from dataflow.assets import AssetPolicy
from dataflow.catalog import Catalog
from dataflow.hdf5 import DEFAULT_DATASET, FrameWriter

SECRET = 4242


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A host file outside the catalog, readable as an HDF5 frame file."""
    path = tmp_path / "secret.h5"
    with h5py.File(path, "w") as f:
        f[DEFAULT_DATASET] = np.full((1, 4, 4), SECRET, np.uint16)
    return path


def docs_with_asset(uri: str, frames: int = 1, shape: tuple[int, int] = (4, 4)
                    ) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """A run whose frames are the asset ``uri`` (what a client with write access sends)."""
    bundle = compose_run()
    desc = bundle.compose_descriptor(name="primary", data_keys={"img": {
        "source": "test", "shape": list(shape), "dtype": "array", "dtype_numpy": "<u2",
        "external": "STREAM:"}})
    res = bundle.compose_stream_resource(mimetype="application/x-hdf5", uri=uri,
                                         data_key="img", parameters={
                                             "dataset": DEFAULT_DATASET, "swmr": True})
    datum = res.compose_stream_datum(indices={"start": 0, "stop": frames})
    events = [desc.compose_event(data={}, timestamps={}) for _ in range(frames)]
    return bundle.start_doc["uid"], [
        ("start", bundle.start_doc), ("descriptor", desc.descriptor_doc),
        ("stream_resource", res.stream_resource_doc),
        ("stream_datum", {**datum, "descriptor": desc.descriptor_doc["uid"]}),
        *(("event", e) for e in events), ("stop", bundle.compose_stop())]


def hostile_uris(secret: Path, raw: Path) -> list[str]:
    """Every way of naming a file outside the catalog that Tiled's path_from_uri maps to
    a path: each scheme Tiled knows in several letter cases, hosts, .., encodings, links."""
    (raw / "sneaky").mkdir(parents=True, exist_ok=True)
    link = raw / "sneaky" / "link.h5"
    link.unlink(missing_ok=True)
    link.symlink_to(secret)
    up = "../" * len(raw.parts)
    return [
        f"sqlite:///{secret}", f"SQLITE:///{secret}", f"Sqlite:///{secret}",
        f"duckdb:///{secret}", f"DuckDB:///{secret}", f"sqlite://localhost/{secret}",
        f"postgresql://x@localhost/{secret}", f"http://localhost{secret}", f"s3://b{secret}",
        f"file://localhost{secret}", f"FILE://localhost{secret}", f"file://{secret}",
        f"file://evil.example{secret}", f"file://localhost{raw}/{up}{str(secret)[1:]}",
        f"file://localhost{raw}/%2e%2e/%2e%2e{secret}",
        f"file://localhost{raw}/..%2F..%2F{str(secret)[1:]}",
        f"file://localhost{link}", f"file://localhost{raw}/ok.h5?x={secret}",
        f"file://localhost{raw}/a\x00.h5", f"{secret}", "",
    ]


# -- the policy ------------------------------------------------------------------------------

def test_policy_allows_only_files_inside_the_roots(tmp_path: Path, secret: Path) -> None:
    raw = tmp_path / "cat" / "raw"
    (raw / "sub").mkdir(parents=True)
    own = f"sqlite://localhost/{tmp_path}/cat/tables.db"
    policy = AssetPolicy([raw, tmp_path / "cat" / "storage"], [own])
    for uri in (f"file://localhost{raw}/a.h5", f"file://{raw}/sub/../b.h5",
                f"FILE://LOCALHOST{raw}/c.h5", f"file://localhost{raw}/sp%20ace.h5"):
        assert policy.refusal(uri) is None, uri
    for uri in hostile_uris(secret, raw):
        assert policy.refusal(uri) is not None, uri
        assert policy.refusal(uri, table_store=True) is not None, uri
    # the catalog's own table store: only for Tiled's table reader, only exactly
    assert policy.refusal(own, table_store=True) is None
    assert "only the catalog's own table storage" in str(policy.refusal(own))
    assert policy.refusal(own.upper(), table_store=True) is not None
    assert "names host 'evil.example'" in str(policy.refusal(f"file://evil.example{raw}/a"))
    assert f"resolves to {secret}" in str(policy.refusal(f"file://localhost{raw}/sneaky/link.h5"))


# -- registration and reading through the embedded catalog ----------------------------------
# (``catalog``: the module's one catalog, tests/dataflow/conftest.py; each test writes and
# damages runs and files of its own, found by uid and by its camera's file)

def test_no_scheme_registers_a_host_file(catalog: Catalog, secret: Path) -> None:
    for uri in hostile_uris(secret, catalog.raw_dir):
        uid, docs = docs_with_asset(uri)
        writer = TiledWriter(catalog.client, batch_size=1)
        with pytest.raises(ClientError, match="403: refusing to register asset URI") as info:
            for name, doc in docs:
                writer(name, doc)
        assert "secret" in str(info.value) or uri == "" or "\x00" in uri, uri
        try:
            node = catalog.client[uid]["primary"]["img"]
        except KeyError:
            continue  # the run or its frames were never registered
        with pytest.raises(Exception):  # noqa: B017 - nothing readable at all
            node.read()


@pytest.fixture
def per_frame(frame_cam: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test camera writes one chunk per frame (damage then hits one frame)."""
    module = sys.modules[frame_cam.__module__]
    monkeypatch.setattr(module, "FrameWriter", partial(FrameWriter, layout="per_frame"))


def good_run(catalog: Catalog, frame_cam: Any, n: int = 6) -> tuple[Any, Path]:
    RE = RunEngine()
    catalog.subscribe(RE)
    cam = frame_cam(name="cam", folder=catalog.raw_dir)
    (uid,) = RE(count([cam], n))
    assert cam.writer is not None
    return catalog.run(uid)["primary"]["cam_image"], cam.writer.path


def rewrite_uri(catalog: Catalog, path: Path, uri: str) -> None:
    """What an attacker with the database (or an old record) does: point the stored
    asset somewhere else."""
    with sqlite3.connect(catalog.root / "catalog.db") as con:
        changed = con.execute("UPDATE assets SET data_uri = ? WHERE data_uri = ?",
                              (uri, f"file://localhost{path}")).rowcount
    assert changed == 1


@pytest.mark.parametrize("scheme", ["sqlite:///", "SQLITE:///", "duckdb:///",
                                    "file://localhost", "file://evil"])
def test_a_stored_uri_rewritten_is_refused_at_read_time(catalog: Catalog, frame_cam: Any,
                                                        secret: Path, scheme: str) -> None:
    images, path = good_run(catalog, frame_cam, 2)
    assert images[0].shape == (40, 24)
    rewrite_uri(catalog, path, f"{scheme}{secret}")
    with pytest.raises(ClientError, match=r"403: refusing to read asset URI .*secret\.h5"):
        images.read()


# -- frames that are not on disk, or damaged -------------------------------------------------

@pytest.mark.usefixtures("per_frame")
def test_a_truncated_file_is_an_error_never_zeros(catalog: Catalog, frame_cam: Any,
                                                  make_test_frame: Any) -> None:
    images, path = good_run(catalog, frame_cam)
    np.testing.assert_array_equal(images[5], make_test_frame(5))
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:size * 3 // 4])  # a disk that filled up
    with pytest.raises(ClientError, match=rf"422: {path}: frame 5 lies beyond the end of the "
                                          rf"file \(truncated: its data ends at byte {size}, "
                                          rf"the file has {size * 3 // 4} bytes\)"):
        images[5]


KILLED_WRITER = """
import os, signal, sys
import numpy as np
from dataflow.hdf5 import FrameWriter
w = FrameWriter(sys.argv[1], "killed.h5", (40, 24), layout="per_frame", flush_every=1)
for i in range(6):
    w.append(np.full((40, 24), i + 1, np.uint16))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writers_cut_file_names_the_missing_frame(catalog: Catalog) -> None:
    """A file its writer never closed (SIGKILL) is still marked open for writing and may
    be shorter than its superblock says; each frame read is then checked chunk by chunk."""
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(catalog.raw_dir)],
                          capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr
    path = catalog.raw_dir / "killed.h5"
    uid, docs = docs_with_asset(f"file://localhost{path}", frames=6, shape=(40, 24))
    writer = TiledWriter(catalog.client)
    for name, doc in docs:
        writer(name, doc)
    images = catalog.client[uid]["primary"]["img"]
    assert int(images[5][0, 0]) == 6
    with h5py.File(path, "r", swmr=True) as f:
        last = f[DEFAULT_DATASET].id.get_chunk_info_by_coord((5, 0, 0))
    cut = last.byte_offset + 100
    path.write_bytes(path.read_bytes()[:cut])
    assert int(images[4][0, 0]) == 5  # frames on disk: fine
    with pytest.raises(ClientError, match=rf"422: {path}: frame 5 lies beyond the end of "
                                          rf"the file \(truncated: its data ends at byte "
                                          rf"{last.byte_offset + last.size}, the file has "
                                          rf"{cut} bytes\)"):
        images[5]


@pytest.mark.usefixtures("per_frame")
def test_a_frame_never_written_is_not_read_as_zeros(catalog: Catalog, frame_cam: Any) -> None:
    images, path = good_run(catalog, frame_cam, 3)
    with h5py.File(path, "r+") as f:  # the extent covers frame 2, its chunk is gone
        ds = f[DEFAULT_DATASET]
        frames = ds[:2]
        del f[DEFAULT_DATASET]
        f.create_dataset(DEFAULT_DATASET, data=frames, maxshape=(None, 40, 24),
                         chunks=(1, 40, 24))
        f[DEFAULT_DATASET].resize(3, axis=0)
    with pytest.raises(ClientError, match=rf"422: {path}: frame 2 was never completely "
                                          r"written \(its data chunk at \(2, 0, 0\) is "
                                          r"missing\)"):
        images[2]
    with pytest.raises(ClientError, match="frame 2 was never completely written"):
        images.read()


@pytest.mark.usefixtures("per_frame")
def test_a_flipped_bit_is_an_error_never_changed_pixels(catalog: Catalog, frame_cam: Any,
                                                        make_test_frame: Any) -> None:
    images, path = good_run(catalog, frame_cam, 3)
    with h5py.File(path, "r") as f:
        offset = f[DEFAULT_DATASET].id.get_chunk_info_by_coord((1, 0, 0)).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 7] ^= 0x10  # a pixel of frame 1
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(images[0], make_test_frame(0))
    with pytest.raises(ClientError, match=rf"422: {path}: frame 1 is damaged"):
        images[1]
    with pytest.raises(ClientError, match="frame 1 is damaged"):
        images.read()


def test_raw_asset_download_is_off(catalog: Catalog, frame_cam: Any) -> None:
    images, _ = good_run(catalog, frame_cam, 1)
    (source,) = images.data_sources()
    (asset,) = source.assets
    url = images.uri.replace("/api/v1/metadata/", "/api/v1/asset/bytes/")
    response = catalog.client.context.http_client.get(url, params={"id": asset.id})
    assert response.status_code == 403 and "not to allow" in response.text
