"""Dask schedulers for the reductions: :func:`connect` opens a :class:`DaskSession` (a
client and, for ``"local"``, the :class:`distributed.LocalCluster` it started on
loopback; ``tcp://HOST:PORT`` joins a running scheduler). :mod:`analysis.distributed`
runs the reductions on it and re-exports these names.

Threads: each worker of the local cluster runs one task at a time
(``threads_per_worker=1``) and its PoCL CPU device uses ``cores_per_worker`` threads
(environment ``POCL_MAX_PTHREAD_COUNT`` — PoCL 3.x, Debian 12 — and
``POCL_CPU_MAX_CU_COUNT`` — later PoCL — set in the worker process before it first
touches OpenCL), so ``n`` workers use ``n`` cores without oversubscribing them. Workers
of an external scheduler are started by the user (``dask worker --nthreads 1`` with those
variables set; see ``docs/reduction.md``).

Memory: Dask starts worker processes with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
``distributed.nanny.pre-spawn-environ``), to hand freed memory back to the system at
once. Setting it also turns off glibc's adaptive ``mmap`` threshold, so every array above
128 kB is a fresh mapping the kernel must fault in page by page: a tomography task makes
a few 8 MB arrays per chunk of frames and spent as much CPU in page faults (70 000 per
task of 32 rows of 256², twice the task's own work) as in reconstructing. The local
cluster's workers start without it (glibc's default: memory freed is reused, up to
64 MB of it kept); a variable the user set in this process's environment still reaches
them. glibc's adaptive thresholds still left some workers mapping and unmapping a heap
for every chunk of frames (each task thread has its own arena), 8 % more CPU for the
reduction: :mod:`analysis.worker_memory` fixes them at their 64-bit maximum in every
local worker (:class:`~analysis.worker_memory.KeepFreedMemory`), unless the user's
environment tunes the allocator.

Background work: the local cluster has no dashboard, so its processes skip what only a
dashboard shows (``LOCAL_CLUSTER_CONFIG``): each worker's statistical profiler, which
samples the stacks of its threads every 10 ms while they compute, and the 0.5 s system
monitor (every 2 s instead); the event-loop health check ticks every 200 ms instead of
20 ms, and the nannies look at their workers' memory every 0.5 s instead of 0.1 s. Idle,
a 2-worker cluster took 80 ms of CPU per second (client process 31, each worker 25),
CPU the workers' tasks lose when they have one core each; with these 11 (measured on the
project's 2-core machine). A setting the user changed from Dask's default is kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

from analysis.reductions import ReductionError

__all__ = [
    "LOCAL", "LOCAL_CLUSTER_CONFIG", "LOCAL_WORKERS_PER_CORE", "POCL_THREAD_VARIABLES",
    "DaskSession", "SchedulerError", "check_local_workers", "connect", "max_local_workers",
    "usable_cores", "worker_device_info", "worker_environment",
]

LOCAL = "local"
"""The scheduler choice that starts a LocalCluster in this process."""
LOCAL_WORKERS_PER_CORE = 4
"""The most local workers per core of this machine (:func:`max_local_workers`): a local
worker runs one task at a time on one core (``threads_per_worker=1``, PoCL on
``cores_per_worker`` threads), so workers beyond the cores only take turns on them, each
two more processes (a nanny and its worker) with their own memory and start-up; a few per
core leave room to try oversubscription, ``--workers 100000`` tried to start 200 000
processes."""
POCL_THREAD_VARIABLES = ("POCL_MAX_PTHREAD_COUNT", "POCL_CPU_MAX_CU_COUNT")
"""PoCL's CPU thread-count variables: 3.x (Debian 12's 3.1) reads the first, later
releases the second; each ignores the other's."""
KEEP_FREED_MEMORY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
"""Dask's setting that makes worker processes return freed memory at once (unset for the
local cluster's workers: module docstring, Memory)."""
LOCAL_CLUSTER_CONFIG: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.admin.tick.interval": "200ms",
    "distributed.worker.memory.monitor-interval": "500ms",
}
"""The local cluster's background work, lighter than Dask's defaults (module docstring:
Background work); a value the user configured otherwise is kept."""
CONNECT_TIMEOUT_S = 10.0
WORKERS_TIMEOUT_S = 60.0


class SchedulerError(ReductionError):
    """A scheduler address that is malformed, unreachable or has no workers."""


def worker_device_info(device: str | None = None) -> dict[str, Any]:
    """Task: the OpenCL device a worker uses and its compute units (threads on PoCL)."""
    from analysis import cl

    rt = cl.runtime(device)
    return {"device": rt.name, "compute_units": int(rt.device.max_compute_units)}


# -- schedulers --------------------------------------------------------------------------------


def worker_environment(cores: int = 1) -> dict[str, str]:
    """Environment of a worker process limited to ``cores`` threads (PoCL, OpenMP)."""
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise ReductionError(f"argument `cores_per_worker`: expected an integer >= 1, "
                             f"got {cores!r}")
    env = dict.fromkeys(POCL_THREAD_VARIABLES, str(cores))
    env["OMP_NUM_THREADS"] = str(cores)
    return env


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system says, else every
    core)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def max_local_workers() -> int:
    """The most workers :func:`connect` starts on this machine (``"local"``):
    :data:`LOCAL_WORKERS_PER_CORE` × :func:`usable_cores`. A running scheduler's workers
    are not on this machine and not limited."""
    return LOCAL_WORKERS_PER_CORE * usable_cores()


def check_local_workers(workers: int, option: str = "argument `workers`") -> str | None:
    """Why ``workers`` local workers are too many for this machine (the message, naming
    ``option`` and the limit), or None when they are not."""
    most = max_local_workers()
    if workers <= most:
        return None
    return (f"{option}: {workers} local workers is more than the {most} this machine "
            f"takes ({LOCAL_WORKERS_PER_CORE} per core, {usable_cores()} cores: each runs "
            "one task at a time on one core, so more only take turns, each a process with "
            "its own memory); a running scheduler's workers (tcp://HOST:PORT) are not "
            "limited")


def _check_address(scheduler: str) -> str:
    if scheduler == LOCAL:
        return scheduler
    parsed = urlparse(scheduler)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "tcp" or not parsed.hostname or port is None or \
            parsed.path not in ("", "/"):
        raise SchedulerError(f"scheduler {scheduler!r}: expected 'local' or "
                             "tcp://HOST:PORT")
    return f"tcp://{parsed.netloc}"


@dataclass
class DaskSession:
    """A Dask client and, for ``"local"``, the cluster it started (closed together).

    ``scheduler`` is what the user asked for (``"local"`` or the address), recorded in
    the derived run's start document."""

    client: Any
    """The ``distributed.Client``."""
    scheduler: str
    cluster: Any = None
    cores_per_worker: int = 1
    """Cores each worker of the local cluster computes on (its PoCL threads)."""
    _closed: bool = field(default=False, repr=False)

    @property
    def workers(self) -> int:
        """Workers connected now."""
        return len(self.client.scheduler_info(n_workers=-1).get("workers", {}))

    def worker_info(self, device: str | None = None) -> list[dict[str, Any]]:
        """Each worker's OpenCL device and compute units (runs a task on every worker)."""
        info: dict[str, dict[str, Any]] = self.client.run(worker_device_info, device)
        return [info[k] for k in sorted(info)]

    def close(self) -> None:
        """Close the client, then the local cluster (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _unless_configured(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``settings`` whose keys still have Dask's default value (not changed by the
    user's configuration files, environment or ``dask.config.set``)."""
    import dask

    defaults = dask.config.merge(*dask.config.defaults)
    return {key: value for key, value in settings.items()
            if dask.config.get(key, None) == dask.config.get(key, None, config=defaults)}


def connect(scheduler: str = LOCAL, workers: int | None = None, *,
            cores_per_worker: int = 1, timeout: float = CONNECT_TIMEOUT_S,
            worker_env: Mapping[str, str] | None = None) -> DaskSession:
    """Open a :class:`DaskSession`.

    Parameters
    ----------
    scheduler
        ``"local"``: start a LocalCluster of ``workers`` (default 2) worker processes on
        127.0.0.1, one task at a time each, PoCL limited to ``cores_per_worker`` threads,
        no dashboard. ``tcp://HOST:PORT``: connect to that scheduler and wait up to 60 s
        for ``workers`` workers (default: at least one).
    workers
        See ``scheduler``.
    cores_per_worker
        Threads of each local worker's OpenCL CPU device.
    timeout
        Seconds to wait for the connection to a remote scheduler.
    worker_env
        More environment variables of the local workers (e.g. ``SMEFLOW_API_KEY`` for
        frames read from a catalog server); ignored for a running scheduler, whose
        workers were started by their owner.

    Raises
    ------
    SchedulerError
        Malformed address, no scheduler there, or too few workers in time.
    """
    import dask
    import distributed

    from analysis.worker_memory import KeepFreedMemory

    dd: Any = distributed  # partly typed: its constructors are untyped
    address = _check_address(scheduler)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise SchedulerError(f"argument `workers`: expected an integer >= 1, got {workers!r}")
    if address == LOCAL:
        too_many = None if workers is None else check_local_workers(workers)
        if too_many is not None:
            raise SchedulerError(too_many)
        with dask.config.set({KEEP_FREED_MEMORY: None,  # (module docstring: Memory)
                              **_unless_configured(LOCAL_CLUSTER_CONFIG)}):
            cluster = dd.LocalCluster(n_workers=workers or 2, threads_per_worker=1,
                                      processes=True, host="127.0.0.1",
                                      dashboard_address=None,
                                      env={**worker_environment(cores_per_worker),
                                           **(worker_env or {})})
        try:
            client = dd.Client(cluster, set_as_default=False)
        except BaseException:
            cluster.close()
            raise
        try:
            client.register_plugin(KeepFreedMemory())  # (module docstring: Memory)
        except BaseException:
            client.close()
            cluster.close()
            raise
        return DaskSession(client, LOCAL, cluster, cores_per_worker)
    try:
        client = dd.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(f"scheduler {address}: cannot connect "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
                             ) from None
    try:
        client.wait_for_workers(workers or 1, timeout=WORKERS_TIMEOUT_S)
    except TimeoutError:
        have = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        client.close()
        raise SchedulerError(f"scheduler {address}: {have} worker(s) after "
                             f"{WORKERS_TIMEOUT_S:.0f} s, expected {workers or 1}") from None
    return DaskSession(client, address)
