"""A run's provenance record file (``raw/provenance/<uid>.json``, the copy beside the
catalog's) damaged — emptied, cut short, a byte flipped, a folder in its place: ``verify``
fails the run naming the file, as it does for a copy that differs from the catalog's.
Before, a damaged copy was only a NOTE under "all 10 checks OK", exit status 0."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky.plans import count

from dataflow.catalog import Catalog
from dataflow.provenance import ProvenanceRecorder, Status, record_path, verify_run


@pytest.fixture(scope="module")
def recorded(catalog: Catalog, frame_cam: Any) -> tuple[str, Path]:
    """One recorded run of the module's catalog and its record file."""
    RE = RunEngine()
    catalog.subscribe(RE)
    recorder = ProvenanceRecorder.for_catalog(catalog)
    recorder.subscribe(RE)
    (uid,) = RE(count([frame_cam(name="cam", folder=catalog.raw_dir)], 2))
    assert recorder.wait(30)
    return str(uid), record_path(catalog.raw_dir / "provenance", str(uid))


def _folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "emptied": lambda p: os.truncate(p, 0),
    "cut in half": lambda p: os.truncate(p, p.stat().st_size // 2),
    "byte flipped": lambda p: p.write_bytes(p.read_bytes()[:50] + b"\xff"
                                            + p.read_bytes()[51:]),
    "a folder": _folder,
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_record_file_fails_verification_naming_it(
        catalog: Catalog, recorded: tuple[str, Path], case: str) -> None:
    uid, path = recorded
    good = path.read_bytes()
    assert verify_run(catalog.run(uid), record_dir=path.parent).ok
    DAMAGE[case](path)
    try:
        report = verify_run(catalog.run(uid), record_dir=path.parent)
        assert not report.ok
        [check] = [c for c in report.checks if c.kind == "record" and not c.ok]
        assert (check.status, check.subject) == (Status.CHANGED, str(path))
        assert check.detail.startswith("damaged: not a readable provenance record"), check
    finally:
        if path.is_dir():
            shutil.rmtree(path)
        path.write_bytes(good)
