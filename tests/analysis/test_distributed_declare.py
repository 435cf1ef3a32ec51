"""The Dask tomography's volume stream declared while the last tasks compute
(``analysis.distributed``: ``DerivedRun.declare_volume`` once the client has a core the
local workers leave idle): the same documents in the same order as declared at the end,
the same run stored, and a reduction failing after the declaration is a failed run with
no volume."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky_tiled_plugins import TiledWriter

import analysis.distributed as distributed
from analysis.distributed import DaskSession, connect, reduce_on_dask
from analysis.reduce import reduce_run, uri_path
from dataflow.catalog import Catalog
from dataflow.event_pages import PageNormalizer
from dataflow.hdf5 import open_frames
from dataflow.hdf5_reserve import ReservedFrameWriter
from dataflow.synthetic_run import write_tomo_run

SIZE, PROJECTIONS = 32, 12


def _write_tomo_run(catalog: Catalog) -> str:
    """A small ``tomo_scan`` run (darks, flats, projections of a disc), written as the
    benchmark's synthetic run is."""
    y, x = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    angles = np.linspace(0.0, 180.0, PROJECTIONS, endpoint=False)
    path = np.clip((SIZE / 3) ** 2 - x**2, 0, None) ** 0.5 / SIZE  # (a disc's chords)
    return write_tomo_run(
        catalog, dark=np.full((2, SIZE, SIZE), 100, np.uint16),
        flat=np.full((2, SIZE, SIZE), 3000, np.uint16),
        primary=np.repeat((100 + 2900 * np.exp(-path * (1 + y / SIZE)))
                          .astype(np.uint16)[None], PROJECTIONS, axis=0),
        angles=angles, source="test", file_prefix="t_")


@pytest.fixture(scope="module")
def tomo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Catalog, str]]:
    with Catalog(tmp_path_factory.mktemp("declare") / "data") as catalog:
        yield catalog, _write_tomo_run(catalog)


@pytest.fixture(scope="module")
def session() -> Iterator[DaskSession]:
    with connect("local", 2) as opened:
        yield opened


def test_the_client_takes_a_core_the_workers_leave_idle(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule: workers elsewhere leave the client its core; local workers do once
    fewer of them compute than the machine has cores (PoCL threads counted)."""
    local = DaskSession(client=None, scheduler="local", cluster=object())
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # (a 2-core machine)
    has = distributed._client_has_a_core
    assert has(DaskSession(client=None, scheduler="tcp://h:1"), 8, 100)
    assert [has(local, 2, left) for left in (8, 2, 1, 0)] == [False, False, True, True]
    assert has(local, 1, 8)
    local.cores_per_worker = 2
    assert [has(local, 1, left) for left in (2, 1, 0)] == [False, False, True]


@pytest.mark.parametrize("when", ["idle_core", "at_once", "at_the_end"])
def test_the_volume_stream_is_declared_beside_the_last_tasks(
        tomo: tuple[Catalog, str], session: DaskSession, monkeypatch: pytest.MonkeyPatch,
        when: str, stored_run: Any) -> None:
    """Declared once the client has a core (here: with one task left, as on a 2-core
    machine with 2 workers; at once, as with fewer workers than cores; at the end, when
    no core is ever free): the descriptor and row events go out while that many tasks
    are unfinished, the file's documents after every task ended and every checksum was
    recorded (in one call, fetched in one request), in the order start, descriptor,
    event_page, stream_resource, stream_datum, stop; and the catalog holds the run
    ``TiledWriter`` stores from those documents, with the single-process volume."""
    catalog, uid = tomo
    verdict = {"idle_core": lambda left: left <= 1, "at_once": lambda left: True,
               "at_the_end": lambda left: False}[when]
    seen: list[str] = []

    def rule(session: DaskSession, workers: int, left: int) -> bool:
        seen.append(f"{left} unfinished")
        return verdict(left)

    monkeypatch.setattr(distributed, "_client_has_a_core", rule)
    record = ReservedFrameWriter.set_checksums

    def checksums(self: ReservedFrameWriter, first: int, crcs: Any) -> None:
        seen.append(f"checksums {first}..{first + len(crcs) - 1}")
        record(self, first, crcs)

    monkeypatch.setattr(ReservedFrameWriter, "set_checksums", checksums)
    docs: list[tuple[str, dict[str, Any]]] = []

    def keep(name: str, doc: dict[str, Any]) -> None:
        seen.append(name)
        docs.append((name, doc))

    summary = reduce_on_dask(catalog, uid, session, task_rows=8, chunk_frames=5,
                             callbacks=[catalog.derived_writer(), keep])
    monkeypatch.undo()
    assert summary.exit_status == "success"
    assert [name for name, _ in docs] == ["start", "descriptor", "event_page",
                                          "stream_resource", "stream_datum", "stop"]
    tasks = SIZE // 8
    asked = [f"{left} unfinished" for left in range(tasks, -1, -1)]
    at = {"idle_core": 1, "at_once": tasks, "at_the_end": None}[when]
    if at is None:  # (asked after each task, never granted: declared with the file)
        assert seen[1:tasks + 2] == asked
        assert seen[tasks + 2:] == [f"checksums 0..{SIZE - 1}", *[n for n, _ in docs[1:]]]
    else:
        i = seen.index(f"{at} unfinished")
        assert seen[1:i + 1] == asked[:tasks - at + 1]
        assert seen[i + 1:i + 3] == ["descriptor", "event_page"]
        assert seen[i + 3:] == [f"checksums 0..{SIZE - 1}", "stream_resource",
                                "stream_datum", "stop"]  # (not asked once declared)
    single = reduce_run(catalog, uid, chunk_frames=5, callbacks=[])
    with open_frames(uri_path(single.outputs[0]["uri"])) as frames:
        want = frames.read()
    got = np.asarray(catalog.derived[summary.uid]["primary"]["reconstruction"][:])
    assert got.shape == (SIZE, SIZE, SIZE) and np.array_equal(got, want)
    with Catalog(Path(catalog.root).parent / f"replay_{when}",
                 readable_storage=[catalog.raw_dir]) as theirs:
        writer = TiledWriter(theirs.derived.include_data_sources(), normalizer=PageNormalizer)
        for name, doc in docs:
            writer(name, doc)
        ours, replayed = catalog.derived[summary.uid], theirs.derived[summary.uid]
        stored_run.same(stored_run(ours, catalog.raw_dir, catalog.root),
                        stored_run(replayed, catalog.raw_dir, theirs.root))
        assert list(ours.documents()) == list(replayed.documents())


def test_a_task_failing_after_the_declaration_leaves_a_failed_run_without_volume(
        tomo: tuple[Catalog, str], session: DaskSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The volume's stream declared at once, then a task fails (no such OpenCL device on
    the workers): the task's error is raised, the volume file and its sidecar are gone,
    no document names the file, and the catalog's run is not claimed complete: its stop
    says ``fail`` with no ``outputs``, its ``primary`` stream has the rows and no
    ``reconstruction``."""
    from analysis.cl import OpenCLUnavailable

    catalog, uid = tomo
    monkeypatch.setattr(distributed, "_client_has_a_core", lambda *args: True)
    folder = catalog.raw_dir / "derived"
    before = sorted(folder.glob("*")) if folder.exists() else []
    names: list[str] = []
    with pytest.raises(OpenCLUnavailable, match="does not exist"):
        reduce_on_dask(catalog, uid, session, task_rows=8, device="9:9",
                       callbacks=[catalog.derived_writer(),
                                  lambda name, doc: names.append(name)])
    assert names == ["start", "descriptor", "event_page", "stop"]
    assert (sorted(folder.glob("*")) if folder.exists() else []) == before
    run = catalog.derived.values().last()
    assert run.metadata["start"]["raw_uid"] == uid
    stop = run.metadata["stop"]
    assert stop["exit_status"] == "fail" and stop["outputs"] == []
    assert "OpenCLUnavailable" in stop["reason"]
    assert "reconstruction" not in run["primary"] and "row" in run["primary"]
    assert list(run["primary"]["row"].read()) == list(range(SIZE))
