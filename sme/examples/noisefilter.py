"""SME C#'s NoiseFilter example: a 3×3 mean filter over a stream of RGB pixels.

An image's size arrives on ``ImageConfig`` (``valid`` for one tick), then its pixels on
``ImageInputLine``, row by row, one per tick where ``valid`` is set (idle ticks between
pixels are allowed). Three processes, as in the C# example:

* ``BorderEmitter`` stores the pixels in a frame buffer and emits the image padded by one
  pixel on every side (the edge pixel repeated), one padded pixel per tick as soon as the
  pixel it copies has arrived;
* ``StencilEmitter`` keeps the last three padded rows in a line buffer and, for each padded
  pixel that completes a 3×3 neighbourhood, emits that neighbourhood as one fragment;
* ``StencilApplier`` (combinational) averages each colour over the fragment with the
  filter's weights (all ones: ``sum // 9``, as C#'s integer division).

The filtered image comes out on ``ImageOutputLine`` in raster order, one pixel per tick
where ``valid`` is set; a new configuration may follow once the last pixel is out. Images
are at most ``MAX_WIDTH`` × ``MAX_HEIGHT`` pixels. (The C# original stops each stage one
pixel early — it clears ``HasSize`` when its index reaches the pixel count minus one — so
its last output pixel is never emitted; this port emits every pixel.)

    smeflow vhdl sme.examples.noisefilter:build -o out/noise \\
        --stimulus sme.examples.noisefilter:stimulus --run
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from sme import Array, Bool, Bus, In, Network, Out, Process, UInt

MAX_WIDTH = 12
MAX_HEIGHT = 12
COLOR = 3
"""Colour channels of a pixel (R, G, B)."""
STENCIL = 3
"""The filter is STENCIL × STENCIL pixels."""
FILTER = (1, 1, 1, 1, 1, 1, 1, 1, 1)
"""The filter's weights, row by row; each colour's sum is divided by their sum."""
LINE = MAX_WIDTH + 2
"""Pixels of a padded row."""


class ImageConfig(Bus):
    """The size of the next image."""

    valid: Bool = False
    width: UInt[16] = 0
    height: UInt[16] = 0


class ImageInputLine(Bus):
    """One pixel of the image."""

    valid: Bool = False
    color: Array[UInt[8], COLOR] = [0] * COLOR


class PaddedInputLine(Bus):
    """One pixel of the padded image."""

    valid: Bool = False
    color: Array[UInt[8], COLOR] = [0] * COLOR


class ImageFragment(Bus):
    """A 3×3 neighbourhood, pixel by pixel, each pixel's colours together."""

    valid: Bool = False
    data: Array[UInt[8], COLOR * STENCIL * STENCIL] = [0] * (COLOR * STENCIL * STENCIL)


class ImageOutputLine(Bus):
    """One pixel of the filtered image."""

    valid: Bool = False
    color: Array[UInt[8], COLOR] = [0] * COLOR


class BorderEmitter(Process, storage=("frame",)):
    """Pads the image by repeating its edge pixels."""

    config: In[ImageConfig]
    pixels: In[ImageInputLine]
    padded: Out[PaddedInputLine]
    has_size: Bool = False
    width: UInt[16] = 0
    height: UInt[16] = 0
    source_index: UInt[16] = 0
    target_index: UInt[16] = 0
    frame: Array[UInt[8], MAX_WIDTH * MAX_HEIGHT * COLOR] = [0] * (MAX_WIDTH * MAX_HEIGHT * COLOR)

    def on_tick(self) -> None:
        self.padded.valid = False
        if not self.has_size:
            if self.config.valid:
                self.has_size = True
                self.width = self.config.width
                self.height = self.config.height
                self.source_index = 0
                self.target_index = 0
            return
        if self.pixels.valid and self.source_index < self.width * self.height:
            for k in range(COLOR):
                self.frame[self.source_index * COLOR + k] = self.pixels.color[k]
            self.source_index += 1
        padded_width = self.width + 2
        tx = self.target_index % padded_width
        ty = self.target_index // padded_width
        sx = min(max(tx - 1, 0), self.width - 1)
        sy = min(max(ty - 1, 0), self.height - 1)
        source = sy * self.width + sx
        if source < self.source_index:  # the pixel it copies has arrived
            for k in range(COLOR):
                self.padded.color[k] = self.frame[source * COLOR + k]
            self.padded.valid = True
            if self.target_index == padded_width * (self.height + 2) - 1:
                self.has_size = False  # the last padded pixel: wait for a new size
            self.target_index += 1


class StencilEmitter(Process, storage=("lines",)):
    """Emits the neighbourhood of each padded pixel that completes one."""

    config: In[ImageConfig]
    padded: In[PaddedInputLine]
    fragment: Out[ImageFragment]
    has_size: Bool = False
    width: UInt[16] = 0
    height: UInt[16] = 0
    row: UInt[16] = 0
    column: UInt[16] = 0
    lines: Array[UInt[8], STENCIL * LINE * COLOR] = [0] * (STENCIL * LINE * COLOR)

    def on_tick(self) -> None:
        self.fragment.valid = False
        if not self.has_size:
            if self.config.valid:
                self.has_size = True
                self.width = self.config.width + 2
                self.height = self.config.height + 2
                self.row = 0
                self.column = 0
            return
        if not self.padded.valid:
            return
        line = self.row % STENCIL
        for k in range(COLOR):
            self.lines[(line * LINE + self.column) * COLOR + k] = self.padded.color[k]
        if self.row >= STENCIL - 1 and self.column >= STENCIL - 1:
            for i in range(STENCIL):
                source_line = (self.row + 1 + i) % STENCIL  # the oldest row first
                for j in range(STENCIL):
                    x = self.column + 1 + j - STENCIL
                    for k in range(COLOR):
                        self.fragment.data[(i * STENCIL + j) * COLOR + k] = \
                            self.lines[(source_line * LINE + x) * COLOR + k]
            self.fragment.valid = True
        if self.column == self.width - 1:
            self.column = 0
            if self.row == self.height - 1:
                self.has_size = False
            else:
                self.row += 1
        else:
            self.column += 1


class StencilApplier(Process, combinational=True):
    """Each colour's weighted mean over a fragment."""

    fragment: In[ImageFragment]
    output: Out[ImageOutputLine]

    def on_tick(self) -> None:
        self.output.valid = self.fragment.valid
        for k in range(COLOR):
            total: UInt[16] = 0
            for p in range(STENCIL * STENCIL):
                total = total + FILTER[p] * self.fragment.data[p * COLOR + k]
            self.output.color[k] = total // sum(FILTER)


def build() -> Network:
    """Configuration and pixels (top-level inputs) → border → stencil → applier → pixels."""
    config = ImageConfig(name="config")
    padded, fragment = PaddedInputLine(name="padded"), ImageFragment(name="fragment")
    return Network("noisefilter", [
        BorderEmitter(config=config, pixels=ImageInputLine(name="pixels"), padded=padded),
        StencilEmitter(config=config, padded=padded, fragment=fragment),
        StencilApplier(fragment=fragment, output=ImageOutputLine(name="output")),
    ])


def image_stream(images: Sequence[np.ndarray], gap_every: int = 0,
                 tail: int = 0) -> Iterator[dict[str, Any]]:
    """Each ``(h, w, 3)`` uint8 image: its size for one tick, then its pixels one per tick
    (an idle tick after every ``gap_every`` pixels when it is not 0), then idle ticks
    until the filter has emitted the image, and ``tail`` more. The border emits its
    ``(h+2)(w+2)`` padded pixels one a tick: without gaps from the tick after the size,
    never waiting for a pixel; with gaps it may wait, and it emits at most all of them
    after the last pixel."""
    idle = {"config.valid": False, "pixels.valid": False}
    for image in images:
        h, w = image.shape[:2]
        assert h <= MAX_HEIGHT and w <= MAX_WIDTH
        yield {"config.valid": True, "config.width": w, "config.height": h,
               "pixels.valid": False}
        ticks = 1
        for n, pixel in enumerate(image.reshape(h * w, COLOR)):
            if gap_every and n and n % gap_every == 0:
                yield idle
                ticks += 1
            yield {"config.valid": False, "pixels.valid": True,
                   "pixels.color": [int(c) for c in pixel]}
            ticks += 1
        for _ in range((h + 2) * (w + 2) + 2 - (0 if gap_every else ticks)):
            yield idle
    for _ in range(tail):
        yield idle


def sample_images(seed: int = 3) -> list[np.ndarray]:
    """A random 5 × 7 image, a 2 × 3 one and a 1 × 1 (the smallest)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, COLOR), dtype=np.uint8) for h, w in
            ((5, 7), (2, 3), (1, 1))]


def stimulus() -> Iterator[dict[str, Any]]:
    """``sample_images()`` with an idle tick after every fifth pixel."""
    return image_stream(sample_images(), gap_every=5, tail=2)
