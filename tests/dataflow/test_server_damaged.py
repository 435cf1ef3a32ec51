"""A damaged run record served by a real ``smeflow catalog serve`` process, as Tiled's
client, databroker and a raw HTTP request see it: one clear error naming the run (HTTP
409, shown at once, not retried), a server log line naming ``catalog.db`` and the run,
the other runs still served, and nothing stored changed.

Before: HTTP 500 "Internal server error", which Tiled's client retried for about 25 s
and then reported as "Server error '500 Internal Server Error' ... correlation ID ...".
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import pytest
from databroker import Broker
from tiled.client import from_uri
from tiled.client.utils import ClientError
from tiled.queries import Eq

from dataflow.catalog import Catalog
from dataflow.server import API_KEY_ENV
from dataflow.synthetic_run import write_frames_run

KEY = "damaged0server0key0123456789"


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed catalog folder with two runs."""
    folder = tmp_path_factory.mktemp("served") / "good"
    frames = np.zeros((2, 4, 32), np.uint16)
    with Catalog(folder) as catalog:
        for _ in range(2):
            write_frames_run(catalog, {"plan_name": "count"}, {"primary": frames},
                             source="test")
    return folder


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """``smeflow catalog serve`` in a process of its own, its output collected."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, API_KEY_ENV: KEY, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from dataflow.cli import main; "
             "sys.exit(main(sys.argv[1:]))", "serve", "--data", str(folder),
             "--port", str(self.port)], stdout=log.open("wb"), stderr=subprocess.STDOUT,
            env=env)
        deadline = time.monotonic() + 60
        while not self._answers():
            assert self.proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Served]]:
    servers: list[Served] = []
    yield servers
    for server in servers:
        server.stop()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


RECORD_DAMAGE = {  # one byte of the second run's start document, inside its 'metadata'
    "not UTF-8": (2, 0x80, "is not UTF-8 text (byte 0xec at "),  # 'l' ^ 0x80
    "not JSON": (0, 0x01, "is not JSON (Expecting property name"),  # '"' -> '#'
}


@pytest.mark.parametrize("case", list(RECORD_DAMAGE))
def test_a_damaged_record_is_one_clear_error_over_http_and_the_rest_is_served(
        good: Path, tmp_path: Path, case: str, served: list[Served]) -> None:
    at, bits, why = RECORD_DAMAGE[case]
    folder = tmp_path / "data"
    shutil.copytree(good, folder)
    db = folder / "catalog.db"
    with closing(sqlite3.connect(db)) as con:
        runs = [key for (key,) in con.execute(
            "SELECT key FROM nodes WHERE parent = (SELECT id FROM nodes WHERE key = 'raw' "
            "AND parent = 0) ORDER BY id")]
    intact, uid = runs
    data = bytearray(db.read_bytes())
    found = data.index(b'"plan_name":"count"},"stop":{')
    assert b'{"start":{"uid":"%s"' % uid.encode() in data[found - 100:found]  # its record
    data[found + at] ^= bits
    db.write_bytes(bytes(data))
    server = Served(folder, tmp_path / "server.log")
    served.append(server)
    before = _digest(db)  # (after the server's open rebased the copy's assets)
    expected = f"{db}: is damaged: the metadata of raw/{uid} {why}"

    client = from_uri(server.url, api_key=KEY)
    raw = client["raw"]
    for call in (lambda: raw[uid], lambda: list(raw.values()),
                 lambda: Broker(raw)[-1], lambda: raw.v2[uid]):
        started = time.monotonic()
        with pytest.raises(ClientError) as info:
            call()
        assert time.monotonic() - started < 5  # answered, not retried for 45 s
        assert info.value.response.status_code == 409
        assert str(info.value).startswith(f"409: {expected}"), str(info.value)
    answer = httpx.get(f"{server.url}/api/v1/metadata/raw/{uid}",
                       headers={"Authorization": f"Apikey {KEY}"})
    assert answer.status_code == 409
    assert answer.json()["detail"].startswith(expected)
    assert "left as it is: restore it from a backup" in answer.json()["detail"]

    # the rest of the catalog keeps serving
    assert raw[intact].metadata["start"]["uid"] == intact
    if case == "not JSON":  # (SQLite's JSON functions meet it: the search fails too)
        with pytest.raises(ClientError, match=f"^409: {re.escape(expected)}"):
            list(raw.search(Eq("start.plan_name", "count")))
    else:  # (still JSON to SQLite: a search that needs the key misses this run, see
        # docs/catalog.md; one that needs another finds the intact run)
        assert list(raw.search(Eq("start.uid", intact))) == [intact]
    assert Broker(raw)[-2].start["uid"] == intact
    assert _digest(db) == before

    server.stop()
    logged = [line for line in server.output().splitlines() if "is damaged" in line]
    assert logged and all(re.search(f"ERROR .*: GET /api/v1/.*: {re.escape(expected)}",
                                    line) for line in logged), logged
    assert "Traceback" not in server.output()
