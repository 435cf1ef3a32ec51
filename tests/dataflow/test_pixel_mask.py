"""The pixel-mask conventions every reducer relies on (dataflow.pixel_mask)."""

from __future__ import annotations

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


def test_describe_bits_counts_each_kind() -> None:
    m = np.array([[DEAD, DEAD | GAP], [OVER_RESPONDING, 0]], np.uint32)
    assert describe_bits(m) == {"gap": 1, "dead": 2, "hot": 1}
    assert mask_key("det") == "det_pixel_mask"
