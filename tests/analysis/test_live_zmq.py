"""Live reduction in another process over 0MQ (``smeflow reduce --live --zmq``): real
processes (a ``smeflow proxy``, consumers ``python -m sme reduce --live``), the RunEngine
and the small beamline in this process writing raw runs to an embedded catalog that the
consumer writes derived runs to. Nothing lost at a run's start, a consumer killed mid-run
and restarted, and a consumer slower than acquisition with bounded memory."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

FRAME = (64, 64)
READY = "live reduction: listening on"
BINS = 500
"""Memory test: two 500-value arrays per reduced frame (about 50 KB as the event
documents' Python lists), so that anything keeping results per frame (a writer buffering
a whole run: ``TiledWriter``'s default) shows in the traced peak; with ``--batch 4`` the
writer holds at most 4 such events."""
SHORT, LONG = 16, 48
"""Memory test: frames of a short and a long scan; a 64 KiB array kept per frame makes
the long one hold 2 MiB more, a writer keeping every pattern of a run 1.6 MB more. Both
are reduced in stacks of 16 frames (``DEFAULT_MAX_BATCH``) at most, so that a stack's
arrays weigh the same in both peaks (with 8, the long scan's peak was 0.9 MB higher)."""
GROWTH_LIMIT_KIB = 1024
"""Memory test: how much more the long scan may hold than the short one (after it, and
at its peak): measured 100-300 KiB (bounded caches: an integration's divisors per stack
size, the writer's batch, the reduction of up to 16 frames at once)."""
TRACED_CONSUMER = Path(__file__).with_name("traced_consumer.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Consumer:
    """A ``smeflow reduce --live`` process whose output lines are collected."""

    def __init__(self, out_address: str, data: Path, *extra: str,
                 program: tuple[str, ...] = ("-m", "sme")) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, *program, "reduce", "--live", "--zmq", out_address,
             "--data", str(data), *extra], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 60.0, since: int = 0) -> re.Match[str]:
        """The first output line from the ``since``-th on matching ``pattern`` (waiting
        for it)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[since:]:
                    found = regex.search(line)
                    if found:
                        return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None
                                      and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} from the consumer; "
                                         "output:\n" + "\n".join(self.lines))
                self._cond.wait(min(remaining, 0.5))

    def gate(self, state: str) -> None:
        """``open`` or ``close`` the gate of a ``traced_consumer.py`` process, and wait
        until it has."""
        assert self.proc.stdin is not None
        since = len(self.lines)
        self.proc.stdin.write(f"{state}\n")
        self.proc.stdin.flush()
        self.wait_for(f"^gate {state}$", since=since)

    def terminate(self) -> str:
        """SIGTERM, wait, and return everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self._reader.join(10)
        self._close_stdin()
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._close_stdin()

    def _close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):  # (a gate line to a process gone)
                self.proc.stdin.close()


@dataclass
class Bench:
    """The proxy's addresses, the catalog, the RunEngine publishing to the proxy, the
    beamline, and a way to start consumers."""

    ins: str
    outs: str
    catalog: Any
    RE: Any
    beamline: Any
    consumers: list[Consumer]

    def consumer(self, *extra: str, program: tuple[str, ...] = ("-m", "sme")) -> Consumer:
        c = Consumer(self.outs, self.catalog.root, *extra, program=program)
        self.consumers.append(c)
        return c

    def scan(self, frames: int) -> str:
        """A diffraction run of ``frames`` frames at one position; its uid."""
        from plans import diffraction_scan

        bl = self.beamline
        (uid,) = self.RE(diffraction_scan(bl.det, bl.sample_x, bl.sample_y, [(0.0, 0.0)],
                                          num=frames, shutter=bl.shutter,
                                          md={"geometry": bl.geometry.to_metadata()}))
        return str(uid)

    def assert_raw_complete(self, uid: str, frames: int) -> None:
        run = self.catalog.run(uid)
        assert run.metadata["stop"]["exit_status"] == "success"
        assert run.metadata["stop"]["num_events"]["primary"] == frames
        assert run["primary"]["det_image"].shape == (frames, *FRAME)
        (path, dataset), = RAW_FILES[uid]
        with h5py.File(path, "r") as f:  # every frame is in the file
            assert f[dataset].shape == (frames, *FRAME)


RAW_FILES: dict[str, set[tuple[Path, str]]] = {}
"""Raw run uid → its frame files and datasets (from its stream_resource documents; the
pixel mask's file is left out)."""


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    from bluesky import RunEngine
    from bluesky import plan_stubs as bps

    from dataflow.bus import DocumentPublisher
    from dataflow.catalog import Catalog
    from devices.beamline import Beamline
    from fpga.designs.params import ChainParams

    ins, outs = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    proxy = subprocess.Popen([sys.executable, "-m", "sme", "proxy", "--in-address", ins,
                              "--out-address", outs], stdout=subprocess.PIPE, text=True)
    assert proxy.stdout is not None
    assert "0MQ proxy" in proxy.stdout.readline()
    catalog = Catalog(tmp_path_factory.mktemp("zmq") / "data")
    RE = RunEngine({})
    catalog.subscribe(RE, batch_size=1)  # raw runs written while the consumer writes

    def note_files(name: str, doc: dict[str, Any]) -> None:
        if name == "stream_resource" and doc.get("data_key") == "det_image":
            from analysis.reduce import uri_path
            from dataflow.hdf5 import DEFAULT_DATASET

            dataset = (doc.get("parameters") or {}).get("dataset") or DEFAULT_DATASET
            RAW_FILES.setdefault(doc["run_start"], set()).add(
                (uri_path(doc["uri"]), str(dataset)))

    RE.subscribe(note_files)  # type: ignore[no-untyped-call]
    publisher = DocumentPublisher(ins)
    RE.subscribe(publisher)  # type: ignore[no-untyped-call]
    beamline = Beamline.create(catalog.raw_dir, params=ChainParams(*FRAME, 16),
                               backend="compiled", time_scale=0.001)
    consumers: list[Consumer] = []
    try:
        RE(bps.mv(beamline.shutter, "open"))
        beamline.use_powder()
        yield Bench(ins, outs, catalog, RE, beamline, consumers)
    finally:  # processes first: they must not outlive a failing teardown
        for c in consumers:
            c.kill()
        proxy.terminate()
        proxy.wait(10)
        try:
            beamline.close()
            publisher.close()
        finally:
            catalog.close()


def derived_line(consumer: Consumer, raw_uid: str, timeout: float = 60.0) -> re.Match[str]:
    return consumer.wait_for(
        rf"^run {raw_uid} -> (?P<derived>\S+): (?P<status>\w+), (?P<frames>\d+) frames, "
        r"lag max (?P<lag>\S+)( s)?, (?P<dropped>\d+) dropped", timeout)


def stats_line(output: str) -> re.Match[str]:
    found = re.search(r"stopped: (?P<runs>\d+) runs seen, (?P<derived>\d+) derived runs, "
                      r"(?P<skipped>\d+) documents of partly seen runs skipped, "
                      r"(?P<dropped>\d+) frame documents dropped, (?P<errors>\d+) errors, "
                      r"peak RSS (?P<rss>\d+) KiB", output)
    assert found, output
    return found


def test_consume_takes_none_for_bins_and_unit(tmp_path: Path) -> None:
    """From Python as from the command line: ``consume(..., bins=None, unit=None)``
    listens with the defaults (a live stream has runs of both reductions) and, stopped,
    returns without an error."""
    import io

    from analysis.live_consumer import consume
    from dataflow.catalog import Catalog

    out = io.StringIO()
    stop = threading.Event()
    with Catalog(tmp_path / "data") as catalog:
        stats = consume(f"127.0.0.1:{free_port()}", catalog, stop=stop, bins=None,
                        unit=None, out=out, on_ready=stop.set)
    assert READY in out.getvalue()
    assert stats.errors == [] and stats.runs == []


@pytest.mark.parametrize("throttle", [-1.0, float("nan"), float("inf")])
def test_consume_refuses_a_throttle_out_of_range_before_listening(throttle: float) -> None:
    """``throttle_s`` -1 and nan were taken as none (only > 0 made a ``Throttle``, which
    checks), inf failed later; now ``ValueError`` before the catalog is touched."""
    from analysis.live_consumer import consume

    untouchable = object()  # any use of the catalog would be an AttributeError
    with pytest.raises(ValueError, match=r"throttle_s .*: must be a finite number of "
                                         r"seconds >= 0"):
        consume(f"127.0.0.1:{free_port()}", untouchable, stop=threading.Event(),  # type: ignore[arg-type]
                throttle_s=throttle)


def test_consumer_reduces_a_run_like_offline(bench: Bench) -> None:
    from analysis.reduce import reduce_run

    consumer = bench.consumer()
    consumer.wait_for(READY)
    uid = bench.scan(5)
    line = derived_line(consumer, uid)
    assert line["status"] == "success" and int(line["frames"]) == 5
    assert int(line["dropped"]) == 0
    output = consumer.terminate()
    assert consumer.proc.returncode == 0, output
    stats = stats_line(output)
    # the start document arrived (else the whole run would have been skipped)
    assert int(stats["skipped"]) == 0 and int(stats["runs"]) == 1
    assert int(stats["derived"]) == 1 and int(stats["errors"]) == 0

    (derived_uid,) = list(bench.catalog.derived_runs(uid))
    assert derived_uid == line["derived"]
    live = bench.catalog.run(derived_uid)
    assert live.metadata["start"]["raw_uid"] == uid and live.metadata["start"]["live"]
    stop = live.metadata["stop"]
    assert stop["exit_status"] == "success"
    assert stop["frames"] == 5 and stop["dropped_frames"] == 0
    offline = bench.catalog.run(reduce_run(bench.catalog, uid).uid)
    for key in ("intensity", "sigma", "raw_seq_num"):
        np.testing.assert_array_equal(np.asarray(live["primary"][key].read()),
                                      np.asarray(offline["primary"][key].read()))
    np.testing.assert_array_equal(np.asarray(live["axis"]["radial"][0]),
                                  np.asarray(offline["axis"]["radial"][0]))
    bench.assert_raw_complete(uid, 5)


def kill_and_restart_at(bench: Bench, victim: Consumer, event: int,
                        restarted: list[Consumer]) -> Callable[[str, dict[str, Any]], None]:
    """A RunEngine callback: at the ``event``-th event, SIGKILL ``victim``, start a new
    consumer and hold the scan until it listens (so it surely joins mid-run)."""
    def callback(name: str, doc: dict[str, Any]) -> None:
        if name == "event" and doc["seq_num"] == event and not restarted:
            os.kill(victim.proc.pid, signal.SIGKILL)
            victim.proc.wait(10)
            restarted.append(bench.consumer())
            restarted[0].wait_for(READY)
    return callback


def test_consumer_killed_mid_run_restarts_with_the_next_run(bench: Bench) -> None:
    first = bench.consumer()
    first.wait_for(READY)
    restarted: list[Consumer] = []
    token = bench.RE.subscribe(kill_and_restart_at(bench, first, 4, restarted))
    try:
        interrupted = bench.scan(12)
    finally:
        bench.RE.unsubscribe(token)
    assert first.proc.returncode == -signal.SIGKILL
    (second,) = restarted
    bench.assert_raw_complete(interrupted, 12)  # the scan did not notice

    following = bench.scan(3)
    line = derived_line(second, following)
    assert line["status"] == "success" and int(line["frames"]) == 3
    output = second.terminate()
    assert second.proc.returncode == 0, output
    assert f"run {interrupted}" not in output  # skipped as a whole
    stats = stats_line(output)
    assert int(stats["skipped"]) > 0 and int(stats["runs"]) == 1
    (derived,) = list(bench.catalog.derived_runs(following))
    assert derived == line["derived"]
    assert bench.catalog.run(derived).metadata["stop"]["frames"] == 3
    # what the killed consumer left of the interrupted run: never a successful derived run
    for uid in bench.catalog.derived_runs(interrupted):
        stop = bench.catalog.run(uid).metadata.get("stop")
        assert stop is None or stop["exit_status"] != "success"


def test_slow_consumer_drops_reductions_and_keeps_raw_data(bench: Bench) -> None:
    """A consumer slower than acquisition (``traced_consumer.py``'s gate closed during the
    scan: its reductions wait, so that the inbox of 16 frame documents overflows on any
    machine) drops reductions and counts them, and raw data is complete."""
    consumer = bench.consumer("--throttle", "1", "--capacity", "16",
                              program=(str(TRACED_CONSUMER),))
    consumer.wait_for(READY)
    consumer.gate("close")
    uid = bench.scan(LONG)
    consumer.gate("open")
    line = derived_line(consumer, uid, timeout=120)
    bench.assert_raw_complete(uid, LONG)
    stop = bench.catalog.run(line["derived"]).metadata["stop"]
    assert stop["exit_status"] == "success", stop.get("reason")
    assert stop["dropped_frames"] == int(line["dropped"]) > 0, line[0]
    # every frame is either reduced or counted as dropped
    assert stop["frames"] + stop["dropped_frames"] == LONG
    stats = stats_line(consumer.terminate())
    assert int(stats["dropped"]) >= stop["dropped_frames"]


def test_consumer_memory_does_not_grow_with_the_number_of_frames(bench: Bench) -> None:
    """The consumer's Python heap (tracemalloc, from ``traced_consumer.py``: numpy arrays
    included, none of the allocator's and the page cache's noise that made a peak-RSS
    version of this test flaky) does not grow with the number of frames: a scan of
    ``LONG`` frames holds no more than one of ``SHORT``, after it and at its peak. (A
    64 KiB array kept per frame, received or reduced, fails this; so does the
    ``TiledWriter`` buffering a whole run.) The gate is closed during each scan and
    the inbox holds a whole one: every frame is reduced, after the scan (the consumer's
    writes then do not meet the raw run's in SQLite)."""
    consumer = bench.consumer("--throttle", "1", "--capacity", str(4 * LONG), "--bins",
                              str(BINS), "--batch", "4", program=(str(TRACED_CONSUMER),))
    consumer.wait_for(READY)
    held: dict[str, tuple[int, int]] = {}
    for what, frames in (("warm-up", SHORT), ("short", SHORT), ("long", LONG)):
        consumer.gate("close")
        uid = bench.scan(frames)
        consumer.gate("open")
        line = derived_line(consumer, uid, timeout=120)
        assert int(line["frames"]) == frames and int(line["dropped"]) == 0, line[0]
        traced = re.search(r"\[traced (\d+) (\d+) KiB\]$", line.string)
        assert traced, line.string
        held[what] = (int(traced[1]), int(traced[2]))
    stats = stats_line(consumer.terminate())
    assert int(stats["errors"]) == 0 and int(stats["dropped"]) == 0
    print(f"consumer's traced Python heap (KiB, after the run and its peak): {held}")
    for i, kind in enumerate(("after", "at the peak of")):
        growth = held["long"][i] - held["short"][i]
        assert growth < GROWTH_LIMIT_KIB, (
            f"the consumer held {growth} KiB more {kind} a scan of {LONG} frames than "
            f"{kind} one of {SHORT}: {held}")
