"""The OpenCL platform a process loads: only Debian's PoCL where it is installed (the
Makefile requires it and removes the pyopencl wheel's PoCL, which every OpenCL process
would otherwise load — 21 MB resident — and never choose on a recent CPU). And a device
choice is read one way: what ``check_choice`` lets through, ``runtime`` takes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analysis import cl

DEBIAN_ICD = Path("/etc/OpenCL/vendors/pocl.icd")


def test_only_debians_pocl_is_loaded() -> None:
    assert DEBIAN_ICD.exists(), "Debian's pocl-opencl-icd is missing: run `make setup`"
    # the PoCL libraries mapped, not counting Debian's device plug-ins (…/pocl/*.so)
    probe = ("from analysis import cl; rt = cl.runtime(); print(rt.name); "
             "print(*sorted({line.split()[-1] for line in open('/proc/self/maps') "
             "if 'libpocl' in line and '/pocl/' not in line}), sep='\\n')")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=120).stdout.splitlines()
    name, libraries = out[0], out[1:]
    assert "PoCL" in name or "Portable Computing Language" in name, name
    assert len(libraries) == 1, f"PoCL libraries loaded: {libraries}"
    assert DEBIAN_ICD.read_text().strip() in Path(libraries[0]).name, libraries


# what `smeflow reduce --device` checks first is what runtime() takes: one parser for both
TAKEN = ["gpu", "CPU", " any ", "0:0", "0:00"]
REFUSED = ["foo", "9", "0:", ":0", "0:0:0", "0-0", "١:٠"]  # (Arabic-Indic digits last)


@pytest.mark.parametrize("choice", REFUSED)
def test_a_choice_the_check_refuses_is_one_runtime_refuses(choice: str) -> None:
    with pytest.raises(cl.OpenCLUnavailable, match="unknown OpenCL device choice"):
        cl.check_choice(choice)
    with pytest.raises(cl.OpenCLUnavailable, match="unknown OpenCL device choice"):
        cl.runtime(choice)


@pytest.mark.parametrize("choice", TAKEN)
def test_a_choice_the_check_takes_is_one_runtime_takes(choice: str) -> None:
    cl.check_choice(choice)
    try:
        rt = cl.runtime(choice)
    except cl.OpenCLUnavailable as exc:  # no such device here: not a reading of the choice
        assert "unknown OpenCL device choice" not in str(exc)
        return
    assert rt is cl.runtime(choice.strip().lower())


def test_device_indices_are_read_as_numbers() -> None:
    # '0:00' passed the check and then was 'does not exist': the pick compared strings
    assert cl.runtime("0:00") is cl.runtime("0:0")
