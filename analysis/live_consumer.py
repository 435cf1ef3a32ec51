"""Live reduction in a process of its own: documents from the 0MQ proxy, derived runs
into the catalog (``smeflow reduce --live --zmq HOST:PORT``).

Topology::

    RunEngine ──DocumentPublisher──▶ smeflow proxy ──▶ DocumentSubscriber ─▶ LiveReducer
    (beamline process, writes the     (in → out)        (this process)       │ reads frames from
     raw run + HDF5 frames)                                                  │ the raw HDF5 files
                                                                             ▼
                                                   the same catalog folder: derived runs

:func:`consume` subscribes a :class:`analysis.live.LiveReducer` (its own ``TiledWriter``
on the catalog) to the proxy's *out* address and runs until asked to stop, printing one
line per raw run. The reducer reads the frames from the paths announced in the
``stream_resource`` documents, so it runs on a machine that sees the beamline's files
(the same one, for the embedded catalog). Both processes open the same embedded SQLite
catalog: the beamline writes raw runs, the consumer only derived runs; SQLite serialises
their writes with its file lock.

Behaviour that matters across processes:

* a run whose start document this process did not see (it joined, or was restarted,
  in the middle) is skipped as a whole (:class:`dataflow.bus.WholeRuns`), and the next
  run is reduced; publishing never waits for this process, so the scan is unaffected by
  its crash or its slowness;
* slow consumer: the reducer's inbox holds at most ``capacity`` frame documents; when
  it is full a frame document is dropped at once (``put_timeout`` 0 by default: waiting
  would only move the backlog into 0MQ's buffer, where a dropped *stop* document would
  leave a derived run open) and counted — ``dropped_frames`` in the derived stop
  document and on the printed line; raw data never passes through here;
* SIGINT/SIGTERM (the CLI) sets the ``stop`` event: receiving stops, the queued
  documents are reduced, every raw run still open gets a derived run ended with
  ``exit_status="abort"`` (``"fail"`` when no frame was reduced), and the catalog is
  closed.

``throttle_s`` is a test aid: it sleeps that long per derived pattern event (one per
diffraction frame) in the reducer's worker, to make a consumer slower than acquisition
on purpose.
"""

from __future__ import annotations

import argparse
import math
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from analysis.live import LiveReducer, LiveRunResult
from analysis.live_reduction import ENDED_BY_CONSUMER
from dataflow.bus import DEFAULT_OUT, SETTLE_S, BusError, DocumentSubscriber, parse_address
from dataflow.catalog import RunCatalog
from dataflow.remote import open_catalog
from sme.cli import given

__all__ = ["DEFAULT_CONSUMER_BATCH", "DEFAULT_CONSUMER_CAPACITY", "ConsumerStats", "Throttle",
           "add_live_arguments", "check_throttle", "cmd_live", "consume", "peak_rss_kib",
           "run_line"]

DEFAULT_CONSUMER_CAPACITY = 1000
"""Frame documents the consumer's inbox holds (the reducer's default)."""
DEFAULT_CONSUMER_BATCH = 20
"""Derived events the consumer's ``TiledWriter`` buffers before writing them. Its own
default (10,000, i.e. the whole run) would keep every pattern of a run in memory until
the run's stop, so the consumer's memory would grow with the scan's length."""
POLL_S = 0.1
STOP_REASON = "live consumer stopped before the raw run ended"


@dataclass
class ConsumerStats:
    """What a :func:`consume` call did, for its caller (the CLI prints it)."""

    runs: list[LiveRunResult] = field(default_factory=list)
    skipped_documents: int = 0
    dropped_documents: int = 0
    errors: list[str] = field(default_factory=list)
    peak_rss_kib: int = 0

    def text(self) -> str:
        """One line: runs reduced, documents skipped and dropped, peak RSS."""
        reduced = sum(1 for r in self.runs if r.derived_uid is not None)
        return (f"stopped: {len(self.runs)} runs seen, {reduced} derived runs, "
                f"{self.skipped_documents} documents of partly seen runs skipped, "
                f"{self.dropped_documents} frame documents dropped, "
                f"{len(self.errors)} errors, peak RSS {self.peak_rss_kib} KiB")


def peak_rss_kib() -> int:
    """This process's peak resident set size so far, KiB (``VmHWM``)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux


def run_line(result: LiveRunResult) -> str:
    """The line printed for a finished raw run: raw uid → derived uid, status, frames,
    lag max, dropped frames (and the reason of a failure)."""
    derived = result.derived_uid or "-"
    lag = f"{result.lag_max:.3f} s" if not math.isnan(result.lag_max) else "-"
    line = (f"run {result.raw_uid} -> {derived}: {result.exit_status}, "
            f"{result.frames} frames, lag max {lag}, {result.dropped_frames} dropped")
    if result.reason:
        line += f" ({result.reason})"
    return line


def check_throttle(seconds: float, name: str = "throttle") -> float:
    """``seconds`` if it is a finite number >= 0, else ``ValueError`` naming it as ``name``
    (a negative or NaN throttle was taken as none, an infinite one failed in the run)."""
    if not (seconds >= 0 and math.isfinite(seconds)):  # (NaN fails both)
        raise ValueError(f"{name} {seconds}: must be a finite number of seconds >= 0")
    return float(seconds)


class Throttle:
    """A derived-run callback that sleeps ``seconds`` per event it sees (test aid: makes
    the reducer's worker slower than acquisition; see the module docstring)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = check_throttle(seconds)

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "event":
            time.sleep(self.seconds)
        elif name == "event_page":
            time.sleep(self.seconds * len(doc.get("seq_num", ())))


def consume(address: str, catalog: RunCatalog, *, stop: threading.Event,
            rows: Sequence[int] | None = None, bins: int | None = None,
            unit: str | None = None, device: str | None = None,
            capacity: int = DEFAULT_CONSUMER_CAPACITY, put_timeout: float = 0.0,
            batch_size: int | None = DEFAULT_CONSUMER_BATCH, throttle_s: float = 0.0,
            out: TextIO | None = None,
            on_ready: Callable[[], None] | None = None) -> ConsumerStats:
    """Reduce every whole run published through the proxy at ``address`` into
    ``catalog``, until ``stop`` is set.

    Parameters
    ----------
    address
        The proxy's *out* address, ``HOST:PORT``.
    catalog
        The catalog the raw runs are written to; derived runs go there too.
    stop
        Set it (e.g. from a signal handler) to end; see the module docstring.
    rows, bins, unit, device
        Reduction parameters (as for ``smeflow reduce``; ``None`` for ``bins`` or
        ``unit``: ``DEFAULT_BINS``, ``DEFAULT_UNIT``).
    capacity, put_timeout
        The reducer's inbox bound and wait (see :class:`analysis.live.LiveReducer`).
    batch_size
        Derived events buffered by the ``TiledWriter`` before a write (bounded memory;
        None: its default, the whole run).
    throttle_s
        Test aid: seconds slept per derived pattern event (finite, >= 0).
    out
        Where the lines go (default ``sys.stdout``), flushed after each.
    on_ready
        Called once the subscription is up (after the settle time).

    Returns
    -------
    ConsumerStats
        Every run seen, counters, errors and the peak RSS.

    Raises
    ------
    dataflow.bus.BusError
        ``address`` is not ``HOST:PORT``.
    ValueError
        A reduction parameter or ``throttle_s`` is out of range.
    """
    parse_address(address, "--zmq")
    stream = out if out is not None else sys.stdout
    extra = [Throttle(throttle_s)] if check_throttle(throttle_s, "throttle_s") > 0 else []
    reducer = LiveReducer.for_catalog(catalog, batch_size=batch_size, extra_callbacks=extra,
                                      rows=rows, bins=bins, unit=unit, device=device,
                                      capacity=capacity, put_timeout=put_timeout)
    stats = ConsumerStats()

    def emit(text: str) -> None:
        print(text, file=stream, flush=True)

    def report(results: list[LiveRunResult]) -> None:
        for result in results:
            stats.runs.append(result)
            emit(run_line(result))

    subscriber = DocumentSubscriber(address)
    whole = subscriber.subscribe(reducer)
    failure: list[BaseException] = []

    def receive() -> None:
        try:
            subscriber.start()
        except BaseException as exc:  # reported by the main loop
            failure.append(exc)

    thread = threading.Thread(target=receive, name="smeflow-live-subscriber", daemon=True)
    thread.start()
    try:
        time.sleep(SETTLE_S)  # the SUB socket's connection and subscription reach the proxy
        emit(f"live reduction: listening on {subscriber.address}, derived runs into "
             f"{catalog!r}")
        if on_ready is not None:
            on_ready()
        while not stop.wait(POLL_S) and thread.is_alive():
            report(_take_finished(reducer))
    finally:
        if thread.is_alive():
            subscriber.stop()
            thread.join(10)
        _abort_open_runs(reducer)
        reducer.close()
        report(_take_finished(reducer))
        stats.skipped_documents = whole.skipped
        stats.dropped_documents = reducer.dropped_documents
        stats.errors = list(reducer.errors)
        stats.peak_rss_kib = peak_rss_kib()
    if failure:
        exc = failure[0]
        stats.errors.append(f"receiving: {type(exc).__name__}: {exc}")
    return stats


def _take_finished(reducer: LiveReducer) -> list[LiveRunResult]:
    """Remove and return the finished runs (a long-running consumer keeps no history)."""
    done = [r for r in list(reducer.results.values()) if r.finished]
    for r in done:
        reducer.results.pop(r.raw_uid, None)
    return done


def _abort_open_runs(reducer: LiveReducer) -> None:
    """End the derived runs of raw runs whose stop will not be received here."""
    reducer.wait(timeout=None)
    for result in list(reducer.results.values()):
        if not result.finished:
            reducer("stop", {"uid": f"consumer-stop-{result.raw_uid}", "time": time.time(),
                             "run_start": result.raw_uid, "exit_status": "abort",
                             "reason": STOP_REASON, "num_events": {},
                             ENDED_BY_CONSUMER: True})


# -- the command line (``smeflow reduce --live``; analysis.cli adds these arguments) ------


def add_live_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--live`` options of ``smeflow reduce`` (the other options are shared)."""
    p.add_argument("--live", action="store_true",
                   help="follow runs published through the 0MQ proxy and reduce each while "
                   "it is acquired (runs until SIGINT/SIGTERM); no UID then")
    p.add_argument("--zmq", metavar="HOST:PORT",
                   help=f"with --live: the proxy's out-address (default {DEFAULT_OUT})")
    p.add_argument("--capacity", type=int,  # (None: not given, refused without --live)
                   metavar="DOCS", help="with --live: frame documents queued before "
                   f"reductions are dropped (default {DEFAULT_CONSUMER_CAPACITY})")
    p.add_argument("--batch", type=int, metavar="EVENTS",
                   help="with --live: derived events buffered per catalog write (memory "
                   f"bound vs speed; default {DEFAULT_CONSUMER_BATCH})")
    p.add_argument("--throttle", type=float, metavar="SECONDS",
                   help="with --live, test aid: sleep this long per reduced diffraction "
                   "frame (simulates a slow consumer)")


def _check(args: argparse.Namespace) -> None:
    """The run argument against ``--live`` (the options' domains and modes are
    ``analysis.cli.check_arguments``' and ``check_modes``', run before this)."""
    if not args.live:
        raise ValueError("give the run to reduce (UID or scan number), or --live to "
                         "follow runs as they are acquired")
    if args.run is not None:
        raise ValueError(f"give either a run ({args.run!r}) or --live, not both")


def cmd_live(args: argparse.Namespace) -> int:
    """``smeflow reduce --live [--zmq HOST:PORT] [--data DIR]``: :func:`consume` until
    SIGINT or SIGTERM; exit 0 after a clean stop, 1 when receiving failed."""
    _check(args)
    address = args.zmq or DEFAULT_OUT
    try:
        parse_address(address, "--zmq")
    except BusError as exc:
        raise ValueError(str(exc)) from None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_catalog(args.data, args.url, args.api_key_file) as catalog:
            # (--bins/--unit are None when not given: the defaults)
            stats = consume(address, catalog, stop=stop, rows=args.rows, bins=args.bins,
                            unit=args.unit, device=args.device,
                            capacity=given(args.capacity, DEFAULT_CONSUMER_CAPACITY),
                            batch_size=given(args.batch, DEFAULT_CONSUMER_BATCH),
                            throttle_s=given(args.throttle, 0.0))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(stats.text(), flush=True)
    for error in stats.errors:
        print(f"  error: {error}", flush=True)
    return 1 if any(e.startswith("receiving:") for e in stats.errors) else 0
