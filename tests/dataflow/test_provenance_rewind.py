"""``verify_run`` on runs a pause or a suspender rewound (review U8): bluesky takes the
reading again under the ``seq_num`` it had, so a stream holds one event more than the
stop document counts (its ``seq_num`` counter). That is no change to the run: the events
check says so, and still flags a count that matches neither."""

from __future__ import annotations

from typing import Any

from bluesky import plan_stubs as bps
from bluesky import plans as bp
from bluesky.utils import RunEngineInterrupted

from dataflow.disk_check import check_run_on_disk
from dataflow.provenance.verify import verify_run


def _paused_count(smeflow_beamline: Any) -> tuple[Any, list[dict[str, Any]]]:
    """The review's reproduction: a count of 6 frames paused after the third event
    (as ``RE.request_pause()`` between two frames) and resumed."""
    RE, catalog, det = smeflow_beamline.RE, smeflow_beamline.catalog, smeflow_beamline.det
    emitted: list[tuple[str, dict[str, Any]]] = []
    RE.subscribe(lambda name, doc: emitted.append((name, doc)))
    paused: list[bool] = []

    def per_shot(dets: Any, take_reading: Any = None) -> Any:
        yield from bps.one_shot(dets)
        if not paused and sum(n == "event" for n, _ in emitted) >= 3:
            paused.append(True)
            yield from bps.pause()

    try:
        RE(bp.count([det], 6, per_shot=per_shot))
    except RunEngineInterrupted:
        RE.resume()
    uid = emitted[0][1]["uid"]
    sent = [doc for name, doc in emitted if name == "event"]
    assert len({doc["seq_num"] for doc in sent}) < len(sent)  # the rewind's repeat
    return catalog.client[uid], sent


def test_a_paused_and_resumed_count_passes_verify(smeflow_beamline: Any) -> None:
    run, sent = _paused_count(smeflow_beamline)
    found = check_run_on_disk(run)
    assert found.events["primary"] == len(sent)
    assert found.sequence["primary"] == len({doc["seq_num"] for doc in sent})
    report = verify_run(run)
    events = [c for c in report.checks if c.kind == "events"]
    assert events and all(c.status == "OK" for c in events), [c.line() for c in events]
    assert any("taken again after a rewind" in c.line() for c in events)


def test_a_count_matching_neither_is_still_changed(smeflow_beamline: Any,
                                                   monkeypatch: Any) -> None:
    """The same run, its stop document made to say one event fewer than bluesky
    counted: CHANGED."""
    import dataflow.provenance.verify as verify

    run, _ = _paused_count(smeflow_beamline)
    real = verify.check_run_on_disk

    def one_more(node: Any) -> Any:
        found = real(node)
        found.sequence["primary"] += 1
        found.events["primary"] += 1
        return found

    monkeypatch.setattr(verify, "check_run_on_disk", one_more)
    report = verify_run(run)
    events = [c for c in report.checks if c.kind == "events"]
    assert [c.status for c in events] == ["CHANGED"], [c.line() for c in events]
