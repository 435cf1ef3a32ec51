"""Sorting a catalog of runs and asking for its distinct values, as Tiled's client
documentation does it (``tree.sort(("color", ASCENDING), ("height", DESCENDING))``;
"10 minutes to Tiled": ``x.search(Key('element.category') == 'nonmetal')`` then
``x.distinct('element.category', counts=True)['metadata']``), on smeflow's catalogs.

The reference is what the RunEngine emitted (the runs' scan numbers and plan names) and
bluesky's own reading of a key, its ``search``: ``Key("plan_name")`` means the start
document's. Before ``dataflow.run_keys``, ``sort(("scan_id", -1))`` answered the runs in
the order they were written, and ``distinct("plan_name")`` a ``None`` for every run,
without an error.
"""

from __future__ import annotations

import secrets
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky.plans import count, scan
from ophyd.sim import det, motor
from tiled.client import ASCENDING, DESCENDING
from tiled.queries import Key

from dataflow.broker import open_broker
from dataflow.catalog import Catalog
from dataflow.run_keys import direction, refusal


def take_runs(RE: RunEngine) -> dict[int, str]:
    """Four runs of two plans, written in scan-number order: their plan names by scan_id."""
    starts: dict[int, str] = {}
    RE.subscribe(lambda name, doc: starts.__setitem__(doc["scan_id"], doc["plan_name"])
                 if name == "start" else None)
    RE(count([det], 2))
    RE(scan([det], motor, -1, 1, 3))
    RE(count([det], 1))
    RE(scan([det], motor, 0, 1, 2))
    return starts


@pytest.fixture(scope="module")
def written(catalog: Catalog) -> dict[int, str]:
    RE = RunEngine()
    catalog.subscribe(RE)
    return take_runs(RE)


def check_sort_and_distinct(runs: Any, starts: dict[int, str]) -> None:
    """``runs`` (smeflow's catalog of runs) sorts and counts by start-document keys."""
    newest_first = [r.metadata["start"]["scan_id"] for r in runs.sort(("scan_id", DESCENDING)).values()]
    assert newest_first == sorted(starts, reverse=True)
    by_plan = [r.metadata["start"]["scan_id"]
               for r in runs.sort(("plan_name", ASCENDING), ("scan_id", DESCENDING)).values()]
    assert by_plan == sorted(starts, key=lambda s: (starts[s], -s))
    assert runs.keys().first() == runs.sort(("scan_id", ASCENDING)).keys().first()
    counts = runs.distinct("plan_name", counts=True)["metadata"]
    assert {d["value"]: d["count"] for d in counts["plan_name"]} == Counter(starts.values())
    for value in set(starts.values()):  # the same key means the same thing in search
        assert len(runs.search(Key("plan_name") == value)) == Counter(starts.values())[value]
    # a key named in full keeps its meaning; the answer is under the key as given
    both = runs.distinct("start.plan_name", "stop.exit_status", counts=True)["metadata"]
    assert {d["value"]: d["count"] for d in both["stop.exit_status"]} == {"success": len(starts)}
    assert len(both["start.plan_name"]) == len(set(starts.values()))


def test_sort_and_distinct_read_start_document_keys(catalog: Catalog,
                                                    written: dict[int, str]) -> None:
    runs = open_broker(catalog).v2
    check_sort_and_distinct(runs, written)
    check_sort_and_distinct(runs.v2, written)  # databroker's v2 runs: the same catalog
    # a search result sorts the same way
    counts = runs.search(Key("plan_name") == "scan").sort(("scan_id", DESCENDING))
    assert [r.metadata["start"]["scan_id"] for r in counts.values()] == \
        sorted((s for s, p in written.items() if p == "scan"), reverse=True)


def test_a_plain_client_is_refused_instead_of_answered_unsorted(catalog: Catalog,
                                                                 written: dict[int, str]) -> None:
    from tiled.client.utils import ClientError

    plain = catalog.client  # bluesky-tiled-plugins' own catalog of runs
    with pytest.raises(ClientError, match=r"sort key 'scan_id' is no key of a run's "
                       r"metadata.*use 'start\.scan_id'"):
        list(plain.sort(("scan_id", -1)))  # (Tiled's DESCENDING: its own TypeError)
    with pytest.raises(ClientError, match=r"distinct key 'plan_name'.*use 'start\.plan_name'"):
        plain.distinct("plan_name", counts=True)
    named = [r.metadata["start"]["scan_id"] for r in plain.sort(("start.scan_id", -1)).values()]
    assert named == sorted(written, reverse=True)


def test_over_http_smeflows_client_sorts_and_tileds_is_refused(tmp_path: Path) -> None:
    from tiled.client import from_uri
    from tiled.client.utils import ClientError

    from dataflow.remote import RemoteCatalog
    from dataflow.server import ServerHandle

    key = secrets.token_hex(16)
    with ServerHandle(tmp_path / "data", key) as server, \
            RemoteCatalog(server.url, key) as remote:
        RE = RunEngine({})
        remote.subscribe(RE)
        starts = take_runs(RE)
        check_sort_and_distinct(open_broker(remote).v2, starts)
        plain = from_uri(f"{server.url}/api/v1/metadata/raw", api_key=key)
        with pytest.raises(ClientError, match=r"use 'start\.scan_id'"):
            list(plain.sort(("scan_id", -1)))
        with pytest.raises(ClientError, match=r"use 'start\.plan_name'"):
            plain.distinct("plan_name")


@pytest.mark.parametrize(("path", "query", "refused"), [
    ("/api/v1/search/raw", "sort=-scan_id", "sort key 'scan_id'"),
    ("/api/v1/search/raw/", "sort=start.scan_id&sort=plan_name", "sort key 'plan_name'"),
    ("/api/v1/search/derived", "sort=%2Bsample", "sort key 'sample'"),
    ("/api/v1/distinct/raw", "metadata=start.plan_name&metadata=plan_name",
     "distinct key 'plan_name'"),
    ("/api/v1/search/raw", "sort=-start.scan_id&sort=stop.time&sort=", None),
    ("/api/v1/search/raw", "sort=_", None),
    ("/api/v1/distinct/derived", "metadata=summary.duration&metadata=notes", None),
    ("/api/v1/search/raw/0a61a884/primary", "sort=anything", None),  # inside a run
    ("/api/v1/search/", "sort=anything", None),  # the root holds containers, not runs
])
def test_which_requests_are_refused(path: str, query: str, refused: str | None) -> None:
    reason = refusal(path, query.encode())
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith(refused)


def test_sort_directions_are_tileds_names_or_plus_minus_one() -> None:
    assert [direction(w) for w in (ASCENDING, DESCENDING, 1, -1)] == [1, -1, 1, -1]
    for wrong in (2, 0, True, "desc", -1.0, None):
        with pytest.raises(ValueError, match=f"sort direction {wrong!r}: expected 1"):
            direction(wrong)
