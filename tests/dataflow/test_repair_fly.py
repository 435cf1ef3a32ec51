"""``smeflow catalog repair`` of a killed ``bp.fly([DetectorFlyer])`` run, its frames
announced by ``stream_resource``/``stream_datum`` documents, and of one recorded the older
way, with ``resource``/``datum`` documents (``legacy_flyer``): repair checks them on disk
like any."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plans as bp
import numpy as np
import pytest
from bluesky import RunEngine

from dataflow import fly_streams
from dataflow.catalog import Catalog
from dataflow.journal import JOURNAL_DIR, JournalingWriter
from dataflow.repair import repair_run
from dataflow.run_queries import stream_length
from devices.beamline import Beamline
from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer
from fpga.designs.params import ChainParams

from .legacy_flyer import LegacyFlyer

FRAMES = 6


@pytest.fixture(params=[DetectorFlyer, LegacyFlyer], ids=["stream", "legacy"])
def killed_fly(tmp_path: Path, request: pytest.FixtureRequest
               ) -> Iterator[tuple[Catalog, str, Path]]:
    """(catalog, uid, fly file) of a bp.fly run whose stop document never reached the
    journaling writer, as when its process is killed."""
    with Catalog(tmp_path / "data") as catalog:
        RE = RunEngine({})
        fly_streams.install(RE)  # (as the catalog's subscribe does)
        journaled = JournalingWriter(catalog.writer(), catalog.root / JOURNAL_DIR)
        RE.subscribe(lambda name, doc: None if name == "stop" else journaled(name, doc))
        bl = Beamline.create(catalog.raw_dir, params=ChainParams(64, 64, 16),
                             backend="compiled", time_scale=0.001)
        try:
            bl.shutter.set("open").wait(5)
            flyer = request.param(bl.det, FlyParameters(frames=FRAMES, exposure=0.01))
            (uid,) = RE(bp.fly([flyer]))
            path = Path(next(reversed(bl.det.digests)))  # the fly file, closed last
        finally:
            bl.close()
        yield catalog, uid, path


def test_a_lost_fly_file_is_reported_and_its_frames_cut(killed_fly: Any) -> None:
    catalog, uid, path = killed_fly
    path.unlink()
    report = repair_run(catalog, uid)
    text = "\n".join(report.lines())
    assert any(str(path) in p for p in report.problems), text
    assert report.frames == {}, text
    assert report.events == {"primary": FRAMES}, text
    assert stream_length(catalog.run(uid)["primary"], "det_image") == 0


def test_an_intact_fly_file_keeps_every_frame(killed_fly: Any) -> None:
    catalog, uid, _ = killed_fly
    report = repair_run(catalog, uid)
    assert report.problems == [], report.lines()
    assert report.frames == {"primary/det_image": FRAMES}
    run = catalog.run(uid)
    assert run.metadata["stop"]["exit_status"] == "abort"
    images = np.asarray(run["primary"]["det_image"].read())
    assert images.shape == (FRAMES, 64, 64) and images.any()
