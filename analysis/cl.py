"""OpenCL plumbing: choose a device, build programs once, explain what is missing.

Device choice, in order: the ``device`` argument, the ``SMEFLOW_OPENCL_DEVICE``
environment variable, else a GPU when one is present, else a CPU device (PoCL, installed
with ``pyopencl[pocl]``). A choice is ``"gpu"``, ``"cpu"``, ``"any"``, or
``"PLATFORM:DEVICE"`` indices as listed by ``smeflow``'s ``describe_devices()`` (e.g.
``"0:0"``). Programs are built once per (context, source, options) and kept for the
process's lifetime; pyopencl also keeps compiled binaries on disk between processes.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Any

ENV_DEVICE = "SMEFLOW_OPENCL_DEVICE"
_PROBE = "__kernel void smeflow_probe(__global float *a) { a[get_global_id(0)] += 1.0f; }"


class OpenCLUnavailable(RuntimeError):
    """No usable OpenCL platform or device (with what to install or set)."""


@dataclass(frozen=True)
class Runtime:
    """A context and an in-order queue on one device."""

    context: Any
    queue: Any
    device: Any

    @property
    def name(self) -> str:
        """``"<platform> / <device>"``, for logs and benchmark output."""
        return f"{self.device.platform.name.strip()} / {self.device.name.strip()}"


Choice = str | tuple[int, int]
"""A parsed device choice: ``"gpu"``, ``"cpu"``, ``"any"``, or ``(platform, device)``."""

_LOCK = threading.Lock()
_RUNTIMES: dict[Choice, Runtime] = {}
_PROGRAMS: dict[tuple[int, str, tuple[str, ...]], Any] = {}


def _cl() -> Any:
    try:
        import pyopencl
    except ImportError as exc:  # pragma: no cover - pyopencl is a dependency
        raise OpenCLUnavailable(f"pyopencl is not installed ({exc}); run `make setup`") from None
    return pyopencl


def _platforms() -> list[Any]:
    cl = _cl()
    try:
        platforms: list[Any] = cl.get_platforms()
    except cl.Error as exc:
        raise OpenCLUnavailable(
            f"no OpenCL platform found ({exc}); install a GPU driver's ICD or PoCL "
            "(`pip install 'pyopencl[pocl]'`, done by `make setup`)") from None
    if not platforms:
        raise OpenCLUnavailable("no OpenCL platform found; install PoCL: "
                                "`pip install 'pyopencl[pocl]'` (done by `make setup`)")
    return platforms


def describe_devices() -> list[str]:
    """``"P:D  platform / device (type)"`` for every device, for error messages and docs."""
    cl = _cl()
    out = []
    for p, plat in enumerate(_platforms()):
        for d, dev in enumerate(plat.get_devices()):
            out.append(f"{p}:{d}  {plat.name.strip()} / {dev.name.strip()} "
                       f"({cl.device_type.to_string(dev.type)})")
    return out


def _builds(dev: Any) -> bool:
    """Whether ``dev`` compiles a trivial kernel. The PoCL inside the pyopencl wheel uses
    LLVM 14, which does not know recent CPUs ("unknown target CPU 'generic'"); Debian's PoCL
    (installed by the Makefile) does, so automatic choices skip devices that cannot build."""
    cl = _cl()
    try:
        cl.Program(cl.Context([dev]), _PROBE).build()
    except cl.Error:
        return False
    return True


def _parse(choice: str) -> Choice:
    """``choice`` (any case, surrounding blanks ignored) as :func:`_pick` takes it; anything
    else is :class:`OpenCLUnavailable` naming it. The one reading of a choice, so the early
    check (:func:`check_choice`) and the pick cannot disagree."""
    text = choice.strip().lower()
    if text in ("gpu", "cpu", "any"):
        return text
    indices = re.fullmatch(r"([0-9]+):([0-9]+)", text)
    if indices is None:
        raise _unknown(choice)
    return int(indices[1]), int(indices[2])


def _pick(choice: Choice) -> Any:
    cl = _cl()
    devices = [(p, d, dev) for p, plat in enumerate(_platforms())
               for d, dev in enumerate(plat.get_devices())]
    if not devices:
        raise OpenCLUnavailable("OpenCL platforms exist but expose no device")
    if isinstance(choice, tuple):
        for p, d, dev in devices:
            if (p, d) == choice:
                return dev
        raise OpenCLUnavailable(f"OpenCL device '{choice[0]}:{choice[1]}' does not exist; "
                                "devices:\n  " + "\n  ".join(describe_devices()))
    wanted = {"gpu": cl.device_type.GPU, "cpu": cl.device_type.CPU}
    kinds = [wanted[choice]] if choice in wanted else [cl.device_type.GPU, cl.device_type.ALL]
    for kind in kinds:
        for _, _, dev in devices:
            if dev.type & kind and _builds(dev):
                return dev
    raise OpenCLUnavailable(
        f"no OpenCL {'' if choice == 'any' else choice.upper() + ' '}device that can "
        "compile kernels; devices:\n  " + "\n  ".join(describe_devices())
        + "\n(on a CPU too new for the wheel's PoCL, install Debian's pocl-opencl-icd)")


def _unknown(choice: str) -> OpenCLUnavailable:
    return OpenCLUnavailable(f"unknown OpenCL device choice {choice!r} (from the argument or "
                             f"${ENV_DEVICE}); use gpu, cpu, any or PLATFORM:DEVICE")


def check_choice(device: str | None) -> None:
    """Refuse, before any OpenCL work, a ``device`` that :func:`runtime` would not take
    (:class:`OpenCLUnavailable` naming it); None (the environment's or the default) passes."""
    if device is not None:
        _parse(device)


def runtime(device: str | None = None) -> Runtime:
    """The shared runtime for ``device`` (see the module docstring for the choice)."""
    choice = _parse(device or os.environ.get(ENV_DEVICE) or "any")
    with _LOCK:
        rt = _RUNTIMES.get(choice)
        if rt is None:
            cl = _cl()
            dev = _pick(choice)
            ctx = cl.Context([dev])
            rt = _RUNTIMES[choice] = Runtime(ctx, cl.CommandQueue(ctx), dev)
        return rt


def build(rt: Runtime, source: str, options: tuple[str, ...] = ()) -> Any:
    """The program for ``source`` built on ``rt``'s context (built once, then reused).

    A build failure raises ``OpenCLUnavailable`` with the compiler's log."""
    key = (id(rt.context), source, options)
    with _LOCK:
        prog = _PROGRAMS.get(key)
        if prog is None:
            cl = _cl()
            try:
                prog = cl.Program(rt.context, source).build(options=list(options))
            except cl.Error as exc:
                raise OpenCLUnavailable(f"OpenCL build failed on {rt.name}: {exc}") from None
            _PROGRAMS[key] = prog
        return prog
