"""Live reduction in another process over 0MQ (``smeflow reduce --live --zmq``): real
processes (a ``smeflow proxy``, consumers ``python -m sme reduce --live``), the RunEngine
and the small beamline in this process writing raw runs to an embedded catalog that the
consumer writes derived runs to. Nothing lost at a run's start, a consumer killed mid-run
and restarted, and a consumer slower than acquisition with bounded memory."""

from __future__ import annotations

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
BINS = 8000
"""Slow-consumer test: two 8000-value arrays per reduced frame (about 0.8 MB as the
event documents' Python lists), so that anything keeping results per frame (an unbounded
queue, a writer buffering a whole run: ``TiledWriter``'s default) shows in the peak RSS;
with ``--batch 4`` the writer holds at most 4 such events."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Consumer:
    """A ``smeflow reduce --live`` process whose output lines are collected."""

    def __init__(self, out_address: str, data: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sme", "reduce", "--live", "--zmq", out_address,
             "--data", str(data), *extra],
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

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        """The first output line matching ``pattern`` (waiting for it)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    found = regex.search(line)
                    if found:
                        return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None
                                      and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} from the consumer; "
                                         "output:\n" + "\n".join(self.lines))
                self._cond.wait(min(remaining, 0.5))

    def peak_rss_kib(self) -> int:
        """``VmHWM`` of the running consumer process."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        assert found, status
        return int(found.group(1))

    def terminate(self) -> str:
        """SIGTERM, wait, and return everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self._reader.join(10)
        return "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


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

    def consumer(self, *extra: str) -> Consumer:
        c = Consumer(self.outs, self.catalog.root, *extra)
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


def test_slow_consumer_drops_reductions_keeps_raw_data_and_bounded_memory(
        bench: Bench) -> None:
    """A consumer slower than acquisition (test aid ``--throttle``: 2 s per frame vs
    about 0.1 s per acquired frame, still slower on a machine loaded enough to make
    acquisition 10× slower) with an inbox of 4 frame documents: reductions are
    dropped and counted, raw data is complete, and an 8× longer scan raises the consumer's
    peak RSS no more than another short one does (each run costs the consumer about
    1.5-4 MB, the same for 12 frames as for 96: measured by the two short scans after the
    warm-up, the larger of the two taken since either varies by 2 MB between identical
    runs, so that only growth with the number of frames fails: a 64 KiB pattern kept per
    frame would add 5 MB)."""
    consumer = bench.consumer("--throttle", "2", "--capacity", "4", "--bins", str(BINS),
                              "--batch", "4")
    consumer.wait_for(READY)
    peaks: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for what, frames in (("warm-up", 12), ("short", 12), ("short again", 12), ("long", 96)):
        uid = bench.scan(frames)
        line = derived_line(consumer, uid, timeout=120)
        peaks[what] = consumer.peak_rss_kib()
        bench.assert_raw_complete(uid, frames)
        stop = bench.catalog.run(line["derived"]).metadata["stop"]
        assert stop["exit_status"] == "success", stop.get("reason")
        assert stop["dropped_frames"] == int(line["dropped"]) > 0, (what, line[0])
        # every frame is either reduced or counted as dropped
        assert stop["frames"] + stop["dropped_frames"] == frames
        dropped[what] = stop["dropped_frames"]
    output = consumer.terminate()
    stats = stats_line(output)
    assert int(stats["dropped"]) >= sum(dropped.values())
    assert dropped["long"] > dropped["short"]
    print(f"consumer peak RSS (KiB): {peaks}, dropped frames {dropped}")
    per_run = max(peaks["short"] - peaks["warm-up"], peaks["short again"] - peaks["short"], 0)
    excess = peaks["long"] - peaks["short again"] - per_run
    assert excess < 2 * 1024, (f"an 8x longer scan raised peak RSS {excess} KiB more than a "
                               f"short scan ({per_run} KiB): {peaks}")
