"""SME C#'s NoiseFilter example ported (``sme/examples/noisefilter.py``) filters as scipy
does: each colour's 3×3 mean (floor) over the image with its edges repeated —
``scipy.ndimage.correlate(..., mode="nearest") // 9`` — in the interpreter, the compiled
backend and, tick for tick, GHDL."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from fpga.pytest_plugin import HardwareTester
from sme import Simulator, Trace
from sme.examples import noisefilter as nf


def _filtered(trace: Trace) -> list[tuple[int, ...]]:
    valid, color = trace.column("output.valid"), trace.column("output.color")
    return [tuple(c) for v, c in zip(valid, color, strict=True) if v]


def _scipy(images: list[np.ndarray]) -> list[tuple[int, ...]]:
    weights = np.array(nf.FILTER, dtype=np.int64).reshape(3, 3, 1)
    out: list[tuple[int, ...]] = []
    for im in images:
        s = ndimage.correlate(im.astype(np.int64), weights, mode="nearest") // sum(nf.FILTER)
        out += [tuple(int(x) for x in p) for p in s.reshape(-1, nf.COLOR)]
    return out


def _images(seed: int) -> list[np.ndarray]:
    """The largest image, a one-row and a one-column image, random sizes; and a ramp whose
    sums reach 9 × 255 (the widest a colour's sum gets)."""
    rng = np.random.default_rng(seed)
    shapes = [(nf.MAX_HEIGHT, nf.MAX_WIDTH), (1, 6), (4, 1),
              *((int(rng.integers(1, 6)), int(rng.integers(1, 6))) for _ in range(3))]
    images = [rng.integers(0, 256, (h, w, nf.COLOR), dtype=np.uint8) for h, w in shapes]
    images.append(np.full((3, 4, nf.COLOR), 255, dtype=np.uint8))
    return images


@pytest.mark.parametrize("backend", ["interp", "compiled"])
@pytest.mark.parametrize("gap_every", [0, 3])
def test_filter_equals_scipy(backend: str, gap_every: int) -> None:
    images = _images(seed=gap_every)
    stim = list(nf.image_stream(images, gap_every=gap_every))
    trace = Simulator(nf.build(), backend=backend).run(stimulus=stim)
    assert trace is not None
    assert _filtered(trace) == _scipy(images)


def test_the_example_stimulus_equals_scipy() -> None:
    trace = Simulator(nf.build()).run(stimulus=list(nf.stimulus()))
    assert trace is not None
    assert _filtered(trace) == _scipy(nf.sample_images())


@pytest.mark.ghdl
def test_filter_in_every_backend(sme_hw: HardwareTester) -> None:
    images = [np.random.default_rng(8).integers(0, 256, (3, 5, nf.COLOR), dtype=np.uint8),
              np.full((2, 2, nf.COLOR), 255, dtype=np.uint8)]
    trace = sme_hw.all_backends(nf.build(), list(nf.image_stream(images, gap_every=4)))
    assert _filtered(trace) == _scipy(images)  # interp = compiled = GHDL = scipy
