"""The compiled backend's on-disk cache: keyed by content, configurable, safe when several
processes start the same network at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sme import Simulator
from sme.compiled.cache import ENV_VAR, cache_key, default_cache_dir
from sme.examples import counter, pipeline

SCRIPT = """
import sys, time
t = time.perf_counter()
from sme import Simulator
from sme.examples import pipeline
sim = Simulator(pipeline.build(), backend="compiled", trace=False, cache_dir=sys.argv[1])
sim.run(stimulus=pipeline.stimulus(2000))
print(sim.peek("sum_out.sum_out"), time.perf_counter() - t)
"""


def _run(cache: Path) -> tuple[int, float]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(cache)], capture_output=True,
                         text=True, check=True, env=env).stdout.split()
    return int(out[0]), float(out[1])


def test_key_follows_content() -> None:
    a = Simulator(pipeline.build(), backend="compiled", trace=False).build
    b = Simulator(pipeline.build(), backend="compiled", trace=False).build
    c = Simulator(pipeline.build(), backend="compiled", trace=False, checks=False).build
    d = Simulator(counter.build(), backend="compiled", trace=False).build
    keys = [cache_key(x.source) for x in (a, b, c, d)]  # type: ignore[attr-defined]
    assert keys[0] == keys[1]
    assert len({keys[0], keys[2], keys[3]}) == 3


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "smeflow"


def test_second_process_loads_from_cache(tmp_path: Path) -> None:
    first, _ = _run(tmp_path)
    [folder] = (tmp_path / "compiled").iterdir()
    assert (folder / "sim.py").exists()
    assert list((folder / "__pycache__").glob("*.nbi"))  # numba's index of machine code
    stamp = {p: p.stat().st_mtime_ns for p in (folder / "__pycache__").iterdir()}
    second, _ = _run(tmp_path)
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in (folder / "__pycache__").iterdir()} == stamp


def test_concurrent_processes_share_one_compile(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(3)]
    results = [p.communicate()[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len({r[0] for r in results}) == 1
    assert len(list((tmp_path / "compiled").iterdir())) == 1
