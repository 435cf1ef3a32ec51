"""Documents across processes: bluesky's 0MQ proxy, a publisher that does not lose the first
documents, and a subscriber that only passes on whole runs.

Topology (bluesky's own): the RunEngine's :class:`DocumentPublisher` connects to the
proxy's *in* address, every consumer (:class:`DocumentSubscriber`, e.g. ``smeflow reduce
--live --zmq``) to its *out* address; ``smeflow proxy`` runs :class:`bluesky.callbacks.zmq.
Proxy` between them. Both addresses default to loopback (``127.0.0.1:5577`` in,
``127.0.0.1:5578`` out); binding elsewhere must be asked for explicitly.

The slow-joiner problem, and what is done about it:

* publisher side — a 0MQ PUB socket drops what it sends before its connection to the proxy
  is up. :class:`DocumentPublisher` therefore waits, when created, until the connection's
  handshake has completed (a socket monitor reports it) plus a short settle time for the
  proxy's subscription to arrive; if no proxy answers within ``timeout`` it raises
  :class:`BusError` instead of silently publishing into the void.
* consumer side — a consumer that connects (or restarts after a crash) in the middle of
  a run has missed that run's start document. :class:`WholeRuns` drops the rest of such a
  run and passes on every run from its start document on, so a restarted consumer simply
  picks up the next run. Publishing never waits for consumers: a crashed or slow consumer
  cannot slow the scan. Memory stays bounded: 0MQ holds at most its high-water mark
  (1000 messages) per socket and drops beyond it.

Documents travel as JSON (numpy values converted), not pickle: a subscriber never runs
code that arrives over the network.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_IN = "127.0.0.1:5577"
DEFAULT_OUT = "127.0.0.1:5578"
SETTLE_S = 0.2
"""Time given to the proxy's subscription to reach a freshly connected publisher."""

Document = dict[str, Any]
Callback = Callable[[str, Document], Any]


class BusError(RuntimeError):
    """The document bus cannot be used as asked (bad address, no proxy answering)."""


def parse_address(text: str, what: str = "address") -> tuple[str, int]:
    """``HOST:PORT`` (or ``tcp://HOST:PORT``) as ``(host, port)``; ``BusError`` naming
    ``what`` when it is not one."""
    raw = str(text).strip()
    body = raw[len("tcp://"):] if raw.startswith("tcp://") else raw
    host, sep, port_text = body.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise BusError(f"{what} {text!r}: expected HOST:PORT with a port in 1…65535, "
                       "e.g. 127.0.0.1:5577")
    if any(c.isspace() for c in host):
        raise BusError(f"{what} {text!r}: expected HOST:PORT, the host contains white space")
    return host, int(port_text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def serialize(doc: Document) -> bytes:
    """A document as UTF-8 JSON (numpy arrays and scalars as lists and numbers)."""
    return json.dumps(doc, default=_jsonable, separators=(",", ":")).encode()


def deserialize(data: bytes) -> Document:
    """The inverse of :func:`serialize`; ``ValueError`` for anything but a JSON object."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise ValueError(f"a document must be a JSON object, got {type(doc).__name__}")
    return doc


def await_handshake(socket: Any, endpoint: str, timeout: float) -> bool:
    """Whether ``socket``'s connection to ``endpoint`` completes its handshake within
    ``timeout`` seconds.

    The socket may already be connected, its handshake already over: a monitor attached
    now would never hear of it. So the monitor is attached first and the connection then
    made again, which the monitor is sure to see.
    """
    import zmq

    monitor = socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        with contextlib.suppress(zmq.ZMQError):  # not connected yet
            socket.disconnect(endpoint)
        socket.connect(endpoint)
        return bool(monitor.poll(int(timeout * 1000)))
    finally:
        socket.disable_monitor()
        monitor.close()


class DocumentPublisher:
    """Publish a RunEngine's documents to the proxy at ``address`` (a callback).

    Waits until connected (see the module text); ``BusError`` after ``timeout`` seconds
    without a proxy. ``RE.subscribe(publisher)`` is all a beamline needs.
    """

    def __init__(self, address: str = DEFAULT_IN, *, timeout: float = 5.0) -> None:
        from bluesky.callbacks.zmq import Publisher

        host, port = parse_address(address, "proxy in-address")
        self.address = f"{host}:{port}"
        self._publisher: Any = Publisher((host, port), serializer=serialize)
        if not await_handshake(self._publisher._socket, self._publisher.address, timeout):
            self.close()
            raise BusError(f"no 0MQ proxy answered at {self.address} within {timeout:g} s; "
                           "start one with `smeflow proxy`")
        time.sleep(SETTLE_S)
        self._lock = threading.Lock()

    def __call__(self, name: str, doc: Document) -> None:
        with self._lock:  # a 0MQ socket must not be used from two threads at once
            self._publisher(name, doc)

    def close(self) -> None:
        """Close the socket."""
        self._publisher.close()


class WholeRuns:
    """Pass on only the documents of runs whose start document was seen.

    A consumer that joins mid-run gets nothing of that run (``skipped`` counts its
    documents) and everything of the following runs.
    """

    def __init__(self, callback: Callback) -> None:
        self.callback = callback
        self.skipped = 0
        self._runs: set[str] = set()
        self._descriptors: dict[str, str] = {}
        self._resources: dict[str, str] = {}

    def _run_of(self, name: str, doc: Document) -> str | None:
        if name == "start":
            return str(doc.get("uid"))
        if name in ("stop", "descriptor", "stream_resource", "resource"):
            return str(doc.get("run_start"))
        if name in ("event", "event_page", "stream_datum"):
            return self._descriptors.get(str(doc.get("descriptor")))
        if name == "datum":
            return self._resources.get(str(doc.get("resource")))
        return None

    def __call__(self, name: str, doc: Document) -> None:
        run = self._run_of(name, doc)
        if name == "start":
            self._runs.add(str(run))
        if run not in self._runs:
            self.skipped += 1
            return
        if name == "descriptor":
            self._descriptors[str(doc["uid"])] = run
        elif name == "resource":
            self._resources[str(doc["uid"])] = run
        self.callback(name, doc)
        if name == "stop":
            self._runs.discard(run)
            self._descriptors = {k: v for k, v in self._descriptors.items() if v != run}
            self._resources = {k: v for k, v in self._resources.items() if v != run}


class DocumentSubscriber:
    """Receive documents from the proxy's out-address and hand whole runs to callbacks.

    ``start()`` blocks (run it in a thread or as the main loop of a consumer process);
    ``stop()`` ends it from another thread.
    """

    def __init__(self, address: str = DEFAULT_OUT) -> None:
        from bluesky.callbacks.zmq import RemoteDispatcher

        host, port = parse_address(address, "proxy out-address")
        self.address = f"{host}:{port}"
        self._dispatcher: Any = RemoteDispatcher((host, port), deserializer=deserialize)
        self._callbacks: list[WholeRuns] = []

    def subscribe(self, callback: Callback) -> WholeRuns:
        """Give ``callback`` every whole run from now on; returns its run filter."""
        whole = WholeRuns(callback)
        self._callbacks.append(whole)
        self._dispatcher.subscribe(whole)
        return whole

    def start(self) -> None:
        """Receive until ``stop()``."""
        import asyncio

        with contextlib.suppress(asyncio.CancelledError):  # how it ends on stop()
            self._dispatcher.start()

    def stop(self) -> None:
        """Stop receiving (thread-safe): the receiving task is cancelled on the
        dispatcher's loop; ``start()`` then closes the socket and the loop itself (closing
        them from here would close a running loop)."""
        dispatcher = self._dispatcher

        def cancel() -> None:
            if dispatcher._task is not None:
                dispatcher._task.cancel()

        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to stop
            dispatcher.loop.call_soon_threadsafe(cancel)


def run_proxy(in_address: str = DEFAULT_IN, out_address: str = DEFAULT_OUT) -> None:
    """Run bluesky's 0MQ proxy between the two addresses until interrupted."""
    from bluesky.callbacks.zmq import Proxy

    ins = parse_address(in_address, "--in-address")
    outs = parse_address(out_address, "--out-address")
    try:
        proxy: Any = Proxy(in_address=ins, out_address=outs)
    except Exception as exc:  # zmq.ZMQError: address in use, cannot assign address
        raise BusError(f"cannot bind the proxy to {in_address} / {out_address}: {exc}") from None
    print(f"0MQ proxy: publishers connect to {ins[0]}:{ins[1]}, "
          f"consumers to {outs[0]}:{outs[1]}", flush=True)
    proxy.start()


def cmd_proxy(args: argparse.Namespace) -> int:
    """``smeflow proxy``."""
    try:
        run_proxy(args.in_address, args.out_address)
    except BusError as exc:
        print(f"smeflow proxy: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def register_proxy(sub: Any) -> None:
    """``smeflow proxy``: bluesky's 0MQ document proxy (loopback by default)."""
    p = sub.add_parser("proxy", help="run the 0MQ document proxy between the RunEngine and "
                       "live consumers")
    p.add_argument("--in-address", default=DEFAULT_IN,
                   help=f"where publishers connect (default {DEFAULT_IN})")
    p.add_argument("--out-address", default=DEFAULT_OUT,
                   help=f"where consumers connect (default {DEFAULT_OUT})")
    p.set_defaults(func=cmd_proxy)


__all__ = [
    "DEFAULT_IN", "DEFAULT_OUT", "BusError", "DocumentPublisher", "DocumentSubscriber",
    "WholeRuns", "cmd_proxy", "deserialize", "parse_address", "register_proxy", "run_proxy",
    "serialize",
]
