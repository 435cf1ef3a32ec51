"""Run searches by start-document field (``dataflow.run_search``): ``key=value`` matches a
field equal to the value or a list holding it, ``holding`` (``--contains``) a list holding
it — exactly, the same on the embedded SQLite catalog and on a server's PostgreSQL one.

Review U6: Tiled's ``Contains`` is ``LIKE '%value%'`` on SQLite, so ``plan_name=scan``
also listed ``rel_scan`` and ``grid_scan``, ``plan_name=c`` every count and scan,
``sample=a`` sample "A", ``plan_name=rel%`` was a wildcard and ``motors=sample`` found
``["sample_x"]``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky import plans as bp
from ophyd.sim import det

from dataflow.catalog import Catalog
from dataflow.cli import main
from dataflow.remote import RemoteCatalog
from dataflow.server import ServerHandle

RUNS: dict[str, dict[str, Any]] = {
    "scan": {"motors": ["sample_x"], "sample": "A", "n": 1, "flag": True},
    "rel_scan": {"motors": ["sample_x", "sample_y"], "sample": "a b", "n": [1, 2],
                 "flag": [True], "detail": {"inner": ["v", "w"]}},
    "grid_scan": {"motors": ["sample"], "sample": "Sample_x%", "n": [1.5],
                  "detail": {"inner": "v"}},
    "count": {"sample": "SCAN", "tags": ["x_1", "10%", "\u00e9chantillon", 'say "hi"',
                                         "a\\b", "\u8a66\u6599"], "n": 10, "flag": 1},
}
"""Each run's plan_name and the rest of its start document's own fields."""

CASES: list[tuple[dict[str, Any], list[str]]] = [
    ({"plan_name": "scan"}, ["scan"]),
    ({"plan_name": "c"}, []),
    ({"plan_name": "SCAN"}, []),
    ({"plan_name": "rel%"}, []),
    ({"plan_name": "_can"}, []),
    ({"plan_name": "count"}, ["count"]),
    ({"sample": "a"}, []),
    ({"sample": "A"}, ["scan"]),
    ({"sample": "SCAN"}, ["count"]),
    ({"sample": "Sample_x%"}, ["grid_scan"]),
    ({"motors": "sample"}, ["grid_scan"]),
    ({"motors": "sample_x"}, ["rel_scan", "scan"]),
    ({"motors": "sample_"}, []),
    ({"motors": "x"}, []),
    ({"tags": "10%"}, ["count"]),
    ({"tags": "1"}, []),
    ({"tags": "\u00e9chantillon"}, ["count"]),
    ({"tags": "chantillon"}, []),
    ({"tags": 'say "hi"'}, ["count"]),
    ({"tags": "a\\b"}, ["count"]),
    ({"tags": "\u8a66\u6599"}, ["count"]),
    ({"flag": True}, ["rel_scan", "scan"]),
    ({"flag": 1}, ["count"]),
    ({"n": 1}, ["rel_scan", "scan"]),
    ({"n": 2}, ["rel_scan"]),
    ({"n": 10}, ["count"]),
    ({"n": 0}, []),
    ({"detail.inner": "v"}, ["grid_scan", "rel_scan"]),
    ({"detail.inner": "w"}, ["rel_scan"]),
    ({"start.sample": "A"}, ["scan"]),
    ({"stop.exit_status": "success"}, ["count", "grid_scan", "rel_scan", "scan"]),
]

HOLDING: list[tuple[dict[str, Any], list[str]]] = [
    ({"motors": "sample"}, ["grid_scan"]),
    ({"motors": "sample_x"}, ["rel_scan", "scan"]),
    ({"sample": "A"}, []),  # a field that is no list holds nothing
    ({"tags": "x"}, []),
    ({"n": 1}, ["rel_scan"]),
]


def _record(catalog: Any) -> None:
    RE = RunEngine({})
    catalog.subscribe(RE)
    for plan_name, md in RUNS.items():
        RE(bp.count([det], 1, md={**md, "plan_name": plan_name}))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The runs of ``RUNS`` in an embedded catalog (SQLite) and in a catalog server's
    PostgreSQL database, searched over HTTP."""
    folder = tmp_path_factory.mktemp(request.param) / "data"
    if request.param == "sqlite":
        with Catalog(folder) as embedded:
            _record(embedded)
            yield embedded
        return
    key = secrets.token_hex(16)
    uri = request.getfixturevalue("postgres_uri")
    with ServerHandle(folder, key, database=uri) as server, \
            RemoteCatalog(server.url, key) as remote:
        _record(remote)
        yield remote


def _plans(found: Any) -> list[str]:
    return sorted(run.metadata["start"]["plan_name"] for run in found.values())


@pytest.mark.parametrize(("criteria", "want"), CASES, ids=[str(c) for c, _ in CASES])
def test_key_value_matches_equal_fields_and_lists_holding_the_value(
        catalog: Any, criteria: dict[str, Any], want: list[str]) -> None:
    assert _plans(catalog.search(criteria)) == want


@pytest.mark.parametrize(("criteria", "want"), HOLDING, ids=[str(c) for c, _ in HOLDING])
def test_holding_matches_lists_with_an_equal_element(
        catalog: Any, criteria: dict[str, Any], want: list[str]) -> None:
    assert _plans(catalog.search(holding=criteria)) == want


def test_the_reviews_searches(smeflow_beamline: Any, capsys: Any) -> None:
    """The review's reproduction: runs of the simulated beamline, searched in the
    embedded catalog and through ``smeflow catalog search``."""
    RE, catalog, bl = smeflow_beamline.RE, smeflow_beamline.catalog, smeflow_beamline.beamline
    RE(bp.count([bl.det], 1, md={"sample": "A"}))
    RE(bp.scan([bl.det], bl.sample_x, 0, 1, 2))
    RE(bp.rel_scan([bl.det], bl.sample_x, -1, 1, 2))
    assert _plans(catalog.search(plan_name="scan")) == ["scan"]
    assert _plans(catalog.search(plan_name="c")) == []
    assert _plans(catalog.search(plan_name="SCAN")) == []
    assert _plans(catalog.search(plan_name="rel%")) == []
    assert _plans(catalog.search(sample="a")) == []
    assert _plans(catalog.search(motors="sample")) == []  # motors: ["sample_x"]
    assert _plans(catalog.search(motors="sample_x")) == ["rel_scan", "scan"]
    assert _plans(catalog.search(holding={"motors": "sample"})) == []
    folder = str(Path(catalog.raw_dir).parent)
    assert main(["search", "--data", folder, "plan_name=scan"]) == 0
    out = capsys.readouterr().out
    assert "rel_scan" not in out and out.strip().endswith("1 run")
