"""ResultBuffers: memory handed out again only once no array uses it."""

from __future__ import annotations

import numpy as np

from sme.buffers import ResultBuffers


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def test_memory_is_handed_out_again_only_when_no_array_uses_it() -> None:
    pool = ResultBuffers(keep=2)
    a = pool.take((4, 6), np.uint16)
    assert a.shape == (4, 6) and a.dtype == np.uint16 and a.flags.c_contiguous
    assert a.flags.writeable
    first = _address(a)
    a[:] = 7
    view = a.reshape(-1)[3:9]  # a view keeps the memory in use after its array is gone
    del a
    b = pool.take((4, 6), np.uint16)
    assert _address(b) != first and not np.shares_memory(b, view) and (view == 7).all()
    del view
    c = pool.take((2, 3), np.int32)  # smaller, another dtype: the free buffer serves
    assert _address(c) == first
    del b, c
    big = pool.take((100, 100), np.float64)  # larger than any kept: a new buffer,
    assert big.nbytes == 80_000               # which replaces a free, smaller one
    held = [pool.take((100, 100), np.float64) for _ in range(3)]  # beyond keep: new ones
    assert len({_address(x) for x in [big, *held]}) == 4
    del held
    assert _address(pool.take((100, 100), np.float64)) != _address(big)  # big is in use
    assert pool.take((0, 5), np.uint8).shape == (0, 5)
