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


COUNTER = """
import sys
from sme import Simulator
from sme.examples import counter
sim = Simulator(counter.build(), backend="compiled", cache_dir=sys.argv[1])
sim.run(stimulus=counter.stimulus(20))
print(list(sim.trace.column("counter_data.value")))
"""


def test_a_damaged_cache_is_compiled_again(tmp_path: Path) -> None:
    """A cached ``sim.py`` no longer UTF-8, or numba's machine code cut short (a full disk,
    a bad disk): the cache is for replacing. Before, every later start failed the same
    way ('internal error: UnicodeDecodeError', 'UnpicklingError: pickle data was
    truncated') until the user found the cache folder and deleted it."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))

    def run() -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-c", COUNTER, str(tmp_path)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done

    whole = run().stdout
    [folder] = (tmp_path / "compiled").iterdir()
    source = (folder / "sim.py").read_bytes()
    (folder / "sim.py").write_bytes(source[:100] + bytes([source[100] ^ 0xFF]) + source[101:])
    assert run().stdout == whole
    assert (folder / "sim.py").read_bytes() == source
    machine = sorted((folder / "__pycache__").glob("sim.*.nbc"))
    assert machine
    os.truncate(machine[0], 100)
    again = run()
    assert again.stdout == whole
    assert (f"{folder / '__pycache__'}: numba's cache of this simulation is damaged "
            "(UnpicklingError: pickle data was truncated); compiling it again") in again.stderr
    assert machine[0].stat().st_size > 100
