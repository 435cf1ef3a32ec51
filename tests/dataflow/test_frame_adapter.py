"""The catalog's frame reads (``dataflow.frame_adapter``) meeting the user's own plain
h5py handle of the file in the same process: the answer names that conflict and the way
out, not a corrupt file; once the handle is closed the same read works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bluesky.plans as bp
import h5py
import numpy as np
import pytest

import dataflow.frame_adapter
from analysis.derived_run import uri_path
from analysis.run_read import asset_uris, stream_frames


def test_a_users_non_swmr_handle_is_named_with_the_way_out(
        smeflow_beamline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataflow.frame_adapter, "SWMR_CONFLICT_WAIT_S", 0.3)
    bl = smeflow_beamline
    (uid,) = bl.RE(bp.count([bl.det], 2))
    run = bl.catalog.run(uid)
    (uri,) = asset_uris(stream_frames(run, "primary", run.metadata["start"])[1])
    path = uri_path(uri)
    assert isinstance(path, Path)
    # (the user's handle, without SWMR)
    with h5py.File(path, "r"), pytest.raises(Exception) as info:
        np.asarray(run["primary"]["det_image"][0])
    text = str(info.value)
    assert "another handle in this process has the file open without SWMR" in text, text
    assert "h5py.File(path, 'r', swmr=True)" in text and str(path) in text
    assert "corrupt" not in text
    assert np.asarray(run["primary"]["det_image"][0]).shape == (64, 64)


def test_an_index_past_the_end_over_http_is_a_client_error(smeflow_beamline: Any) -> None:
    """User report U10: a frame index past the run's frames, asked through Tiled's HTTP API
    (curl, a web viewer), is answered 400 with the number of frames — as Tiled answers a
    block index out of range — not 422 "frame 3 was never written" (data loss)."""
    bl = smeflow_beamline
    (uid,) = bl.RE(bp.count([bl.det], 3))
    http = bl.catalog.client.context.http_client
    url = f"/api/v1/array/full/raw/{uid}/primary/det_image"
    json = {"Accept": "application/json"}
    for index in ("3", "7", "-4"):
        answer = http.get(url, params={"slice": index}, headers=json)
        assert answer.status_code == 400, (index, answer.text)
        assert "never written" not in answer.text
    assert "index 3 out of range: the stream has 3 frames" in \
        http.get(url, params={"slice": "3"}, headers=json).text
    last = http.get(url, params={"slice": "2,0:2,0:2"}, headers=json)
    assert last.status_code == 200 and np.asarray(last.json()).shape == (2, 2)
    assert http.get(url, params={"slice": "-3"}, headers=json).status_code == 200


def test_a_request_over_the_response_limit_is_refused_before_any_read(
        smeflow_beamline: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiled's ``array/full`` refuses an answer over its ``response_bytesize_limit``
    (300 MB) only after reading it whole (``numpy.asarray`` of the read, then
    ``nbytes``): 2 GB of frames asked at once were read into the server's memory to be
    refused. The frame reader now refuses from the structure (shape × dtype) first, with
    Tiled's answer (400, 'Response would exceed ...'), reading nothing."""
    from tiled.adapters.hdf5 import HDF5ArrayAdapter
    from tiled.server.settings import get_settings

    bl = smeflow_beamline
    (uid,) = bl.RE(bp.count([bl.det], 3))  # (3 frames of 64 x 64)
    reads: list[Any] = []
    plain_read = HDF5ArrayAdapter.read

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(args)
        return plain_read(self, *args, **kwargs)

    monkeypatch.setattr(HDF5ArrayAdapter, "read", counted)
    one_frame = 64 * 64 * np.dtype(bl.det.describe()["det_image"]["dtype_numpy"]).itemsize
    monkeypatch.setattr(get_settings(), "response_bytesize_limit", 2 * one_frame)
    http = bl.catalog.client.context.http_client
    url = f"/api/v1/array/full/raw/{uid}/primary/det_image"
    json = {"Accept": "application/json"}
    for index in (None, "0:3", "0:3,0:64", ":,:50"):
        answer = http.get(url, params={} if index is None else {"slice": index}, headers=json)
        assert answer.status_code == 400, (index, answer.text)
        assert f"Response would exceed {2 * one_frame}" in answer.text
    assert reads == []
    answer = http.get(url, params={"slice": "0:2"}, headers=json)  # (at the limit)
    assert answer.status_code == 200 and np.asarray(answer.json()).shape == (2, 64, 64)
    assert len(reads) == 1
