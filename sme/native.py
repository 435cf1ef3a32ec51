"""Numba functions run from machine code compiled ahead of time, without numba's compiler.

Why: calling any numba function — even one whose machine code numba finds in its cache
— first builds numba's typing and target contexts (≈ 700 modules) and maps LLVM: about
50–60 MB of memory in every process, before the function's own code (``smeflow demo``
peaked ≈ 60 MB higher with them). A function wrapped here (:func:`native_kernel`, or a
:class:`NativeGroup` of several) runs instead from an extension module that
``smeflow demo --prepare`` built from the same Python source through numba's own
pipeline (``numba.pycc``, :mod:`sme.native_build`): the very machine code numba's JIT
makes of it, for the argument types the program passed while it prepared.

How a call is served: the types of its arguments (numba's own ``typeof`` fingerprints:
dtype, dimensions, layout, read-only) are looked up among the types the module was built
for; a call of any other types goes to the numba function as before (the JIT path,
compiled or loaded from numba's cache then), so every call gets the same result either
way. The module is found by a key of everything its code depends on — the source files
of the function and of every numba function it reaches, the values of the globals they
read, numba's, numpy's and Python's versions, the CPU model and its instruction sets —
and loaded only when its record (``meta.json``: key, name, file digest, exported types)
matches; a stale, damaged or foreign module is refused (:attr:`NativeGroup.refused`
says why) and the JIT path runs.

What happens when ``numba.pycc`` goes away (numba marks it "pending deprecation"):
building fails with a message and every call takes the JIT path — the same results,
the memory of before.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import inspect
import json
import os
import platform
import sys
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "NativeFunction", "NativeGroup", "native_kernel", "native_root",
           "reachable_functions", "registered_groups", "toolchain_identity"]

FORMAT = 1
"""Version of the record (``meta.json``) a built module is described by."""

_MEMO_MAX = 64
"""Argument fingerprints remembered per function (each maps to its native entry)."""


def native_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the built modules: ``<cache>/native`` (``sme.compiled.cache``'s cache
    folder: ``$SMEFLOW_CACHE_DIR``, else ``~/.cache/smeflow``)."""
    from .compiled.cache import default_cache_dir

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "native"


@functools.cache
def toolchain_identity() -> str:
    """What machine code built here depends on besides the source: numba's, numpy's (its
    C interface) and Python's versions, the machine, the CPU model and its instruction
    sets (``/proc/cpuinfo``'s first ``model name`` and ``flags``)."""
    import numba

    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            seen: dict[str, str] = {}
            for line in f:
                name, _, value = line.partition(":")
                name = name.strip()
                if name in ("model name", "flags") and name not in seen:
                    seen[name] = value.strip()
                if len(seen) == 2:
                    break
            cpu = f"{seen.get('model name', '')}|{seen.get('flags', '')}"
    except OSError:
        cpu = platform.processor()
    return "\0".join((numba.__version__, np.__version__, sys.version, platform.machine(), cpu))


def _is_dispatcher(value: Any) -> bool:
    return hasattr(value, "py_func") and hasattr(value, "overloads")


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def reachable_functions(jit: Any) -> list[Any]:
    """The numba functions ``jit`` calls, directly or through others (itself first):
    followed through the globals and closure cells their Python code names."""
    seen: dict[int, Any] = {}
    todo = [jit]
    while todo:
        fn = todo.pop()
        if id(fn) in seen:
            continue
        seen[id(fn)] = fn
        for value in _referenced(fn.py_func):
            if _is_dispatcher(value):
                todo.append(value)
    return list(seen.values())


def _referenced(py: Any) -> Iterator[Any]:
    glb = py.__globals__
    for name in _names(py.__code__):
        if name in glb:
            yield glb[name]
    for cell in py.__closure__ or ():
        yield cell.cell_contents


def _value_digest(value: Any) -> bytes | None:
    """Bytes standing for a global's value as numba freezes it into the machine code
    (None for what numba does not freeze: modules, functions, classes)."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype.str}{value.shape}".encode() + value.tobytes()
    if isinstance(value, bool | int | float | complex | str | bytes | np.generic):
        return repr((type(value).__name__, value)).encode()
    if isinstance(value, tuple):
        parts = [_value_digest(v) for v in value]
        return b"(" + b",".join(p or b"?" for p in parts) + b")"
    return None


def kernel_source_key(jit: Any) -> str:
    """The key of ``jit``'s machine code: the source files of it and of every numba
    function it reaches, the values of the globals and closure cells their code reads,
    and :func:`toolchain_identity`."""
    h = hashlib.sha256(toolchain_identity().encode())
    files: set[str] = set()
    for fn in reachable_functions(jit):
        py = fn.py_func
        files.add(inspect.getsourcefile(py) or py.__code__.co_filename)
        h.update(f"{py.__module__}.{py.__qualname__}".encode())
        for value in _referenced(py):
            digest = _value_digest(value)
            if digest is not None:
                h.update(digest)
    for path in sorted(files):
        h.update(path.encode() + b"\0" + Path(path).read_bytes())
    return h.hexdigest()[:32]


@dataclass
class _Export:
    accepted: tuple[frozenset[bytes], ...]
    """Per argument, the fingerprints of the values the export takes (exactly its type)."""
    entry: Callable[..., Any]


class NativeFunction:
    """One function of a :class:`NativeGroup`: calls its module's export built for the
    call's argument types, else ``jit()`` (the numba function, looked up on first need)."""

    def __init__(self, group: NativeGroup, name: str, jit: Callable[[], Any]) -> None:
        self.group = group
        self.name = name
        self._jit_of = jit
        self._jit: Any = None
        self._memo: dict[tuple[bytes, ...], Callable[..., Any]] = {}
        self._exports: list[_Export] | None = None

    @property
    def jit(self) -> Any:
        """The numba function (the JIT path)."""
        if self._jit is None:
            self._jit = self._jit_of()
        return self._jit

    @property
    def exports(self) -> list[_Export]:
        """The native entries loaded for this function (none when the module is absent or
        refused)."""
        if self._exports is None:
            self._exports = self.group.exports_of(self.name)
        return self._exports

    def entry_for(self, args: tuple[Any, ...]) -> Callable[..., Any] | None:
        """The native entry built for exactly these arguments' types, or None."""
        try:
            key = tuple(map(_fingerprint, args))
        except Exception:  # (a value numba types otherwise: the JIT decides)
            return None
        return self._memo.get(key) or self._match(key)

    def _match(self, key: tuple[bytes, ...]) -> Callable[..., Any] | None:
        for export in self.exports:
            if len(export.accepted) == len(key) and all(
                    k in ok for k, ok in zip(key, export.accepted, strict=True)):
                if len(self._memo) < _MEMO_MAX:
                    self._memo[key] = export.entry
                return export.entry
        return None

    def __call__(self, *args: Any) -> Any:
        try:
            key = tuple(map(_fingerprint, args))
        except Exception:  # (a value numba types otherwise: the JIT decides)
            return self.jit(*args)
        entry = self._memo.get(key) or self._match(key)
        if entry is None:
            return self.jit(*args)
        return entry(*args)

    def bind(self, *args: Any) -> Callable[[], Any]:
        """A call of this function with these very arguments, their types matched once
        (a simulation's step on its own arrays runs every tick)."""
        entry = self.entry_for(args)
        if entry is not None:
            return functools.partial(entry, *args)
        jit = self.jit
        overloads = list(getattr(jit, "overloads", {}).values())
        call = overloads[0].entry_point if len(overloads) == 1 else jit
        return functools.partial(call, *args)


def _no_fingerprint(value: Any) -> bytes:
    raise TypeError("numba._dispatcher.compute_fingerprint is not available")


try:  # (numba's C function: its dispatcher keys its type cache on it)
    from numba._dispatcher import compute_fingerprint as _fingerprint
except ImportError:  # pragma: no cover - a numba without it: every call takes the JIT path
    _fingerprint = _no_fingerprint


@dataclass
class NativeGroup:
    """Functions built into one extension module, found by ``name`` and ``key()`` in the
    cache folder (see the module docstring)."""

    name: str
    """The group's name (a folder of the cache: letters, digits, ``_`` and ``.``)."""
    key: Callable[[], str]
    """The key of the group's code (computed on first need)."""
    cache_dir: str | os.PathLike[str] | None = None
    functions: dict[str, NativeFunction] = field(default_factory=dict)
    refused: str | None = None
    """Why a module found for this key was not loaded (None: loaded, or none there)."""
    _loaded: dict[str, list[_Export]] | None = None
    _record: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def function(self, name: str, jit: Callable[[], Any]) -> NativeFunction:
        """Add function ``name`` (``jit``: gives the numba function, on first need)."""
        fn = NativeFunction(self, name, jit)
        self.functions[name] = fn
        return fn

    def folder(self) -> Path:
        """Where the module of the current key is (or goes)."""
        return native_root(self.cache_dir) / self.name / self.key()

    def record(self) -> dict[str, Any] | None:
        """The loaded module's record (``meta.json``), or None."""
        self.exports_of("")
        return self._record

    def reload(self) -> None:
        """Look for the module again at the next call (after a build)."""
        with self._lock:
            self._loaded, self._record, self.refused = None, None, None
        for fn in self.functions.values():
            fn._exports = None
            fn._memo.clear()

    def exports_of(self, name: str) -> list[_Export]:
        """Function ``name``'s native entries (loading the module on first need)."""
        with self._lock:
            if self._loaded is None:
                self._loaded = self._load()
        return self._loaded.get(name, [])

    def _load(self) -> dict[str, list[_Export]]:
        folder = self.folder()
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            return {}
        try:
            meta, module = _open_module(folder, self.name, self.key())
        except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
            self.refused = f"{meta_path}: {exc}"
            return {}
        self._record = meta
        out: dict[str, list[_Export]] = {}
        for fn, exports in meta["functions"].items():
            out[fn] = [_Export(tuple(frozenset(bytes.fromhex(x) for x in arg)
                                     for arg in e["args"]), getattr(module, e["symbol"]))
                       for e in exports]
        return out


def _open_module(folder: Path, name: str, key: str) -> tuple[dict[str, Any], Any]:
    """The record in ``folder`` and its module, imported once checked against ``name``,
    ``key`` and the file's digest (ValueError naming what does not match)."""
    meta = json.loads((folder / "meta.json").read_text())
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"record format {meta.get('format') if isinstance(meta, dict) else meta!r}"
                         f", expected {FORMAT}")
    for what, want in (("name", name), ("key", key)):
        if meta.get(what) != want:
            raise ValueError(f"built for {what} {meta.get(what)!r}, not {want!r}")
    path = folder / meta["file"]
    if Path(meta["file"]).name != meta["file"]:
        raise ValueError(f"module file {meta['file']!r} is not in the folder")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != meta["sha256"]:
        raise ValueError(f"{path.name}: its SHA-256 is {digest[:16]}…, the record says "
                         f"{str(meta['sha256'])[:16]}… (damaged or replaced)")
    module_name = meta["module"]
    loaded = sys.modules.get(module_name)
    if loaded is None:
        loader = importlib.machinery.ExtensionFileLoader(module_name, str(path))
        spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
        if spec is None:
            raise ImportError(f"cannot import {path}")
        loaded = importlib.util.module_from_spec(spec)
        loader.exec_module(loaded)
        sys.modules[module_name] = loaded
    for exports in meta["functions"].values():
        for e in exports:
            if not callable(getattr(loaded, e["symbol"], None)):
                raise ValueError(f"{path.name} has no function {e['symbol']!r}")
    return meta, loaded


_REGISTRY: dict[str, NativeGroup] = {}
_REGISTRY_LOCK = threading.Lock()


def register(group: NativeGroup) -> NativeGroup:
    """Note ``group`` for :func:`sme.native_build.build_native` (the last of a name wins)."""
    with _REGISTRY_LOCK:
        _REGISTRY[group.name] = group
    return group


def registered_groups() -> list[NativeGroup]:
    """The groups made in this process (kernels on import, simulations when loaded)."""
    with _REGISTRY_LOCK:
        return list(_REGISTRY.values())


def native_kernel(jit: Any) -> NativeFunction:
    """``jit`` (a numba function, ``@njit``) served from its natively built module when
    one matches (see the module docstring); callers call the result instead of ``jit``."""
    py = jit.py_func
    name = f"{py.__module__}.{py.__qualname__}"
    group = register(NativeGroup(name, functools.cache(lambda: kernel_source_key(jit))))
    return group.function(py.__name__, lambda: jit)
