"""Re-reduction on dask.distributed workers (``analysis.distributed``,
``smeflow reduce --scheduler``): bitwise the single-process result, one core per worker,
scheduler addresses checked."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from analysis.cli import main as reduce_main
from analysis.distributed import (
    DaskSession,
    FrameSource,
    SchedulerError,
    connect,
    reduce_on_dask,
)
from analysis.reduce import reduce_run
from dataflow.hdf5 import DEFAULT_DATASET, FrameWriter

VARYING = {"uid", "time", "scheduler", "workers", "frames_from"}
FRAME = (64, 64)
PROJECTIONS = 10


@dataclass
class Runs:
    """A catalog with a small tomography run and a small diffraction run."""

    catalog: Any
    tomo_uid: str
    diff_uid: str

    @property
    def data_dir(self) -> Path:
        """The catalog folder (for the command-line tests)."""
        return Path(self.catalog.root)


@pytest.fixture(scope="module")
def acquired(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Runs of the beamline (compiled firmware, 64×64) in an embedded catalog, as in
    ``conftest.acquired`` but with the catalog writer alone on the SQLite file (no live
    reducer writing at the same time), since these tests only reduce offline."""
    from bluesky import RunEngine
    from bluesky import plan_stubs as bps

    from dataflow.catalog import Catalog
    from devices.beamline import Beamline
    from fpga.designs.params import ChainParams
    from plans import diffraction_scan, tomo_scan

    catalog = Catalog(tmp_path_factory.mktemp("dask") / "data")
    RE: Any = RunEngine({})
    catalog.subscribe(RE)
    beamline = Beamline.create(catalog.raw_dir, params=ChainParams(*FRAME, 16),
                               backend="compiled", time_scale=0.001)
    try:
        RE(bps.mv(beamline.shutter, "open"))
        beamline.use_phantom()
        (tomo_uid,) = RE(tomo_scan(beamline.det, beamline.rotation, beamline.sample_x,
                                   beamline.shutter, out_position=20.0,
                                   num_projections=PROJECTIONS, n_darks=2, n_flats=2))
        beamline.use_powder()
        (diff_uid,) = RE(diffraction_scan(beamline.det, beamline.sample_x, beamline.sample_y,
                                          [(0.0, 0.0), (0.5, 0.0), (0.0, 0.5)], num=1,
                                          shutter=beamline.shutter,
                                          md={"geometry": beamline.geometry.to_metadata()}))
        yield Runs(catalog, tomo_uid, diff_uid)
    finally:
        beamline.close()
        catalog.close()


@pytest.fixture(scope="module")
def dask_session() -> Iterator[DaskSession]:
    """One local cluster of 2 one-core workers for the module."""
    with connect("local", 2) as session:
        yield session


def _arrays(run: Any) -> dict[str, np.ndarray]:
    """Every stream's data keys except the event times and timestamps (which differ
    between reductions)."""
    return {f"{stream}/{key}": np.asarray(run[stream][key].read())
            for stream in run for key in run[stream]
            if key != "time" and not key.startswith("ts_")}


def _assert_same_derived(catalog: Any, single: str, dask: str, scheduler: str) -> None:
    a, b = catalog.run(single), catalog.run(dask)
    got, want = _arrays(b), _arrays(a)
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        assert np.array_equal(got[key], value), key
    sa, sb = dict(a.metadata["start"]), dict(b.metadata["start"])
    assert {k: v for k, v in sa.items() if k not in VARYING} == \
        {k: v for k, v in sb.items() if k not in VARYING}
    assert sb["scheduler"] == scheduler and sb["workers"] == 2
    stop_a, stop_b = a.metadata["stop"], b.metadata["stop"]
    for key in ("exit_status", "frames", "rows", "angles_from"):
        assert stop_b.get(key) == stop_a.get(key), key


def test_tomography_on_dask_is_the_single_process_result(
        acquired: Runs, dask_session: DaskSession) -> None:
    catalog = acquired.catalog
    single = reduce_run(catalog, acquired.tomo_uid, chunk_frames=3)
    dask = reduce_on_dask(catalog, acquired.tomo_uid, dask_session, chunk_frames=3,
                          task_rows=16)
    assert dask.exit_status == "success" and dask.shape == (64, 64, 64)
    assert dask.frames == PROJECTIONS
    recon = np.asarray(catalog.run(dask.uid)["primary"]["reconstruction"][:])
    assert np.abs(recon).max() > 0.01  # the phantom is there
    _assert_same_derived(catalog, single.uid, dask.uid, "local")


def test_the_derived_run_is_stored_as_tiledwriter_stores_it(
        acquired: Runs, dask_session: DaskSession, tmp_path: Path, stored_run: Any) -> None:
    """The users' path (the catalog's ``derived_writer()``, which writes the rows and the
    volume's registration while the volume is hashed) stores the derived run as
    ``bluesky_tiled_plugins``' ``TiledWriter`` stores the same documents: every node,
    data source, value and document read back (the volume compared voxel by voxel)."""
    from bluesky_tiled_plugins import TiledWriter

    from dataflow.catalog import Catalog
    from dataflow.event_pages import PageNormalizer

    catalog = acquired.catalog
    docs: list[tuple[str, dict[str, Any]]] = []
    summary = reduce_on_dask(catalog, acquired.tomo_uid, dask_session, task_rows=16,
                             callbacks=[catalog.derived_writer(),
                                        lambda name, doc: docs.append((name, doc))])
    with Catalog(tmp_path / "theirs", readable_storage=[catalog.raw_dir]) as theirs:
        writer = TiledWriter(theirs.derived.include_data_sources(), normalizer=PageNormalizer)
        for name, doc in docs:
            writer(name, doc)
        ours_run, their_run = catalog.derived[summary.uid], theirs.derived[summary.uid]
        got = stored_run(ours_run, catalog.raw_dir, catalog.root)
        want = stored_run(their_run, catalog.raw_dir, theirs.root)
        assert got["primary", "reconstruction"]["data"].shape == (64, 64, 64)
        stored_run.same(got, want)
        assert list(ours_run.documents()) == list(their_run.documents())


def test_local_workers_write_the_volume_themselves(acquired: Runs,
                                                  dask_session: DaskSession,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Local workers reading the raw files write their slices into the volume file: what
    comes back to the client is one CRC-32 per slice, never the slices (and no task waits
    for another: the client averages the darks and flats, and each task gets the rows of
    them its band needs, not the whole frames); the file is the one the single-process
    reduction writes (checked by _assert_same_derived through the catalog, which verifies
    every slice's checksum as it reads)."""
    catalog = acquired.catalog
    submitted: list[tuple[str, Any, Any]] = []
    client = dask_session.client
    submit, map_ = client.submit, client.map

    def recording(fn: Any, *args: Any, **kwargs: Any) -> Any:
        future = submit(fn, *args, **kwargs)
        submitted.append((fn.__name__, args, future))
        return future

    def recording_map(fn: Any, *iterables: Any, **kwargs: Any) -> Any:
        futures = map_(fn, *iterables, **kwargs)
        submitted.extend((fn.__name__, args, future)
                         for args, future in zip(zip(*iterables, strict=True), futures,
                                                 strict=True))
        return futures

    monkeypatch.setattr(client, "submit", recording)
    monkeypatch.setattr(client, "map", recording_map)
    dask = reduce_on_dask(catalog, acquired.tomo_uid, dask_session, rows=[3, 4, 9],
                          chunk_frames=4, task_rows=2)
    monkeypatch.undo()
    rows = [(name, args, f.result()) for name, args, f in submitted]
    assert [name for name, _, _ in rows] == ["tomo_rows_file_task"] * 2  # (refs: here)
    assert [r.dtype for _, _, r in rows] == [np.uint32] * 2
    assert [r.shape for _, _, r in rows] == [(2,), (1,)]
    assert [args[0] for _, args, _ in rows] == [[3, 4], [9]]
    assert [args[1].dark.shape for _, args, _ in rows] == [(2, FRAME[1]), (1, FRAME[1])]
    single = reduce_run(catalog, acquired.tomo_uid, rows=[3, 4, 9], chunk_frames=4)
    _assert_same_derived(catalog, single.uid, dask.uid, "local")


def test_a_failed_task_leaves_no_volume_written_by_workers(
        acquired: Runs, dask_session: DaskSession) -> None:
    """A task that fails (here: no such OpenCL device on the workers) after the volume
    file was made for the workers: the file goes, the derived run ends with fail."""
    from analysis.cl import OpenCLUnavailable

    derived_dir = acquired.catalog.raw_dir / "derived"
    before = sorted(derived_dir.glob("*")) if derived_dir.exists() else []
    with pytest.raises(OpenCLUnavailable, match="does not exist"):
        reduce_on_dask(acquired.catalog, acquired.tomo_uid, dask_session, rows=[1],
                       device="9:9")
    assert sorted(derived_dir.glob("*")) == before
    failed = acquired.catalog.derived.values().last()
    assert failed.metadata["start"]["raw_uid"] == acquired.tomo_uid
    assert failed.metadata["stop"]["exit_status"] == "fail"


def test_inputs_that_cannot_be_digested_leave_nothing(
        acquired: Runs, dask_session: DaskSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """The inputs' digests are read in a thread while the client prepares and submits
    the tasks: when they fail (a raw file gone), the reduction raises that error after
    the tasks were cancelled and the workers' volume file removed, and starts no
    derived run."""
    import threading
    import time

    import analysis.distributed as distributed
    from analysis.reduce import ReductionError

    digesting: list[str] = []

    def file_gone(uris: Any) -> Any:
        digesting.append(threading.current_thread().name)
        time.sleep(0.2)  # (the tasks are out meanwhile)
        raise ReductionError("input file://localhost/raw.h5: file is missing")

    monkeypatch.setattr(distributed, "file_inputs", file_gone)
    derived_dir = acquired.catalog.raw_dir / "derived"
    before = sorted(derived_dir.glob("*")) if derived_dir.exists() else []
    runs = len(acquired.catalog.derived)
    with pytest.raises(ReductionError, match="file is missing"):
        reduce_on_dask(acquired.catalog, acquired.tomo_uid, dask_session, rows=[1, 2])
    assert digesting and digesting[0] != threading.current_thread().name
    assert sorted(derived_dir.glob("*")) == before
    assert len(acquired.catalog.derived) == runs


def _derived_files(catalog: Any) -> list[Path]:
    folder = catalog.raw_dir / "derived"
    return sorted(folder.glob("*")) if folder.exists() else []


def test_an_interrupt_while_the_workers_compute_leaves_nothing_half_written(
        acquired: Runs, dask_session: DaskSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the client waits for the workers' slices (raised where it records
    the first block's checksums): the volume file is closed and removed with its
    sidecar, the derived run gets its stop document (fail), the interrupt propagates."""
    from dataflow.hdf5_reserve import ReservedFrameWriter

    catalog = acquired.catalog
    before = _derived_files(catalog)
    writers: list[ReservedFrameWriter] = []

    def interrupted(self: ReservedFrameWriter, first: int, crcs: Any) -> None:
        writers.append(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(ReservedFrameWriter, "set_checksums", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reduce_on_dask(catalog, acquired.tomo_uid, dask_session, rows=[3, 4, 5],
                       task_rows=2)
    monkeypatch.undo()
    assert writers and writers[0].closed
    assert _derived_files(catalog) == before
    stop = catalog.derived.values().last().metadata["stop"]
    assert stop["exit_status"] == "fail" and stop["reason"].startswith("KeyboardInterrupt")


def test_tasks_cancelled_from_another_thread(acquired: Runs,
                                             dask_session: DaskSession) -> None:
    """The user cancels the row tasks from another thread: the reduction raises, the
    volume goes, the derived run fails."""
    import threading

    catalog, client = acquired.catalog, dask_session.client
    before = _derived_files(catalog)
    map_ = client.map

    def cancelled_from_another_thread(fn: Any, *iterables: Any, **kwargs: Any) -> Any:
        futures = map_(fn, *iterables, **kwargs)
        # (before they can finish: a timer let fast tasks end first, and nothing raised)
        canceller = threading.Thread(target=client.cancel, args=[futures])
        canceller.start()
        canceller.join()
        return futures

    client.map = cancelled_from_another_thread
    try:
        with pytest.raises(Exception, match="cancel"):
            reduce_on_dask(catalog, acquired.tomo_uid, dask_session, task_rows=16)
    finally:
        del client.map
    assert _derived_files(catalog) == before
    assert catalog.derived.values().last().metadata["stop"]["exit_status"] == "fail"


@pytest.mark.parametrize("where", ["dask", "single"])
def test_a_refused_announcement_leaves_no_volume(acquired: Runs, dask_session: DaskSession,
                                                 where: str) -> None:
    """The documents' consumer refuses the volume's descriptor or its row events: the
    reduction fails and the volume file (complete, closed, with its sidecar) goes, since
    no document references it; refused after its stream_resource went out, it stays."""
    catalog = acquired.catalog
    for refused, kept in (("descriptor", False), ("event_page", False),
                          ("stream_datum", True)):
        before = _derived_files(catalog)
        docs: list[str] = []

        def refusing(name: str, doc: dict[str, Any], refused: str = refused,
                     docs: list[str] = docs) -> None:
            docs.append(name)
            if name == refused:
                raise OSError(f"catalog refused the {refused}")

        with pytest.raises(OSError, match="refused"):
            if where == "dask":
                reduce_on_dask(catalog, acquired.tomo_uid, dask_session, rows=[3, 4],
                               callbacks=[refusing])
            else:
                reduce_run(catalog, acquired.tomo_uid, rows=[3, 4], callbacks=[refusing])
        left = [p.name for p in _derived_files(catalog) if p not in before]
        assert ("stream_resource" in docs) == kept
        assert docs[-1] == "stop"
        if kept:
            assert sorted(p.rsplit(".", 1)[-1] for p in left) == ["h5", "sha256"]
        else:
            assert left == []


def test_tomography_row_subset_in_small_tasks(acquired: Runs,
                                              dask_session: DaskSession) -> None:
    catalog = acquired.catalog
    rows = [40, 5, 33]
    single = reduce_run(catalog, acquired.tomo_uid, rows=rows, chunk_frames=4)
    dask = reduce_on_dask(catalog, acquired.tomo_uid, dask_session, rows=rows,
                          chunk_frames=4, task_rows=2)
    assert list(catalog.run(dask.uid)["primary"]["row"].read()) == rows
    _assert_same_derived(catalog, single.uid, dask.uid, "local")


def test_diffraction_on_dask_is_the_single_process_result(
        acquired: Runs, dask_session: DaskSession) -> None:
    catalog = acquired.catalog
    single = reduce_run(catalog, acquired.diff_uid, bins=300, unit="q_nm^-1")
    dask = reduce_on_dask(catalog, acquired.diff_uid, dask_session, bins=300,
                          unit="q_nm^-1", chunk_frames=2)
    assert dask.shape == (3, 300)
    _assert_same_derived(catalog, single.uid, dask.uid, "local")


def test_local_workers_use_one_core_each(dask_session: DaskSession) -> None:
    info = dask_session.worker_info()
    assert len(info) == dask_session.workers == 2
    assert [w["compute_units"] for w in info] == [1, 1]


def test_local_workers_reuse_freed_memory(dask_session: DaskSession) -> None:
    """Dask's MALLOC_TRIM_THRESHOLD_ made every array above 128 kB a fresh mapping
    (70 000 page faults per tomography task, twice its work): the local workers start
    without it (nothing in the tests sets it in this process's environment)."""
    import os

    seen = dask_session.client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
    assert list(seen.values()) == [None, None]


def _worst_faults_of_churn(most_held: int = 16, steps: int = 10) -> float:
    """Task: the most page faults per 8 MiB array allocated, touched and freed in this
    thread while 0..``most_held`` others are kept (a tomography task's pattern: its
    8 MiB blocks freed and made again chunk after chunk, beside longer-lived ones)."""
    import resource

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt

    worst = 0.0
    np.ones(2 << 20, np.float32)  # (glibc's adaptive threshold: later ones in the arena)
    for held in range(most_held):
        kept = [np.ones(2 << 20, np.float32) for _ in range(held)]
        before = faults()
        for _ in range(steps):
            np.ones(2 << 20, np.float32)
        worst = max(worst, (faults() - before) / steps)
        del kept
    return worst


def test_local_workers_keep_an_emptied_heap(dask_session: DaskSession) -> None:
    """A task thread's malloc arena unmapped a heap as soon as it was empty: where an
    8 MiB array started a new heap, every array faulted its pages in again (516 page
    faults each here, on every worker; 2 600 per tomography task, 8 % more CPU). The
    local workers keep it (``analysis.worker_memory``): about 50 at most."""
    worst = [dask_session.client.submit(_worst_faults_of_churn, pure=False).result()
             for _ in range(2)]
    assert max(worst) < 200, worst


def test_keep_freed_memory_leaves_the_users_allocator_settings(
        dask_session: DaskSession, monkeypatch: pytest.MonkeyPatch) -> None:
    """An allocator setting in the environment (Dask's memory-trimming advice, say) is
    the user's: the thresholds are left alone (this process's; set in the workers)."""
    from analysis.worker_memory import keep_freed_memory

    for name, value in (("MALLOC_TRIM_THRESHOLD_", "65536"),
                        ("GLIBC_TUNABLES", "glibc.malloc.top_pad=0")):
        with monkeypatch.context() as env:
            env.setenv(name, value)
            assert keep_freed_memory() is False
    assert list(dask_session.client.run(keep_freed_memory).values()) == [True, True]


def test_local_workers_skip_dashboard_only_work(dask_session: DaskSession) -> None:
    """The local cluster has no dashboard: its workers do not run Dask's statistical
    profiler (a stack sample of every thread each 10 ms) and tick every 200 ms."""
    import dask

    def settings() -> tuple[Any, Any]:
        return (dask.config.get("distributed.worker.profile.enabled"),
                dask.config.get("distributed.admin.tick.interval"))

    assert list(dask_session.client.run(settings).values()) == [(False, "200ms")] * 2


def test_local_cluster_keeps_the_users_dask_settings() -> None:
    """Only settings still at Dask's default are made lighter: one the user configured
    (here through ``dask.config.set``, as a configuration file would) is kept."""
    import dask

    from analysis.dask_session import LOCAL_CLUSTER_CONFIG, _unless_configured

    assert _unless_configured(LOCAL_CLUSTER_CONFIG) == LOCAL_CLUSTER_CONFIG
    with dask.config.set({"distributed.admin.tick.interval": "50ms"}):
        kept = _unless_configured(LOCAL_CLUSTER_CONFIG)
    assert "distributed.admin.tick.interval" not in kept
    assert kept["distributed.worker.profile.enabled"] is False


def test_volume_left_unfinished_is_removed(tmp_path: Path) -> None:
    """The Dask reduction writes the volume block by block as the blocks come back: a
    block that fails to come (its task raised) leaves no half-written volume file."""
    from analysis.derived_run import DerivedRun

    def blocks() -> Iterator[np.ndarray]:
        yield np.ones((2, 8, 8), np.float32)
        raise RuntimeError("task failed on a worker")

    derived = DerivedRun([], {"raw_uid": "r" * 8})
    with pytest.raises(RuntimeError, match="task failed"):
        derived.finish_volume(tmp_path, blocks(), [0, 1, 2, 3], 10)
    assert list(tmp_path.rglob("*.h5")) == [] and derived.outputs == []
    done = DerivedRun([], {"raw_uid": "r" * 8})
    done.finish_volume(tmp_path, iter([np.ones((2, 8, 8), np.float32)] * 2), [0, 1, 2, 3], 10)
    assert len(list(tmp_path.rglob("*.h5"))) == 1 and len(done.outputs) == 1


def test_tcp_scheduler_and_command_line(acquired: Runs, dask_session: DaskSession,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    address = dask_session.cluster.scheduler_address
    assert address.startswith("tcp://127.0.0.1:")
    status = reduce_main([acquired.tomo_uid[:8], "--data", str(acquired.data_dir),
                          "--rows", "20", "--scheduler", address, "--workers", "2"])
    out = capsys.readouterr().out.splitlines()
    assert status == 0, out
    derived = acquired.catalog.run(out[0])
    start = derived.metadata["start"]
    assert start["scheduler"] == address and start["workers"] == 2
    assert start["raw_uid"] == acquired.tomo_uid
    single = reduce_run(acquired.catalog, acquired.tomo_uid, rows=[20])
    _assert_same_derived(acquired.catalog, single.uid, out[0], address)
    assert dask_session.workers == 2  # the command closed its client, not the cluster


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("address", ["udp://127.0.0.1:8786", "tcp://127.0.0.1",
                                     "tcp://127.0.0.1:port", "127.0.0.1:8786", "",
                                     "tcp://127.0.0.1:8786/path"])
def test_malformed_scheduler_address(address: str) -> None:
    with pytest.raises(SchedulerError, match="expected 'local' or tcp://HOST:PORT"):
        connect(address)


def test_local_workers_are_at_most_four_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """More local workers than 4 per core are refused before any is started (``connect``:
    ``SchedulerError``); a running scheduler's are not counted against this machine."""
    import analysis.dask_session as dask_session

    monkeypatch.setattr(dask_session, "usable_cores", lambda: 2)
    assert dask_session.max_local_workers() == 8
    assert dask_session.check_local_workers(8) is None
    with pytest.raises(SchedulerError, match="argument `workers`: 9 local workers is more "
                       r"than the 8 this machine takes \(4 per core, 2 cores"):
        connect("local", 9)
    assert dask_session.check_local_workers(9, "--workers").startswith("--workers: 9 ")
    address = f"tcp://127.0.0.1:{_closed_port()}"  # (refused for want of a scheduler)
    with pytest.raises(SchedulerError, match=f"scheduler {address}: cannot connect"):
        connect(address, 9, timeout=1.0)


def test_unreachable_scheduler() -> None:
    address = f"tcp://127.0.0.1:{_closed_port()}"
    with pytest.raises(SchedulerError, match=f"scheduler {address}: cannot connect"):
        connect(address, timeout=1.0)


def test_command_line_errors(acquired: Runs,
                             capsys: pytest.CaptureFixture[str]) -> None:
    data = str(acquired.data_dir)
    for extra, message, status in (
            (["--scheduler", "udp://host:1"], "expected 'local' or tcp://", 1),
            (["--workers", "2"], "--workers: needs --scheduler", 2),  # (usage errors)
            (["--scheduler", "local", "--workers", "0"],
             "--workers: expected an integer >= 1", 2)):
        assert reduce_main([acquired.tomo_uid[:8], "--data", data, *extra]) == status
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err


def test_frame_source_reads_across_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 4000, (7, 6, 5), dtype=np.uint16)
    paths = []
    for name, part in (("a.h5", frames[:3]), ("b.h5", frames[3:])):
        with FrameWriter(tmp_path, name, (6, 5), layout="per_frame") as writer:
            writer.append_many(part)
        paths.append(str(writer.path))
    source = FrameSource(((paths[0], DEFAULT_DATASET, 3), (paths[1], DEFAULT_DATASET, 4)),
                         (6, 6, 5))  # the run has 6 of the 7 frames
    assert np.array_equal(source.read(slice(None)), frames[:6])
    assert np.array_equal(source.read(slice(2, 5), slice(1, 4)), frames[2:5, 1:4])
    assert np.array_equal(source.read(slice(4, 6)), frames[4:6])


def test_row_task_refuses_references_of_other_rows() -> None:
    """A row task takes the references of the whole frame or of its band's rows; any
    other height is an error naming both (not a silently shifted flat field)."""
    from analysis.distributed import tomo_rows_task
    from analysis.reduce import ReductionError, TomoReferences

    source = FrameSource((("/nonexistent.h5", DEFAULT_DATASET, 4),), (4, 16, 8))
    refs = TomoReferences(np.zeros((5, 8), np.float32), np.ones((5, 8), np.float32))
    with pytest.raises(ReductionError, match=r"references of 5 rows for rows 2\.\.4 of 16"):
        tomo_rows_task([2, 4], refs, source, np.zeros(4), [(0, 4)], 1e-6, None)
