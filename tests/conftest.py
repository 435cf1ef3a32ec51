"""Shared pytest configuration of the smeflow test suite.

Hypothesis: every property test runs under the ``smeflow`` profile unless its own
``@settings`` say otherwise: fixed examples (``derandomize``: a CI failure reproduces
from the test name alone), no example database written into the tree, no deadline and
no "too slow" health check (CI machines are shared and noisy). ``SMEFLOW_HYPOTHESIS=explore``
turns the randomisation back on for a local search.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile("smeflow", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("explore" if os.environ.get("SMEFLOW_HYPOTHESIS") == "explore"
                      else "smeflow")


@pytest.fixture
def repo_root() -> Path:
    """The repository's top folder."""
    return ROOT



def _stored_run(run: Any, *roots: Path) -> dict[tuple[str, ...], Any]:
    """Every node the catalog holds for a run, by its key path below the run: structure
    family, specs, metadata, data sources (without their database ids, the row numbers of
    the catalog's own tables included; the folders
    ``roots`` in their assets' addresses written ``ROOT0``, ``ROOT1``, ...) and the data
    read back (a table as its columns)."""
    import json

    import numpy as np
    from tiled.client.container import Container

    def plain(value: Any) -> Any:
        text = json.dumps(value, default=str)
        for i, root in enumerate(roots):
            text = text.replace(str(root), f"ROOT{i}")
        return json.loads(text)

    out: dict[tuple[str, ...], Any] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        attributes = node.item["attributes"]
        family = str(attributes["structure_family"])
        entry: dict[str, Any] = {"family": family, "specs": plain(attributes["specs"]),
                                 "metadata": plain(dict(node.metadata))}
        out[path] = entry
        if family == "container":  # (as Tiled has it, past bluesky's run/stream clients)
            container = Container(node.context, item=node.item,
                                  structure_clients=node.structure_clients)
            for key in container:
                walk(Container.__getitem__(container, key), (*path, key))
            return
        entry["sources"] = [
            {key: value for key, value in source.items() if key != "id"}
            | {"assets": [{k: v for k, v in asset.items() if k != "id"}
                          for asset in source["assets"]],
               "parameters": {k: v for k, v in source["parameters"].items()
                              if k != "dataset_id"}}  # (a row number in tables.db)
            for source in plain(node.include_data_sources().item["attributes"]["data_sources"])]
        if family == "table":
            table = node.read()
            entry["data"] = {column: np.asarray(table[column]) for column in table.columns}
        else:
            entry["data"] = np.asarray(node.read())

    walk(getattr(run, "base", run).include_data_sources(), ())
    return out


def _same_stored(a: dict[tuple[str, ...], Any], b: dict[tuple[str, ...], Any]) -> None:
    """Assert two ``_stored_run`` results equal, naming the first node that differs."""
    import numpy as np

    assert sorted(a) == sorted(b)
    for path, entry in a.items():
        other = b[path]
        assert entry.keys() == other.keys(), path
        for key, value in entry.items():
            if key != "data":
                assert value == other[key], (path, key)
                continue
            columns = value if isinstance(value, dict) else {"": value}
            others = other[key] if isinstance(value, dict) else {"": other[key]}
            assert columns.keys() == others.keys(), path
            for column, array in columns.items():
                assert array.dtype == others[column].dtype, (path, column)
                assert np.array_equal(array, others[column]), (path, column)


@pytest.fixture
def stored_run() -> Any:
    """``stored_run(run, *roots)``: every node the catalog holds for a run (``_stored_run``), and
    ``stored_run.same(a, b)``: assert two such results equal (first difference named)."""

    class Stored:
        def __call__(self, run: Any, *roots: Path) -> dict[tuple[str, ...], Any]:
            return _stored_run(run, *roots)

        same = staticmethod(_same_stored)

    return Stored()


@pytest.fixture
def legacy_flyer() -> type:
    """``DetectorFlyer`` as ``bp.fly`` recorded fly runs before it announced its frames with
    ``stream_resource``/``stream_datum`` (``tests/dataflow/legacy_flyer.py``), for the
    tests of readers that must keep reading such runs."""
    from .dataflow.legacy_flyer import LegacyFlyer

    return LegacyFlyer
