"""The sensor and sample models' compiled passes from a natively built module
(``sme.native``) give the counts and images numba's JIT gives, for the argument types
they were built for and — through the JIT — for every other."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import devices.counting as counting
import devices.normal_table as normal_table
import devices.phantom as phantom
from devices.counting import CounterWords, KeptTerms, draw_counts
from devices.samples import Pose
from sme.native import NativeGroup, kernel_source_key
from sme.native_build import build_native

JITS = {"draw_pass": counting.draw_pass, "_sorted_below": counting._sorted_below,
        "_quantile_table": normal_table._quantile_table, "_transmit": phantom._transmit}
"""The numba functions, and where their callers find the native wrappers."""
WRAPPERS = {"draw_pass": (counting, "_draw_pass"),
            "_sorted_below": (counting, "_sorted_below_native"),
            "_quantile_table": (normal_table, "_quantile_table_native"),
            "_transmit": (phantom, "_transmit_native")}
N = 4096


def _group(cache: Path) -> NativeGroup:
    key = functools.cache(lambda: "".join(kernel_source_key(j) for j in JITS.values())[:32])
    group = NativeGroup("tests.devices.kernels", key, cache)
    for name, jit in JITS.items():
        group.function(name, functools.partial(lambda j: j, jit))
    return group


def _use(mp: pytest.MonkeyPatch, group: NativeGroup | None) -> None:
    """Callers call ``group``'s functions (None: the numba functions themselves)."""
    for name, (module, attr) in WRAPPERS.items():
        mp.setattr(module, attr, JITS[name] if group is None else group.functions[name])
    mp.setattr(normal_table, "_TABLE", None)


def _frames() -> Iterator[np.ndarray]:
    """Counts of the kinds of frame the demo draws: dim, bright, a ring pattern (with
    terms kept, then read back), hot and dead pixels as masks and as indices."""
    rng = np.random.default_rng(3)
    dim = rng.uniform(0, 2, N)
    bright = rng.uniform(50, 5000, N)
    rings = np.where(rng.random(N) < 0.1, rng.uniform(3, 40, N), rng.uniform(0, 0.5, N))
    hot = np.zeros(N, bool)
    hot[[5, 900, 4000]] = True
    dead = np.flatnonzero(rng.random(N) < 0.01)
    frozen = rings.copy()
    frozen.flags.writeable = False  # (the scene's cached images are read-only)
    kept = KeptTerms(N)
    for flux, eff, h, d, kw in ((dim, 0.9, hot, dead, {}), (bright, rng.uniform(0.8, 1, N),
                                np.flatnonzero(hot), np.zeros(N, bool), {}),
                                (frozen, 1.0, hot, dead, {"kept": kept}),
                                (frozen, 1.0, hot, dead, {"kept": kept, "kept_ready": True})):
        for frame in range(2):
            out = np.empty(N, np.uint32)
            assert draw_counts(flux, eff, h, d, 0.05, 100.0, 1e7, 2**20 - 1,
                               CounterWords(11, frame), out, scale=2.0, **kw) == -1
            yield out


def _projections() -> Iterator[np.ndarray]:
    sample = phantom.shepp_logan_3d(radius=0.8)
    incident = np.random.default_rng(5).uniform(1e4, 2e4, (40, 48))
    for angle in (0.0, 33.0, 90.0):
        yield sample.transmit(Pose(0.05, -0.02, angle), incident, 0.04)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache folder with the kernels built natively for the demo's argument types."""
    cache = tmp_path_factory.mktemp("native-devices")
    group = _group(cache)
    mp = pytest.MonkeyPatch()
    _use(mp, group)
    list(_frames())  # no module yet: the JIT, which notes the types
    list(_projections())
    mp.undo()
    (result,) = build_native([group])
    assert result.error is None and result.built
    yield cache


def _outputs(mp: pytest.MonkeyPatch, group: NativeGroup | None) -> list[np.ndarray]:
    _use(mp, group)
    return [*_frames(), *_projections()]


def test_native_counts_and_projections_are_the_jits(built: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    group = _group(built)
    assert group.record() is not None and group.refused is None
    native = _outputs(monkeypatch, group)
    assert all(fn.exports for fn in group.functions.values())
    assert len(group.functions["draw_pass"]._memo) == 2  # (hot, dead: mask or indices)
    jit = _outputs(monkeypatch, None)
    assert len(native) == len(jit) == 11
    for a, b in zip(native, jit, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert int(native[2].sum()) > 0 and native[8].min() < native[8].max()


def test_other_argument_types_take_the_jit(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call of types the module was not built for (float32 flux, int64 counts) goes to
    the JIT (the native entry would misread it) and gets its counts; the built types do
    not."""
    group = _group(built)
    draw = group.functions["draw_pass"]
    jit_calls: list[int] = []

    def jit(*a: Any) -> Any:
        jit_calls.append(1)
        return counting.draw_pass(*a)

    draw._jit = jit
    _use(monkeypatch, group)
    rng = np.random.default_rng(1)
    args: dict[str, Any] = dict(hot=np.zeros(N, bool), dead=np.array([7]), exposure=0.1,
                                hot_rate=0.0, cap=1e7, top=2**20 - 1, words=CounterWords(2, 0))
    built_kind = np.empty(N, np.uint32)
    draw_counts(rng.uniform(0, 30, N), 1.0, out=built_kind, **args)
    assert jit_calls == []
    flux = rng.uniform(0, 30, N).astype(np.float32)
    out = np.empty(N, np.int64)
    draw_counts(flux, 1.0, out=out, **args)
    assert jit_calls == [1]
    _use(monkeypatch, None)
    want = np.empty(N, np.int64)
    draw_counts(flux, 1.0, out=want, **args)
    assert np.array_equal(out, want)
