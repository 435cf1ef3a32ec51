"""64-bit and wider integers (up to 128 bits) in every backend: the compiled backend runs
a network whose values may exceed signed 64 bits on Python ints (exact), batch I/O gives
``uint64`` for 64-bit unsigned signals and Python ints beyond; the VHDL is exact too."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from fpga.pytest_plugin import HardwareTester
from sme import Bool, Bus, In, Int, Network, Out, Process, Simulator, UInt, saturate, wrap

pytestmark = pytest.mark.ghdl


class Ctl(Bus):
    go: Bool = False
    k: UInt[64] = 0
    s: Int[64] = 0


class Wide(Bus):
    t: UInt[64] = 0
    big: UInt[100] = 0
    neg: Int[64] = 0
    cmp: Bool = False
    low: UInt[8] = 0


class Timestamp(Process):
    """A 64-bit timestamp that wraps, and products wider than 64 bits."""

    ctl: In[Ctl]
    out: Out[Wide]
    t: UInt[64] = (1 << 64) - 3

    def on_tick(self) -> None:
        if self.ctl.go:
            self.t = wrap(self.t + self.ctl.k)
        self.out.t = self.t
        self.out.big = self.t * 12345 + (self.ctl.k >> 3)
        self.out.neg = saturate(self.ctl.s * 3 - self.t)
        self.out.cmp = self.t > self.ctl.k
        self.out.low = wrap(self.t ^ (self.ctl.k >> 56))


def build() -> Network:
    return Network("wide", [Timestamp(ctl=Ctl(), out=Wide())])


def stimulus(ticks: int = 200) -> list[dict[str, Any]]:
    r = random.Random(1)
    return [{"ctl.go": r.random() < 0.7,
             "ctl.k": r.choice([0, 1, 2**63, 2**64 - 1, r.randrange(2**64)]),
             "ctl.s": r.choice([-2**63, 2**63 - 1, r.randrange(-2**63, 2**63)])}
            for _ in range(ticks)]


def test_every_backend_agrees(sme_hw: HardwareTester) -> None:
    trace = sme_hw.all_backends(build(), stimulus())
    assert trace.rows[1][trace.names.index("wide.t")] >= 2**63  # the values are that wide


def test_batch_io_dtypes_and_values() -> None:
    go = np.ones(3, dtype=bool)
    k = np.array([1, 2**63, 5], dtype=np.uint64)
    results = [Simulator(build(), backend=b, trace=False).run_batch({"ctl.go": go, "ctl.k": k}, 3)
               for b in ("interp", "compiled")]
    for out in results:
        assert out["wide.t"].dtype == np.uint64 and out["wide.big"].dtype == object
        assert out["wide.t"].tolist() == [2**64 - 2, 2**63 - 2, 2**63 + 3]
        assert out["wide.big"][0] == (2**64 - 2) * 12345
    assert all((results[0][n] == results[1][n]).all() for n in results[0])
    assert Simulator(build(), backend="compiled").build.generated.wide  # type: ignore[attr-defined]
