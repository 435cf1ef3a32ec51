"""A compiled session passes a repeated kind of stimulus (an input's dtype and per-tick
shape already checked once, in the dtype the loop takes) to the loop without checking it
again (``sme.compiled.batch_io.AsIsStimulus``): the results stay the interpreter's, and any
stimulus that differs — another dtype or shape, too few ticks, a masked or non-contiguous
array, a Bool given as numbers — is checked as before, with the same error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import sme.compiled.session as session_module
from sme import Array, Bool, Bus, In, Network, Out, Process, Simulator, UInt
from sme.errors import BackendError, SignalValueError

LANES = 4


class Link(Bus):
    valid: Bool = False
    word: Array[UInt[12], LANES] = [0] * LANES
    gap: UInt[8] = 0


class Sums(Bus):
    total: UInt[16] = 0
    late: Bool = False


class Sum(Process):
    inp: In[Link]
    out: Out[Sums]

    def on_tick(self) -> None:
        total: UInt[16] = 0
        for j in range(LANES):
            total = total + self.inp.word[j]
        self.out.total = total if self.inp.valid else 0
        self.out.late = self.inp.gap > 100


def _net() -> Network:
    return Network("as_is", [Sum(inp=Link("l"), out=Sums("s"))])


def _stimulus(ticks: int, seed: int) -> dict[str, np.ndarray]:
    """The kind a board sends every time: bools, uint32 words (the loop's dtype for
    narrow array words), int64 scalars."""
    rng = np.random.default_rng(seed)
    return {"l.valid": rng.random(ticks) < 0.7,
            "l.word": rng.integers(0, 4096, (ticks, LANES)).astype(np.uint32),
            "l.gap": rng.integers(0, 256, ticks)}


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the full stimulus checks of compiled sessions' batch runs."""
    calls: list[int] = []
    real = session_module.check_batch_stimulus

    def counted(*args: Any) -> None:
        calls.append(1)
        real(*args)

    monkeypatch.setattr(session_module, "check_batch_stimulus", counted)
    return calls


def _warm() -> Simulator:
    sim = Simulator(_net(), backend="compiled")
    sim.run_batch(_stimulus(50, 0), 50)
    return sim


def test_a_repeated_kind_skips_the_checks_and_gives_the_interpreters_results(
        checks: list[int]) -> None:
    comp, ref = Simulator(_net(), backend="compiled"), Simulator(_net(), backend="interp")
    held = []
    for seed, ticks in [(0, 50), (1, 50), (2, 37), (3, 80)]:
        stim = _stimulus(80, seed)  # (longer than ticks: the first ticks are run)
        got, want = comp.run_batch(stim, ticks), ref.run_batch(stim, ticks)
        for name in want:
            assert got[name].dtype == want[name].dtype and np.array_equal(got[name], want[name])
        assert got["s.late"].flags.c_contiguous  # (a Bool's row of the loop's output)
        held.append((got, {name: values.copy() for name, values in want.items()}))
    for got, want in held:  # results held are not written over by later runs
        assert all(np.array_equal(got[name], want[name]) for name in want)
    assert len(checks) == 1  # the first run only: the others were of the same kind
    assert comp.tick == ref.tick == 50 + 50 + 37 + 80


def _changed(kind: str) -> tuple[dict[str, Any], type[Exception], str]:
    stim: dict[str, Any] = _stimulus(50, 5)
    if kind == "float":
        stim["l.word"] = stim["l.word"].astype(np.float64) + 0.5
        return stim, BackendError, "not a whole number"
    if kind == "shape":
        stim["l.word"] = np.zeros((50, LANES + 1), np.uint32)
        return stim, BackendError, r"shape \(50, 5\)"
    if kind == "short":
        stim["l.gap"] = stim["l.gap"][:49]
        return stim, BackendError, "has 49 values, need 50"
    if kind == "masked":
        stim["l.gap"] = np.ma.masked_array(stim["l.gap"], mask=np.arange(50) == 7)
        return stim, BackendError, "masked at tick 7"
    if kind == "bool_as_number":
        valid = stim["l.valid"].astype(np.int64)
        valid[9] = 2
        stim["l.valid"] = valid
        return stim, SignalValueError, "cannot store 2 \\(2 is not a Bool\\)"
    if kind == "scalar":
        stim["l.gap"] = np.int64(3)
        return stim, BackendError, "no tick axis"
    if kind == "unknown":
        stim["l.other"] = stim.pop("l.gap")
        return stim, BackendError, "'l.other' is not a top-level input"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["float", "shape", "short", "masked", "bool_as_number",
                                  "scalar", "unknown"])
def test_a_changed_stimulus_is_checked_again(kind: str, checks: list[int]) -> None:
    sim = _warm()
    stim, error, message = _changed(kind)
    with pytest.raises(error, match=message):
        sim.run_batch(stim, 50)
    assert len(checks) >= 2  # (a Bool's 2 runs the ticks before it, checked, first)
    with pytest.raises(error, match=message):  # (and is never remembered as passing)
        Simulator(_net(), backend="compiled").run_batch(stim, 50)


def test_a_value_out_of_range_is_still_refused_by_the_loop() -> None:
    sim = _warm()
    stim = _stimulus(50, 6)
    stim["l.word"][12, 2] = 4096  # (a uint32 holds it; UInt[12] does not)
    with pytest.raises(SignalValueError, match="4096"):
        sim.run_batch(stim, 50)


def test_non_contiguous_and_other_dtypes_take_the_checked_path(checks: list[int]) -> None:
    sim, ref = _warm(), Simulator(_net(), backend="interp")
    ref.run_batch(_stimulus(50, 0), 50)
    stim = _stimulus(50, 7)
    odd = dict(stim, **{"l.word": np.asfortranarray(stim["l.word"])})
    wide = dict(stim, **{"l.word": stim["l.word"].astype(np.int64)})
    for given in (odd, wide, stim):
        got, want = sim.run_batch(given, 50), ref.run_batch(stim, 50)
        assert all(np.array_equal(got[n], want[n]) for n in want)
    # the Fortran-ordered and int64 words were checked; then the seen kind was not
    assert len(checks) == 1 + 2


def _readonly(ticks: int, seed: int, folder: Path) -> dict[str, np.ndarray]:
    stim = _stimulus(ticks, seed)
    for arr in stim.values():
        arr.setflags(write=False)
    return stim


def _from_bytes(ticks: int, seed: int, folder: Path) -> dict[str, np.ndarray]:
    """Each array as ``np.frombuffer`` makes it of bytes received (read-only), the gap
    column at an odd offset (unaligned)."""
    stim = _stimulus(ticks, seed)
    out = {k: np.frombuffer(v.tobytes(), v.dtype).reshape(v.shape) for k, v in stim.items()}
    gap = stim["l.gap"]
    out["l.gap"] = np.frombuffer(b"\0" + gap.tobytes(), gap.dtype, count=len(gap), offset=1)
    assert not out["l.gap"].flags.aligned
    return out


def _memory_mapped(ticks: int, seed: int, folder: Path) -> dict[str, np.ndarray]:
    """Each array saved with ``np.save`` and loaded ``mmap_mode="r"`` (read-only)."""
    out = {}
    for name, arr in _stimulus(ticks, seed).items():
        np.save(folder / f"{name}.npy", arr)
        out[name] = np.load(folder / f"{name}.npy", mmap_mode="r")
    return out


@pytest.mark.parametrize("make", [_readonly, _from_bytes, _memory_mapped])
@pytest.mark.parametrize("warm", [False, True])
def test_read_only_and_unaligned_stimulus_give_the_interpreters_results(
        make: Callable[[int, int, Path], dict[str, np.ndarray]], warm: bool,
        tmp_path: Path) -> None:
    """Review E3: the interpreter takes read-only and unaligned arrays (a file mapped
    read-only, bytes received); the compiled loop failed with numba's "No matching
    definition ... readonly array", on the checked path and, once the kind was seen
    (``warm``), on the as-is path. They are now copied once for the loop."""
    stim = make(40, 3, tmp_path)
    want = Simulator(_net(), backend="interp").run_batch(stim, 40)
    sim = Simulator(_net(), backend="compiled")
    if warm:  # the as-is path knows the dtypes and shapes
        sim.run_batch(_stimulus(40, 9), 40)
    got = sim.run_batch(stim, 40)
    for name in want:
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(got[name], want[name])
    assert not stim["l.word"].flags.writeable  # (the caller's arrays untouched)
