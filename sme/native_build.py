"""Build the extension modules :mod:`sme.native` loads: numba's ahead-of-time compiler
(``numba.pycc``) over the same Python source the JIT compiles.

Each exported entry is a one-line forwarder to the numba function itself, compiled by
pycc for one signature the program called it with (the JIT's compiled signatures in this
process, plus those the group's module already had): the function's body is compiled
by its own numba dispatcher, with its own options (``error_model``, ``nogil``, …), and
linked into the module — the machine code the JIT runs, for this CPU (``host``). pycc
makes its Python wrappers with default compiler flags, which hold the GIL during the call;
the build turns on ``release_gil`` for them (``nogil=True`` of the JIT's wrappers), so
threads that run native code in parallel keep doing so.

A build writes into a temporary folder next to the module's, moves the finished file in
and then writes its record (``meta.json``) atomically, all under the folder's lock: a
reader sees the old module or the new one, never a part. Needs a C compiler (``gcc``) and
Python's headers: without them the build fails with the compiler's message, and every
call keeps taking the JIT path.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import importlib
import inspect
import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic_file import write_text_atomic
from .native import FORMAT, NativeGroup, registered_groups

__all__ = ["BuildResult", "build_group", "build_native", "signatures_to_build"]


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_native` did for one group."""

    name: str
    built: bool
    """Whether a module was built (False: the existing one covers every signature, or
    the build failed: ``error``)."""
    exports: int
    """Signatures the group's module has now."""
    error: str | None = None


def _recorded_signatures(group: NativeGroup) -> dict[str, list[Any]]:
    record = group.record()
    if record is None:
        return {}
    return {fn: [pickle.loads(base64.b64decode(e["types"])) for e in exports]
            for fn, exports in record["functions"].items()}


def signatures_to_build(group: NativeGroup) -> dict[str, list[Any]] | None:
    """Per function, the signatures (numba's) its module should export: those it has and
    those the JIT compiled in this process; None when the module has them all already."""
    have = _recorded_signatures(group)
    want = {fn: list(sigs) for fn, sigs in have.items()}
    new = False
    for name, fn in group.functions.items():
        jit = fn._jit
        if jit is None:  # never called through the JIT here
            continue
        for cres in jit.overloads.values():
            sig = (cres.signature.return_type, tuple(cres.signature.args))
            if sig not in want.setdefault(name, []) and _accepted(sig[1]) is not None:
                want[name].append(sig)
                new = True
    return want if new else None


def _numba(module: str) -> Any:
    """A module of numba's (imported when building, never when loading); ``numba.pycc``
    warns that it is pending deprecation: the module docstring of ``sme.native`` says
    what happens when it goes."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pycc.*", category=Warning)
        return importlib.import_module(module)


def _samples(ty: Any) -> list[Any]:
    """Values whose numba type is exactly ``ty`` (for the fingerprints a call is matched
    by); none for a type the export does not take from Python."""
    types = _numba("numba.core.types")
    numpy_support = _numba("numba.np.numpy_support")
    if isinstance(ty, types.Array):
        if ty.ndim == 0:
            return []
        dt = numpy_support.as_dtype(ty.dtype)
        if ty.layout == "A":
            a = np.zeros((4,) * ty.ndim, dt)[(slice(None, None, 2),) * ty.ndim]
        else:
            a = np.zeros((2,) * ty.ndim, dt, order=ty.layout)
        if not ty.mutable:
            a.flags.writeable = False
        return [a]
    if isinstance(ty, types.Boolean):
        return [True, np.bool_(True)]
    if isinstance(ty, types.Integer | types.Float):
        values: list[Any] = [np.dtype(ty.name).type(0)]
        return values + ([1] if ty == types.int64 else [1.0] if ty == types.float64 else [])
    return []


def _accepted(args: tuple[Any, ...]) -> list[list[str]] | None:
    """Per argument, the fingerprints (hex) of the values of exactly its type; None when
    an argument has a type an export cannot be matched by."""
    typeof = _numba("numba").typeof
    compute_fingerprint = _numba("numba._dispatcher").compute_fingerprint
    out = []
    for ty in args:
        fps = sorted({compute_fingerprint(v).hex() for v in _samples(ty)
                      if typeof(v) == ty})
        if not fps:
            return None
        out.append(fps)
    return out


def _forwarder(jit: Any) -> Any:
    """A function that calls ``jit`` with its own arguments (what pycc compiles: the
    numba function is then compiled by its own dispatcher, with its own options)."""
    params = list(inspect.signature(jit.py_func).parameters)
    for p in inspect.signature(jit.py_func).parameters.values():
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or p.default is not p.empty:
            raise ValueError(f"{jit.py_func.__qualname__}: parameter {p.name} is not a plain "
                             "positional one (not exported)")
    namespace: dict[str, Any] = {"target": jit}
    args = ", ".join(params)
    exec(f"def forward({args}):\n    return target({args})\n", namespace)
    return namespace["forward"]


@contextmanager
def _wrappers_release_gil() -> Iterator[None]:
    """pycc's Python wrappers release the GIL during the call (see the module docstring):
    its compiler takes its flags from ``numba.pycc.compiler.Flags``."""
    pycc_compiler = _numba("numba.pycc.compiler")
    base = pycc_compiler.Flags

    class _Flags(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.release_gil = True

    pycc_compiler.Flags = _Flags
    try:
        yield
    finally:
        pycc_compiler.Flags = base


@contextmanager
def _temporary_files_in(folder: str) -> Iterator[None]:
    """pycc's temporary files go to ``folder`` (removed with it): its check of the C
    compiler leaves two folders behind (numba 0.68, ``pycc.platform._gentmpfile``)."""
    before = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        yield
    finally:
        tempfile.tempdir = before


def build_group(group: NativeGroup, signatures: dict[str, list[Any]]) -> Path:
    """Build ``group``'s module for ``signatures`` (per function: ``(return type, argument
    types)``) into its folder; returns the module's path."""
    CC = _numba("numba.pycc").CC
    folder = group.folder()
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(f"{group.name}\0{group.key()}".encode())
    for fn in sorted(signatures):
        for sig in signatures[fn]:
            digest.update(f"{fn}{sig}".encode())
    module_name = f"smeflow_native_{digest.hexdigest()[:20]}"
    functions: dict[str, list[dict[str, Any]]] = {}
    with open(folder / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with tempfile.TemporaryDirectory(prefix=".build-", dir=folder) as tmp, \
                    _temporary_files_in(tmp):
                cc = CC(module_name)
                cc.output_dir = tmp
                cc.target_cpu = "host"
                for fn in sorted(signatures):
                    jit = group.functions[fn].jit
                    for i, (ret, args) in enumerate(signatures[fn]):
                        accepted = _accepted(args)
                        assert accepted is not None  # (signatures_to_build kept only such)
                        symbol = f"{fn}__{i}"
                        cc.export(symbol, ret(*args))(_forwarder(jit))
                        functions.setdefault(fn, []).append({
                            "symbol": symbol, "args": accepted,
                            "signature": f"{ret}({', '.join(map(str, args))})",
                            "types": base64.b64encode(pickle.dumps((ret, args))).decode()})
                with _wrappers_release_gil():
                    cc.compile()
                built = Path(tmp) / cc.output_file
                target: Path = folder / str(cc.output_file)
                os.replace(built, target)
            meta = {"format": FORMAT, "name": group.name, "key": group.key(),
                    "module": module_name, "file": target.name,
                    "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                    "functions": functions}
            write_text_atomic(folder / "meta.json", json.dumps(meta, indent=1) + "\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def build_native(groups: list[NativeGroup] | None = None) -> list[BuildResult]:
    """Build the module of every group (default: every one made in this process) whose
    functions the JIT compiled for signatures its module lacks. A failed build (no
    compiler, no ``numba.pycc``) is reported in its result; the JIT path stays."""
    results = []
    for group in registered_groups() if groups is None else groups:
        try:
            want = signatures_to_build(group)
            if want is None:
                have = sum(len(v) for v in _recorded_signatures(group).values())
                results.append(BuildResult(group.name, False, have))
                continue
            build_group(group, want)
        except Exception as exc:  # (a compiler error, pycc gone): the JIT path stays
            results.append(BuildResult(group.name, False, 0,
                                       f"{type(exc).__name__}: {exc}".strip()))
            continue
        group.reload()
        results.append(BuildResult(group.name, True, sum(len(v) for v in want.values())))
    return results
