"""``smeflow queue``: the simulated beamline behind a bluesky-queueserver plan queue.

    smeflow queue                     # Redis on localhost:6379 (started when none runs),
                                      # RE Manager on tcp://127.0.0.1:60615 / :60625
    smeflow queue --data /beamtime/smeflow-data --backend interp --frame 64x64

Starts Debian's ``redis-server`` when nothing answers on the Redis address (a Redis that
already runs there is used and left running), then ``start-re-manager`` with the startup
profile :mod:`plans.qserver.startup` and the permissions shipped beside it, in the
foreground. Runs go to the catalog in ``--data`` (else ``$SMEFLOW_DATA``, else
``./smeflow-data``); the list of plans and devices the manager offers, and Redis's
snapshot of the queue when this command started Redis, are kept in its ``queue/``
folder (a snapshot Redis cannot load is refused before Redis starts, naming it).
Ctrl-C (or SIGTERM) stops the manager and then the Redis it started. Clients
talk to it with ``qserver`` or :mod:`bluesky_queueserver_api`::

    from bluesky_queueserver_api import BPlan
    from bluesky_queueserver_api.zmq import REManagerAPI
    RM = REManagerAPI()
    RM.environment_open(); RM.wait_for_idle(timeout=300)
    RM.item_add(BPlan("mv", "sample", "phantom"))
    RM.item_add(BPlan("tomo_scan", "det", "rotation", "sample_x", "shutter",
                      out_position=20.0, num_projections=90))
    RM.queue_start()
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

from dataflow.catalog import default_data_dir

from . import PERMISSIONS, STARTUP_MODULE
from .settings import BACKENDS, QueueSettings, QueueSettingsError

__all__ = ["QueueError", "check_zmq", "main", "redis_state", "register_queue", "run_queue"]

Subparsers = Any
PROG = "smeflow queue"
DEFAULT_REDIS = "localhost:6379"
DEFAULT_CONTROL = "tcp://127.0.0.1:60615"
DEFAULT_INFO = "tcp://127.0.0.1:60625"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
STOP_TIMEOUT = 30.0
"""Seconds the manager (and then Redis) get to stop after Ctrl-C before being killed."""


class QueueError(Exception):
    """Something ``smeflow queue`` cannot start with: printed as one line, exit 1."""


def parse_redis(address: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (port 6379 by default) → ``(host, port)``."""
    host, colon, port_text = address.rpartition(":")
    if not colon:
        host, port_text = address, "6379"
    host = host.strip("[]")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise QueueError(f"--redis {address!r}: expected HOST:PORT, e.g. {DEFAULT_REDIS}")
    return host, int(port_text)


def check_zmq(address: str, option: str) -> int:
    """A 0MQ address the manager binds: ``tcp://HOST:PORT`` (HOST may be ``*``), its port
    free on this host; returns the port. Checked before anything starts (the manager
    itself would hang on a malformed address)."""
    scheme, sep, rest = address.partition("://")
    host, colon, port_text = rest.rpartition(":")
    if scheme != "tcp" or not sep or not colon or not host.strip("[]") \
            or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise QueueError(f"{option} {address!r}: expected tcp://HOST:PORT, e.g. "
                         f"{DEFAULT_CONTROL}")
    port = int(port_text)
    bind_host = "0.0.0.0" if host == "*" else host.strip("[]")
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as 0MQ binds
            probe.bind((bind_host, port))
    except OSError as exc:
        raise QueueError(f"{option} {address!r}: cannot bind it ({exc.strerror or exc}); "
                         "another manager running?") from None
    return port


def redis_state(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a Redis answers ``PING`` at ``host:port`` (False when nothing listens).

    Raises
    ------
    QueueError
        Something listens there but is not Redis (or does not answer in ``timeout``).
    """
    try:
        conn = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        return False
    except OSError as exc:
        raise QueueError(f"Redis address {host}:{port}: {exc}") from None
    with conn:
        try:
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
        except OSError as exc:
            raise QueueError(f"{host}:{port} accepts connections but does not answer a Redis "
                             f"PING ({exc}); give another --redis address") from None
    if not reply.startswith((b"+PONG", b"-NOAUTH")):
        raise QueueError(f"{host}:{port} is in use by something that is not Redis "
                         f"(it answered {reply[:40]!r}); give another --redis address")
    return True


def _wait_until(check: Any, timeout: float, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise QueueError(f"{what} exited with status {proc.returncode} while starting")
        if time.monotonic() > deadline:
            raise QueueError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.1)


SNAPSHOT = "queue.rdb"
"""Redis's snapshot of the queue, in the ``queue/`` folder, when this command starts Redis."""


def snapshot_damage(path: Path) -> str | None:
    """What ``redis-check-rdb`` finds wrong with the Redis snapshot ``path`` (None when it
    finds nothing, or is not installed).

    Redis refuses to start on a snapshot cut short (by a full disk, a killed copy), empty
    or of a newer Redis, printing a page of its internals and nothing naming the file."""
    exe = shutil.which("redis-check-rdb")
    if exe is None or not path.is_file():
        return None
    try:
        out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60,
                             errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode == 0:
        return None
    lines = out.stdout.splitlines()
    after = lines[lines.index("--- RDB ERROR DETECTED ---") + 1:] \
        if "--- RDB ERROR DETECTED ---" in lines else lines
    found = next((line for line in after if line.startswith("[offset ")), None)
    if found is None:
        return f"redis-check-rdb exited with status {out.returncode}"
    offset, _, reason = found.removeprefix("[offset ").partition("] ")
    return f"{reason.strip()}, at byte {offset}"


def start_redis(port: int, folder: Path) -> subprocess.Popen[bytes]:
    """Debian's ``redis-server`` on 127.0.0.1:``port``, its snapshot in ``folder``
    (checked first: a damaged one is a :class:`QueueError` naming it, left as it is)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise QueueError("redis-server not found: install Debian's redis-server "
                         "(apt-get install redis-server; make setup does it as root), or "
                         "point --redis at a running Redis")
    damage = snapshot_damage(folder / SNAPSHOT)
    if damage is not None:
        raise QueueError(f"Redis snapshot {folder / SNAPSHOT} cannot be loaded ({damage}): "
                         "Redis would not start on it; left as it is - move it aside to "
                         "start with an empty queue (the plans and history it holds are then "
                         "lost)")
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
         "--dbfilename", SNAPSHOT, "--daemonize", "no", "--loglevel", "warning"],
        start_new_session=True)  # Ctrl-C reaches this command only; it stops Redis itself
    try:
        _wait_until(lambda: redis_state("127.0.0.1", port, 1.0), 20.0, proc,
                    f"redis-server on port {port}")
    except BaseException:
        _stop(proc, signal.SIGTERM)
        raise
    return proc


def manager_command(state: Path, redis: str, control: str, info: str) -> list[str]:
    """The ``start-re-manager`` command line for the profile (a list, for Popen)."""
    exe = Path(sys.executable).with_name("start-re-manager")
    found = str(exe) if exe.is_file() else shutil.which("start-re-manager")
    if found is None:
        raise QueueError("start-re-manager not found: bluesky-queueserver is not installed "
                         "in this environment (pip install bluesky-queueserver)")
    return [found, "--startup-module", STARTUP_MODULE,
            "--existing-plans-devices", str(state / "existing_plans_and_devices.yaml"),
            "--update-existing-plans-devices", "ENVIRONMENT_OPEN",
            "--user-group-permissions", str(PERMISSIONS),
            "--redis-addr", redis, "--zmq-control-addr", control,
            "--zmq-info-addr", info, "--zmq-publish-console", "ON"]


def _stop(proc: subprocess.Popen[bytes], sig: int, *, group: bool = False) -> int:
    """Send ``sig``, wait :data:`STOP_TIMEOUT`, then kill; the exit status. ``group``: ``proc``
    leads its own session, and whatever of it is left (the RE Manager's own manager and
    worker processes) is killed with it, never left behind without a parent."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if group:
        with suppress(ProcessLookupError, PermissionError):  # gone: a clean stop
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


def _default_sigint() -> None:
    """In the RE Manager's process: Ctrl-C's SIGINT, which only this command forwards (the
    manager has its own session), is its clean stop, even when this command was started
    with SIGINT ignored (a background job of a script) and the manager inherited that (a
    blocked SIGINT this command has already unblocked for itself: ``_sigterm_as_interrupt``,
    around the manager's start)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the foreground wait the way Ctrl-C does."""
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    # a parent that blocked them (the mask survives exec) would leave Ctrl-C pending forever
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_queue(data: Path, settings: QueueSettings, *, redis: str = DEFAULT_REDIS,
              control: str = DEFAULT_CONTROL, info: str = DEFAULT_INFO) -> int:
    """Start Redis when needed and the RE Manager; return when the manager stops."""
    host, port = parse_redis(redis)
    if check_zmq(control, "--zmq-control-addr") == check_zmq(info, "--zmq-info-addr"):
        raise QueueError(f"--zmq-control-addr {control!r} and --zmq-info-addr {info!r}: "
                         "the two sockets need two ports")
    data = data.resolve()
    if data.exists() and not data.is_dir():
        raise QueueError(f"--data {data}: is a file, not a catalog folder")
    state = data / "queue"
    state.mkdir(parents=True, exist_ok=True)
    command = manager_command(state, f"{host}:{port}", control, info)
    redis_proc = None
    with _sigterm_as_interrupt():
        try:
            if not redis_state(host, port):
                if host not in LOCAL_HOSTS:
                    raise QueueError(f"no Redis answers at {host}:{port} (only a local one "
                                     "is started by this command)")
                redis_proc = start_redis(port, state)
                print(f"{PROG}: started redis-server on 127.0.0.1:{port} "
                      f"(pid {redis_proc.pid}, snapshot in {state})", flush=True)
            else:
                print(f"{PROG}: using the Redis running at {host}:{port}", flush=True)
            env = {**os.environ, "SMEFLOW_DATA": str(data), **settings.environment()}
            manager = subprocess.Popen(command, env=env, start_new_session=True,
                                       preexec_fn=_default_sigint)
            print(f"{PROG}: RE Manager (pid {manager.pid}) on {control}, info {info}; "
                  f"catalog {data}; Ctrl-C stops it", flush=True)
            try:
                status = manager.wait()
            except KeyboardInterrupt:
                print(f"\n{PROG}: stopping the RE Manager…", flush=True)
                _stop(manager, signal.SIGINT, group=True)
                status = 0
        except KeyboardInterrupt:
            status = 130
        finally:
            if redis_proc is not None:
                print(f"{PROG}: stopping redis-server", flush=True)
                _stop(redis_proc, signal.SIGTERM)
    return status


def cmd_queue(args: argparse.Namespace) -> int:
    """``smeflow queue``: one line on stderr and exit 1 (2 for usage) on failure."""
    try:
        settings = QueueSettings.parse(args.backend, args.frame)
    except QueueSettingsError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    data = Path(args.data) if args.data else default_data_dir()
    try:
        return run_queue(data, settings, redis=args.redis, control=args.zmq_control_addr,
                         info=args.zmq_info_addr)
    except (QueueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


def register_queue(sub: Subparsers) -> None:
    """``smeflow queue``."""
    p = sub.add_parser("queue", help="the beamline behind a bluesky-queueserver plan queue "
                       "(Redis + RE Manager, foreground)",
                       description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--data", metavar="DIR",
                   help="catalog folder (default: $SMEFLOW_DATA, else ./smeflow-data)")
    p.add_argument("--backend", default="compiled", choices=BACKENDS,
                   help="detector firmware backend (default compiled)")
    p.add_argument("--frame", default="256x256", metavar="HxW",
                   help="detector frame, rows x columns: an even height, a width that is "
                   "a multiple of 32 (of 64: 32 lanes, of 128: the 64-lane firmware) "
                   "(default 256x256)")
    p.add_argument("--redis", default=DEFAULT_REDIS, metavar="HOST:PORT",
                   help=f"Redis holding the queue (default {DEFAULT_REDIS}; started when "
                   "none answers on a local address)")
    p.add_argument("--zmq-control-addr", default=DEFAULT_CONTROL, metavar="ADDR",
                   help=f"the manager's control socket (default {DEFAULT_CONTROL})")
    p.add_argument("--zmq-info-addr", default=DEFAULT_INFO, metavar="ADDR",
                   help=f"the manager's console-output socket (default {DEFAULT_INFO})")
    p.set_defaults(func=cmd_queue)


def main(argv: Sequence[str] | None = None) -> int:
    """``smeflow queue`` on its own."""
    from dataflow.cli import run_command

    return run_command("queue", register_queue, argv)
