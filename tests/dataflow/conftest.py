"""Shared helpers of the dataflow tests: a frame-writing ophyd test device and catalogs."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ophyd import Component, Device, Signal
from ophyd.status import StatusBase

from dataflow.catalog import Catalog
from dataflow.hdf5 import FrameWriter

FRAME_SHAPE = (40, 24)
_files = itertools.count()


def make_frame(index: int, shape: tuple[int, int] = FRAME_SHAPE) -> np.ndarray:
    """The deterministic uint16 frame number ``index`` the test camera produces."""
    rows, cols = shape
    base = np.arange(rows * cols, dtype=np.uint32).reshape(rows, cols)
    return ((base * 7 + index * 1000) % 65521).astype(np.uint16)


class FrameCam(Device):
    """A test-only camera: each trigger writes one frame through ``FrameWriter``.

    The frames are external data (``STREAM:``) announced by ``collect_asset_docs``; the
    frame sum is an ordinary reading.
    """

    frame_shape = FRAME_SHAPE
    total = Component(Signal, value=0, kind="hinted")
    exposure = Component(Signal, value=0.01, kind="config")

    def __init__(self, *args: Any, folder: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder
        self.writer: FrameWriter | None = None
        self.digests: list[str] = []
        self._index = 0

    def stage(self) -> list[Any]:
        self.writer = FrameWriter(self.folder, f"{self.name}_{next(_files):04d}.h5",
                                  FRAME_SHAPE, data_key=f"{self.name}_image")
        self._index = 0
        staged: list[Any] = super().stage()
        return staged

    def unstage(self) -> list[Any]:
        if self.writer is not None:
            self.digests.append(self.writer.close())
        unstaged: list[Any] = super().unstage()
        return unstaged

    def trigger(self) -> StatusBase:
        assert self.writer is not None, "stage() first"
        frame = make_frame(self._index)
        self.writer.append(frame)
        self._index += 1
        self.total.put(int(frame.sum()))
        status = StatusBase()
        status.set_finished()
        return status

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = super().describe()
        desc[f"{self.name}_image"] = {"source": "test:FrameCam", "shape": list(FRAME_SHAPE),
                                      "dtype": "array", "dtype_numpy": "<u2",
                                      "external": "STREAM:"}
        return desc

    def collect_asset_docs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.writer is not None:
            yield from self.writer.asset_docs()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """One embedded catalog per test module (opening one costs seconds)."""
    cat = Catalog(tmp_path_factory.mktemp("catalog"))
    yield cat
    cat.close()


@pytest.fixture(scope="session")
def frame_cam() -> type[FrameCam]:
    """The ``FrameCam`` test device class (``FrameCam(name=..., folder=...)``)."""
    return FrameCam


@pytest.fixture
def run_with_frames(catalog: Catalog) -> tuple[Any, Path]:
    """A run of three ``FrameCam`` frames in ``catalog`` and its one frame file."""
    from bluesky import RunEngine
    from bluesky.plans import count

    from dataflow.catalog import check_frame_files

    RE = RunEngine()
    catalog.subscribe(RE)
    cam = FrameCam(name="cam", folder=catalog.raw_dir)
    (uid,) = RE(count([cam], 3))
    run = catalog.run(uid)
    (path,) = check_frame_files(run)
    return run, path


@pytest.fixture(scope="session")
def make_test_frame() -> Callable[[int], np.ndarray]:
    """``make_test_frame(i)``: the frame number ``i`` a ``FrameCam`` writes."""
    return make_frame


# -- a real PostgreSQL server for the catalog-server tests --------------------------------

PG_USER = "smeflow"
PG_DATABASE = "smeflow_catalog"


def _pg_binaries() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: Debian's newest
    ``/usr/lib/postgresql/*/bin``, else the one on PATH; fails the test when absent."""
    import shutil

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for folder in reversed(candidates):
        if all((folder / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return folder
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl") and shutil.which("postgres"):
        return Path(on_path).parent
    pytest.fail("PostgreSQL not found (no initdb/pg_ctl/postgres under "
                "/usr/lib/postgresql/*/bin or on PATH): install the Debian package "
                "'postgresql' (make test does it when run as root)", pytrace=False)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def postgres_uri(postgres_server: Callable[[], str]) -> str:
    """A database of its own for each test module, in the session's PostgreSQL:
    ``postgresql://smeflow:PASSWORD@127.0.0.1:PORT/smeflow_catalog_<n>``. (One database
    for the session let a module's runs reach the next module's searches on the same
    xdist worker: test_run_search's counts after test_server's scan.)"""
    return postgres_server()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Callable[[], str]]:
    """A running PostgreSQL on 127.0.0.1 (free port, temporary cluster, password auth):
    yields a function that creates a new database and returns its URI,
    ``postgresql://smeflow:PASSWORD@127.0.0.1:PORT/smeflow_catalog_<n>``.

    The cluster lives in a fresh temporary folder (its unix socket too) and is stopped
    and deleted afterwards, also when a test fails. PostgreSQL refuses to run as root:
    as root the fixture runs it as ``nobody`` through ``runuser``.
    """
    import os
    import secrets
    import shutil
    import subprocess
    import tempfile

    bin_dir = _pg_binaries()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.fail("running as root, PostgreSQL must run as another user, but "
                        "'runuser' (util-linux) is missing", pytrace=False)
        prefix = [runuser, "-u", "nobody", "--"]
    base = Path(tempfile.mkdtemp(prefix="smeflow-pg-"))  # /tmp: reachable by nobody
    cluster, sockets, pwfile = base / "cluster", base / "socket", base / "pw"
    sockets.mkdir()
    password = secrets.token_hex(16)
    pwfile.write_text(password + "\n")
    if as_root:
        import pwd

        nobody = pwd.getpwnam("nobody")
        for path in (base, sockets, pwfile):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PGPASSWORD": password}

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, env=env,
                              cwd=base, timeout=120)
        if done.returncode != 0:
            pytest.fail(f"{Path(args[0]).name} failed ({done.returncode}): "
                        f"{(done.stderr or done.stdout).strip()[-800:]}", pytrace=False)

    started = False
    try:
        run(str(bin_dir / "initdb"), "-D", str(cluster), "-U", PG_USER, "-A", "scram-sha-256",
            "--pwfile", str(pwfile), "-E", "UTF8", "--no-sync")
        run(str(bin_dir / "pg_ctl"), "-D", str(cluster), "-l", str(base / "postgres.log"),
            "-w", "-t", "60", "-o",
            f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c full_page_writes=off",
            "start")
        started = True
        createdb = bin_dir / "createdb"
        made = itertools.count(1)

        def database() -> str:
            name = f"{PG_DATABASE}_{next(made)}"
            run(str(createdb) if createdb.is_file() else "createdb", "-h", "127.0.0.1",
                "-p", str(port), "-U", PG_USER, name)
            return f"postgresql://{PG_USER}:{password}@127.0.0.1:{port}/{name}"

        yield database
    finally:
        if started:
            subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(cluster), "-m", "fast",
                            "-w", "stop"], capture_output=True, env=env, cwd=base, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
