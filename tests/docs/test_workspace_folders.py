"""A user's working folder holding a folder named like one of smeflow's packages.

A notebook folder with an ``analysis/`` or ``plans/`` folder of the user's own (no
``__init__.py``) is on ``sys.path`` first (a notebook, ``python -c``, a script beside it).
Python's path finder takes such a folder as a namespace package unless a regular package
of that name comes later on ``sys.path``; setuptools' editable finder is asked only after
it. ``make setup`` therefore puts the checkout itself on ``sys.path`` (a ``.pth`` file),
and smeflow's packages win (user review U9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package, name", [("plans", "tomo_scan"), ("sme", "Network"),
                                           ("analysis", "azint"), ("geometry", "read_poni"),
                                           ("devices", "beamline")])
def test_a_users_folder_named_like_a_package_does_not_hide_smeflow(
        tmp_path: Path, package: str, name: str) -> None:
    (tmp_path / package).mkdir()
    (tmp_path / package / "my_notes.py").write_text("x = 1\n")
    done = subprocess.run(
        [sys.executable, "-c", f"import {package}; from {package} import {name}; "
                               f"print({package}.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]
    assert Path(done.stdout.strip()) == ROOT / package / "__init__.py"
