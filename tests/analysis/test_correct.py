"""Dark/flat and dark/gain corrections on OpenCL (PoCL) against their numpy references."""

from __future__ import annotations

import numpy as np
import pyopencl.array as cla
import pytest

from analysis import cl
from analysis.correct import (
    DarkGain,
    FlatField,
    dark_gain,
    dark_gain_reference,
    flat_field,
    flat_field_reference,
)
from analysis.devarray import ArrayArgumentError

SHAPE = (37, 53)  # not a multiple of the work-group size


@pytest.fixture(scope="module")
def rt() -> cl.Runtime:
    return cl.runtime()  # fails (does not skip) without OpenCL


@pytest.fixture
def frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    dark = rng.integers(90, 110, SHAPE, dtype=np.uint16)
    flat = rng.integers(5000, 6000, SHAPE, dtype=np.uint16)
    flat[3, 4] = dark[3, 4]           # dead: flat == dark
    flat[5, 6] = dark[5, 6] - 10      # dead: flat < dark
    raw = rng.integers(0, 65536, (4, *SHAPE), dtype=np.uint16)
    mask = rng.random(SHAPE) < 0.05
    return {"dark": dark, "flat": flat, "raw": raw, "mask": mask}


def same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == np.float32 and a.shape == b.shape
    np.testing.assert_array_equal(a, b)  # NaN == NaN for assert_array_equal


def test_flat_field_stack_equals_reference(rt: cl.Runtime, frames: dict[str, np.ndarray]) -> None:
    f = frames
    got = flat_field(f["raw"], f["dark"], f["flat"], mask=f["mask"])
    same(got, flat_field_reference(f["raw"], f["dark"], f["flat"], f["mask"]))
    assert np.isnan(got[:, 3, 4]).all() and np.isnan(got[:, 5, 6]).all()
    assert np.isnan(got[:, f["mask"]]).all()
    assert np.isfinite(got[:, ~f["mask"] & (f["flat"] > f["dark"])]).all()


def test_flat_field_single_frame_fill_and_float_references(rt: cl.Runtime,
                                                           frames: dict[str, np.ndarray]) -> None:
    f = frames
    dark = f["dark"].astype(np.float32) + 0.25
    flat = f["flat"].astype(np.float64)
    flat[0, 0] = np.nan
    got = flat_field(f["raw"][1], dark, flat, fill=-1.0)
    same(got, flat_field_reference(f["raw"][1], dark, flat, fill=-1.0))
    assert got[0, 0] == -1.0 and got[3, 4] == -1.0


def test_flat_field_of_float_frames(rt: cl.Runtime, frames: dict[str, np.ndarray]) -> None:
    f = frames
    raw = f["raw"].astype(np.float32) * np.float32(0.37)
    same(flat_field(raw, f["dark"], f["flat"]), flat_field_reference(raw, f["dark"], f["flat"]))


def test_device_arrays_stay_on_device(rt: cl.Runtime, frames: dict[str, np.ndarray]) -> None:
    f = frames
    d_raw = cla.to_device(rt.queue, f["raw"])
    d_mask = cla.to_device(rt.queue, f["mask"].astype(np.uint8))
    corr = FlatField(cla.to_device(rt.queue, f["dark"]), f["flat"], mask=d_mask)
    got = corr(d_raw)
    assert isinstance(got, cla.Array)
    same(got.get(), flat_field_reference(f["raw"], f["dark"], f["flat"], f["mask"]))
    out = cla.empty(rt.queue, f["raw"].shape, np.float32)
    assert corr(d_raw, out=out) is out
    same(out.get(), got.get())
    host_out = np.zeros(f["raw"].shape, np.float32)
    assert corr(f["raw"], out=host_out) is host_out
    same(host_out, got.get())


def test_prepared_correction_is_reused(rt: cl.Runtime, frames: dict[str, np.ndarray]) -> None:
    f = frames
    corr = FlatField(f["dark"], f["flat"])
    for frame in f["raw"]:
        same(corr(frame), flat_field_reference(frame, f["dark"], f["flat"]))


def test_dark_gain_equals_reference(rt: cl.Runtime, frames: dict[str, np.ndarray]) -> None:
    f = frames
    gain = np.random.default_rng(3).uniform(0.5, 2.0, SHAPE).astype(np.float32)
    gain[1, 1] = np.inf
    gain[2, 2] = np.nan
    got = dark_gain(f["raw"], f["dark"], gain, mask=f["mask"], fill=0.0)
    same(got, dark_gain_reference(f["raw"], f["dark"], gain, f["mask"], fill=0.0))
    assert (got[:, 1, 1] == 0).all() and (got[:, 2, 2] == 0).all()
    corr = DarkGain(f["dark"], gain)
    same(corr(f["raw"][0]), dark_gain_reference(f["raw"][0], f["dark"], gain))
    assert np.isnan(corr(f["raw"][0])[1, 1])


def test_bad_arguments_are_named(rt: cl.Runtime, frames: dict[str, np.ndarray]) -> None:
    f = frames
    with pytest.raises(ArrayArgumentError, match=r"`raw`: expected dtype uint16 or float32, got float64"):
        flat_field(f["raw"].astype(np.float64), f["dark"], f["flat"])
    with pytest.raises(ArrayArgumentError, match=r"`flat`: expected shape \(37, 53\).*got \(37, 52\)"):
        flat_field(f["raw"], f["dark"], f["flat"][:, :-1])
    with pytest.raises(ArrayArgumentError, match=r"`raw`: expected frames of shape \(37, 53\)"):
        flat_field(f["raw"][:, :-1], f["dark"], f["flat"])
    with pytest.raises(ArrayArgumentError, match=r"`mask`: expected shape"):
        flat_field(f["raw"], f["dark"], f["flat"], mask=f["mask"][1:])
    with pytest.raises(ArrayArgumentError, match=r"`dark`: expected 2 dimensions, got 3"):
        flat_field(f["raw"], f["raw"], f["flat"])
    with pytest.raises(ArrayArgumentError, match=r"`gain`: expected a numpy or pyopencl array, got list"):
        dark_gain(f["raw"], f["dark"], [[1.0]])
