"""databroker's v1 ``table()`` of a run that ended before its first event.

The reference is databroker itself: the table of a run of the same devices that has
events (its columns and their dtypes), and databroker's answer for a run without events
before 2.x, an empty DataFrame (bluesky/databroker#42). databroker 2.0.2 raised
``IndexError: list index out of range`` for a run with no descriptor, and lost every
column but ``time`` for a declared stream without events.
"""

from __future__ import annotations

from typing import Any

import pandas
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.plans import count
from ophyd.sim import det, motor

from dataflow.broker import open_broker
from dataflow.catalog import Catalog


class Aborted(Exception):
    pass


def failing(devices: list[Any], declare: bool) -> Any:
    """A run that fails before its first event, after declaring its primary stream or
    before it."""
    @bpp.stage_decorator(devices)
    @bpp.run_decorator(md={"purpose": "aborted"})
    def inner() -> Any:
        if declare:
            yield from bps.declare_stream(*devices, name="primary")
        yield from bps.null()
        raise Aborted("the scan failed before its first event")
    return (yield from inner())


@pytest.fixture(scope="module")
def runs(catalog: Catalog, frame_cam: Any) -> dict[str, Any]:
    """The Broker, and the headers of: a run of cam, det and motor with two events; the
    same devices' run failed after declaring its stream; one failed before; and
    ``count([det], 0)`` (a successful run without events)."""
    RE = RunEngine()
    catalog.subscribe(RE)
    cam = frame_cam(name="cam", folder=catalog.raw_dir)
    (full,) = RE(count([cam, det, motor], 2))
    uids = {"full": full}
    for name, declare in (("declared", True), ("undeclared", False)):
        with pytest.raises(Aborted):
            RE(failing([cam, det, motor], declare))
        uids[name] = catalog.client[-1].metadata["start"]["uid"]
    (uids["zero"],) = RE(count([det], 0))
    db = open_broker(catalog)
    return {"db": db, **{name: db[uid] for name, uid in uids.items()}}


@pytest.mark.parametrize("fill", [False, True])
def test_a_declared_stream_without_events_has_the_runs_columns(runs: dict[str, Any],
                                                                fill: bool) -> None:
    full = runs["full"].table(fill=fill)
    empty = runs["declared"].table(fill=fill)
    assert runs["declared"].stop["exit_status"] == "fail"
    assert len(full) == 2 and len(empty) == 0
    assert sorted(empty.columns) == sorted(full.columns)
    assert ("cam_image" in empty.columns) is fill  # external: with fill only, as databroker
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    assert empty.index.name == full.index.name == "seq_num"


def test_fields_choose_the_columns_of_an_empty_table(runs: dict[str, Any]) -> None:
    full = runs["full"].table(fields=["det"])
    empty = runs["declared"].table(fields=["det"])
    assert list(empty.columns) == sorted(full.columns) == ["det", "time"]


@pytest.mark.parametrize("run", ["undeclared", "zero"])
def test_a_run_without_a_descriptor_is_an_empty_table(runs: dict[str, Any], run: str) -> None:
    header = runs[run]
    assert header.stream_names == []
    for table in (header.table(), header.table(fill=True), header.table("baseline")):
        assert isinstance(table, pandas.DataFrame)
        assert table.shape == (0, 0) and table.index.name == "seq_num"


def test_tables_of_several_runs_keep_the_events(runs: dict[str, Any]) -> None:
    db = runs["db"]
    both = db.get_table([runs["undeclared"], runs["full"], runs["declared"]])
    assert len(both) == 2
    pandas.testing.assert_frame_equal(both, runs["full"].table())


def test_the_headers_of_a_search_read_as_those_looked_up(runs: dict[str, Any]) -> None:
    """``db(...)`` (databroker's search) gives headers whose tables are ``db[uid]``'s: its
    ``Results`` made them a plain databroker ``Broker``'s, whose ``table()`` raised
    ``IndexError`` for a run without a descriptor and kept only ``time`` of a declared one."""
    db = runs["db"]
    found = {h.start["uid"]: h for h in db(purpose="aborted")}
    assert set(found) == {runs["declared"].start["uid"], runs["undeclared"].start["uid"]}
    for name in ("declared", "undeclared"):
        for fill in (False, True):
            pandas.testing.assert_frame_equal(found[runs[name].start["uid"]].table(fill=fill),
                                              runs[name].table(fill=fill))
    (zero,) = [h for h in db(plan_name="count") if h.start["uid"] == runs["zero"].start["uid"]]
    assert zero.table().shape == (0, 0)


def test_data_of_a_stream_without_events_yields_nothing(runs: dict[str, Any]) -> None:
    """``header.data(field)`` yields the field of each event (databroker 1.x: ``for event in
    self.events(...): yield event['data'][field]``), so none for a stream without events;
    databroker 2.0.2 raised ``KeyError: 'det'`` (``KeyError: ''`` without a descriptor)."""
    full = runs["full"]
    assert list(full.data("det")) == list(full.table()["det"])
    frames = list(full.data("cam_image"))
    assert len(frames) == 2 and all(f.shape == (40, 24) for f in frames)
    for name in ("declared", "undeclared", "zero"):
        assert list(runs[name].data("det")) == []
        assert list(runs[name].data("cam_image")) == []
    with pytest.raises(KeyError, match="stream 'primary' has no field 'dte' \\(its fields: "
                       "cam_image, cam_total, det, motor, motor_setpoint\\)"):
        list(runs["declared"].data("dte"))
    with pytest.raises(KeyError, match="has no field 'dte'"):
        list(full.data("dte"))
