"""The pixel-mask conventions every reducer relies on (dataflow.pixel_mask)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dataflow.pixel_mask import (
    DEAD,
    GAP,
    OVER_RESPONDING,
    as_bool,
    bin_mask,
    describe_bits,
    mask_key,
)


def test_bin_mask_ors_the_bits_of_each_block() -> None:
    m = np.zeros((4, 6), np.uint32)
    m[0, 0] = DEAD
    m[1, 1] = OVER_RESPONDING     # same 2×2 block as (0, 0)
    m[3, 5] = GAP
    b = bin_mask(m)
    assert b.shape == (2, 3) and b.dtype == np.uint32
    assert b[0, 0] == DEAD | OVER_RESPONDING
    assert b[1, 2] == GAP
    assert np.count_nonzero(b) == 2


def test_bin_mask_refuses_odd_shapes() -> None:
    with pytest.raises(ValueError, match=r"sides divisible by 2 is needed, got shape \(3, 4\)"):
        bin_mask(np.zeros((3, 4), np.uint32))


def test_as_bool_accepts_one_frame_stacks_and_checks_the_shape() -> None:
    m = np.zeros((1, 3, 4), np.uint32)
    m[0, 2, 3] = DEAD
    got = as_bool(m, (3, 4))
    assert got.dtype == bool and got.sum() == 1 and got[2, 3]
    with pytest.raises(ValueError, match=r"run 7 mask: shape \(3, 4\) does not match the "
                                         r"frames \(4, 4\)"):
        as_bool(m[0], (4, 4), where="run 7 mask")
    with pytest.raises(ValueError, match="integer NeXus pixel_mask bits, got dtype float64"):
        as_bool(np.zeros((3, 4)), (3, 4))
    with pytest.raises(ValueError, match="pixel_mask bits, got dtype timedelta64"):
        as_bool(np.zeros((3, 4), "m8[s]"), (3, 4))


def test_describe_bits_counts_each_kind() -> None:
    m = np.array([[DEAD, DEAD | GAP], [OVER_RESPONDING, 0]], np.uint32)
    assert describe_bits(m) == {"gap": 1, "dead": 2, "hot": 1}
    assert mask_key("det") == "det_pixel_mask"


def _mask_file(tmp_path: Any, mask: object) -> Any:
    import h5py

    from dataflow.pixel_mask import PIXEL_MASK_DATASET

    path = tmp_path / "frames.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", data=np.zeros((2, 8, 8), np.uint16))
        f.create_dataset(PIXEL_MASK_DATASET, data=mask)
    return path


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.int64, np.uint8, np.uint32])
def test_a_file_mask_keeps_its_bits_whatever_integer_type_stores_them(
        tmp_path: Any, dtype: Any) -> None:
    """NeXus ``pixel_mask`` is NX_INT: an int32 gap pixel that is also virtual (bit 31)
    is negative as int32, and must keep every bit (a clipping conversion reads 0 and the
    gap is reduced as data); narrower and wider integers keep theirs too."""
    from dataflow.pixel_mask import GAP, read_file_mask

    width = np.iinfo(dtype).bits
    value = GAP | (1 << min(width - 1, 31))  # the sign bit of a signed type (or bit 31)
    pattern = np.zeros((8, 8), f"u{width // 8}")
    pattern[0, :] = value
    bits = read_file_mask(_mask_file(tmp_path, pattern.view(dtype)))
    assert bits is not None and bits.dtype == np.uint32
    assert (bits[0] == value).all() and not bits[1:].any()
    assert as_bool(bits, (8, 8)).sum() == 8


@pytest.mark.parametrize(("mask", "what"), [
    (np.full((8, 8), 0.5), "float64"),
    ("all pixels good", "object"),
])
def test_a_file_mask_without_integer_bits_is_refused_naming_file_and_dataset(
        tmp_path: Any, mask: object, what: str) -> None:
    from dataflow.pixel_mask import PixelMaskError, read_file_mask

    path = _mask_file(tmp_path, mask)
    with pytest.raises(PixelMaskError, match=rf"{path}: /entry/instrument/detector/"
                                             rf"pixel_mask: a pixel mask holds integer "
                                             rf"NeXus pixel_mask bits, this dataset holds "
                                             rf"{what}"):
        read_file_mask(path)


def test_a_file_mask_beyond_32_bits_is_refused(tmp_path: Any) -> None:
    from dataflow.pixel_mask import PixelMaskError, read_file_mask

    with pytest.raises(PixelMaskError, match="values above 32 bits"):
        read_file_mask(_mask_file(tmp_path, np.full((8, 8), 1 << 40, np.int64)))
