"""Data keys holding small arrays (16 values or fewer) are stored and read back, in raw and
derived runs and through the spool's writer (new-user review N4).

``TiledWriter`` keeps internal arrays of up to 16 values in the stream's table, and Tiled's
SQL table store on SQLite has no list type: the first such event failed the stream with
'Unsupported PyArrow type: list<item: double>' — a ``bp.count`` of a device reading a
3-vector, or ``smeflow reduce RUN --bins 10`` (its derived run failed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from event_model import compose_run

from dataflow.catalog import Catalog
from dataflow.spool import write_run

SIZES = (1, 3, 16, 17)


def documents(sizes: tuple[int, ...]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """A run of two events, each with a float array of every size and an int 3-vector."""
    bundle = compose_run(metadata={"plan_name": "count"})
    keys = {f"v{n}": {"source": "t", "dtype": "array", "shape": [n], "dtype_numpy": "<f8"}
            for n in sizes}
    keys["ints"] = {"source": "t", "dtype": "array", "shape": [3], "dtype_numpy": "<i8"}
    desc = bundle.compose_descriptor(name="primary", data_keys=keys)
    docs: list[tuple[str, dict[str, Any]]] = [("start", bundle.start_doc),
                                              ("descriptor", desc.descriptor_doc)]
    for i in range(2):
        data: dict[str, Any] = {f"v{n}": list(np.arange(n) + 0.5 * i) for n in sizes}
        data["ints"] = [i, 2 * i, 3 * i]
        docs.append(("event", desc.compose_event(data=data, timestamps=dict.fromkeys(data,
                                                                                   0.0))))
    docs.append(("stop", bundle.compose_stop()))
    return str(bundle.start_doc["uid"]), docs


def check(run: Any) -> None:
    for n in SIZES:
        expected = np.stack([np.arange(n) + 0.5 * i for i in range(2)])
        assert np.array_equal(run["primary"][f"v{n}"].read(), expected), n
    assert run["primary"]["ints"].read().tolist() == [[0, 0, 0], [1, 2, 3]]


@pytest.mark.parametrize("which", ["raw", "derived"])
@pytest.mark.parametrize("batch_size", [None, 1])
def test_small_arrays_are_stored_and_read_back(tmp_path: Path, which: str,
                                               batch_size: int | None) -> None:
    with Catalog(tmp_path / "data") as catalog:
        writer = catalog.writer(batch_size) if which == "raw" else \
            catalog.derived_writer(batch_size)
        uid, docs = documents(SIZES)
        for name, doc in docs:
            writer(name, doc)
        check(catalog.run(uid))


def test_the_spools_writer_stores_small_arrays(tmp_path: Path) -> None:
    with Catalog(tmp_path / "data") as catalog:
        uid, docs = documents(SIZES)
        write_run(catalog.client, docs)
        check(catalog.run(uid))
