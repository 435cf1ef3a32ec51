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
