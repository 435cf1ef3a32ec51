"""The reducer on a Dask cluster reading its frames from the catalog server over HTTP
(``reduce_on_dask(..., frames_from="tiled")`` with a ``RemoteCatalog``):
the same patterns and the same reconstruction as a single-process reduction, no API key in
the tasks, clear errors for a worker without a key and for an embedded catalog."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import analysis.tiled_frames as tiled_frames
from analysis.distributed import DaskSession, connect, reduce_on_dask
from analysis.reduce import ReductionError, reduce_run
from analysis.tiled_frames import TiledFrameSource
from dataflow.catalog import Catalog
from dataflow.remote import RemoteCatalog
from dataflow.server import ServerHandle
from plans import diffraction_scan, tomo_scan

KEY = secrets.token_hex(16)


@pytest.fixture(scope="module")
def server_with_diffraction(serve_one_run: Any) -> Iterator[tuple[ServerHandle, str]]:
    """A catalog server holding one small diffraction run (written over HTTP)."""
    def plan_for(beamline: Any) -> Any:
        beamline.use_powder()
        return diffraction_scan(beamline.det, beamline.sample_x, beamline.sample_y,
                                [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5)], num=2,
                                md={"geometry": beamline.geometry.to_metadata()})

    with serve_one_run("dask_tiled", KEY, plan_for) as served:
        yield served


@pytest.fixture(scope="module")
def keyed_cluster() -> Iterator[DaskSession]:
    """A LocalCluster of 2 worker processes started with ``$SMEFLOW_API_KEY`` (the workers
    inherit it, the tasks never carry it)."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SMEFLOW_API_KEY", KEY)
        with connect("local", 2) as session:
            yield session


def test_dask_workers_read_the_frames_from_the_server(
        server_with_diffraction: tuple[ServerHandle, str], keyed_cluster: DaskSession,
        monkeypatch: Any) -> None:
    server, uid = server_with_diffraction
    session = keyed_cluster
    with RemoteCatalog(server.url, KEY) as remote:
        single = reduce_run(remote, uid, bins=120)
        sent: list[Any] = []
        submit = session.client.submit

        def spy(fn: Any, *args: Any, **kwargs: Any) -> Any:
            sent.append(args)
            return submit(fn, *args, **kwargs)

        monkeypatch.setattr(session.client, "submit", spy)
        dask = reduce_on_dask(remote, uid, session, bins=120, chunk_frames=2,
                              frames_from="tiled")
        assert dask.exit_status == "success" and dask.frames == 6
        sources = [a for args in sent for a in args if isinstance(a, TiledFrameSource)]
        assert len(sources) == 3                       # one per chunk of 2 frames
        node = remote.run(uid)["primary"]["det_image"]
        assert sources[0].url == server.url
        assert sources[0].path == tuple(node.path_parts)
        assert sources[0].path[-3:] == (uid, "primary", "det_image")
        assert all(KEY not in repr(args) for args in sent)
        start = remote.run(dask.uid).metadata["start"]
        assert start["frames_from"] == "tiled" and start["workers"] == 2
        a = np.asarray(remote.run(single.uid)["primary"]["intensity"].read())
        b = np.asarray(remote.run(dask.uid)["primary"]["intensity"].read())
        assert a.shape == (6, 120) and np.array_equal(a, b)
        assert a.max() > 0


def test_tomography_on_dask_from_the_server_is_the_single_process_volume(
        serve_one_run: Any, keyed_cluster: DaskSession) -> None:
    """The tomography pipeline on a LocalCluster of 2 worker processes, the frames of
    darks, flats and projections fetched from the server: the volume of ``reduce_run``
    bit for bit, written next to the server's raw files."""
    def plan_for(beamline: Any) -> Any:
        beamline.use_phantom()
        return tomo_scan(beamline.det, beamline.rotation, beamline.sample_x,
                         beamline.shutter, out_position=20.0, num_projections=6,
                         n_darks=2, n_flats=2)

    with serve_one_run("dask_tiled_tomo", KEY, plan_for) as (server, uid), \
            RemoteCatalog(server.url, KEY, raw_dir=server.data_dir / "raw") as remote:
        single = reduce_run(remote, uid, chunk_frames=2)
        dask = reduce_on_dask(remote, uid, keyed_cluster, chunk_frames=2, task_rows=16,
                              frames_from="tiled")
        assert dask.exit_status == "success" and dask.shape == (64, 64, 64)
        start = remote.run(dask.uid).metadata["start"]
        assert start["frames_from"] == "tiled" and start["workers"] == 2
        a = np.asarray(remote.run(single.uid)["primary"]["reconstruction"][:])
        b = np.asarray(remote.run(dask.uid)["primary"]["reconstruction"][:])
        assert np.abs(a).max() > 0.01 and np.array_equal(a, b)


def test_a_worker_without_the_key_is_told_so(
        server_with_diffraction: tuple[ServerHandle, str], monkeypatch: Any) -> None:
    server, uid = server_with_diffraction
    monkeypatch.setattr(tiled_frames, "_CLIENTS", {})
    monkeypatch.delenv("SMEFLOW_API_KEY", raising=False)
    with RemoteCatalog(server.url, KEY) as remote:
        path = tuple(remote.run(uid)["primary"]["det_image"].path_parts)
    source = TiledFrameSource(server.url, path, (6, 64, 64))
    with pytest.raises(ReductionError, match=r"has no API key \(start it with "
                                             r"\$SMEFLOW_API_KEY set\)"):
        source.read(slice(0, 2))
    monkeypatch.setenv("SMEFLOW_API_KEY", KEY)
    frames = source.read(slice(1, 3), slice(10, 20))
    assert frames.shape == (2, 10, 64) and frames.any()
    container = path[:-3]
    for bad in ((*container, "nope", "primary", "det_image"), (*container, uid, "primary", "nope"),
                (*container, "0" * 32, "primary", "det_image"), ("nope", uid)):
        with pytest.raises(ReductionError, match=f"has no {'/'.join(bad)}$"):
            TiledFrameSource(server.url, bad, (6, 64, 64)).read(slice(0, 1))


def test_tiled_frames_need_a_catalog_server(tmp_path: Path) -> None:
    with Catalog(tmp_path / "data") as catalog, pytest.raises(
            ReductionError, match="'tiled' needs a catalog server"):
        reduce_on_dask(catalog, "anything", None, frames_from="tiled")  # type: ignore[arg-type]
    with Catalog(tmp_path / "data") as catalog, pytest.raises(
            ReductionError, match="expected 'files' or 'tiled', got 'http'"):
        reduce_on_dask(catalog, "anything", None, frames_from="http")  # type: ignore[arg-type]
