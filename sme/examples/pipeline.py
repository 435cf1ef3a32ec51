"""The benchmark pipeline of DESIGN.md: a small detector front-end of four clocked stages.

Over 100,000 ticks with ``stimulus()``, 5,468 ticks have ``sum_valid`` set and their
``sum_out`` values total 175,399,483.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from sme import Bool, Bus, In, Int, Network, Out, Process, UInt

EXPECTED_VALID_COUNT = 5_468
EXPECTED_VALID_SUM = 175_399_483
CLAMP_MAX = 4095
GROUP = 16


class Samples(Bus):
    """Signed ADC samples from the sensor."""

    x: Int[16] = 0
    x_valid: Bool = False


class Scaled(Bus):
    """Stage 1 output: samples scaled by 3, plus 1."""

    p1: Int[19] = 0
    v1: Bool = False


class Clamped(Bus):
    """Stage 2 output: scaled samples clamped to 0..4095."""

    c2: UInt[12] = 0
    v2: Bool = False


class GroupSum(Bus):
    """Stage 3 output: the sum of each group of 16 valid samples."""

    s3: UInt[16] = 0
    v3: Bool = False


class SumOut(Bus):
    """The pipeline's output register."""

    sum_out: UInt[16] = 0
    sum_valid: Bool = False


class Scale(Process):
    """p1 = 3x + 1."""

    inp: In[Samples]
    out: Out[Scaled]

    def on_tick(self) -> None:
        self.out.p1 = self.inp.x * 3 + 1
        self.out.v1 = self.inp.x_valid


class Clamp(Process):
    """c2 = clamp(p1, 0, 4095)."""

    inp: In[Scaled]
    out: Out[Clamped]

    def on_tick(self) -> None:
        p = self.inp.p1
        if p < 0:
            self.out.c2 = 0
        elif p > CLAMP_MAX:
            self.out.c2 = CLAMP_MAX
        else:
            self.out.c2 = p
        self.out.v2 = self.inp.v1


class Accumulate(Process):
    """Sums groups of 16 valid samples and flags each completed sum."""

    inp: In[Clamped]
    out: Out[GroupSum]
    acc: UInt[16] = 0
    cnt: UInt[4] = 0

    def on_tick(self) -> None:
        if self.inp.v2:
            if self.cnt == GROUP - 1:
                self.out.s3 = self.acc + self.inp.c2
                self.out.v3 = True
                self.acc = 0
                self.cnt = 0
            else:
                self.acc = self.acc + self.inp.c2
                self.cnt = self.cnt + 1
                self.out.v3 = False
        else:
            self.out.v3 = False


class Output(Process):
    """Registers the group sum on the pipeline's output."""

    inp: In[GroupSum]
    out: Out[SumOut]

    def on_tick(self) -> None:
        self.out.sum_out = self.inp.s3
        self.out.sum_valid = self.inp.v3


def build() -> Network:
    """The four-stage pipeline, from the sample bus to the sum bus."""
    samples, scaled, clamped, sums, out = Samples(), Scaled(), Clamped(), GroupSum(), SumOut()
    return Network(
        "pipeline",
        [
            Scale(inp=samples, out=scaled),
            Clamp(inp=scaled, out=clamped),
            Accumulate(inp=clamped, out=sums),
            Output(inp=sums, out=out),
        ],
        inputs=[samples],
    )


def sample(i: int) -> tuple[int, bool]:
    """The stimulus of tick ``i``: (x, x_valid)."""
    u = (i * 40503 + 12345) & 0xFFFF
    return (u - 65536 if u >= 32768 else u), i % 8 != 7


def sample_x(i: np.ndarray) -> np.ndarray:
    """``sample``'s x for an array of tick numbers (a numpy expression of the tick index,
    for ``Simulator.run_batch``)."""
    u = (i * 40503 + 12345) & 0xFFFF
    return (u ^ 0x8000) - 0x8000  # the 16-bit word as a signed number, without a branch


def sample_valid(i: np.ndarray) -> np.ndarray:
    """``sample``'s x_valid for an array of tick numbers."""
    return np.asarray(i & 7 != 7)  # tick numbers are >= 0: i & 7 is i % 8, and cheaper


def stimulus(ticks: int = 100_000) -> Iterator[dict[str, object]]:
    """The DESIGN.md stimulus for ``ticks`` ticks."""
    for i in range(ticks):
        x, valid = sample(i)
        yield {"samples.x": x, "samples.x_valid": valid}
