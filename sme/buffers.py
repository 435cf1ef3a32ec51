"""Reusable memory for large arrays handed out again and again (see ``ResultBuffers``)."""

from __future__ import annotations

import math
import threading

import numpy as np
import numpy.typing as npt

__all__ = ["ResultBuffers"]


class ResultBuffers:
    """Memory for arrays a producer hands out (results returned without a copy), reused
    for a later one once no array of the caller uses it any more.

    Fresh memory for each large result costs the kernel a page fault per 4 KiB page on
    the first stores into it and an unmap when it is freed (a compiled run's P6M module
    packet words of four frames are 800 KB: about a fifth of the 60 modules' CPU time
    went to the kernel; a P6M frame is 12 MB).
    Each buffer is a ``bytearray``, which refuses to be resized while any array made from
    it (or a view of one) is alive: a buffer whose resize succeeds has no user left, so
    handing it out again cannot change a result someone holds. At most ``keep`` buffers
    are kept (one for a caller that drops each run's result before the next, two for one
    that holds the previous)."""

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._buffers: list[bytearray] = []
        self._lock = threading.Lock()

    @staticmethod
    def _unused(buf: bytearray) -> bool:
        try:  # (a resize, refused while an array of it is alive; shrinking first, so
            last = buf.pop()  # the memory does not move)
        except BufferError:
            return False
        buf.append(last)
        return True

    def take(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> np.ndarray:
        """An uninitialised C-contiguous ``shape`` array of ``dtype``, in a buffer no live
        array uses (a kept one when one is free and large enough, else a new one)."""
        dt = np.dtype(dtype)
        count = math.prod(shape)
        size = count * dt.itemsize
        with self._lock:
            free = [b for b in self._buffers if self._unused(b)]
            buf = next((b for b in free if len(b) >= size), None)
            if buf is None:
                buf = bytearray(max(size, 1))
                if len(self._buffers) >= self.keep and free:  # replace a free, smaller one
                    self._buffers.remove(min(free, key=len))
                if len(self._buffers) < self.keep:
                    self._buffers.append(buf)
            return np.frombuffer(buf, dtype=dt, count=count).reshape(shape)
