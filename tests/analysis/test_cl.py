"""The OpenCL platform a process loads: only Debian's PoCL where it is installed (the
Makefile requires it and removes the pyopencl wheel's PoCL, which every OpenCL process
would otherwise load — 21 MB resident — and never choose on a recent CPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
