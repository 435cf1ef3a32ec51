"""The catalog's layout: raw runs and derived runs in two containers, so ``catalog[-1]``
(and databroker's ``db[-1]``) stay the instrument's last run after a reduction; a catalog
written before the layout still opens with its runs where they are."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from event_model import compose_run

from dataflow.broker import open_broker
from dataflow.catalog import (
    DERIVED,
    RAW,
    ROOT_SPEC,
    Catalog,
    MalformedUidError,
    RunNotFoundError,
    run_details,
)
from dataflow.cli import main as catalog_main


def write_run(writer: Any, **md: Any) -> str:
    """A minimal run (one event) written with ``writer``; returns its uid."""
    bundle = compose_run(metadata=md)
    writer("start", bundle.start_doc)
    desc = bundle.compose_descriptor(name="primary", data_keys={
        "x": {"source": "test", "dtype": "number", "shape": []}})
    writer("descriptor", desc.descriptor_doc)
    writer("event", desc.compose_event(data={"x": 1.0}, timestamps={"x": 0.0}))
    writer("stop", bundle.compose_stop())
    return str(bundle.start_doc["uid"])


def test_derived_runs_live_apart_from_raw_runs(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with Catalog(tmp_path / "data") as catalog:
        assert sorted(catalog.tree) == sorted([RAW, DERIVED])
        raw = write_run(catalog.writer(), plan_name="count", scan_id=1)
        derived = write_run(catalog.derived_writer(), plan_name="reduce", raw_uid=raw)
        assert catalog.client[-1].metadata["start"]["uid"] == raw
        assert open_broker(catalog)[-1].start["uid"] == raw
        assert list(catalog.client) == [raw] and list(catalog.derived) == [derived]
        assert list(catalog.derived_runs(raw)) == [derived]
        # a derived run is still found by its uid, never by a scan number
        assert catalog.run(derived).metadata["start"]["raw_uid"] == raw
        assert catalog.run(derived[:8]).metadata["start"]["uid"] == derived
        assert catalog.run(1).metadata["start"]["uid"] == raw
        with pytest.raises(RunNotFoundError, match="no run with scan number 2"):
            catalog.run(2)
        assert catalog.every_run[derived].metadata["start"]["uid"] == derived
        (listed,) = run_details(catalog.run(raw))["derived"]  # found beside the raw runs
        assert listed["uid"] == derived
    assert catalog_main(["show", raw, "--data", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert f"derived runs:\n  {derived}" in out


def test_a_catalog_written_before_the_layout_still_opens(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Runs at the top of the catalog (smeflow's first layout): read and written there."""
    from bluesky_tiled_plugins import TiledWriter
    from tiled.catalog import from_uri
    from tiled.client import from_context
    from tiled.client.context import Context
    from tiled.server.app import build_app

    folder = tmp_path / "old"
    (folder / "storage").mkdir(parents=True)
    adapter = from_uri(f"sqlite:///{folder / 'catalog.db'}",
                       writable_storage=[str(folder / "storage"),
                                         f"sqlite:///{folder / 'tables.db'}"],
                       init_if_not_exists=True, specs=[ROOT_SPEC])
    with Context.from_app(build_app(adapter)) as context:
        old = write_run(TiledWriter(from_context(context)), plan_name="count", scan_id=7)
    with caplog.at_level(logging.WARNING, logger="dataflow.catalog"), \
            Catalog(folder) as catalog:
        assert "written before the raw/derived layout" in caplog.text
        assert RAW not in catalog.tree  # nothing added to an old catalog
        assert catalog.run(7).metadata["start"]["uid"] == old
        assert catalog.client[-1].metadata["start"]["uid"] == old
        new = write_run(catalog.writer(), plan_name="count", scan_id=8)
        assert [s.uid for s in catalog.runs()] == [old, new]


def test_looking_a_derived_run_up_by_uid_keeps_no_caller_alive(tmp_path: Path) -> None:
    """``every_run[uid]`` asks the raw runs first; the failed request's exception sat in a
    reference cycle (Tiled's client keeps it in a future its traceback refers to) holding
    every caller's frame — a live reducer's whole reconstruction (64 MB in the demo, GB
    at 1 Mpix) stayed resident until Python's cyclic collector happened to run."""
    import gc
    import weakref

    class Held:
        """Stands for the caller's data."""

    with Catalog(tmp_path / "data") as catalog:
        raw = write_run(catalog.writer(), plan_name="count")
        derived = write_run(catalog.derived_writer(), plan_name="reduce", raw_uid=raw)
        runs = catalog.every_run

        def look_up() -> weakref.ref[Held]:
            held = Held()
            assert runs[derived].metadata["start"]["uid"] == derived
            return weakref.ref(held)

        gc.collect()
        gc.disable()  # freed by reference counting, or not at all
        try:
            ref = look_up()
            assert ref() is None, "the lookup's exception keeps the caller's frame alive"
        finally:
            gc.enable()


def test_derived_runs_takes_the_refs_run_takes(tmp_path: Path) -> None:
    """``derived_runs`` finds a raw run's reductions by any reference ``run`` accepts — a
    uid prefix, a scan number (int or text), a full uid in capitals — and refuses what
    ``run`` refuses; it used to search ``raw_uid == ref`` and found nothing (no error) for
    anything but the exact full uid."""
    with Catalog(tmp_path / "data") as catalog:
        raw = write_run(catalog.writer(), plan_name="count", scan_id=4)
        other = write_run(catalog.writer(), plan_name="count", scan_id=5)
        derived = write_run(catalog.derived_writer(), plan_name="reduce", raw_uid=raw)
        for ref in (raw, raw.upper(), f" {raw} ", raw[:8], 4, "4"):
            assert list(catalog.derived_runs(ref)) == [derived], ref
        assert list(catalog.derived_runs(other)) == []
        assert list(catalog.derived_runs(5)) == []
        with pytest.raises(RunNotFoundError, match="no run with scan number 9"):
            catalog.derived_runs(9)
        with pytest.raises(RunNotFoundError):
            catalog.derived_runs("abcdef")
        with pytest.raises(MalformedUidError):
            catalog.derived_runs("not-a-uid")
