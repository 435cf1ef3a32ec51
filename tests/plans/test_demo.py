"""``smeflow demo`` end to end (fewer projections): both runs land in the catalog, the
live reduction adds a derived run to each (a reconstruction equal to an offline
reduction of the same run, 1D patterns), the pictures are written, and the catalog query
it prints finds the tomography run."""

from __future__ import annotations

import math
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from databroker.queries import FullText

from analysis.reduce import reduce_run
from dataflow.catalog import Catalog
from dataflow.cli import main as catalog_main
from devices.powder import CEO2, PowderSample
from geometry import PoniGeometry
from plans.demo import DEMO_PHASES, run_demo


def peak_positions(x: np.ndarray, y: np.ndarray, half_width: int = 3) -> list[float]:
    """Positions of the local maxima of ``y`` standing 10× above its median (the
    background), each the largest within ``half_width`` bins on either side."""
    floor = 10 * max(float(np.median(y)), 1e-9)
    found = []
    for i in range(len(y)):
        lo, hi = max(0, i - half_width), min(len(y), i + half_width + 1)
        if y[i] > floor and y[i] == y[lo:hi].max():
            found.append(float(x[i]))
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """``smeflow demo`` with 12 projections: its data folder and its result."""
    data = tmp_path_factory.mktemp("demo") / "smeflow-data"
    phases: list[str] = []
    result = run_demo(data, data.parent / "out", projections=12, quiet=True,
                      on_phase=phases.append)
    result["phases"] = phases
    return data, result


@pytest.mark.slow
def test_demo_end_to_end(demo: tuple[Path, dict[str, Any]],
                         capsys: pytest.CaptureFixture[str]) -> None:
    data, result = demo
    assert result["phases"] == list(DEMO_PHASES)  # each phase's end noted once, in order
    for name in ("projection", "sinogram", "reconstruction", "diffraction", "pattern"):
        path = result["files"][name]
        assert path.exists() and path.stat().st_size > 5_000, name
    with Catalog(data) as catalog:
        tomo = catalog.run(result["tomo_uid"])
        assert tomo.metadata["stop"]["exit_status"] == "success"
        assert tomo["primary"]["det_image"].shape == (12, 256, 256)
        assert tomo["dark"]["det_image"].shape[0] == 5
        assert tomo["flat"]["det_image"].shape[0] == 5
        darks = np.asarray(tomo["dark"]["det_image"][:])
        flats = np.asarray(tomo["flat"]["det_image"][:])
        assert np.median(darks) < flats.mean() / 100     # shutter closed (hot pixels count on)
        # the live reductions' runs live apart: the last run is the last scan
        assert catalog.client[-1].metadata["start"]["uid"] == result["diffraction_uid"]
        diff = catalog.run(result["diffraction_uid"])
        assert diff["primary"]["det_image"].shape == (6, 256, 256)

        recon = catalog.run(result["tomo_derived_uid"])
        assert recon.metadata["start"]["raw_uid"] == result["tomo_uid"]
        assert recon.metadata["stop"]["exit_status"] == "success"
        live_volume = np.asarray(recon["primary"]["reconstruction"][:])
        assert live_volume.shape == (256, 256, 256)
        offline = reduce_run(catalog, result["tomo_uid"])
        offline_volume = np.asarray(catalog.run(offline.uid)["primary"]["reconstruction"][:])
        scale = np.abs(offline_volume).max()
        np.testing.assert_allclose(live_volume, offline_volume, rtol=0, atol=1e-5 * scale)
        patterns = catalog.run(result["diffraction_derived_uid"])
        assert patterns.metadata["start"]["raw_uid"] == result["diffraction_uid"]
        assert patterns["primary"]["intensity"].shape == (6, 500)
        # the 1D pattern has the sample's peaks and no others (hot pixels are masked)
        radial = np.asarray(patterns["axis"]["radial"][0])
        pattern = np.asarray(patterns["primary"]["intensity"][:]).mean(axis=0)
        geometry = PoniGeometry.from_metadata(diff.metadata["start"]["geometry"])
        step = float(radial[1] - radial[0])
        model = [math.degrees(r.two_theta(geometry.wavelength))
                 for r in PowderSample(CEO2, geometry).rings()]
        model = [t for t in model if radial[0] + step < t < radial[-1] - step]
        found = peak_positions(radial, pattern)
        assert len(model) >= 2, model
        assert len(found) == len(model), (found, model)
        for seen, expected in zip(found, model, strict=True):
            assert abs(seen - expected) <= 1.5 * step, (found, model)
        derived = {run.metadata["start"]["uid"]
                   for run in catalog.derived_runs(result["tomo_uid"]).values()}
        assert derived == {result["tomo_derived_uid"], offline.uid}
        for what in ("tomo", "diffraction"):
            stop = catalog.run(result[f"{what}_derived_uid"]).metadata["stop"]
            # the live lag: finite and recorded; its size is noisy on a loaded 2-core
            # machine (about 0.5 s for the tomography run, 0.05 s for diffraction)
            assert math.isfinite(stop["lag_max_s"]) and stop["lag_max_s"] >= 0
            assert stop["lag_max_s"] == result["lag_max"][what]
            assert stop["dropped_frames"] == 0
        # provenance: every raw and derived file's digest and counters, checked again
        from dataflow.provenance import verify_run

        for uid in (result["tomo_uid"], result["tomo_derived_uid"],
                    result["diffraction_uid"], result["diffraction_derived_uid"]):
            run = catalog.run(uid)
            record = run.metadata["provenance"]
            assert all(len(f["sha256"]) == 64 for f in record["files"])
            # patterns are in-event arrays: only the diffraction derived run has no file
            assert record["files"] or uid == result["diffraction_derived_uid"]
            report = verify_run(run, record_dir=catalog.raw_dir / "provenance")
            assert report.ok, report.lines()
        raw_files = catalog.run(result["tomo_uid"]).metadata["provenance"]["files"]
        frame_files = [f for f in raw_files if f["data_key"] == "det_image"]
        assert sum(f["counters"]["good"] for f in frame_files) == 22  # 5 + 5 + 12 frames
        # the pixel mask's file is recorded too (it has no readout counters)
        assert [f["counters"] for f in raw_files if f["data_key"] == "det_pixel_mask"] == [{}]
    capsys.readouterr()
    assert catalog_main(["search", "plan_name=tomo_scan", "--data", str(data)]) == 0
    assert result["tomo_uid"][:8] in capsys.readouterr().out
    assert result["report"]["corrupt"] == 0


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
def test_docs_catalog_walkthrough_runs_on_the_demo_data(
        demo: tuple[Path, dict[str, Any]], repo_root: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """docs/catalog.md, every snippet as printed, on the demo's ./smeflow-data: databroker
    v1 and v2, Tiled queries, documents, then the same through a served catalog found by
    its profile from a fresh Python session."""
    data, result = demo
    doc = (repo_root / "docs" / "catalog.md").read_text()
    python, shell = _blocks(doc, "python"), _blocks(doc, "sh")
    assert len(python) == 5 and len(shell) == 2
    (searches,) = [block for block in shell if "catalog search" in block]
    (serving,) = [block for block in shell if "catalog serve" in block]
    monkeypatch.chdir(data.parent)  # where `make demo` leaves ./smeflow-data
    monkeypatch.delenv("SMEFLOW_DATA", raising=False)
    namespace: dict[str, Any] = {"__name__": "catalog_md"}
    printed = []
    for block in python[:4]:
        exec(compile(block, "docs/catalog.md", "exec", dont_inherit=True), namespace)
        printed.append(capsys.readouterr().out.splitlines())
    diffraction, tomo = result["diffraction_uid"], result["tomo_uid"]
    with Catalog(data) as catalog:
        frames = np.asarray(catalog.run(diffraction)["primary"]["det_image"][:])
    # v1
    assert printed[0][0] == "diffraction_scan CeO2 powder success"
    assert namespace["header"].start["uid"] == diffraction
    assert list(namespace["table"].index) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(np.stack(list(namespace["images"])), frames)
    assert printed[0][-2] == "6 (256, 256) uint16"
    assert printed[0][-1] == "1 ['dark', 'flat', 'mask', 'primary']"
    # v2
    np.testing.assert_array_equal(namespace["data"]["det_image"].values, frames)
    assert printed[1][0].startswith("(6, 256, 256) ")
    np.testing.assert_array_equal(namespace["corner"], frames[0, :64, :64])
    # queries: diffraction by plan, the phantom by a hyphenated word, the tomography scan
    # by its motors, both scans by time (reductions are in `derived`)
    assert printed[2] == ["1", "1", "1", "2"]
    assert list(namespace["catalog"].search(FullText("Shepp-Logan"))) == [tomo]
    # documents
    assert printed[3] == ["start stop 7"]  # 6 frames and the mask's event
    namespace["db"].v2.context.close()
    # the shell's searches, as printed: the tomography scan, both scans, the tomography scan
    smeflow = str(Path(sys.executable).parent / "smeflow")
    found = []
    for line in searches.strip().splitlines():
        done = subprocess.run(line.replace("smeflow ", smeflow + " ", 1), shell=True,
                              cwd=data.parent, capture_output=True, text=True, timeout=300,
                              env={k: v for k, v in os.environ.items() if k != "SMEFLOW_DATA"})
        assert done.returncode == 0, (line, done.stderr)
        found.append({uid for uid in (tomo, diffraction) if uid[:8] in done.stdout})
        assert done.stdout.rstrip().endswith(f"{len(found[-1])} run"
                                             f"{'s' if len(found[-1]) != 1 else ''}"), line
    assert found == [{tomo}, {tomo, diffraction}, {tomo}]

    # over HTTP: the shell lines as printed (another port), then a fresh Python session
    port = _free_port()
    lines = [line.replace("8000", str(port)) for line in serving.strip().splitlines()]
    env = {**os.environ, "TILED_PROFILES": str(tmp_path / "profiles")}
    server = None
    try:
        for line in lines:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                assert value == "$(cat key.txt)"
                env[name] = (data.parent / "key.txt").read_text().strip()
            elif " catalog serve " in line:
                server = subprocess.Popen([smeflow, *shlex.split(line)[1:]], env=env,
                                          cwd=data.parent, stderr=subprocess.PIPE, text=True)
                _wait_for(f"http://127.0.0.1:{port}/healthz", server)
            else:
                line = line.replace("smeflow ", smeflow + " ", 1) if line.startswith(
                    "smeflow ") else line.replace("python ", sys.executable + " ", 1)
                subprocess.run(line, shell=True, check=True, env=env, cwd=data.parent,
                               capture_output=True)
        code = python[4].replace("8000", str(port))
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == ["diffraction_scan 6", "(6, 256, 256) stop"]
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_for(url: str, process: subprocess.Popen[str], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"the server exited: {err}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no server at {url} after {timeout} s")


def test_demo_figures_of_this_process() -> None:
    """What ``smeflow demo`` prints at its end: this process's age (it started before the
    test run did) and peak memory (at least what it holds now)."""
    import resource
    import time

    from plans.demo import process_age_s
    from plans.demo_memory import peak_rss_mb

    age = process_age_s()
    with open("/proc/uptime") as f:
        assert 0 < age < float(f.read().split()[0])
    time.sleep(0.3)
    assert 0.25 < process_age_s() - age < 5
    held = np.ones(64 * 1024 * 1024 // 8)        # 64 MB touched: the peak grows past it
    assert peak_rss_mb() >= held.nbytes / 2**20
    assert peak_rss_mb() <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + 1
    # a program started by a big process reports its own peak, not the parent's
    import subprocess
    import sys

    big = np.ones(400 * 1024 * 1024 // 8)
    child = subprocess.run([sys.executable, "-c", "from plans.demo_memory import peak_rss_mb; "
                            "print(peak_rss_mb())"], capture_output=True, text=True,
                           timeout=120, check=True)
    assert float(child.stdout) < big.nbytes / 2**20, child.stdout


_DEMO_IMPORTS = """
import sys
from pathlib import Path
from plans.demo import run_demo
folder = Path(sys.argv[1])
run_demo(folder / "data", folder / "out", projections=4, quiet=True)
print(sorted(m for m in ("distributed",) if m in sys.modules))
"""


@pytest.mark.slow
def test_the_demo_does_not_import_what_it_does_not_use(tmp_path: Path) -> None:
    """The demo's process never imports dask.distributed (≈ 10 MB of its peak): its
    pictures read the catalog's arrays with dask's threads named as a function, not by
    the default scheduler, which imports it to look for a client."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _DEMO_IMPORTS, str(tmp_path)],
                          capture_output=True, text=True, timeout=600, check=True)
    assert done.stdout.splitlines()[-1] == "[]", done.stdout[-2000:]


def test_commands_start_without_compiling_jsonschemas_iri_grammar() -> None:
    """``make setup`` leaves out rfc3987-syntax (README, "Dependencies and why"): importing
    smeflow's CLI and event-model must not build its Lark grammar (1–3 s per process)."""
    import subprocess
    import sys

    probe = ("import sys; import sme.cli, event_model, "
             "jsonschema; print('rfc3987_syntax' in sys.modules, 'lark' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == ["False", "False"], out


_PREPARE = """
import hashlib, json, sys, tempfile
import sme.compiled.session as session
from sme.cli import main

loaded = []
real = session.load_module

def load_module(source, cache_dir=None):
    loaded.append(hashlib.sha256(source.encode()).hexdigest())
    return real(source, cache_dir)

session.load_module = load_module
tempfile.tempdir = sys.argv[1]  # its throwaway folder there
code = main(["demo", "--prepare"])
print(json.dumps({"code": code, "loaded": loaded}))
"""


def test_prepare_caches_the_demo_firmware(tmp_path: Path) -> None:
    """``smeflow demo --prepare`` (what ``make setup`` runs) compiles the demo's firmware
    through the on-disk cache (``tests/sme/test_compiled_cache.py``: what is loaded
    there is kept), and leaves nothing else behind: no catalog, no temporary folder.

    It runs in a process of its own, as ``make setup`` runs it: in this one, its build of
    the natively compiled modules would also build every simulation other tests made here
    and every signature they had the JIT compile (79 s on CI, 19 test designs' modules)."""
    import hashlib
    import json

    from devices.beamline import Beamline
    from sme.compiled.codegen import generate

    throwaway = tmp_path / "tmp"
    throwaway.mkdir()
    done = subprocess.run([sys.executable, "-c", _PREPARE, str(throwaway)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    *said, answer = done.stdout.splitlines()
    assert re.fullmatch(r"the demo's firmware, models and OpenCL kernels are compiled and "
                        r"cached \(\d+ s\)", said[-1]), done.stdout
    prepared = json.loads(answer)
    assert prepared["code"] == 0
    assert list(throwaway.iterdir()) == []
    beamline = Beamline.create(tmp_path / "raw")  # the demo's: its firmware's source
    try:
        firmware = beamline.det.firmware
        assert firmware is not None
        source = generate(firmware.network).source
        assert hashlib.sha256(source.encode()).hexdigest() in prepared["loaded"][:1]
    finally:
        beamline.close()
    # and built natively (sme.native): the firmware and the models' compiled passes
    import devices.counting
    import devices.normal_table
    import devices.phantom
    from sme.compiled.cache import native_group

    sim = native_group(source)
    for group in (sim, devices.counting._draw_pass.group,
                  devices.counting._sorted_below_native.group,
                  devices.normal_table._quantile_table_native.group,
                  devices.phantom._transmit_native.group):
        group.reload()
        assert group.record() is not None, (group.name, group.refused)
    record = sim.record()
    assert record is not None and set(record["functions"]) == {"run", "reset", "step"}
