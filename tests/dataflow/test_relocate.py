"""A catalog folder moved or copied elsewhere keeps working: frames, event tables and
provenance verification, and a copy never reads its original's files (the catalog kept
absolute paths: after a move nothing could be read)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from bluesky import RunEngine
from bluesky.plans import count

from dataflow.catalog import Catalog
from dataflow.provenance import ProvenanceRecorder, verify_run
from dataflow.relocate import ROOT_FILE


def write_run(folder: Path, frame_cam: Any) -> str:
    with Catalog(folder) as catalog:
        RE = RunEngine()
        catalog.subscribe(RE)
        recorder = ProvenanceRecorder.for_catalog(catalog)
        recorder.subscribe(RE)
        (uid,) = RE(count([frame_cam(name="cam", folder=catalog.raw_dir)], 3))
        assert recorder.wait(30)
    return str(uid)


def check_run(folder: Path, uid: str, make_test_frame: Any) -> None:
    with Catalog(folder) as catalog:
        run = catalog.run(uid)
        images = run["primary"]["cam_image"]
        for i in range(3):
            np.testing.assert_array_equal(images[i], make_test_frame(i))
        totals = np.asarray(run["primary"]["cam_total"].read())
        assert [int(t) for t in totals] == [int(make_test_frame(i).sum()) for i in range(3)]
        (source,) = images.data_sources()
        assert source.assets[0].data_uri.startswith(f"file://localhost{folder.resolve()}/")
        report = verify_run(run, record_dir=catalog.raw_dir / "provenance")
        assert report.ok, "\n".join(report.lines())


def test_a_moved_catalog_keeps_working(tmp_path: Path, frame_cam: Any,
                                       make_test_frame: Any) -> None:
    first = tmp_path / "beamtime" / "data"
    uid = write_run(first, frame_cam)
    moved = tmp_path / "archive" / "2026" / "data"
    moved.parent.mkdir(parents=True)
    shutil.move(first, moved)
    check_run(moved, uid, make_test_frame)
    roots = json.loads((moved / ROOT_FILE).read_text())
    assert roots == {"root": str(moved.resolve()), "previous": [str(first.resolve())]}


def test_a_copy_is_independent_of_its_original(tmp_path: Path, frame_cam: Any,
                                               make_test_frame: Any) -> None:
    original = tmp_path / "data"
    uid = write_run(original, frame_cam)
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    check_run(copy, uid, make_test_frame)
    shutil.rmtree(original)  # the copy never depended on it
    check_run(copy, uid, make_test_frame)
    # and the copy goes on being written where it is
    uid2 = write_run(copy, frame_cam)
    with Catalog(copy) as catalog:
        assert {s.uid for s in catalog.runs()} == {uid, uid2}
