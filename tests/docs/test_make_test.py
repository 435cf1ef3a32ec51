"""``make test``'s own command line (``make -n``: printed, never run)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_test_writes_bytecode_whatever_the_callers_environment() -> None:
    """``make test`` runs pytest with bytecode writing on, even when the caller's
    environment sets ``PYTHONDONTWRITEBYTECODE`` (as CI's does): otherwise every Python
    process of the suite compiled the project's modules again, and pytest rewrote the
    tests' asserts again in each worker (a worker's collection: 21 s of CPU, 14 s with
    the compiled files)."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    dry = subprocess.run(["make", "-s", "-n", "test"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.splitlines()
    (line,) = [ln for ln in dry if "bin/pytest " in ln]
    words = shlex.split(line)
    at = next(i for i, w in enumerate(words) if w.endswith("bin/pytest"))
    # the same line, with pytest replaced by a Python that says whether it writes bytecode
    words[at:at + 1] = [sys.executable, "-c",
                        "import sys; print(sys.dont_write_bytecode)"]
    done = subprocess.run(shlex.join(words), shell=True, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False"], (line, done.stdout, done.stderr)
