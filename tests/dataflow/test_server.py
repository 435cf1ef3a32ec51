"""The catalog server over HTTP: scans from a real RunEngine and beamline written through
it (SQLite and a real PostgreSQL), the API key, loopback binding, a server stopped in the
middle of a scan and the spool that completes the run, the CLI, and ``../`` names."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky.plans import count
from bluesky_tiled_plugins import TiledWriter
from event_model import compose_run

from dataflow.catalog import MalformedUidError
from dataflow.cli import main as catalog_main
from dataflow.remote import RemoteCatalog
from dataflow.server import (
    API_KEY_ENV,
    SCAN_ID_PATH,
    ServerConfigError,
    ServerHandle,
    database_uri,
    read_api_key,
)
from dataflow.spool import REJECTED_SUFFIX, replay_spool, spool_files
from devices.beamline import Beamline
from fpga.designs.params import ChainParams

# Tiled keeps the single-user key process-wide: every server of this module shares it.
KEY = secrets.token_hex(16)


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """A server on the SQLite catalog of a fresh data folder."""
    with ServerHandle(tmp_path_factory.mktemp("sqlite") / "data", KEY) as server:
        yield server


def make_beamline(raw: Path) -> tuple[Any, Beamline]:
    RE = RunEngine({})
    beamline = Beamline.create(raw, params=ChainParams(64, 64, 16), backend="interp",
                               time_scale=0.001)
    RE(bps.mv(beamline.shutter, "open"))
    return RE, beamline


def raw_frames(run: Any) -> np.ndarray:
    """The frames of the run's HDF5 file, read straight from disk (the reference)."""
    (source,) = run["primary"]["det_image"].data_sources()
    (asset,) = source.assets
    path = asset.data_uri.removeprefix("file://localhost")
    with h5py.File(path, "r") as f:
        return np.asarray(f[source.parameters["dataset"]])


def check_scan_over_http(server: ServerHandle) -> None:
    with RemoteCatalog(server.url, KEY) as remote:
        RE, beamline = make_beamline(server.data_dir / "raw")
        try:
            remote.subscribe(RE)
            first = remote.max_scan_id()
            (uid,) = RE(count([beamline.det], 4), sample="CeO2")
        finally:
            beamline.close()
        run = remote.run(uid)
        start, stop = run.metadata["start"], run.metadata["stop"]
        assert (start["plan_name"], start["sample"]) == ("count", "CeO2")
        assert start["scan_id"] > first  # (the server's counter may be ahead of its runs)
        assert stop["exit_status"] == "success" and stop["num_events"] == {"primary": 4}
        assert remote.run(start["scan_id"]).metadata["start"]["uid"] == uid
        assert list(remote.search(sample="CeO2")) == [uid]
        # free text is plain words on either database: several words, quotes, operators
        assert uid in list(remote.search(text='CeO2 "count'))
        assert uid not in list(remote.search(text="CeO2 OR nothing_like_it"))
        table = run["primary"].read()
        np.testing.assert_array_equal(table["det_frame_number"], [0, 1, 2, 3])
        images = run["primary"]["det_image"]
        assert images.shape == (4, 64, 64)
        frames = raw_frames(run)
        np.testing.assert_array_equal(images[2, 10:20, 5:9], frames[2, 10:20, 5:9])
        assert frames[2].any()


def test_runengines_sharing_a_server_never_draw_the_same_scan_number(
        sqlite_server: ServerHandle) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = sqlite_server.url
    with RemoteCatalog(url, KEY) as one, RemoteCatalog(url, KEY) as two:
        highest = one.max_scan_id()
        with ThreadPoolExecutor(4) as pool:  # two beamlines asking at the same time
            drawn = list(pool.map(lambda i: (one, two)[i % 2].scan_id_source({}), range(40)))
        assert sorted(drawn) == list(range(highest + 1, highest + 41))
        assert two.scan_id_source({"scan_id": 10**6}) == 10**6 + 1  # RE.md's number: a floor
        assert one.scan_id_source({}) == 10**6 + 2
    # the endpoint wants the key and a sane floor
    assert httpx.post(url + SCAN_ID_PATH, json={"floor": 1}).status_code == 401
    ok = {"Authorization": f"Apikey {KEY}"}
    for body in ({"floor": -1}, {"floor": "7"}, {"floor": True}, {"floor": 10**30}, [1]):
        answer = httpx.post(url + SCAN_ID_PATH, json=body, headers=ok)
        assert answer.status_code == 422 and "floor" in answer.json()["detail"], body
    assert (sqlite_server.data_dir / "scan_id").read_text().split()[0] == str(10**6 + 2)


def test_a_scan_written_over_http_into_sqlite_reads_back(sqlite_server: ServerHandle) -> None:
    check_scan_over_http(sqlite_server)
    # the server's folder is the embedded catalog's layout
    assert (sqlite_server.data_dir / "catalog.db").is_file()
    assert (sqlite_server.data_dir / "tables.db").is_file()


def test_a_scan_written_over_http_into_postgresql_reads_back(
        postgres_uri: str, tmp_path: Path) -> None:
    with ServerHandle(tmp_path / "data", KEY, database=postgres_uri) as server:
        check_scan_over_http(server)
    assert not (tmp_path / "data" / "catalog.db").exists()  # the metadata went to PostgreSQL


def test_every_request_needs_the_key(sqlite_server: ServerHandle) -> None:
    url = sqlite_server.url
    for path in ("/api/v1/metadata/", "/api/v1/search/", "/", "/api/v1/whoami"):
        assert httpx.get(url + path).status_code == 401, path
        assert httpx.get(url + path, headers={"Authorization": "Apikey wrong0key0123456789"}
                         ).status_code == 401, path
    assert httpx.post(url + "/api/v1/metadata/", json={}).status_code == 401
    ok = {"Authorization": f"Apikey {KEY}"}
    assert httpx.get(url + "/api/v1/metadata/", headers=ok).status_code == 200
    assert httpx.get(url + "/api/v1/metadata/", params={"api_key": KEY}).status_code == 200
    # open: liveness and Tiled's "about" document (no data)
    assert httpx.get(url + "/healthz").status_code == 200
    about = httpx.get(url + "/api/v1/")
    assert about.status_code == 200 and KEY not in about.text
    with pytest.raises(Exception, match="refused the API key"):
        RemoteCatalog(url, "wrong0key0123456789")


def test_the_server_binds_loopback_and_never_shows_the_key(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, API_KEY_ENV: KEY, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from dataflow.cli import main; "
         "sys.exit(main(sys.argv[1:]))", "serve", "--data", str(tmp_path / "data"),
         "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not _answers(url + "/healthz"):
            assert proc.poll() is None, proc.communicate()[0].decode()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        assert httpx.get(url + "/api/v1/metadata/", params={"api_key": KEY}).status_code == 200
        assert httpx.get(url + "/api/v1/metadata/", params={"api_key": "x" + KEY}
                         ).status_code == 401
        with RemoteCatalog(url, KEY) as remote:
            assert len(remote.client) == 0
        # 127.0.0.2 reaches this machine's loopback too, but not a 127.0.0.1-only socket
        with pytest.raises(OSError), socket.create_connection(("127.0.0.2", port), 2):
            pass
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0].decode()
    assert f"http://127.0.0.1:{port}" in output and "API key required" in output
    assert "GET /api/v1/metadata/?api_key=***" in output  # the request log masks it
    assert KEY not in output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


# -- the server stopped in the middle of a scan ------------------------------------------


def stopping_plan(det: Any, server: ServerHandle, n: int, stop_after: int,
                  restart_after: int | None) -> Any:
    """``n`` frames; the server stops after frame ``stop_after`` and comes back after
    frame ``restart_after`` (never, when None)."""
    yield from bps.stage(det)
    uid = yield from bps.open_run({"plan_name": "outage"})
    for i in range(n):
        yield from bps.trigger_and_read([det])
        if i == stop_after:
            server.stop()
        if i == restart_after:
            server.start()
    yield from bps.close_run()
    yield from bps.unstage(det)
    return uid


def check_complete(remote: RemoteCatalog, uid: str, n: int) -> None:
    run = remote.run(uid)
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["stop"]["num_events"] == {"primary": n}
    table = run["primary"].read()
    np.testing.assert_array_equal(table["det_frame_number"], np.arange(n))  # once each
    assert run["primary"]["det_image"].shape == (n, 64, 64)
    np.testing.assert_array_equal(run["primary"]["det_image"][n - 1, :5, :5],
                                  raw_frames(run)[n - 1, :5, :5])
    assert len(remote.search(plan_name="outage")) == 1


def test_server_back_during_the_scan_the_run_ends_complete(tmp_path: Path) -> None:
    with ServerHandle(tmp_path / "data", KEY) as server, \
            RemoteCatalog(server.url, KEY) as remote:
        RE, beamline = make_beamline(server.data_dir / "raw")
        writer = remote.spooling_writer(tmp_path / "spool")
        writer.retry_interval = 0.0  # try again on every document
        RE.subscribe(writer)
        try:
            (uid,) = RE(stopping_plan(beamline.det, server, 10, stop_after=2,
                                      restart_after=6))
        finally:
            beamline.close()
            writer.close()
        assert writer.spooled_documents > 0 and writer.replayed_runs == 1
        assert writer.pending == [] and list(writer.runs()) == []
        check_complete(remote, uid, 10)


def test_server_back_after_the_scan_spool_replayed_once_and_again(tmp_path: Path) -> None:
    server = ServerHandle(tmp_path / "data", KEY).start()
    remote = RemoteCatalog(server.url, KEY)
    RE, beamline = make_beamline(server.data_dir / "raw")
    writer = remote.spooling_writer(tmp_path / "spool")
    writer.retry_interval = 3600.0  # no automatic replay: this process "dies" spooled
    RE.subscribe(writer)
    try:
        (uid,) = RE(stopping_plan(beamline.det, server, 8, stop_after=3, restart_after=None))
    finally:
        beamline.close()
        writer.close()
    (spooled,) = spool_files(tmp_path / "spool")
    copy = tmp_path / "again" / spooled.name
    copy.parent.mkdir()
    shutil.copy(spooled, copy)
    assert not writer.flush()  # still down: nothing lost, nothing raised
    server.start()
    try:
        # a later process: the CLI replays the folder
        env_key = os.environ.get(API_KEY_ENV)
        os.environ[API_KEY_ENV] = KEY
        try:
            assert catalog_main(["replay", str(tmp_path / "spool"), "--url", server.url]) == 0
        finally:
            if env_key is None:
                del os.environ[API_KEY_ENV]
            else:
                os.environ[API_KEY_ENV] = env_key
        assert spool_files(tmp_path / "spool") == []
        check_complete(remote, uid, 8)
        assert replay_spool(copy.parent, remote.client) == [uid]  # the same spool again
        check_complete(remote, uid, 8)
    finally:
        remote.close()
        server.stop()


# -- the command line --------------------------------------------------------------------


def test_serve_without_a_key_is_one_line_and_exit_1(tmp_path: Path, monkeypatch: Any,
                                                    capsys: Any) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert catalog_main(["serve", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no API key: set ${API_KEY_ENV}" in err
    key_file = tmp_path / "key"
    key_file.write_text("")
    key_file.chmod(0o600)
    assert catalog_main(["serve", "--api-key-file", str(key_file)]) == 1
    assert "is empty" in capsys.readouterr().err
    key_file.write_text(KEY)
    key_file.chmod(0o644)
    assert catalog_main(["serve", "--api-key-file", str(key_file)]) == 1
    err = capsys.readouterr().err
    assert "readable by other users" in err and "chmod 600" in err and KEY not in err
    assert catalog_main(["serve", "--api-key-file", str(tmp_path / "nope")]) == 1
    assert "no such file" in capsys.readouterr().err
    monkeypatch.setenv(API_KEY_ENV, "short")
    assert catalog_main(["serve", "--data", str(tmp_path)]) == 1
    assert "at least 16" in capsys.readouterr().err


def test_serve_with_a_bad_database_uri_is_a_clear_error(tmp_path: Path, monkeypatch: Any,
                                                        capsys: Any) -> None:
    monkeypatch.setenv(API_KEY_ENV, KEY)
    for uri, words in [("mysql://u@h/db", "not a database URI"),
                       ("sqlite://relative.db", "sqlite:///PATH"),
                       ("postgresql://:pw@/", "postgresql://USER@HOST:PORT/DATABASE")]:
        assert catalog_main(["serve", "--data", str(tmp_path), "--db", uri]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    # a PostgreSQL nobody listens on: named, password masked
    port = _free_port()
    assert catalog_main(["serve", "--data", str(tmp_path), "--port", str(_free_port()),
                         "--db", f"postgresql://u:secretpw@127.0.0.1:{port}/db"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot open catalog database" in err
    assert "secretpw" not in err and "u:***@127.0.0.1" in err


NO_HOST = "256.0.0.1"
"""An address nothing can listen on: a test of a bad argument given this host fails,
instead of serving forever, when the argument is no longer refused."""


def _serve_in_a_process(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``smeflow catalog serve ARGV`` in a fresh process (logging not yet configured)."""
    env = {**os.environ, API_KEY_ENV: KEY}
    return subprocess.run([sys.executable, "-c", "import sys; from dataflow.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", "serve", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_bad_database_uri_is_the_only_output(tmp_path: Path) -> None:
    done = _serve_in_a_process("--data", "data", "--db", "mysql://x@y/z", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("smeflow catalog: error: --db 'mysql://x@y/z': not a database "
                           "URI; expected sqlite:///PATH or postgresql://USER@HOST:PORT/"
                           "DATABASE\n")
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_a_file_that_is_not_a_database_is_named_with_the_reason(
        tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setenv(API_KEY_ENV, KEY)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n" * 100)
    assert catalog_main(["serve", "--data", str(tmp_path / "data"), "--quiet",
                         "--db", f"sqlite:///{notes}", "--port", str(_free_port())]) == 1
    err = capsys.readouterr().err
    assert err == (f"smeflow catalog: error: {notes}: is not an SQLite database (its first "
                   "bytes are not SQLite's header); left as it is: restore it from a backup "
                   "(the runs it lists are not found without it)\n")
    assert notes.read_text() == "not a database\n" * 100
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]  # no data folder left


def test_a_busy_port_is_found_before_anything_is_created(tmp_path: Path, monkeypatch: Any,
                                                         capsys: Any) -> None:
    """The port is bound first: serving on a busy port creates no data folder, no
    database (it used to create both, then fail)."""
    monkeypatch.setenv(API_KEY_ENV, KEY)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert catalog_main(["serve", "--data", str(tmp_path / "data"), "--quiet",
                             "--port", str(port)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"smeflow catalog: error: cannot listen on 127.0.0.1:{port}: ")
        assert err.count("\n") == 1
        with pytest.raises(ServerConfigError, match="cannot listen on"):
            ServerHandle(tmp_path / "data2", KEY, port=port).start()
    assert list(tmp_path.iterdir()) == []


def test_a_relative_sqlite_path_is_taken_from_the_current_folder(
        tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rel").mkdir()
    uri = database_uri("sqlite:///rel/c.db", Path("/d"))
    assert uri == f"sqlite:///{tmp_path}/rel/c.db"
    assert database_uri(uri, Path("/d")) == uri
    assert database_uri("sqlite:///rel/../c.db?timeout=5", Path("/d")) == \
        f"sqlite:///{tmp_path}/c.db?timeout=5"
    server = ServerHandle(tmp_path / "data", KEY, database="sqlite:///rel/c.db")
    for _ in range(2):  # a restart opens the same file
        with server, RemoteCatalog(server.url, KEY) as remote:
            assert len(remote.client) == 0
    assert (tmp_path / "rel" / "c.db").is_file()


def test_a_database_in_a_missing_folder_is_refused(tmp_path: Path, monkeypatch: Any,
                                                   capsys: Any) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(API_KEY_ENV, KEY)
    for db, folder in [("sqlite:///nonexistent/dir/c.db", tmp_path / "nonexistent" / "dir"),
                       (f"sqlite:///{tmp_path}/gone/c.db", tmp_path / "gone")]:
        assert catalog_main(["serve", "--data", "data", "--db", db, "--host", NO_HOST]) == 1
        err = capsys.readouterr().err
        assert err == (f"smeflow catalog: error: --db {db!r}: folder {folder} does not "
                       "exist (create it first)\n")
    assert catalog_main(["serve", "--data", "data", "--db", f"sqlite:///{tmp_path}",
                         "--host", NO_HOST]) == 1
    assert "is a folder, not a database file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no folder created, not even the data folder


@pytest.mark.parametrize("port", ["99999", "-1", "0", "65536", "http", ""])
def test_a_port_out_of_range_is_a_usage_error(port: str, tmp_path: Path, monkeypatch: Any,
                                              capsys: Any) -> None:
    monkeypatch.setenv(API_KEY_ENV, KEY)
    assert catalog_main(["serve", "--data", str(tmp_path / "data"), "--port", port,
                         "--host", NO_HOST]) == 2
    err = capsys.readouterr().err
    assert err == (f"smeflow catalog: error: --port {port!r}: expected a port number in "
                   "1…65535\n")
    assert list(tmp_path.iterdir()) == []


def test_key_and_database_parsing() -> None:
    assert read_api_key(None, {API_KEY_ENV: f"  {KEY}\n"}) == KEY
    with pytest.raises(ServerConfigError, match="letters and digits"):
        read_api_key(None, {API_KEY_ENV: "abc-def-ghi-jkl-mno-pqr"})
    assert database_uri(None, Path("/d")) == "sqlite:////d/catalog.db"
    with pytest.raises(ServerConfigError, match="--db 'postgresql://u:\\*\\*\\*@h/'"):
        database_uri("postgresql://u:pw@h/", Path("/d"))


# -- names from users never reach outside the data folder --------------------------------


def _run_with_external_file(uri: str) -> list[tuple[str, dict[str, Any]]]:
    bundle = compose_run()
    desc = bundle.compose_descriptor(
        name="primary", data_keys={"img": {"source": "x", "shape": [1, 4, 4], "dtype": "array",
                                           "dtype_numpy": "<u2", "external": "STREAM:"}})
    res = bundle.compose_stream_resource(mimetype="application/x-hdf5", uri=uri,
                                         data_key="img", parameters={"dataset": "/data"})
    datum = res.compose_stream_datum(indices={"start": 0, "stop": 1})
    event = desc.compose_event(data={}, timestamps={}, seq_num=1)
    return [("start", bundle.start_doc), ("descriptor", desc.descriptor_doc),
            ("stream_resource", res.stream_resource_doc),
            ("stream_datum", {**datum, "descriptor": desc.descriptor_doc["uid"]}),
            ("event", event), ("stop", bundle.compose_stop())]


def test_external_files_outside_raw_are_refused(sqlite_server: ServerHandle,
                                                tmp_path: Path) -> None:
    raw = sqlite_server.data_dir / "raw"
    outside = tmp_path / "secret.h5"
    with h5py.File(outside, "w") as f:
        f["data"] = np.ones((1, 4, 4), np.uint16)
    (raw / "sneaky").mkdir(exist_ok=True)
    (raw / "sneaky" / "link.h5").unlink(missing_ok=True)
    (raw / "sneaky" / "link.h5").symlink_to(outside)
    uris = [f"file://localhost{outside}",                                   # elsewhere
            f"file://localhost{raw}/" + "../" * len(raw.parts) + str(outside)[1:],  # ../
            f"file://localhost{raw}/sneaky/link.h5"]                         # symlink out
    with RemoteCatalog(sqlite_server.url, KEY) as remote:
        for uri in uris:
            writer = TiledWriter(remote.client, batch_size=1)
            docs = _run_with_external_file(uri)
            with pytest.raises(httpx.HTTPStatusError, match="403") as info:
                for name, doc in docs:
                    writer(name, doc)
            assert "outside the catalog's data folders" in info.value.response.text
        # through the spooling writer: kept aside as rejected, never raised
        spool = remote.spooling_writer(tmp_path / "spool")
        for name, doc in _run_with_external_file(uris[1]):
            spool(name, doc)
        spool.close()
        (kept,) = tmp_path.joinpath("spool").glob("*")
        assert kept.name.endswith(REJECTED_SUFFIX) and len(kept.read_text().splitlines()) == 6
        # a name with ../ is never a run reference
        for ref in ("../../etc/passwd", "..", "abcde/../x"):
            with pytest.raises(MalformedUidError):
                remote.run(ref)


def test_reducers_write_their_derived_runs_over_http(sqlite_server: ServerHandle,
                                                     monkeypatch: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``smeflow reduce --url``: the raw run is read from the server and the derived run
    (1D patterns) is written back to it, linked by ``raw_uid``."""
    from analysis.cli import main as reduce_main
    from plans import diffraction_count

    with RemoteCatalog(sqlite_server.url, KEY) as remote:
        RE, beamline = make_beamline(sqlite_server.data_dir / "raw")
        try:
            remote.subscribe(RE)
            beamline.use_powder()
            (uid,) = RE(diffraction_count(beamline.det, 3, md={
                "geometry": beamline.geometry.to_metadata()}))
        finally:
            beamline.close()
        monkeypatch.setenv("SMEFLOW_API_KEY", KEY)
        capsys.readouterr()
        assert reduce_main([uid[:8], "--url", sqlite_server.url, "--data",
                            str(sqlite_server.data_dir), "--bins", "100"]) == 0
        derived_uid = capsys.readouterr().out.splitlines()[0].strip()
        derived = remote.run(derived_uid)
        assert derived.metadata["start"]["raw_uid"] == uid
        assert derived.metadata["stop"]["exit_status"] == "success"
        assert derived["primary"]["intensity"].shape == (3, 100)
    assert reduce_main([uid[:8], "--url", "http://127.0.0.1:9", "--data",
                        str(sqlite_server.data_dir)]) == 1
    assert "no catalog server answers" in capsys.readouterr().err
