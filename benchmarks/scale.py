"""Scale-out figures: the catalog written over HTTP against the embedded catalog.

``catalog.http.vs_embedded``: a 100-point scan with one 512×512 uint16 frame per point
(frames to external HDF5 with ``FrameWriter``, documents through
``bluesky_tiled_plugins.TiledWriter``, the same batching on both sides) written

- into the embedded catalog (Tiled on SQLite called in-process), and
- through a ``smeflow catalog serve`` server on SQLite, run in its own process on
  127.0.0.1 (as a beamline would use it), with an API key;

the figure is HTTP points/s divided by embedded points/s (1.0 = HTTP costs nothing).
Each side is measured ``--repeat`` times; the best run counts (the machine is shared).

``dask.2workers.speedup``: a synthetic tomography run (``--dask-size`` square frames,
``--dask-projections`` projections over 180°, 4 darks, 4 flats; Shepp-Logan phantom;
written by ``dataflow.synthetic_run.write_tomo_run``)
reconstructed in full (every detector row) by ``analysis.distributed.reduce_on_dask`` on
a LocalCluster of 1 and of 2 worker processes, each running one task at a time with PoCL
limited to one thread (``POCL_MAX_PTHREAD_COUNT=1``), so the figure is scaling, not
thread contention: time with 1 worker / time with 2 workers (ideal 2.0), each reduction
as ``smeflow reduce --scheduler local`` makes it by default: its derived run (descriptor,
events, the volume's resource and the stop document with its digest) written into the catalog.
``dask.2workers.speedup.no_documents`` (and its ``.median``) is the same with the derived
documents discarded (``callbacks=[]``): the reduction alone. Both clusters
run side by side and their reductions alternate (1, 2, 2, 1, 1, 2, …), so a change in the
machine's load hits both alike; each side's best run counts. ``--dask-repeat`` rounds
(default 5); ``dask.2workers.speedup.median`` is the median of the rounds' own ratios
(1-worker time / the 2-worker time beside it in the round), the figure to trust on a
machine whose load changes. Cluster start-up and a warm-up reduction on each cluster, the
same as the measured ones (kernel builds in the workers, the catalog's first writes of
a derived run), are excluded.
``dask.2workers.client_cpu_s`` is the client process's CPU per 2-worker reduction (its
scheduler included) and ``dask.2workers.serial_s`` the client's serial part of one more
2-worker reduction with its tasks recorded: time to the first task's start plus from the
last task's end to the return (the speed-up is below 2 by about these: the serial part
counts in full with either cluster, the client's CPU while the workers compute slows two
workers on two cores, not one); ``dask.2workers.serial_cpu_s`` is the client process's
CPU in those two parts (sampled every 2 ms), steadier than their wall time on a busy
machine.
``dask.1worker.worker_cpu_s`` and ``dask.2workers.worker_cpu_s`` are the workers' processes'
CPU per reduction (summed over the workers, medians), printed with each run's and its page
faults: a speed-up above 2 means the 1-worker run paid for something the 2-worker run did
not, and these say whether it was the workers' own work (a worker whose task thread's
malloc arena mapped and unmapped a heap every chunk spent 8 % more,
``analysis/worker_memory.py``).
``dask.1worker.vs_single_process`` is the single-process ``reduce_run`` (PoCL on every
core) time over the 1-worker time, both with the derived documents discarded; the derived
HDF5 file is written in every case. The machine's load average is printed.

Structure: one function per figure returning ``{name: value}``; ``main()`` runs them and
prints ``name = value`` lines, so further figures (``dask.2workers.speedup``) are one more
function in ``FIGURES``.

Run: ``python benchmarks/scale.py [--points N] [--size S] [--batch B] [--repeat R]
[--dask-size S] [--dask-projections P] [--dask-repeat R]``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from event_model import compose_run

from dataflow.catalog import Catalog
from dataflow.hdf5 import FrameWriter
from dataflow.remote import RemoteCatalog
from dataflow.server import API_KEY_ENV
from dataflow.spool import server_reachable
from dataflow.synthetic_run import write_tomo_run


def write_scan(writer: Callable[[str, dict[str, Any]], None], raw: Path, points: int,
               size: int) -> float:
    """Write one scan like a detector would (frame, then its documents); seconds taken."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 4096, (size, size), dtype=np.uint16)
    t0 = time.perf_counter()
    bundle = compose_run(metadata={"plan_name": "scale_benchmark", "num_points": points})
    writer("start", bundle.start_doc)
    frames = FrameWriter(raw, f"scale_{bundle.start_doc['uid']}.h5", (size, size),
                         data_key="cam_image", layout="per_frame")
    desc = bundle.compose_descriptor(
        name="primary", data_keys={"cam_image": frames.describe_key(),
                                   "sum": {"source": "bench", "shape": [], "dtype": "number"}})
    writer("descriptor", desc.descriptor_doc)
    for i in range(points):
        frames.append(frame)
        for name, doc in frames.asset_docs():
            if name == "stream_resource":  # the RunEngine fills these in
                doc = {**doc, "run_start": bundle.start_doc["uid"]}
            elif name == "stream_datum":
                doc = {**doc, "descriptor": desc.descriptor_doc["uid"]}
            writer(name, doc)
        writer("event", desc.compose_event(data={"sum": float(i)}, timestamps={"sum": 0.0},
                                           seq_num=i + 1))
    frames.close()
    writer("stop", bundle.compose_stop())
    return time.perf_counter() - t0


class _Server:
    """``smeflow catalog serve`` on SQLite in a child process, on a free loopback port."""

    def __init__(self, data: Path, key: str) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        code = "import sys; from dataflow.cli import main; sys.exit(main(sys.argv[1:]))"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--data", str(data), "--port",
             str(self.port), "--quiet"], env={**os.environ, API_KEY_ENV: key},
            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not server_reachable(self.url, 1.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the catalog server did not start")
            time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def catalog_http_vs_embedded(points: int = 100, size: int = 512, batch: int | None = None,
                             repeat: int = 2) -> dict[str, float]:
    """Points/s writing a scan through the HTTP server vs. the embedded catalog."""
    key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="smeflow-scale-") as tmp:
        root = Path(tmp)
        embedded: list[float] = []
        with Catalog(root / "embedded") as catalog:
            for _ in range(repeat):
                embedded.append(write_scan(catalog.writer(batch), catalog.raw_dir, points,
                                           size))
        http: list[float] = []
        server = _Server(root / "served", key)
        try:
            with RemoteCatalog(server.url, key) as remote:
                for _ in range(repeat):
                    http.append(write_scan(remote.writer(batch), root / "served" / "raw",
                                           points, size))
                assert len(remote.search(plan_name="scale_benchmark")) == repeat
        finally:
            server.close()
    best_embedded, best_http = min(embedded), min(http)
    label = "batched (TiledWriter default)" if batch is None else f"batch_size={batch}"
    print(f"catalog write, {points} points of {size}x{size} uint16, {label}:")
    print(f"  embedded  {best_embedded:6.2f} s  ({points / best_embedded:7.1f} points/s)  "
          f"runs {', '.join(f'{t:.2f}' for t in embedded)}")
    print(f"  HTTP      {best_http:6.2f} s  ({points / best_http:7.1f} points/s)  "
          f"runs {', '.join(f'{t:.2f}' for t in http)}")
    return {"catalog.embedded.points_per_s": points / best_embedded,
            "catalog.http.points_per_s": points / best_http,
            "catalog.http.vs_embedded": best_embedded / best_http}


def tomo_run(catalog: Catalog, size: int, projections: int) -> str:
    """A synthetic ``tomo_scan`` run (darks, flats, projections of a Shepp-Logan phantom
    whose attenuation varies with the detector row) in ``catalog``; returns its uid."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import radon, resize

    angles = np.linspace(0.0, 180.0, projections, endpoint=False)
    phantom = resize(shepp_logan_phantom(), (size, size), anti_aliasing=True)
    sino = radon(phantom, angles, circle=True).T * (4.0 / size)  # (angles, cols)
    weight = 0.5 + 0.5 * np.sin(np.linspace(0.0, np.pi, size))  # per detector row
    dark, flat = 100.0, 3000.0
    return write_tomo_run(
        catalog, dark=np.full((4, size, size), dark, np.uint16),
        flat=np.full((4, size, size), flat, np.uint16),
        primary=np.asarray(dark + (flat - dark) * np.exp(
            -sino[:, None, :] * weight[None, :, None]), dtype=np.uint16),
        angles=angles, source="bench", file_prefix="bench_")


def _load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def dask_speedup(size: int = 256, projections: int = 180, repeat: int = 5
                 ) -> dict[str, float]:
    """Full FBP of a synthetic run: 1 vs 2 Dask workers (1 core each), and single-process;
    each timed ``repeat`` times, the best counts (and the median of the rounds' 1/2-worker
    ratios)."""
    from analysis.distributed import connect, reduce_on_dask
    from analysis.reduce import reduce_run, uri_path
    from dataflow.hdf5 import open_frames

    def volume(summary: Any) -> Any:
        with open_frames(uri_path(summary.outputs[0]["uri"])) as frames:
            return frames.read()

    with tempfile.TemporaryDirectory(prefix="smeflow-dask-") as tmp, \
            Catalog(Path(tmp) / "data") as catalog:
        uid = tomo_run(catalog, size, projections)
        print(f"dask re-reduction: {projections} projections of {size}x{size} uint16, "
              f"FBP of all {size} rows")
        # Warm-ups as the measured runs (every row: the kernels of the measured block
        # sizes built, the catalog's first writes of a derived run made): no round pays
        # a one-time cost.
        reduce_run(catalog, uid, callbacks=[])
        print(f"  single process     ({_load()})")
        runs: list[float] = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            summary = reduce_run(catalog, uid, callbacks=[])
            runs.append(time.perf_counter() - t0)
        reference, single = volume(summary), min(runs)
        print(f"  single process     {single:6.2f} s  runs {', '.join(f'{t:.2f}' for t in runs)}")
        # Both clusters up at once and their runs interleaved (1, 2, 2, 1, …), so that a
        # change of the machine's load during the measurement hits both alike.
        with connect("local", 1) as one, connect("local", 2) as two:
            sessions = {1: one, 2: two}
            for workers, session in sessions.items():
                cores = [w["compute_units"] for w in session.worker_info()]
                reduce_on_dask(catalog, uid, session)
                print(f"  {workers} worker(s), PoCL compute units {cores}  ({_load()})")
            # The users' path (``smeflow reduce --scheduler local``): the derived run written
            # into the catalog (callbacks=None); beside it the reduction alone (callbacks=[]).
            modes: dict[str, list[Any] | None] = {"catalog": None, "no_documents": []}
            runs_of: dict[tuple[str, int], list[float]] = {
                (mode, w): [] for mode in modes for w in sessions}
            cpu_of: dict[int, list[float]] = {1: [], 2: []}
            worker_cpu_of: dict[int, list[float]] = {1: [], 2: []}
            faults_of: dict[int, list[int]] = {1: [], 2: []}
            summaries: dict[tuple[str, int], Any] = {}
            for round_ in range(repeat):
                # (1 then 2 workers, then 2 then 1: a load rising or falling through a
                # round favours neither side over the rounds)
                order = list(sessions.items())[::-1 if round_ % 2 else 1]
                for mode, callbacks in modes.items():
                    for workers, session in order:
                        w0 = _workers_usage(session)
                        c0, t0 = time.process_time(), time.perf_counter()
                        summaries[mode, workers] = reduce_on_dask(catalog, uid, session,
                                                                  callbacks=callbacks)
                        runs_of[mode, workers].append(time.perf_counter() - t0)
                        if mode == "catalog":
                            cpu_of[workers].append(time.process_time() - c0)
                            w1 = _workers_usage(session)
                            worker_cpu_of[workers].append(w1[0] - w0[0])
                            faults_of[workers].append(w1[1] - w0[1])
                print(f"  runs so far: 1 worker {runs_of['catalog', 1][-1]:.2f} s, 2 workers "
                      f"{runs_of['catalog', 2][-1]:.2f} s; without documents "
                      f"{runs_of['no_documents', 1][-1]:.2f} s, "
                      f"{runs_of['no_documents', 2][-1]:.2f} s  ({_load()})")
            spans = {workers: _task_spans(session, catalog, uid)
                     for workers, session in sessions.items()}
        times = {key: min(runs) for key, runs in runs_of.items()}
        for (mode, workers), runs in runs_of.items():
            print(f"  {workers} worker(s), {mode:12s} {times[mode, workers]:6.2f} s  runs "
                  f"{', '.join(f'{t:.2f}' for t in runs)}")
        differ = [f"{workers} worker(s), {mode}" for (mode, workers), summary
                  in summaries.items() if not np.array_equal(volume(summary), reference)]
        if differ:  # (a speed-up of a wrong answer is no figure)
            raise SystemExit(f"dask re-reduction: the volume of {', '.join(differ)} differs "
                             "from the single-process volume")
        print("  every volume is identical to the single-process volume")
        ratios = {mode: [a / b for a, b in zip(runs_of[mode, 1], runs_of[mode, 2], strict=True)]
                  for mode in modes}
        for mode, values in ratios.items():
            print(f"  speed-up per round ({mode}) {', '.join(f'{r:.2f}' for r in values)}")
        for workers, span in spans.items():
            print(f"  {workers} worker(s), one more run: {span['wall']:.2f} s, first task "
                  f"after {span['head']:.3f} s, return {span['tail']:.3f} s after the last "
                  f"task (client CPU {span['head_cpu']:.3f} s and {span['tail_cpu']:.3f} s), "
                  f"workers' last tasks end {span['spread']:.3f} s apart; client CPU "
                  f"per run {np.median(cpu_of[workers]):.3f} s")
        for workers in sessions:
            cpus = ", ".join(f"{t:.2f}" for t in worker_cpu_of[workers])
            print(f"  {workers} worker(s), workers' CPU per run "
                  f"{np.median(worker_cpu_of[workers]):.3f} s (runs {cpus}), page faults "
                  f"{', '.join(str(f) for f in faults_of[workers])}")
        print(f"  after              ({_load()})")
    return {"dask.1worker.seconds": times["catalog", 1],
            "dask.2workers.seconds": times["catalog", 2],
            "dask.single_process.seconds": single,
            "dask.2workers.speedup": times["catalog", 1] / times["catalog", 2],
            "dask.2workers.speedup.median": float(np.median(ratios["catalog"])),
            "dask.2workers.speedup.no_documents":
                times["no_documents", 1] / times["no_documents", 2],
            "dask.2workers.speedup.no_documents.median":
                float(np.median(ratios["no_documents"])),
            "dask.1worker.vs_single_process": single / times["no_documents", 1],
            "dask.2workers.client_cpu_s": float(np.median(cpu_of[2])),
            "dask.1worker.worker_cpu_s": float(np.median(worker_cpu_of[1])),
            "dask.2workers.worker_cpu_s": float(np.median(worker_cpu_of[2])),
            "dask.2workers.serial_s": spans[2]["head"] + spans[2]["tail"],
            "dask.2workers.serial_cpu_s": spans[2]["head_cpu"] + spans[2]["tail_cpu"]}


def _workers_usage(session: Any) -> tuple[float, int]:
    """CPU seconds and minor page faults of ``session``'s worker processes so far, summed
    (their own ``getrusage``)."""
    import resource

    usage = session.client.run(resource.getrusage, resource.RUSAGE_SELF).values()
    return (sum(u.ru_utime + u.ru_stime for u in usage), sum(u.ru_minflt for u in usage))


def _task_spans(session: Any, catalog: Catalog, uid: str) -> dict[str, float]:
    """One more reduction on ``session``, its tasks recorded (Dask's task stream): wall
    time, time to the first task's start (``head``) and from the last task's end to the
    return (``tail``) — the client's serial part — and how far apart the workers' last
    tasks end (``spread``)."""
    from distributed import get_task_stream

    from analysis.distributed import reduce_on_dask

    with _CpuClock() as cpu:
        t0 = time.time()
        with get_task_stream(session.client) as stream:
            reduce_on_dask(catalog, uid, session)  # (the users' path: into the catalog)
        t1 = time.time()
    computes = [(task["worker"], span["start"], span["stop"]) for task in stream.data
                for span in task["startstops"] if span["action"] == "compute"]
    last = {worker: max(stop for w, _, stop in computes if w == worker)
            for worker, _, _ in computes}
    first, end = min(start for _, start, _ in computes), max(last.values())
    return {"wall": t1 - t0, "head": first - t0, "tail": t1 - end,
            "spread": end - min(last.values()),
            "head_cpu": cpu.at(first) - cpu.at(t0), "tail_cpu": cpu.at(t1) - cpu.at(end)}


class _CpuClock:
    """This process's CPU time, sampled every ``period`` seconds by a thread while in the
    ``with`` block, so that it can be read afterwards at instants learnt later (a task's
    start and end, from the workers' clocks on this machine): the client's CPU in its
    serial parts, which other processes' load changes far less than their wall time."""

    def __init__(self, period: float = 0.002) -> None:
        import threading

        self.period = period
        self.samples: list[tuple[float, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.samples.append((time.time(), time.process_time()))
            if self._done.wait(self.period):
                self.samples.append((time.time(), time.process_time()))
                return

    def __enter__(self) -> _CpuClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def at(self, when: float) -> float:
        """The process's CPU seconds at wall time ``when`` (interpolated)."""
        walls, cpus = zip(*self.samples, strict=True)
        return float(np.interp(when, walls, cpus))


FIGURES: list[Callable[[argparse.Namespace], dict[str, float]]] = [
    lambda a: catalog_http_vs_embedded(a.points, a.size, a.batch, a.repeat),
    lambda a: dask_speedup(a.dask_size, a.dask_projections, a.dask_repeat),
]


def main(argv: list[str] | None = None) -> int:
    """Measure every figure and print ``name = value`` lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=None,
                        help="TiledWriter batch_size (default: its own batching)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dask-size", type=int, default=256,
                        help="dask figure: frame size (default 256)")
    parser.add_argument("--dask-projections", type=int, default=180,
                        help="dask figure: number of projections (default 180)")
    parser.add_argument("--dask-repeat", type=int, default=5,
                        help="dask figure: rounds of 1 then 2 workers (default 5)")
    args = parser.parse_args(argv)
    figures: dict[str, float] = {}
    for figure in FIGURES:
        figures.update(figure(args))
    print()
    for name, value in figures.items():
        print(f"{name} = {value:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
