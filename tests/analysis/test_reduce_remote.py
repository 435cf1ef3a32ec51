"""``smeflow reduce --url`` of a tomography run on a catalog server: the derived files must
go where the server reads, and a reduction the server refuses still ends its derived run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analysis.cli import main as reduce_main
from dataflow.remote import RemoteCatalog
from dataflow.server import ServerHandle
from plans import tomo_scan

KEY = secrets.token_hex(16)


@pytest.fixture(scope="module")
def server_with_tomo(serve_one_run: Any) -> Iterator[tuple[ServerHandle, str]]:
    """A catalog server holding one small tomography run (written over HTTP)."""
    def plan_for(beamline: Any) -> Any:
        beamline.use_phantom()
        return tomo_scan(beamline.det, beamline.rotation, beamline.sample_x, beamline.shutter,
                         out_position=20.0, num_projections=6, n_darks=1, n_flats=1)

    with serve_one_run("reduce_remote", KEY, plan_for) as served:
        yield served


def _derived(server: ServerHandle, raw_uid: str) -> list[dict[str, Any]]:
    """The metadata of every derived run of ``raw_uid`` on the server."""
    with RemoteCatalog(server.url, KEY) as remote:
        found = [dict(remote.run(s.uid).metadata)
                 for s in remote.summaries(remote.derived) if s.plan_name == "reduce"]
        assert all(s.plan_name != "reduce" for s in remote.summaries())  # never raw runs
    return [md for md in found if md["start"].get("raw_uid") == raw_uid]


def test_a_data_folder_that_is_not_the_servers_is_refused_before_any_work(
        server_with_tomo: tuple[ServerHandle, str], tmp_path: Path, monkeypatch: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    server, uid = server_with_tomo
    monkeypatch.setenv("SMEFLOW_API_KEY", KEY)
    before = _derived(server, uid)
    elsewhere = tmp_path / "elsewhere"
    assert reduce_main([uid[:8], "--url", server.url, "--data", str(elsewhere)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "smeflow reduce: error: --data:" in err
    assert str(server.data_dir / "raw") in err
    assert _derived(server, uid) == before  # no derived run opened
    assert not elsewhere.exists()           # nothing written


def test_a_derived_run_the_server_refuses_ends_with_fail(
        server_with_tomo: tuple[ServerHandle, str], tmp_path: Path, monkeypatch: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without the folder check the server refuses the derived file after the work: the
    derived run must still get its stop document (fail, with the server's reason)."""
    import analysis.reduce

    server, uid = server_with_tomo
    monkeypatch.setenv("SMEFLOW_API_KEY", KEY)
    monkeypatch.setattr(analysis.reduce, "check_derived_folder", lambda *args: None)
    before = {md["start"]["uid"] for md in _derived(server, uid)}
    assert reduce_main([uid[:8], "--url", server.url, "--data", str(tmp_path / "x")]) == 1
    assert "403" in capsys.readouterr().err
    (new,) = [md for md in _derived(server, uid) if md["start"]["uid"] not in before]
    assert new["stop"]["exit_status"] == "fail"
    assert "outside the catalog's data folders" in new["stop"]["reason"]


def test_the_servers_data_folder_gets_the_reconstruction(
        server_with_tomo: tuple[ServerHandle, str], monkeypatch: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    server, uid = server_with_tomo
    monkeypatch.setenv("SMEFLOW_API_KEY", KEY)
    assert reduce_main([uid[:8], "--url", server.url, "--data", str(server.data_dir),
                        "--rows", "20", "40"]) == 0
    derived_uid = capsys.readouterr().out.splitlines()[0].strip()
    with RemoteCatalog(server.url, KEY) as remote:
        run = remote.run(derived_uid)
        assert run.metadata["stop"]["exit_status"] == "success"
        assert run["primary"]["reconstruction"].shape == (2, 64, 64)
