"""SME C#'s SimpleMemoryBus (``sme/examples/memory_bus.py``): the MemoryTester's two
``Debug.Assert``s (``ReadValue`` 32, then 33) hold for both C# memories in the
interpreter, the compiled backend and GHDL; random requests read what a dictionary model of
the memory holds; an address past the 1024 words is one error in both Python backends."""

from __future__ import annotations

import random
from typing import Any

import pytest

from fpga.pytest_plugin import HardwareTester
from sme import ArrayIndexError, Simulator
from sme.examples import memory_bus as mb
from sme.trace import UNDEFINED


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_the_csharp_testers_asserts(backend: str) -> None:
    trace = Simulator(mb.build(), backend=backend).run(stimulus=list(mb.stimulus()))
    assert trace is not None
    for reply in ("reply_0", "reply_1"):  # MockMemory and SimpleMockMemory alike
        values = list(trace.column(f"{reply}.read_value"))
        assert {row: values[row] for row in mb.EXPECTED} == mb.EXPECTED
        assert values[:4] == [UNDEFINED] * 4  # (no ReadValue before the first read)


@pytest.mark.ghdl
def test_every_backend_alike(sme_hw: HardwareTester) -> None:
    trace = sme_hw.all_backends(mb.build(), list(mb.stimulus()))
    assert list(trace.column("reply_1.read_value"))[4:6] == [32, 33]


def _random(ticks: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(ticks):
        row = {"write_enabled": rng.random() < 0.5, "read_enabled": rng.random() < 0.6,
               "read_addr": rng.randrange(8), "write_addr": rng.randrange(8),
               "write_value": rng.randrange(2**64)}
        rows.append({f"{bus}.{k}": v for bus in ("request_0", "request_1")
                     for k, v in row.items()})
    return rows


def _model(stim: list[dict[str, Any]], bus: str, first: int) -> list[Any]:
    """The reply after each tick of a dictionary memory that serves the requests from tick
    ``first`` on: C#'s OnTick, the read first, then the write."""
    memory: dict[int, int] = {}
    reply: Any = UNDEFINED
    want = [reply]
    for t, row in enumerate(stim):
        if t >= first and row[f"{bus}.read_enabled"]:
            reply = memory.get(row[f"{bus}.read_addr"], 0)
        if t >= first and row[f"{bus}.write_enabled"]:
            memory[row[f"{bus}.write_addr"]] = row[f"{bus}.write_value"]
        want.append(reply)
    return want


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_random_requests_read_what_was_written(backend: str) -> None:
    stim = _random(120, seed=4)
    trace = Simulator(mb.build(), backend=backend).run(stimulus=stim)
    assert trace is not None
    want = _model(stim, "request_1", 0)
    assert list(trace.column("reply_1.read_value")) == want
    # MockMemory's Run awaits a clock before its first pass: it serves from tick 1 on
    assert list(trace.column("reply_0.read_value")) == _model(stim, "request_0", 1)
    assert any(v is not UNDEFINED and v > 2**63 for v in want)  # (64-bit words)


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_an_address_past_the_memory_is_one_error(backend: str) -> None:
    stim = [*list(mb.stimulus())[:3], {"request_1.read_enabled": True,
                                       "request_1.read_addr": 1024}]
    with pytest.raises(ArrayIndexError, match=r"self\.data\[1024\]: index out of range "
                                              r"0\.\.1023 \(read by SimpleMockMemory "):
        Simulator(mb.build(), backend=backend).run(stimulus=stim)
