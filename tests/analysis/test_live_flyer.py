"""Live reduction of a flyer's run: ``bp.fly([DetectorFlyer(...)])`` (docs/catalog.md's fly
route) announces its frames with ``stream_resource``/``stream_datum``; runs recorded
before that (``legacy_flyer``) announced them with ``resource``/``datum`` documents and
datum ids in their events (review R8: the live reducer found "no frames arrived" where the
offline reduction of the same run succeeded). Both are reduced live as offline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import bluesky.plans as bp
import numpy as np
import pytest
from event_model import unpack_event_page

from analysis.live import LiveReducer
from analysis.reduce import reduce_run
from devices.fly import FlyParameters
from devices.flyer import DetectorFlyer

FRAMES = 6

Documents = list[tuple[str, dict[str, Any]]]


def _flown(bl: Any, flyer: type) -> Iterator[tuple[Any, LiveReducer, str, Documents]]:
    """A ``bp.fly`` diffraction run reduced live: beamline, reducer, raw uid, documents."""
    bl.beamline.use_powder()
    live = LiveReducer.for_catalog(bl.catalog)
    docs: Documents = []
    bl.RE.subscribe(live)
    bl.RE.subscribe(lambda name, doc: docs.append((name, doc)))
    (uid,) = bl.RE(bp.fly([flyer(bl.det, FlyParameters(frames=FRAMES, exposure=0.01))],
                          md={"geometry": bl.geometry.to_metadata()}))
    assert live.wait(uid, timeout=300)
    yield bl, live, uid, docs
    live.close()


@pytest.fixture(params=["stream", "legacy"])
def flown(smeflow_beamline: Any, legacy_flyer: type, request: pytest.FixtureRequest
          ) -> Iterator[tuple[Any, LiveReducer, str, Documents]]:
    """A ``bp.fly`` run of the flyer, or of the older one (``legacy_flyer``), reduced live."""
    yield from _flown(smeflow_beamline,
                      DetectorFlyer if request.param == "stream" else legacy_flyer)


@pytest.fixture
def flown_legacy(smeflow_beamline: Any, legacy_flyer: type
                 ) -> Iterator[tuple[Any, LiveReducer, str, Documents]]:
    """A ``bp.fly`` run recorded the older way (``resource``/``datum``), reduced live."""
    yield from _flown(smeflow_beamline, legacy_flyer)


def test_a_bp_fly_diffraction_run_is_reduced_live_as_offline(flown: Any) -> None:
    bl, live, uid, docs = flown
    names = {name for name, _ in docs}
    older = {"resource", "datum"}
    newer = {"stream_resource", "stream_datum"}
    legacy = "resource" in names
    assert (older if legacy else newer) <= names and not names & (newer if legacy else older)
    result = live.results[uid]
    assert (result.exit_status, result.frames, result.dropped_frames) == \
        ("success", FRAMES, 0), result.reason
    offline = reduce_run(bl.catalog, uid)
    assert (offline.exit_status, offline.frames) == ("success", FRAMES)
    live_run, offline_run = bl.catalog.run(result.derived_uid), bl.catalog.run(offline.uid)
    for key in ("intensity", "sigma", "raw_seq_num"):
        np.testing.assert_array_equal(np.asarray(live_run["primary"][key].read()),
                                      np.asarray(offline_run["primary"][key].read()))
    assert np.asarray(live_run["primary"]["intensity"].read()).shape[0] == FRAMES
    live_inputs = live_run.metadata["stop"]["inputs"]
    offline_inputs = offline_run.metadata["start"]["inputs"]
    assert sorted(i["uri"] for i in live_inputs) == sorted(i["uri"] for i in offline_inputs)
    assert {i["sha256"] for i in live_inputs} == {i["sha256"] for i in offline_inputs}


def test_dropped_events_of_a_flyer_count_their_frames(flown_legacy: Any) -> None:
    """A frame announced by a datum is named only by its event: a dropped event drops
    the frame, and the derived run says so."""
    bl, _, uid, docs = flown_legacy
    events: Documents = []  # (the same run as a RunEngine emitting events, not a page)
    for name, doc in docs:
        if name == "event_page":
            events += [("event", dict(event)) for event in unpack_event_page(doc)]
        else:
            events.append((name, doc))
    assert sum(name == "event" for name, _ in events) == FRAMES
    gate = threading.Event()

    def stalled(name: str, doc: dict[str, Any]) -> None:
        gate.wait(30)

    reducer = LiveReducer([stalled, bl.catalog.writer()], bl.catalog.raw_dir, capacity=2,
                          put_timeout=0.05)
    try:
        for name, doc in events:
            reducer(name, doc)
        gate.set()
        assert reducer.wait(uid, timeout=120)
    finally:
        gate.set()
        reducer.close()
    result = reducer.results[uid]
    assert reducer.dropped_documents == FRAMES - 2
    assert (result.frames, result.dropped_frames) == (2, FRAMES - 2), result.reason
    assert result.exit_status == "success"
