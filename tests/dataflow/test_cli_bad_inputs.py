"""Every data-side ``smeflow`` command — ``catalog`` (each action), ``reduce``, ``proxy``,
``demo``, ``queue``, ``counter-demo`` — answers bad input through the real entry point with
one line naming what was wrong, a non-zero exit status and no traceback, and creates
nothing (``vhdl``, ``sim`` and ``graph`` have their table in ``tests/sme``)."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

from dataflow.catalog import Catalog
from sme.cli import main

KEY = secrets.token_hex(16)


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A catalog with one run (scan 1, not reducible), a plain file, a folder that is not
    a catalog, a port something listens on and two free ones."""
    root = tmp_path_factory.mktemp("cli")
    with Catalog(root / "data") as catalog:
        RE = RunEngine({})
        catalog.subscribe(RE)
        (uid,) = RE(count([det], 1))
    (root / "file.txt").write_text("not a folder\n")
    (root / "stuff").mkdir()
    (root / "stuff" / "notes.txt").write_text("not a catalog\n")
    with socket.socket() as busy, socket.socket() as a, socket.socket() as b:
        for sock in (busy, a, b):
            sock.bind(("127.0.0.1", 0))
        busy.listen(1)
        ports = [str(sock.getsockname()[1]) for sock in (busy, a, b)]
        a.close()
        b.close()
        yield {"D": str(root / "data"), "F": str(root / "file.txt"), "R": str(root),
               "S": str(root / "stuff"), "UID": str(uid), "KEYFILE": str(root / "file.txt"),
               "BUSY": ports[0], "P1": ports[1], "P2": ports[2]}


QUEUE_PORTS = ["--zmq-control-addr", "tcp://127.0.0.1:{P1}",
               "--zmq-info-addr", "tcp://127.0.0.1:{P2}"]

CASES: list[tuple[str, list[str], str]] = [
    # smeflow catalog
    ("catalog", ["catalog", "show", "zz", "--data", "{D}"], "not a uid"),
    ("catalog", ["catalog", "show", "7", "--data", "{D}"], "no run with scan number 7"),
    ("catalog", ["catalog", "show", "1", "--data", "{R}/nothing"], "no catalog in"),
    ("catalog", ["catalog", "show", "1", "--data", "{F}"], "no catalog in"),
    ("catalog", ["catalog", "show", "1", "--data", "{D}", "--plot", "{R}/none/x.png"],
     "does not exist"),
    ("catalog", ["catalog", "show", "1", "--data", "{D}", "--plot", "{S}"], "is a folder"),
    ("catalog", ["catalog", "search", "=x", "--data", "{D}"], "expected KEY=VALUE"),
    ("catalog", ["catalog", "search", "--since", "soon", "--data", "{D}"], "not a date"),
    ("catalog", ["catalog", "repair", "1", "--data", "{D}"], "nothing to repair"),
    ("catalog", ["catalog", "repair", "../../etc", "--data", "{D}"], "not a uid"),
    ("catalog", ["catalog", "verify", "1", "--data", "{D}", "--trusted-key", "{R}/no.pub"],
     "no.pub"),
    ("catalog", ["catalog", "verify", "1", "--data", "{D}", "--trusted-key", "{F}"],
     "file.txt"),
    ("catalog", ["catalog", "keygen", "{R}/missing-folder/k.pem"], "does not exist"),
    ("catalog", ["catalog", "keygen", "{F}"], "file exists"),
    ("catalog", ["catalog", "serve", "--data", "{D}", "--port", "http"], "--port 'http'"),
    ("catalog", ["catalog", "serve", "--data", "{D}", "--max-request-mb", "0"],
     "--max-request-mb '0'"),
    ("catalog", ["catalog", "serve", "--data", "{D}", "--db", "mysql://x@y/z"],
     "not a database URI"),
    ("catalog", ["catalog", "serve", "--data", "{D}", "--api-key-file", "{R}/nokey"],
     "no such file"),
    ("catalog", ["catalog", "replay", "{R}/nospool", "--url", "http://127.0.0.1:9"],
     "no such folder"),
    ("catalog", ["catalog", "profile", "bad name!", "--dir", "{R}"], "bad name!"),
    # smeflow reduce
    ("reduce", ["reduce", "zz", "--data", "{D}"], "not a uid"),
    ("reduce", ["reduce", "1", "--data", "{D}"], "nothing to reduce"),
    ("reduce", ["reduce", "1", "--data", "{R}/nothing"], "no catalog"),
    ("reduce", ["reduce", "1", "--data", "{D}", "--workers", "2"], "--workers: needs --sch"),
    ("reduce", ["reduce", "1", "--data", "{D}", "--signing-key", "{R}/no.pem"], "no.pem"),
    ("reduce", ["reduce", "--data", "{D}"], "give the run to reduce"),
    ("reduce", ["reduce", "1", "--live", "--data", "{D}"], "not both"),
    ("reduce", ["reduce", "1", "--data", "{D}", "--device", "foo"],  # was 'internal error'
     "error: unknown OpenCL device choice 'foo'"),
    ("reduce", ["reduce", "--live", "--data", "{D}", "--device", "9"], "choice '9'"),
    ("reduce", ["reduce", "1", "--data", "{D}", "--device", "\u0661:\u0660"],  # not 0-9
     "choice '\u0661:\u0660'"),  # was 'nothing to reduce' (the check took it)
    # an option out of range: exit 2 before any work (USAGE below)
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--bins", "100000000"],  # was killed
     "--bins: 100000000 bins is more than the 65536"),
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--bins", "0"],
     "--bins: expected an integer >= 1, got 0"),
    ("reduce", ["reduce", "--live", "--data", "{D}", "--bins", "100000000"], "--bins: 1000"),
    ("reduce", ["reduce", "--live", "--data", "{D}", "--throttle", "-1"],  # was taken as 0
     "--throttle -1.0: must be a finite number of seconds >= 0"),
    ("reduce", ["reduce", "--live", "--data", "{D}", "--throttle", "nan"], "--throttle nan"),
    ("reduce", ["reduce", "1", "--data", "{D}", "--throttle", "inf"], "--throttle inf"),
    # each numeric option's domain, before the catalog is opened (was 'no catalog', exit 1)
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--chunk", "0"],
     "--chunk: expected an integer >= 1, got 0"),
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--scheduler", "local",
                "--workers", "0"], "--workers: expected an integer >= 1, got 0"),
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--scheduler", "local",  # was started
                "--workers", "100000"], "--workers: 100000 local workers is more than the"),
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--scheduler", "tcp://127.0.0.1:9",
                "--workers", "100000"], "no catalog"),  # (a cluster's: not this machine's)
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--rows", "5", "-1"],
     "--rows: expected detector rows >= 0, got -1"),
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--rows", "5", "5"],
     "--rows: row 5 given twice"),
    ("reduce", ["reduce", "--live", "--data", "{D}", "--capacity", "0"],  # was exit 1
     "--capacity: expected an integer >= 1, got 0"),
    ("reduce", ["reduce", "--live", "--data", "{D}", "--batch", "-3"],
     "--batch: expected an integer >= 1, got -3"),
    # an option of the other mode is refused, not ignored (the catalog not yet opened:
    # before, the offline ones were ignored, the --live ones 'no catalog' or a hang)
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--throttle", "2"],
     "--throttle: needs --live"),
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--capacity", "4"],
     "--capacity: needs --live"),
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--batch", "4"], "--batch: needs --live"),
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--zmq", "127.0.0.1:5578"],
     "--zmq: needs --live"),
    ("reduce", ["reduce", "1", "--data", "{R}/nothing", "--frames-from", "tiled"],
     "--frames-from: needs --scheduler"),
    ("reduce", ["reduce", "--live", "--data", "{R}/nothing", "--chunk", "8"],
     "--chunk: not with --live"),
    ("reduce", ["reduce", "--live", "--data", "{R}/nothing", "--scheduler", "local"],
     "--scheduler: not with --live"),
    ("reduce", ["reduce", "--live", "--data", "{R}/nothing", "--workers", "2"],
     "--workers: not with --live"),
    ("reduce", ["reduce", "--live", "--data", "{R}/nothing", "--signing-key", "{F}"],
     "--signing-key: not with --live"),
    # smeflow proxy
    ("proxy", ["proxy", "--in-address", "nonsense"], "expected HOST:PORT"),
    ("proxy", ["proxy", "--out-address", "127.0.0.1:99999"], "expected HOST:PORT"),
    # smeflow demo: refused before anything is created or simulated
    ("demo", ["demo", "--projections", "0", "--data", "{R}/d0", "-o", "{R}/o0"],
     "--projections 0"),
    ("demo", ["demo", "-o", "{F}", "--data", "{R}/d1"], "is a file, not a folder"),
    # --prepare runs nothing: the run's options are refused, not ignored
    ("demo", ["demo", "--prepare", "--projections", "9"], "--projections: not with --prepare"),
    ("demo", ["demo", "--prepare", "--zmq", "127.0.0.1:5577"], "--zmq: not with --prepare"),
    ("demo", ["demo", "--prepare", "-o", "{R}/o5"], "-o: not with --prepare"),
    ("demo", ["demo", "--prepare", "--data", "{R}/d5"], "--data: not with --prepare"),
    ("demo", ["demo", "--prepare", "-q"], "-q: not with --prepare"),  # was accepted, unused
    ("demo", ["demo", "--data", "{F}", "-o", "{R}/o2"], "is a file, not a catalog folder"),
    ("demo", ["demo", "--data", "{S}", "-o", "{R}/o3"], "not a catalog"),
    ("demo", ["demo", "--zmq", "here", "--data", "{R}/d4", "-o", "{R}/o4"],
     "--zmq 'here'"),
    # smeflow queue: refused before Redis or the manager start
    ("queue", ["queue", "--frame", "0x5", "--data", "{R}/q0"], "frame '0x5'"),
    ("queue", ["queue", "--frame", "wide", "--data", "{R}/q0"], "'wide'"),
    ("queue", ["queue", "--redis", "localhost:redis", *QUEUE_PORTS, "--data", "{R}/q1"],
     "--redis 'localhost:redis': expected HOST:PORT"),
    ("queue", ["queue", "--zmq-control-addr", "bogus", "--data", "{R}/q2"],
     "--zmq-control-addr 'bogus': expected tcp://HOST:PORT"),
    ("queue", ["queue", "--zmq-control-addr", "tcp://127.0.0.1:{P1}", "--zmq-info-addr",
               "tcp://127.0.0.1:{BUSY}", "--data", "{R}/q3"], "cannot bind it"),
    ("queue", ["queue", "--zmq-control-addr", "tcp://127.0.0.1:{P1}", "--zmq-info-addr",
               "tcp://127.0.0.1:{P1}", "--data", "{R}/q4"], "need two ports"),
    ("queue", ["queue", *QUEUE_PORTS, "--data", "{F}"], "is a file, not a catalog folder"),
    # smeflow counter-demo
    ("counter-demo", ["counter-demo", "-o", "{F}"], "file.txt"),
    ("counter-demo", ["counter-demo", "-o", "{F}/sub"], "Not a directory"),
]


@pytest.mark.parametrize(("command", "argv", "message"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_is_one_line_without_traceback(
        place: dict[str, str], command: str, argv: list[str], message: str,
        capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    monkeypatch.setenv("SMEFLOW_API_KEY", KEY)
    monkeypatch.delenv("SMEFLOW_DATA", raising=False)
    before = sorted(p.name for p in Path(place["R"]).iterdir())
    args = [a.format(**place) for a in argv]
    status = main(args)
    out, err = capsys.readouterr()
    assert status not in (0, None), (args, out, err)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"smeflow {command}"), lines[0]
    assert message.format(**place) in lines[0], lines[0]
    assert sorted(p.name for p in Path(place["R"]).iterdir()) == before  # nothing made


USAGE = [argv for _, argv, message in CASES
         if any(option in message for option in (
             "--bins:", "--throttle", "--chunk:", "--workers:", "--rows:", "--capacity:",
             "--batch:", ": needs --", ": not with --live", ": not with --prepare"))]


@pytest.mark.parametrize("argv", USAGE, ids=[f"usage-{i}" for i in range(len(USAGE))])
def test_an_option_out_of_range_is_a_usage_error(
        place: dict[str, str], argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2, as argparse's own errors (the cases above check the one line)."""
    assert main([a.format(**place) for a in argv]) == 2, capsys.readouterr().err


def test_debug_shows_the_traceback(place: dict[str, str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exception, match="not a uid"):
        main(["catalog", "show", "zz", "--data", place["D"], "--debug"])
