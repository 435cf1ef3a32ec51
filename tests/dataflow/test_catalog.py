"""The embedded Tiled catalog: runs written by a real RunEngine and TiledWriter, external
HDF5 frames read back lazily, queries, run lookup, and scan numbers across processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky.plans import count, scan
from bluesky_tiled_plugins.queries import TimeRange
from ophyd.sim import det, motor
from tiled.client import record_history
from tiled.queries import FullText, Key

from dataflow.catalog import (
    Catalog,
    CatalogError,
    MalformedUidError,
    RunNotFoundError,
    default_data_dir,
    parse_time,
)
from dataflow.scan_id import ScanIdCounter, _check


@pytest.fixture(scope="module")
def filled(catalog: Catalog, frame_cam: Any) -> dict[str, Any]:
    """The module's catalog after four runs: count with frames, scan, failed, live."""
    RE = RunEngine()
    catalog.subscribe(RE)
    cam = frame_cam(name="cam", folder=catalog.raw_dir)
    t0 = time.time()
    (count_uid,) = RE(count([cam, det], 5), sample="CeO2 standard", operator="ada")
    (scan_uid,) = RE(scan([det], motor, -1, 1, 3), sample="Si wafer")

    def failing() -> Any:
        yield from bps.open_run(md={"sample": "broken"})
        raise RuntimeError("shutter jammed")

    with pytest.raises(RuntimeError, match="shutter jammed"):
        RE(failing())
    t1 = time.time()
    return {"count": count_uid, "scan": scan_uid, "cam": cam, "t0": t0, "t1": t1, "RE": RE}


def test_plans_with_ophyd_sim_devices_land_in_the_catalog(catalog: Catalog,
                                                          filled: dict[str, Any]) -> None:
    rows = catalog.runs()
    assert [r.plan_name for r in rows][:2] == ["count", "scan"]
    assert [r.scan_id for r in rows] == [1, 2, 3]
    assert [r.exit_status for r in rows] == ["success", "success", "fail"]
    assert [r.num_points for r in rows][:2] == [5, 3]
    assert rows[0].uid == filled["count"]
    table = catalog.run(filled["scan"])["primary"].read()
    np.testing.assert_allclose(table["motor"], [-1.0, 0.0, 1.0])
    assert len(table["det"]) == 3


def test_frames_read_back_through_tiled_equal_what_was_written(
        catalog: Catalog, filled: dict[str, Any], make_test_frame: Any) -> None:
    FRAME_SHAPE = filled["cam"].frame_shape
    images = catalog.run(filled["count"])["primary"]["cam_image"]
    assert images.shape == (5, *FRAME_SHAPE) and images.dtype == np.uint16
    np.testing.assert_array_equal(images.read(), np.stack([make_test_frame(i) for i in range(5)]))
    # the device's file digest is the file's real SHA-256
    (path,) = catalog.raw_dir.glob("cam_*.h5")
    assert filled["cam"].digests == [hashlib.sha256(path.read_bytes()).hexdigest()]


def test_a_region_of_one_frame_is_fetched_lazily(catalog: Catalog, filled: dict[str, Any],
                                                 make_test_frame: Any) -> None:
    images = catalog.run(filled["count"])["primary"]["cam_image"]
    with record_history() as history:
        region = images[3, 10:14, 5:8]
    np.testing.assert_array_equal(region, make_test_frame(3)[10:14, 5:8])
    # one request, carrying the 12 pixels asked for, not the run or the frame
    (response,) = [r for r in history.responses if "/array/" in str(r.request.url)]
    assert "slice=3" in str(response.request.url)
    assert len(response.content) <= 4 * 3 * 2 + 64 < np.prod(images.shape[1:]) * 2


def test_live_writer_shows_frames_before_the_run_ends(tmp_path: Path, frame_cam: Any) -> None:
    with Catalog(tmp_path / "live") as cat:
        RE = RunEngine()
        cat.subscribe(RE, batch_size=1)
        cam = frame_cam(name="live", folder=cat.raw_dir)
        shape = cam.frame_shape
        seen: list[tuple[int, ...]] = []

        def plan() -> Any:
            yield from bps.stage(cam)
            uid = yield from bps.open_run()
            for _ in range(3):
                yield from bps.trigger_and_read([cam])
                seen.append(tuple(cat.run(uid)["primary"]["live_image"].shape))
            yield from bps.close_run()
            yield from bps.unstage(cam)

        RE(plan())
        assert seen == [(1, *shape), (2, *shape), (3, *shape)]
        with pytest.raises(ValueError, match="batch_size 0"):
            cat.writer(batch_size=0)


def test_writers_fetch_the_runs_container_once(tmp_path: Path) -> None:
    """A ``TiledWriter`` works on its container of runs with the data sources included;
    the catalog asks the server for that node with its first writer only (a reduction
    makes its writer on the path before its first task), and runs written by later
    writers land where the first writer's do."""
    with Catalog(tmp_path / "writers") as cat:
        first = [cat.writer(), cat.derived_writer()]
        with record_history() as history:
            later = [cat.writer(), cat.derived_writer(), cat.derived_writer(batch_size=1)]
        assert history.requests == []
        RE = RunEngine()
        uids: list[str] = []
        for writer in [*first, *later]:
            token = RE.subscribe(writer)
            (uid,) = RE(count([det], 2))
            RE.unsubscribe(token)
            uids.append(uid)
        raw, derived = set(cat.client), set(cat.derived)
        assert [uid in raw for uid in uids] == [True, False, True, False, False]
        assert [uid in derived for uid in uids] == [False, True, False, True, True]
        for uid in uids:
            assert len(cat.every_run[uid]["primary"]["det"].read()) == 2


def test_queries_by_metadata_key(catalog: Catalog, filled: dict[str, Any]) -> None:
    assert list(catalog.search(plan_name="count")) == [filled["count"]]
    assert list(catalog.search(sample="Si wafer")) == [filled["scan"]]
    assert list(catalog.search(scan_id=2)) == [filled["scan"]]
    assert list(catalog.search({"stop.exit_status": "fail"}, sample="broken"))
    assert list(catalog.search(no_such_key=1)) == []
    assert list(catalog.search(plan_name="count", sample="Si wafer")) == []
    # the same query straight through the Tiled client
    assert list(catalog.client.search(Key("operator") == "ada")) == [filled["count"]]


def test_queries_by_time_range(catalog: Catalog, filled: dict[str, Any]) -> None:
    t0, t1 = filled["t0"], filled["t1"]
    assert len(catalog.search(since=t0 - 1, until=t1 + 1)) == 3
    assert len(catalog.search(since=t1 + 1)) == 0
    assert len(catalog.search(until=t0 - 1)) == 0
    day = time.strftime("%Y-%m-%d", time.localtime(t0))
    assert len(catalog.search(since=day)) == 3
    assert list(catalog.search(plan_name="scan", since=t0 - 1)) == [filled["scan"]]
    assert len(catalog.client.search(TimeRange(since=t0 - 1, timezone="UTC"))) == 3
    with pytest.raises(CatalogError, match="since 'soon': not a date"):
        catalog.search(since="soon")
    with pytest.raises(CatalogError, match="is after until"):
        catalog.search(since=t1, until=t0)


def test_queries_by_full_text(catalog: Catalog, filled: dict[str, Any]) -> None:
    assert list(catalog.search(text="CeO2")) == [filled["count"]]
    assert list(catalog.search(text="wafer")) == [filled["scan"]]
    assert list(catalog.search(text="unobtainium")) == []
    # plain words, all of them: no quoting, operator or prefix syntax reaches the database
    assert list(catalog.search(text='"CeO2')) == [filled["count"]]
    assert list(catalog.search(text="ceo2 STANDARD")) == [filled["count"]]
    assert list(catalog.search(text="CeO2 OR wafer")) == []
    assert list(catalog.search(text="AND")) == []
    with pytest.raises(CatalogError, match=r"""^text '"\*': no words to search for"""):
        catalog.search(text='"*')
    assert list(catalog.client.search(FullText("CeO2"))) == [filled["count"]]


def test_run_lookup_by_uid_prefix_and_scan_number(catalog: Catalog,
                                                  filled: dict[str, Any]) -> None:
    uid = filled["count"]
    for ref in (uid, uid[:8], uid.upper()[:10], 1, "1", " 1 "):
        assert catalog.run(ref).metadata["start"]["uid"] == uid
    assert catalog.run(2).metadata["start"]["uid"] == filled["scan"]


@pytest.mark.parametrize("ref", ["xyz!", "12ab", "run-one", "", "0", True, -3])
def test_malformed_run_references_are_refused(catalog: Catalog, ref: Any) -> None:
    with pytest.raises(MalformedUidError, match=r"not a uid|scan number|expected a uid"):
        catalog.run(ref)


def test_unknown_runs_are_reported(catalog: Catalog, filled: dict[str, Any]) -> None:
    with pytest.raises(RunNotFoundError, match="no run with uid 00000000-0000-0000-0000-"):
        catalog.run("00000000-0000-0000-0000-000000000000")
    with pytest.raises(RunNotFoundError, match="no run whose uid starts with 'fffff0'"):
        catalog.run("fffff0")
    with pytest.raises(RunNotFoundError, match="no run with scan number 99"):
        catalog.run(99)


def test_a_uid_prefix_of_digits_only_is_found_when_no_scan_has_that_number(
        tmp_path: Path) -> None:
    from event_model import compose_run

    uids = ["31415926-5358-4979-8323-846264338327", "2718281a-0000-4000-8000-000000000000",
            "00012345-1111-4111-8111-111111111111"]
    with Catalog(tmp_path / "digits") as cat:
        write = cat.writer()
        for n, uid in enumerate(uids, start=1):
            bundle = compose_run(uid=uid, metadata={"scan_id": n})
            write("start", bundle.start_doc)
            write("stop", bundle.compose_stop())
        for ref in ("31415926", "3141592", "27182"):
            assert cat.run(ref).metadata["start"]["uid"].startswith(ref)
        assert cat.run("2").metadata["start"]["uid"] == uids[1]  # the scan number wins
        assert cat.run("00012").metadata["start"]["uid"] == uids[2]  # leading 0: a uid
        with pytest.raises(RunNotFoundError, match=r"^no run whose uid starts with '00003'"):
            cat.run("00003")  # not scan 3
        with pytest.raises(RunNotFoundError, match="no run with scan number 99999 nor a uid "
                                                   "starting with '99999'"):
            cat.run("99999")
        with pytest.raises(RunNotFoundError, match=r"^no run with scan number 99999 in"):
            cat.run(99999)  # an int is only ever a scan number


def test_scan_numbers_persist_across_catalog_openings(tmp_path: Path) -> None:
    folder = tmp_path / "persist"
    with Catalog(folder) as first:
        RE = RunEngine()
        first.subscribe(RE)
        RE(count([det], 1))
        RE(count([det], 1))
    with Catalog(folder) as second:  # a new session: new RunEngine, md starts empty
        RE2 = RunEngine()
        second.subscribe(RE2)
        RE2(count([det], 1))
        assert [r.scan_id for r in second.runs()] == [1, 2, 3]
        assert second.max_scan_id() == 3
    (folder / "scan_id").unlink()  # lost counter: continue from the catalog's highest
    with Catalog(folder) as third:
        RE3 = RunEngine()
        third.subscribe(RE3)
        RE3.md["scan_id"] = 10  # a number set by hand is a floor
        RE3(count([det], 1))
        RE3(count([det], 1))
        assert [r.scan_id for r in third.runs()] == [1, 2, 3, 11, 12]


COUNTER_CHILD = textwrap.dedent("""
    import sys
    from dataflow.scan_id import ScanIdCounter, _check
    c = ScanIdCounter(sys.argv[1])
    print(" ".join(str(c.scan_id_source({})) for _ in range(40)))
""")


def test_two_processes_never_share_a_scan_number(tmp_path: Path, repo_root: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    path = str(tmp_path / "scan_id")
    procs = [subprocess.Popen([sys.executable, "-c", COUNTER_CHILD, path], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    numbers = [int(n) for p in procs for n in p.communicate(timeout=60)[0].split()]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(numbers) == list(range(1, 81))
    assert ScanIdCounter(path).current() == 80


def test_corrupt_counter_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "scan_id").write_text("seven\n")
    with pytest.raises(ValueError, match=r"scan_id: scan number file holds 'seven'"):
        ScanIdCounter(tmp_path / "scan_id").next()


@pytest.mark.parametrize(("text", "expected"), [
    (b"12", 124),  # "123\n" cut short: without its line end, never below the catalog's
    (b"500", 501),  # written by hand without a line end: still the larger
    (b"", 124),  # emptied: the catalog's highest
    (b"113\n", 124),  # an older smeflow's file (no check) with a digit changed: floored
    (b"113 " + _check(123).encode() + b"\n", 124),  # a digit changed under its check
    (b"123 " + _check(123).encode()[:-1] + b"0\n", 124),  # the check changed
])
def test_a_damaged_counter_file_never_hands_out_a_stored_number(tmp_path: Path, text: bytes,
                                                                 expected: int) -> None:
    """Before: "12" (the file "123\n" cut short) handed out 13, and "113\n" (a digit
    changed) 114, numbers the catalog's runs already had (up to 123), without a word."""
    (tmp_path / "scan_id").write_bytes(text)
    assert ScanIdCounter(tmp_path / "scan_id", initial=lambda: 123).next() == expected
    assert (tmp_path / "scan_id").read_bytes() == f"{expected} {_check(expected)}\n".encode()


def test_a_counter_as_written_is_trusted_and_one_ahead_kept_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def no_query() -> int:
        raise AssertionError("the catalog was asked for a number the file holds whole")

    path = tmp_path / "scan_id"
    path.write_bytes(b"122\n")
    assert ScanIdCounter(path, initial=lambda: 122).next() == 123  # (rewritten with a check)
    assert ScanIdCounter(path, initial=no_query).next() == 124
    path.write_bytes(path.read_bytes().replace(b"124", b"194"))  # a digit changed upwards
    with caplog.at_level("WARNING", logger="dataflow.scan_id"):
        assert ScanIdCounter(path, initial=lambda: 124).next() == 195
    assert caplog.messages == [
        f"{path}: scan number 194 is not the one last written ('194 {_check(124)}') and is "
        "70 ahead of the catalog's highest, 124: continuing from it; the numbers between "
        "are skipped"]


def test_a_changed_digit_in_a_catalogs_counter_is_floored_at_its_runs(tmp_path: Path) -> None:
    """As a user meets it: three runs, the counter's 3 turned into a 1 (its check left as
    it was): the next run is scan 4, not a second scan 2."""
    folder = tmp_path / "flipped"
    with Catalog(folder) as catalog:
        RE = RunEngine()
        catalog.subscribe(RE)
        for _ in range(3):
            RE(count([det], 1))
    counter = folder / "scan_id"
    assert counter.read_text() == f"3 {_check(3)}\n"
    counter.write_text(counter.read_text().replace("3 ", "1 "))
    with Catalog(folder) as catalog:
        RE = RunEngine()
        catalog.subscribe(RE)
        RE(count([det], 1))
        assert [r.scan_id for r in catalog.runs()] == [1, 2, 3, 4]


def test_data_folder_default_and_environment(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMEFLOW_DATA", raising=False)
    assert default_data_dir() == Path("smeflow-data")
    monkeypatch.setenv("SMEFLOW_DATA", str(tmp_path / "elsewhere"))
    assert default_data_dir() == tmp_path / "elsewhere"
    (tmp_path / "file").write_text("")
    with pytest.raises(CatalogError, match="is a file, not a folder"):
        Catalog(tmp_path / "file")


def test_parse_time_forms() -> None:
    assert parse_time(12.5) == 12.5
    assert parse_time("1000") == 1000.0
    assert parse_time("1970-01-01T00:00:10+00:00") == 10.0
    with pytest.raises(CatalogError, match="until '2026-13-01': not a date"):
        parse_time("2026-13-01", "until")
