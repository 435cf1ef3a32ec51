"""``smeflow queue``: Redis and the RE Manager with smeflow's startup profile, driven as a
beamline user drives it, through bluesky-queueserver-api.

The end-to-end test starts the real command (Debian's redis-server, start-re-manager) on
free ports, opens the environment, queues a tomography scan and a diffraction series,
runs the queue, stops the command as Ctrl-C does and finds both runs in the catalog.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from dataflow.catalog import Catalog
from plans.qserver.cli import (
    SNAPSHOT,
    STOP_TIMEOUT,
    QueueError,
    _stop,
    parse_redis,
    redis_state,
    start_redis,
)
from plans.qserver.settings import QueueSettings, QueueSettingsError

SMEFLOW = str(Path(sys.executable).with_name("smeflow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_manager(RM: object, deadline: float) -> None:
    from bluesky_queueserver_api.comm_base import RequestTimeoutError

    while True:
        try:
            RM.status()  # type: ignore[attr-defined]
            return
        except RequestTimeoutError:
            if time.monotonic() > deadline:
                raise


def _terminal_signals() -> None:
    """A command started at a terminal prompt: SIGINT and SIGTERM at their defaults and
    unblocked, whatever the test process has. A suite started as a background job of a
    script has SIGINT ignored, and bluesky's RunEngine puts back the handler it found at
    each run's end (SIG_IGN, as Python recorded it at start-up, even where a library has
    reset it since); a child inherits an ignored signal, and ``smeflow queue`` rightly
    keeps it, so the test's Ctrl-C was ignored depending on the tests run before."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _ignore_and_block_sigint() -> None:
    """A background job of a script: SIGINT ignored; and a parent that had SIGINT and
    SIGTERM blocked (a signal mask survives ``exec``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


@contextmanager
def running_queue(tmp_path: Path, *, ignore_sigint: bool = False
                  ) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """``smeflow queue`` on free ports, 64×64 frames; stopped when the block ends."""
    where = {"redis": f"127.0.0.1:{free_port()}",
             "control": f"tcp://127.0.0.1:{free_port()}",
             "info": f"tcp://127.0.0.1:{free_port()}", "data": str(tmp_path / "data"),
             "log": str(tmp_path / "queue.log")}
    log = open(where["log"], "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [SMEFLOW, "queue", "--data", where["data"], "--backend", "compiled",
         "--frame", "64x64", "--redis", where["redis"], "--zmq-control-addr",
         where["control"], "--zmq-info-addr", where["info"]],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"},
        preexec_fn=_ignore_and_block_sigint if ignore_sigint else _terminal_signals)
    try:
        yield proc, where
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM if ignore_sigint else signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        print(Path(where["log"]).read_text(errors="replace")[-4000:])


@pytest.fixture
def queue_command(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """``smeflow queue`` on free ports, 64×64 frames; stopped (and checked) by the test."""
    with running_queue(tmp_path) as started:
        yield started


def print_stuck_state(proc: subprocess.Popen[bytes], log: Path) -> None:
    """What a ``smeflow queue`` that did not stop was doing, and the RE Manager's processes
    with it: each one's signal masks and state and each thread's kernel wait, then their
    Python stacks (SIGABRT: faulthandler, enabled by ``running_queue`` and inherited by the
    manager and its worker, writes them to the log that the fixture prints)."""
    pid = manager_pid(log)
    manager = process_group(pid) if pid is not None else []
    for pid in [proc.pid, *manager]:
        base = Path(f"/proc/{pid}")
        with suppress(OSError):
            status = (base / "status").read_text().splitlines()
            print(f"stuck process {pid}:", (base / "cmdline").read_bytes()[:120],
                  [line for line in status if line.startswith(("State", "Sig"))])
            for task in sorted(base.glob("task/*")):
                print("  thread", task.name, (task / "comm").read_text().strip(),
                      (task / "stat").read_text().rsplit(")", 1)[1].split()[0],
                      (task / "wchan").read_text())
    for pid in [*manager, proc.pid]:
        with suppress(OSError):
            os.kill(pid, signal.SIGABRT)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    time.sleep(2)  # the manager's processes write their stacks too


def manager_pid(log: Path) -> int | None:
    """The RE Manager's process, as ``smeflow queue`` names it in its log; None before that."""
    started = re.search(r"RE Manager \(pid (\d+)\)", log.read_text(errors="replace"))
    return int(started.group(1)) if started else None


def process_group(pgid: int) -> list[int]:
    """The processes of process group ``pgid`` (from /proc), zombies left out."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.slow
def test_queue_runs_a_tomography_and_a_diffraction_series_into_the_catalog(
    queue_command: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    from bluesky_queueserver_api import BPlan
    from bluesky_queueserver_api.comm_base import RequestFailedError
    from bluesky_queueserver_api.zmq import REManagerAPI

    proc, where = queue_command
    RM = REManagerAPI(zmq_control_addr=where["control"], zmq_info_addr=where["info"],
                      timeout_recv=5.0)
    try:
        wait_for_manager(RM, time.monotonic() + 60)
        assert proc.poll() is None, "smeflow queue exited while starting"
        RM.environment_open()
        RM.wait_for_idle(timeout=180)
        assert RM.status()["worker_environment_exists"]
        plans = RM.plans_allowed()["plans_allowed"]
        assert {"tomo_scan", "fly_tomo_scan", "diffraction_scan", "diffraction_count",
                "count", "scan", "grid_scan", "mv"} <= set(plans)
        assert set(RM.devices_allowed()["devices_allowed"]) >= {
            "det", "rotation", "sample_x", "sample_y", "shutter", "beam", "sample"}
        # the parameters are typed for the queue server from the plan's annotations
        with pytest.raises(RequestFailedError, match="num_projections"):
            RM.item_add(BPlan("tomo_scan", "det", "rotation", "sample_x", "shutter",
                              out_position=20.0, num_projections="many"))

        RM.item_add(BPlan("mv", "sample", "phantom"))
        RM.item_add(BPlan("tomo_scan", "det", "rotation", "sample_x", "shutter",
                          out_position=20.0, num_projections=8, n_darks=2, n_flats=2,
                          md={"sample": "phantom via the queue"}))
        RM.item_add(BPlan("mv", "sample", "powder"))
        RM.item_add(BPlan("diffraction_scan", "det", "sample_x", "sample_y",
                          [[0.0, 0.0], [0.5, 0.0]], num=2, shutter="shutter"))
        # a start value given as text: the queue's validation accepts it (bluesky types a
        # scan's *args Movable | Any); the plan refuses it, naming it, before its run opens
        RM.item_add(BPlan("scan", ["det"], "sample_x", "1", 2, 3))
        RM.queue_start()
        RM.wait_for_idle(timeout=240)
        history = RM.history_get()["items"]
        assert [(h["name"], h["result"]["exit_status"]) for h in history] == [
            ("mv", "completed"), ("tomo_scan", "completed"), ("mv", "completed"),
            ("diffraction_scan", "completed"), ("scan", "failed")]
        assert "scan: args[1] (the start of sample_x) must be a number, not text (write 1 " \
            "without quotes" in history[4]["result"]["msg"], history[4]["result"]
        assert history[4]["result"]["run_uids"] == []
        tomo_uid, = history[1]["result"]["run_uids"]
        diff_uid, = history[3]["result"]["run_uids"]
        RM.environment_close()
        RM.wait_for_idle(timeout=60)
    finally:
        RM.close()

    # Ctrl-C: the manager and the Redis this command started stop, and it exits 0 (within
    # the command's own bounds: each gets STOP_TIMEOUT before it is killed)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(2 * STOP_TIMEOUT + 30)
    except subprocess.TimeoutExpired:
        print_stuck_state(proc, Path(where["log"]))
        raise
    assert proc.returncode == 0
    host, port = parse_redis(where["redis"])
    assert redis_state(host, port) is False, "the Redis smeflow queue started is still running"
    control_port = int(where["control"].rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", control_port), timeout=2).close()

    with Catalog(Path(where["data"])) as catalog:
        tomo = catalog.run(tomo_uid)
        assert tomo.metadata["start"]["plan_name"] == "tomo_scan"
        assert tomo.metadata["start"]["sample_in_beam"] == "phantom"
        assert tomo.metadata["start"]["sample"] == "phantom via the queue"
        assert tomo.metadata["stop"]["exit_status"] == "success"
        assert tomo["primary"]["det_image"].shape == (8, 64, 64)
        assert tomo["dark"]["det_image"].shape == (2, 64, 64)
        assert tomo["flat"]["det_image"].shape == (2, 64, 64)
        diff = catalog.run(diff_uid)
        start = diff.metadata["start"]
        assert start["plan_name"] == "diffraction_scan"
        assert start["sample_in_beam"] == "powder"
        assert start["geometry"]["shape"] == [64, 64]  # the reduction's input
        assert diff.metadata["stop"]["exit_status"] == "success"
        assert diff["primary"]["det_image"].shape == (4, 64, 64)
        assert [r.uid for r in catalog.runs()] == [tomo_uid, diff_uid]


def test_redis_address_is_parsed_and_checked() -> None:
    assert parse_redis("localhost:6379") == ("localhost", 6379)
    assert parse_redis("example.org") == ("example.org", 6379)
    assert parse_redis("[::1]:7000") == ("::1", 7000)
    for bad in ("host:port", ":6379", "host:0", "host:70000"):
        with pytest.raises(QueueError, match="expected HOST:PORT"):
            parse_redis(bad)


def test_nothing_listening_is_no_redis_and_a_stranger_on_the_port_is_an_error() -> None:
    assert redis_state("127.0.0.1", free_port()) is False
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(64)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        t = threading.Thread(target=answer)
        t.start()
        with pytest.raises(QueueError, match="not Redis"):
            redis_state("127.0.0.1", server.getsockname()[1])
        t.join(5)


def test_queue_settings_are_checked_on_both_sides() -> None:
    assert QueueSettings.parse("interp", "64x128") == QueueSettings("interp", (64, 128))
    settings = QueueSettings("compiled", (128, 64))
    assert QueueSettings.from_environment(settings.environment()) == settings
    assert QueueSettings.from_environment({}) == QueueSettings()
    with pytest.raises(QueueSettingsError, match="backend 'ghdl'"):
        QueueSettings.parse("ghdl", "64x64")
    with pytest.raises(QueueSettingsError, match="expected HEIGHTxWIDTH"):
        QueueSettings.parse("compiled", "64")
    with pytest.raises(QueueSettingsError, match=r"frame '64x40': ChainParams.width \(40\) "
                       r"must be a multiple of 32 for the detector's firmware .* e.g. 32 or 64"):
        QueueSettings.parse("compiled", "64x40")
    assert QueueSettings.parse("compiled", "64x96").frame == (64, 96)  # (the 16-lane firmware)


def test_queue_command_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    bad_frame = subprocess.run([SMEFLOW, "queue", "--frame", "63x64", "--data",
                                str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert bad_frame.returncode == 2
    assert bad_frame.stderr.strip().splitlines() == [
        "smeflow queue: error: frame '63x64': ChainParams.height (63) must be even for the "
        "detector's firmware (its 2×2 binning stage takes pairs of lines)"]
    a_file = tmp_path / "file"
    a_file.write_text("")
    not_a_folder = subprocess.run([SMEFLOW, "queue", "--data", str(a_file)],
                                  capture_output=True, text=True, timeout=60)
    assert not_a_folder.returncode == 1
    assert not_a_folder.stderr.strip().splitlines() == [
        f"smeflow queue: error: --data {a_file}: is a file, not a catalog folder"]


def _redis_command(port: int, *words: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"*%d\r\n" % len(words) + b"".join(
            b"$%d\r\n%s\r\n" % (len(w), w.encode()) for w in words))
        return conn.recv(64)


@pytest.mark.skipif(not (shutil.which("redis-server") and shutil.which("redis-check-rdb")),
                    reason="Debian's redis-server (with redis-check-rdb) is not installed")
def test_a_damaged_queue_snapshot_is_named_and_left_as_it_is(tmp_path: Path) -> None:
    """Redis's snapshot of the queue (``queue/queue.rdb``) cut short, emptied or from a
    newer Redis: redis-server printed a page of its internals ('Short read or OOM loading
    DB ... RDB ERROR DETECTED') and the command said only 'redis-server on port N exited
    with status 1 while starting'. Now one error naming the file and why, before Redis is
    started; the file is left as it was, and the whole snapshot still loads."""
    port = free_port()
    proc = start_redis(port, tmp_path)
    try:
        assert _redis_command(port, "RPUSH", "plan_queue", '{"name": "count"}') == b":1\r\n"
    finally:
        _stop(proc, signal.SIGTERM)  # (Redis saves its snapshot as it stops)
    snapshot = tmp_path / SNAPSHOT
    whole = snapshot.read_bytes()
    assert whole.startswith(b"REDIS") and b"plan_queue" in whole
    for damaged, reason in [
            (b"", r"Unexpected EOF reading RDB file, at byte 0"),
            (whole[:len(whole) // 2], r"Unexpected EOF reading RDB file, at byte \d+"),
            (whole[:-1], r".*, at byte \d+"),
            (b"REDIS0099" + whole[9:], r"Can't handle RDB format version 99, at byte 9")]:
        snapshot.write_bytes(damaged)
        with pytest.raises(QueueError, match=(
                f"^Redis snapshot {re.escape(str(snapshot))} cannot be loaded \\({reason}\\): "
                "Redis would not start on it; left as it is")):
            start_redis(free_port(), tmp_path)
        assert snapshot.read_bytes() == damaged
    snapshot.write_bytes(whole)
    port = free_port()
    proc = start_redis(port, tmp_path)
    try:
        assert _redis_command(port, "LLEN", "plan_queue") == b":1\r\n"
    finally:
        _stop(proc, signal.SIGTERM)


@pytest.mark.slow
def test_queue_stops_cleanly_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A background job of a shell script starts with SIGINT ignored, and its children
    inherit that (and a parent's blocked signals too): the RE Manager must still take the
    SIGINT ``smeflow queue`` forwards on SIGTERM and stop at once, leaving none of its
    processes behind."""
    from bluesky_queueserver_api.zmq import REManagerAPI

    with running_queue(tmp_path, ignore_sigint=True) as (proc, where):
        RM = REManagerAPI(zmq_control_addr=where["control"], zmq_info_addr=where["info"],
                          timeout_recv=5.0)
        try:
            wait_for_manager(RM, time.monotonic() + 60)
        finally:
            RM.close()
        manager = manager_pid(Path(where["log"]))
        assert manager is not None, "smeflow queue did not say which process the RE Manager is"
        assert len(process_group(manager)) >= 2, "the manager runs in its own process group"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(STOP_TIMEOUT + 30) == 0
        assert time.monotonic() - t0 < STOP_TIMEOUT, (
            "the RE Manager ignored SIGINT and was killed after the timeout")
        assert process_group(manager) == [], "processes of the RE Manager were left running"
