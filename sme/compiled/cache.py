"""The on-disk cache of compiled simulations.

A network's generated module is a pure function of the network's content (process
source, types, initial values, structure) and of the generator's options, so the SHA-256
of the module source — together with the numba, Python and machine identity — is the
cache key. Each key gets a folder holding the module (``sim.py``) and numba's cache of its
machine code (``__pycache__``, written by numba with ``cache=True``).

Natively built: ``smeflow demo --prepare`` also builds the loaded simulations' functions
into an extension module ahead of time (``sme.native``, ``sme.native_build``); when one
matches the source and toolchain, ``load_module`` returns a module of its functions, and
numba compiles (or loads) ``sim.py`` only for a call the native module was not built for
— a process that simulates then never builds numba's compiler (≈ 50 MB).

Concurrency: the folder's lock file is held (``fcntl.flock``) while the module is written
and compiled, so two processes that start the same network at once compile it once; the
second waits and then loads the machine code from the cache. Files are written to a
temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import logging
import os
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ..atomic_file import write_text_atomic
from ..errors import BackendError
from ..native import NativeGroup, register, toolchain_identity
from ..progress import stage

ENV_VAR = "SMEFLOW_CACHE_DIR"

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$SMEFLOW_CACHE_DIR``, else ``$XDG_CACHE_HOME/smeflow``, else ``~/.cache/smeflow``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "smeflow"


def cache_key(source: str) -> str:
    """The key of a generated module: its source plus the toolchain that compiles it."""
    import numba

    h = hashlib.sha256()
    for part in (source, numba.__version__, sys.version, platform.machine(),
                 platform.processor()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


NATIVE_FUNCTIONS = ("run", "reset", "step")
"""The generated module's compiled functions (``step`` only where the module has one)."""


def load_module(source: str, cache_dir: str | os.PathLike[str] | None = None) -> ModuleType:
    """Import the generated module, compiling it (and filling the cache) if needed; or,
    when its natively built module matches, a module of that one's functions (see the
    module docstring).

    The same source in the same Python process is imported once.
    """
    key = cache_key(source)
    group = native_group(source, cache_dir)
    record = group.record()
    if record is not None and {"run", "reset"} <= set(record["functions"]):
        native = ModuleType(f"smeflow_sim_native_{key}", "natively built simulation functions")
        for fn in NATIVE_FUNCTIONS:
            if fn in record["functions"]:
                setattr(native, fn, group.functions[fn])
        return native
    module = _load_jit(source, key, cache_dir)
    for native_fn in group.functions.values():  # (what a native build exports)
        native_fn._jit = getattr(module, native_fn.name, None)
    return module


_GROUPS: dict[tuple[str, Path], NativeGroup] = {}


def native_group(source: str, cache_dir: str | os.PathLike[str] | None = None
                 ) -> NativeGroup:
    """The native group of a generated module: its functions, and where its natively built
    module is (made once per source and cache folder in a process)."""
    key = cache_key(source)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    found = _GROUPS.get((key, root))
    if found is not None:
        return found
    native_key = hashlib.sha256(f"{key}\0{toolchain_identity()}".encode()).hexdigest()[:32]
    group = register(NativeGroup(f"sim_{key}", lambda: native_key, root))
    for fn in NATIVE_FUNCTIONS:
        group.function(fn, functools.partial(_jit_function, source, key, cache_dir, fn))
    _GROUPS[key, root] = group
    return group


def _jit_function(source: str, key: str, cache_dir: str | os.PathLike[str] | None,
                  name: str) -> Any:
    return getattr(_load_jit(source, key, cache_dir), name)


def _load_jit(source: str, key: str, cache_dir: str | os.PathLike[str] | None) -> ModuleType:
    """Import ``sim.py`` through numba (see :func:`load_module`)."""
    name = f"smeflow_sim_{key}"
    found = sys.modules.get(name)
    if found is not None:
        return found
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = root / "compiled" / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackendError(f"cannot create the compiled-simulation cache folder {folder}: "
                           f"{exc}; choose another with cache_dir=... or ${ENV_VAR}") from None
    path = folder / "sim.py"
    with open(folder / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            # (as bytes: a cached file damaged into no UTF-8 is replaced, as any other)
            if not path.exists() or path.read_bytes() != source.encode("utf-8"):
                write_text_atomic(path, source)
            try:
                module = _import_compiling(name, path)
            except Exception as exc:
                if not _from_numba_cache(exc):
                    raise
                # numba's cache files cut short or damaged (a full disk, a bad disk): it
                # cannot load them, nor does it replace them, so every later start failed
                # the same way; they are a cache of this folder's sim.py: compile again
                log.warning("%s: numba's cache of this simulation is damaged (%s: %s); "
                            "compiling it again", folder / "__pycache__",
                            type(exc).__name__, exc)
                for cached in (folder / "__pycache__").glob("sim.*.nb[ic]"):
                    cached.unlink(missing_ok=True)
                module = _import_compiling(name, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return module


def _import_compiling(name: str, path: Path) -> ModuleType:
    """Import ``path`` as module ``name``: numba compiles it, or loads its cache."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # numba's SSA pass recurses once per basic block along a path: a network of
    # a few dozen branchy processes exceeds Python's default limit of 1000
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 100_000))
    try:
        with stage("compiling the simulation (numba; cached afterwards)"):
            spec.loader.exec_module(module)  # compiles, or loads numba's cache
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.setrecursionlimit(limit)
    return module


def _from_numba_cache(exc: BaseException) -> bool:
    """True when ``exc`` was raised while numba loaded its cache files."""
    tb = exc.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).parts[-3:] == ("numba", "core", "caching.py"):
            return True
        tb = tb.tb_next
    return False
