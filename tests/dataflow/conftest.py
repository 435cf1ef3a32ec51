"""Shared helpers of the dataflow tests: a frame-writing ophyd test device and catalogs."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ophyd import Component, Device, Signal
from ophyd.status import StatusBase

from dataflow.catalog import Catalog
from dataflow.hdf5 import FrameWriter

FRAME_SHAPE = (40, 24)
_files = itertools.count()


def make_frame(index: int, shape: tuple[int, int] = FRAME_SHAPE) -> np.ndarray:
    """The deterministic uint16 frame number ``index`` the test camera produces."""
    rows, cols = shape
    base = np.arange(rows * cols, dtype=np.uint32).reshape(rows, cols)
    return ((base * 7 + index * 1000) % 65521).astype(np.uint16)


class FrameCam(Device):
    """A test-only camera: each trigger writes one frame through ``FrameWriter``.

    The frames are external data (``STREAM:``) announced by ``collect_asset_docs``; the
    frame sum is an ordinary reading.
    """

    frame_shape = FRAME_SHAPE
    total = Component(Signal, value=0, kind="hinted")
    exposure = Component(Signal, value=0.01, kind="config")

    def __init__(self, *args: Any, folder: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder
        self.writer: FrameWriter | None = None
        self.digests: list[str] = []
        self._index = 0

    def stage(self) -> list[Any]:
        self.writer = FrameWriter(self.folder, f"{self.name}_{next(_files):04d}.h5",
                                  FRAME_SHAPE, data_key=f"{self.name}_image")
        self._index = 0
        staged: list[Any] = super().stage()
        return staged

    def unstage(self) -> list[Any]:
        if self.writer is not None:
            self.digests.append(self.writer.close())
        unstaged: list[Any] = super().unstage()
        return unstaged

    def trigger(self) -> StatusBase:
        assert self.writer is not None, "stage() first"
        frame = make_frame(self._index)
        self.writer.append(frame)
        self._index += 1
        self.total.put(int(frame.sum()))
        status = StatusBase()
        status.set_finished()
        return status

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = super().describe()
        desc[f"{self.name}_image"] = {"source": "test:FrameCam", "shape": list(FRAME_SHAPE),
                                      "dtype": "array", "dtype_numpy": "<u2",
                                      "external": "STREAM:"}
        return desc

    def collect_asset_docs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self.writer is not None:
            yield from self.writer.asset_docs()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """One embedded catalog per test module (opening one costs seconds)."""
    cat = Catalog(tmp_path_factory.mktemp("catalog"))
    yield cat
    cat.close()


@pytest.fixture(scope="session")
def frame_cam() -> type[FrameCam]:
    """The ``FrameCam`` test device class (``FrameCam(name=..., folder=...)``)."""
    return FrameCam


@pytest.fixture(scope="session")
def make_test_frame() -> Callable[[int], np.ndarray]:
    """``make_test_frame(i)``: the frame number ``i`` a ``FrameCam`` writes."""
    return make_frame
