"""Numba functions served from natively built modules (``sme.native``,
``sme.native_build``): the same results as numba's JIT for the types built, the JIT for
every other call, a stale, damaged or foreign module never loaded, the GIL released."""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sme.native import NativeFunction, NativeGroup, kernel_source_key, reachable_functions
from sme.native_build import build_native, signatures_to_build

from . import _native_kernels as k

KERNELS = (k.scale_into, k.squares, k.corner_sum, k.checked, k.spin)


def _group(cache_dir: Path, key: str | None = None, name: str = "tests.native") -> NativeGroup:
    """A group of every kernel above, keyed by their source (or ``key``)."""
    source_key = functools.cache(lambda: "-".join(kernel_source_key(j) for j in KERNELS)[:32])
    group = NativeGroup(name, (lambda: key) if key is not None else source_key, cache_dir)
    for jit in KERNELS:
        group.function(jit.py_func.__name__, functools.partial(lambda j: j, jit))
    return group


def _frozen(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def _calls() -> list[tuple[str, tuple[Any, ...]]]:
    """The calls the module is built for (the types a program passed while preparing)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=1000)
    return [("scale_into", (x, 1.5, np.empty(1000))),
            ("scale_into", (_frozen(x), -2.0, np.empty(1000))),  # read-only input
            ("squares", (100,)),
            ("corner_sum", (rng.integers(0, 9, (5, 7)),)),
            ("checked", (21,)),
            ("spin", (10,))]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder with the kernels' module built for ``_calls``."""
    cache = tmp_path_factory.mktemp("native-cache")
    group = _group(cache)
    for name, args in _calls():
        group.functions[name](*args)  # no module yet: the JIT, which notes the types
    (result,) = build_native([group])
    assert result.error is None and result.built and result.exports == len(_calls())
    return cache


def _copy_out(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.copy() if isinstance(a, np.ndarray) and a.flags.writeable else a
                 for a in args)


def test_native_results_are_the_jits(built: Path) -> None:
    group = _group(built)
    assert group.record() is not None and group.refused is None
    for name, args in _calls():
        fn = group.functions[name]
        assert fn.entry_for(args) is not None, name
        mine, theirs = _copy_out(args), _copy_out(args)
        got, want = fn(*mine), fn.jit(*theirs)
        assert type(got) is type(want) and np.array_equal(got, want), name
        for a, b in zip(mine, theirs, strict=True):  # arrays written alike
            if isinstance(a, np.ndarray):
                assert np.array_equal(a, b), name
    x = np.array([1.0, -1.0, 0.0])
    out = np.empty(3)
    assert group.functions["scale_into"](x, 1.0, out) == 1  # numpy's error model: -1/0
    assert out.tolist() == [1.25, -np.inf, 0.25]


def test_every_other_type_takes_the_jit(built: Path) -> None:
    group = _group(built)
    scale = group.functions["scale_into"]
    x = np.linspace(-1, 1, 9)
    others = [(x.astype(np.float32), 1.5, np.empty(9)),  # another dtype
              (x[::2], 1.5, np.empty(5)),  # not contiguous
              (x, 3, np.empty(9)),  # an int where a float was built
              (x, np.float32(1.5), np.empty(9))]
    for args in others:
        assert scale.entry_for(args) is None
        mine, theirs = _copy_out(args), _copy_out(args)
        assert scale(*mine) == scale.jit(*theirs)
        assert np.array_equal(mine[2], theirs[2])
    corner = group.functions["corner_sum"]
    flat = np.arange(6)
    assert corner.entry_for((flat,)) is None  # a 1-D array into a 2-D function: numba's
    with pytest.raises(Exception) as native_error:  # own error, not a wrong read
        corner(flat)
    with pytest.raises(Exception) as jit_error:
        corner.jit(flat)
    assert type(native_error.value) is type(jit_error.value)
    fortran = np.asfortranarray(np.arange(12).reshape(3, 4))
    assert corner.entry_for((fortran,)) is None and corner(fortran) == corner.jit(fortran)
    checked = group.functions["checked"]
    assert checked.entry_for((2.5,)) is None  # (the export would truncate a float to 2)
    assert checked(2.5) == checked.jit(2.5) == 5.0


def test_errors_are_the_jits(built: Path) -> None:
    checked = _group(built).functions["checked"]
    assert checked.entry_for((-1,)) is not None
    with pytest.raises(ValueError, match="checked: x must be >= 0"):
        checked(-1)
    with pytest.raises(OverflowError):  # beyond int64: an error, never a wrapped value
        checked(2**63)


def test_native_calls_release_the_gil(built: Path) -> None:
    """The main thread runs Python while another thread is inside a native call (pycc's
    wrappers would hold the GIL without the build's ``release_gil``)."""
    spin = _group(built).functions["spin"]
    assert spin.entry_for((10,)) is not None
    done = threading.Event()
    result: list[int] = []

    def call() -> None:
        result.append(spin(400_000_000))
        done.set()

    worker = threading.Thread(target=call)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        worker.start()
        steps = 0
        while not done.is_set():
            steps += 1
        worker.join()
    finally:
        sys.setswitchinterval(switch)
    assert result == [spin.jit(400_000_000)]
    assert steps > 10_000, f"the main thread ran only {steps} steps during the native call"


def _module_file(folder: Path) -> Path:
    record = json.loads((folder / "meta.json").read_text())
    return folder / record["file"]


def test_damaged_module_is_refused_then_rebuilt(built: Path, tmp_path: Path) -> None:
    shutil.copytree(built, tmp_path / "cache")
    group = _group(tmp_path / "cache")
    path = _module_file(group.folder())
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    x = np.arange(4.0)
    out = np.empty(4)
    scale = group.functions["scale_into"]
    assert scale(x, 2.0, out) == 0 and out.tolist() == [0.25, 2.25, 4.25, 6.25]  # (JIT)
    assert scale.exports == [] and group.refused is not None
    assert "SHA-256" in group.refused and "damaged or replaced" in group.refused
    assert signatures_to_build(group) is not None  # what the JIT ran goes in again
    (result,) = build_native([group])
    assert result.built and result.error is None
    assert group.refused is None and scale.entry_for((x, 2.0, out)) is not None
    assert scale(x, 2.0, out) == 0 and out.tolist() == [0.25, 2.25, 4.25, 6.25]


def test_stale_and_foreign_modules_are_not_loaded(built: Path, tmp_path: Path) -> None:
    stale = _group(built, key="0" * 32)  # the source changed: its key has no module
    assert stale.record() is None and stale.refused is None
    assert stale.functions["squares"].entry_for((3,)) is None
    # a module of another key (or group) put in this key's folder: refused, never run
    good = _group(built)
    foreign = _group(tmp_path, key="f" * 32)
    shutil.copytree(good.folder(), foreign.folder())
    assert foreign.record() is None and foreign.refused is not None
    assert "built for key" in foreign.refused
    renamed = _group(tmp_path / "other", name="tests.other")
    shutil.copytree(good.folder(), renamed.folder())
    assert renamed.record() is None and "built for name" in (renamed.refused or "")
    assert renamed.functions["squares"](3).tolist() == [0.0, 1.0, 4.0]  # the JIT's


@pytest.mark.parametrize("damage", ["{not json", '{"format": 99}', "[]"])
def test_unreadable_record_is_refused(built: Path, tmp_path: Path, damage: str) -> None:
    shutil.copytree(built, tmp_path / "cache")
    group = _group(tmp_path / "cache")
    (group.folder() / "meta.json").write_text(damage)
    assert group.record() is None and group.refused is not None
    assert group.functions["checked"](4) == 8


def test_key_follows_source_and_frozen_globals(tmp_path: Path) -> None:
    """Editing the function, a function it calls, or a global it reads gives a new key."""
    template = ("from numba import njit\nC = {c}\n\n@njit\ndef inner(v):\n    return v + C\n\n"
                "@njit\ndef outer(v):\n    return inner(v) * {m}\n")

    def key(c: int, m: int, n: int) -> str:
        path = tmp_path / f"kmod{n}.py"
        path.write_text(template.format(c=c, m=m))
        spec = importlib.util.spec_from_file_location(f"kmod{n}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert [f.py_func.__name__ for f in reachable_functions(module.outer)] == \
            ["outer", "inner"]
        return kernel_source_key(module.outer)

    assert key(1, 2, 0) == key(1, 2, 0)
    assert len({key(1, 2, 0), key(3, 2, 0), key(1, 5, 0)}) == 3


def test_native_kernel_registers_the_demo_kernels() -> None:
    """The sensor and sample models' compiled passes are served through ``sme.native``."""
    import devices.counting
    import devices.normal_table
    import devices.phantom
    from sme.native import registered_groups

    for fn, jit in ((devices.counting._draw_pass, devices.counting.draw_pass),
                    (devices.counting._sorted_below_native, devices.counting._sorted_below),
                    (devices.normal_table._quantile_table_native,
                     devices.normal_table._quantile_table),
                    (devices.phantom._transmit_native, devices.phantom._transmit)):
        assert isinstance(fn, NativeFunction) and fn.jit is jit
        assert fn.group in registered_groups()
