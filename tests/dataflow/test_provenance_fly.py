"""Provenance of a ``bp.fly([DetectorFlyer])`` run (frames announced by
``stream_resource``/``stream_datum``) and of one recorded the older way, by ``resource``
and ``datum`` documents (``legacy_flyer``), which the catalog stores converted to
``stream_resource``/``stream_datum``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bluesky.plans as bp
import pytest

from dataflow.provenance import METADATA_KEY, ProvenanceRecorder, Status, verify_run
from dataflow.provenance.record import uri_to_path
from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer

from .legacy_flyer import LegacyFlyer

FRAMES = 6


@pytest.fixture(params=[DetectorFlyer, LegacyFlyer], ids=["stream", "legacy"])
def fly_run(smeflow_beamline: Any, request: pytest.FixtureRequest) -> tuple[Any, str, str]:
    """(beamline, bp.count uid, bp.fly uid), both recorded."""
    bl = smeflow_beamline
    recorder = ProvenanceRecorder.for_catalog(bl.catalog)
    recorder.subscribe(bl.RE)
    (count_uid,) = bl.RE(bp.count([bl.det], 2))
    (fly_uid,) = bl.RE(bp.fly([request.param(bl.det, FlyParameters(frames=FRAMES,
                                                                    exposure=0.01))]))
    assert recorder.wait(60)
    assert recorder.failures == []
    return bl, count_uid, fly_uid


def _report(bl: Any, uid: str) -> Any:
    return verify_run(bl.catalog.run(uid), record_dir=bl.catalog.raw_dir / "provenance")


def _failures(report: Any) -> list[str]:
    return [f"{c.status} {c.kind} {c.subject} {c.detail}" for c in report.failures]


def test_an_untouched_fly_run_records_its_file_and_verifies(fly_run: Any) -> None:
    bl, count_uid, fly_uid = fly_run
    assert _failures(_report(bl, count_uid)) == []
    (entry,) = bl.catalog.run(fly_uid).metadata[METADATA_KEY]["files"]
    assert entry["sha256"] and entry["data_key"] == "det_image"
    assert uri_to_path(entry["uri"]).exists()
    report = _report(bl, fly_uid)
    assert _failures(report) == []
    assert Status.OK in {c.status for c in report.checks if c.kind == "documents"}


def test_a_changed_fly_file_is_named(fly_run: Any) -> None:
    bl, _, fly_uid = fly_run
    (entry,) = bl.catalog.run(fly_uid).metadata[METADATA_KEY]["files"]
    path: Path = uri_to_path(entry["uri"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    failures = _failures(_report(bl, fly_uid))
    assert any(f.startswith(str(Status.CHANGED)) and str(path) in f for f in failures), \
        failures
