"""Streaming tomography (analysis.tomo_stream): the running sum of one projection at a
time is the filtered back-projection of the projections so far; stacks go through the
slice-vectorised kernel bit for bit like single slices; masked pixels are filled from
their row neighbours."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import shepp_logan_phantom
from skimage.transform import radon, resize

from analysis import cl
from analysis.devarray import ArrayArgumentError
from analysis.fbp import FilteredBackProjection, fbp_reference, pack_stack, slices_per_group
from analysis.reduce import TomoAccumulator, tomo_chunk, tomo_combine, tomo_references
from analysis.tomo_stream import RowFill, StreamingFBP, fill_for, line_integrals

N = 64
ANGLES = np.linspace(0.0, 180.0, 36, endpoint=False)


@pytest.fixture(scope="module")
def sinogram() -> np.ndarray:
    cl.runtime()  # fails (does not skip) without OpenCL
    ph = np.asarray(resize(shepp_logan_phantom(), (N, N), anti_aliasing=True))
    return np.ascontiguousarray(radon(ph, ANGLES, circle=True).T, dtype=np.float32)


def test_row_fill_interpolates_between_good_neighbours() -> None:
    bad = np.zeros((4, 6), bool)
    bad[0, 2:4] = True    # a hole of two: 1/3 and 2/3 of the way
    bad[1, 0] = True      # at the edge: the nearest good pixel
    bad[2, :] = True      # a whole row: nothing to interpolate from
    frames = np.tile(np.arange(6, dtype=np.float32) * 3, (2, 4, 1))
    frames[:, bad] = 1000.0
    fill = RowFill(bad)
    assert fill.count == int(bad.sum())
    out = fill(frames)
    np.testing.assert_allclose(out[:, 0], [[0, 3, 6, 9, 12, 15]] * 2, rtol=1e-6)
    np.testing.assert_allclose(out[:, 1, 0], [3, 3])
    assert not out[:, 2].any()
    np.testing.assert_array_equal(out[:, 3], frames[:, 3])
    # a strided stack (rows picked out of a bigger one) is filled too, not silently copied
    big = np.tile(np.arange(6, dtype=np.float32) * 3, (3, 8, 1))
    big[:, :4][:, bad] = 1000.0
    picked = big[:, [0, 1, 2, 3], :]
    assert not picked.flags.c_contiguous
    np.testing.assert_allclose(fill(picked)[:, 0], [[0, 3, 6, 9, 12, 15]] * 3, rtol=1e-6)
    with pytest.raises(ArrayArgumentError, match=r"expected \(rows, cols\)"):
        RowFill(np.zeros(3, bool))


def test_line_integrals_are_minus_log_of_the_transmission() -> None:
    rng = np.random.default_rng(3)
    dark = rng.uniform(90, 110, (5, 7)).astype(np.float32)
    flat = rng.uniform(900, 1100, (5, 7)).astype(np.float32)
    flat[2, 3] = dark[2, 3]          # a dead flat: filled like a masked pixel
    mask = np.zeros((5, 7), bool)
    mask[4, 6] = True
    proj = rng.integers(200, 900, (3, 5, 7)).astype(np.uint16)
    mu = line_integrals(proj, dark, flat, fill_for(mask, dark, flat))
    with np.errstate(divide="ignore"):
        want = -np.log(np.maximum((proj - dark) / (flat - dark), 1e-6))
    ok = np.ones((5, 7), bool)
    ok[2, 3] = ok[4, 6] = False
    np.testing.assert_allclose(mu[:, ok], want[:, ok], rtol=1e-5)
    np.testing.assert_allclose(mu[:, 2, 3], (mu[:, 2, 2] + mu[:, 2, 4]) / 2, rtol=1e-5)
    np.testing.assert_allclose(mu[:, 4, 6], mu[:, 4, 5], rtol=1e-6)


def test_streamed_projections_sum_to_the_batch_reconstruction(sinogram: np.ndarray) -> None:
    stream = StreamingFBP(N, 3)
    stack = np.stack([sinogram, 2 * sinogram, 0.5 * sinogram])  # (slices, angles, width)
    for a in range(len(ANGLES)):  # one projection of every slice at a time
        stream.add(stack[:, a:a + 1].transpose(1, 0, 2), ANGLES[a:a + 1])
        if a == 11:  # always current: the reconstruction of the angles so far
            partial = stream.result()
            want = fbp_reference(sinogram[:12], ANGLES[:12])
            np.testing.assert_allclose(partial[0], want, rtol=0, atol=2e-5 * np.abs(want).max())
    assert stream.n == len(ANGLES)
    got = stream.result()
    ref = fbp_reference(sinogram, ANGLES)
    for k, factor in enumerate((1, 2, 0.5)):
        np.testing.assert_allclose(got[k], factor * ref, rtol=0,
                                   atol=2e-5 * np.abs(ref).max() * factor)
    with pytest.raises(ArrayArgumentError, match=r"expected \(k, 3, 64\)"):
        stream.add(np.zeros((1, 2, N)), [0.0])
    with pytest.raises(ArrayArgumentError, match="expected 2 finite angles"):
        stream.add(np.zeros((2, 3, N)), [0.0, np.nan])
    with pytest.raises(ArrayArgumentError, match="no projections added yet"):
        StreamingFBP(N, 1).result()


@pytest.mark.parametrize("slices", [2, 9, 16])
def test_stack_kernel_is_bitwise_the_single_slice_kernel(sinogram: np.ndarray,
                                                         slices: int) -> None:
    plan = FilteredBackProjection(ANGLES, N)
    one = plan(sinogram)
    stack = np.repeat(sinogram[None], slices, axis=0)
    got = plan(stack)
    for k in range(slices):
        np.testing.assert_array_equal(got[k], one)


def test_pack_stack_layout() -> None:
    filtered = np.arange(3 * 2 * 5, dtype=np.float32).reshape(3, 2, 5)  # slices, angles, w+1
    spi = slices_per_group(3)
    packed = pack_stack(filtered, spi)
    assert packed.shape == (1, 2, 7, 2 * spi)
    # detector sample s of slice j at angle a is entry s + 1: value, then slope to the next
    assert packed[0, 1, 3, 2] == filtered[2, 1, 2]
    assert packed[0, 1, 3, spi + 2] == filtered[2, 1, 3] - filtered[2, 1, 2]
    # zero just before the detector (entry 0's value), and the last entry, which
    # off-detector positions read, all zero
    assert not packed[0, :, 0, :spi].any() and not packed[0, :, -1, :].any()
    assert not packed[0, :, :, 3:spi].any()  # padding slices


def test_accumulator_one_at_a_time_equals_chunks_with_a_mask() -> None:
    rng = np.random.default_rng(11)
    darks = rng.integers(90, 110, (2, 8, 32)).astype(np.uint16)
    flats = rng.integers(900, 1100, (2, 8, 32)).astype(np.uint16)
    proj = rng.integers(300, 900, (6, 8, 32)).astype(np.uint16)
    mask = np.zeros((8, 32), np.uint32)
    mask[3, 10] = 2
    darks[:, 3, 10] = flats[:, 3, 10] = proj[:, 3, 10] = 0  # what the firmware sends
    angles = np.linspace(0.0, 180.0, 6, endpoint=False)
    refs = tomo_references(darks, flats, mask)
    whole = tomo_combine([tomo_chunk(proj, angles, refs)])
    acc = TomoAccumulator(refs, list(range(8)))
    for i in range(6):
        acc.add(proj[i:i + 1], angles[i:i + 1])
    np.testing.assert_allclose(acc.result(), whole, rtol=0, atol=1e-6 * np.abs(whole).max())
    # a pixel the firmware zeroed is filled the same whether the mask or its dead flat
    # says so
    unfilled = tomo_combine([tomo_chunk(np.where(mask, 0, proj).astype(np.uint16), angles,
                                        tomo_references(darks, flats))])
    np.testing.assert_allclose(unfilled, whole, rtol=0, atol=1e-6 * np.abs(whole).max())


def test_slabs_are_the_result_in_row_order_one_group_at_a_time(sinogram: np.ndarray) -> None:
    slices = 2 * slices_per_group(40) + 3  # several groups, the last one partly padding
    stream = StreamingFBP(N, slices)
    stack = np.stack([sinogram * (1 + k) for k in range(slices)])
    stream.add(stack.transpose(1, 0, 2), ANGLES)
    slabs = list(stream.slabs())
    assert len(slabs) == 3 and sum(len(s) for s in slabs) == slices
    np.testing.assert_array_equal(np.concatenate(slabs), stream.result())
    with pytest.raises(ArrayArgumentError, match="no projections added yet"):
        next(StreamingFBP(N, 1).slabs())


def test_slabs_hold_one_slab_on_the_host_at_a_time(sinogram: np.ndarray) -> None:
    """A caller writing the slabs out as they come holds about one of them: a copy's
    event (kept by pyopencl with the device array) must not keep earlier host copies
    alive (it did: up to 12 slabs, 48 MB of a 256³ live reconstruction). At most the
    device copy of one slab and its slices are on the host together."""
    import tracemalloc

    slices = 16 * slices_per_group(256)  # 16 groups: more than pyopencl keeps events of
    stream = StreamingFBP(N, slices)
    stream.add(np.repeat(sinogram[:, None, :], slices, axis=1), ANGLES)
    slab_bytes = slices_per_group(slices) * N * N * 4
    tracemalloc.start()  # numpy's buffers are traced
    try:
        base = tracemalloc.get_traced_memory()[0]
        count = 0
        for slab in stream.slabs():
            count += len(slab)
            del slab  # written out, gone
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert count == slices
    assert peak < 2.5 * slab_bytes, f"{peak / slab_bytes:.1f} slabs alive at once"


@pytest.mark.parametrize("size", [7, 8, 64, 65])
def test_circle_rows_are_the_kernels_inside_pixels(size: int) -> None:
    """The packed sum's pixels (``fbp.circle_rows``/``circle_pixels``) are exactly those
    the kernel keeps with ``circle``: ``x² + y² <= (size//2)²``, in row order."""
    from analysis.fbp import circle_pixels, circle_rows

    r = size // 2
    x, y = np.mgrid[:size, :size] - r
    inside = np.flatnonzero(x * x + y * y <= r * r)
    np.testing.assert_array_equal(circle_pixels(size), inside)
    assert circle_rows(size)[size, 1] == inside.size


@pytest.mark.parametrize("slices", [3, 16, 35])
def test_packed_running_sum_is_bitwise_the_full_one(sinogram: np.ndarray, slices: int) -> None:
    """The running sum kept inside the circle only gives every slice bit for bit as the
    full (groups, W, W, SPI) sum does, added one projection and a few at a time."""
    from analysis.fbp import deinterleave

    stack = np.stack([sinogram * (1 + 0.37 * k) for k in range(slices)]).astype(np.float32)
    stream = StreamingFBP(N, slices)
    plan = FilteredBackProjection([0.0], N)
    full = None
    for lo, hi in ((0, 1), (1, 2), (2, 7), (7, len(ANGLES))):
        part = stack[:, lo:hi]
        stream.add(part.transpose(1, 0, 2), ANGLES[lo:hi])
        full = plan.backproject(part, np.deg2rad(ANGLES[lo:hi]), into=full, scale=1.0,
                                interleaved=True)
    assert full is not None
    want = deinterleave(full.get(), slices) * np.float32(np.pi / (2 * len(ANGLES)))
    np.testing.assert_array_equal(stream.result(), want)
    assert stream._sum.nbytes < 0.8 * full.nbytes  # the circle only
