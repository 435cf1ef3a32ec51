"""SME C#'s colour binner: count an image's dark, medium and bright pixels.

An image arrives one pixel per tick on ``ImageLine`` (``valid`` set for each pixel,
``last`` on the image's final pixel). ``ColorBinCollector`` turns each pixel's R, G, B
into a luminance ``(299 R + 587 G + 114 B) // 1000`` (ITU-R BT.601 weights, in
thousandths) and counts it as high (above ``HIGH``), medium (above ``MEDIUM``) or low.
On the tick after an image's last pixel the three counts are on ``BinCounts`` with
``valid`` set; the next pixel starts new counts. Idle ticks between pixels and between
images are allowed.

    smeflow vhdl sme.examples.colorbin:build -o out/colorbin \\
        --stimulus sme.examples.colorbin:stimulus --run
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from sme import Bool, Bus, In, Network, Out, Process, UInt

HIGH = 200
"""A luminance above this is bright."""
MEDIUM = 100
"""A luminance above this (and not above ``HIGH``) is medium."""


class ImageLine(Bus):
    """One pixel of an image per tick."""

    valid: Bool = False
    last: Bool = False
    r: UInt[8] = 0
    g: UInt[8] = 0
    b: UInt[8] = 0


class BinCounts(Bus):
    """The counts of one image, ``valid`` for the one tick after its last pixel."""

    valid: Bool = False
    low: UInt[32] = 0
    medium: UInt[32] = 0
    high: UInt[32] = 0


class ColorBinCollector(Process):
    """Bins every valid pixel by luminance; reports and restarts after the last one."""

    pixels: In[ImageLine]
    bins: Out[BinCounts]
    was_last: Bool = False
    low: UInt[32] = 0
    medium: UInt[32] = 0
    high: UInt[32] = 0

    def on_tick(self) -> None:
        if self.was_last:  # the counts of the image before were reported: start again
            self.low = self.medium = self.high = 0
        if self.pixels.valid:
            luma = (self.pixels.r * 299 + self.pixels.g * 587 + self.pixels.b * 114) // 1000
            if luma > HIGH:
                self.high += 1
            elif luma > MEDIUM:
                self.medium += 1
            else:
                self.low += 1
        self.was_last = self.pixels.valid and self.pixels.last
        self.bins.low = self.low
        self.bins.medium = self.medium
        self.bins.high = self.high
        self.bins.valid = self.was_last


def build() -> Network:
    """The pixel bus (top-level input) → collector → bin counts."""
    return Network("colorbin", [ColorBinCollector(pixels=ImageLine(name="pixels"),
                                                   bins=BinCounts(name="bins"))])


def luminance(image: np.ndarray) -> np.ndarray:
    """The luminance the collector computes, for an ``(h, w, 3)`` uint8 image."""
    rgb = image.astype(np.int64)
    return (rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114) // 1000


def expected_bins(image: np.ndarray) -> tuple[int, int, int]:
    """(low, medium, high): what the collector reports for ``image``."""
    luma = luminance(image)
    high = int(np.count_nonzero(luma > HIGH))
    medium = int(np.count_nonzero((luma > MEDIUM) & (luma <= HIGH)))
    return luma.size - high - medium, medium, high


def sample_images(seed: int = 7) -> list[np.ndarray]:
    """Three small RGB images: a grey ramp (every luminance, both thresholds' edges), a
    random image and a single bright pixel."""
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1).reshape(16, 16, 3)
    noise = np.random.default_rng(seed).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    return [ramp, noise, np.full((1, 1, 3), 255, dtype=np.uint8)]


def pixel_stream(images: Sequence[np.ndarray], gap: int = 1) -> Iterator[dict[str, Any]]:
    """The images one pixel per tick, row by row, after one idle tick and with ``gap``
    idle ticks after each image (as C#'s image simulator, which waits a tick first)."""
    idle = {"pixels.valid": False, "pixels.last": False}
    yield idle
    for image in images:
        h, w = image.shape[:2]
        for y in range(h):
            for x in range(w):
                r, g, b = (int(c) for c in image[y, x, :3])
                yield {"pixels.valid": True, "pixels.last": y == h - 1 and x == w - 1,
                       "pixels.r": r, "pixels.g": g, "pixels.b": b}
        for _ in range(gap):
            yield idle


def stimulus() -> Iterator[dict[str, Any]]:
    """``sample_images()`` as a pixel stream, the last two back to back."""
    ramp, noise, dot = sample_images()
    yield from pixel_stream([ramp], gap=2)
    yield from pixel_stream([noise, dot], gap=0)
    yield {"pixels.valid": False, "pixels.last": False}
