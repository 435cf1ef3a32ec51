"""The cocotb test that runs inside GHDL during a lock-step co-simulation.

It is loaded by cocotb (``COCOTB_TEST_MODULES=fpga.cosim.cocotb_bench``), connects to the
controller named by ``SMEFLOW_LOCKSTEP_SERVER`` (see ``_protocol``), and then, tick by tick,
drives the DUT's top-level inputs with the values the controller sends, gives the clock one
rising edge, and compares every top-level output with the Python model's value for that
tick. It stops at the first difference and tells the controller which tick and output.

The clock is driven by hand (low half, high half per tick), so the simulation ends when the
stimulus does: a free-running clock would keep GHDL alive for ever.
"""

from __future__ import annotations

import os
import traceback
from multiprocessing.connection import Client, Connection
from typing import Any

import cocotb
from cocotb.triggers import Timer

from fpga.cosim import _protocol as P

Wire = tuple[str, bool, "int | None"]


def _reader(handle: Any, signed: bool, length: int | None) -> Any:
    """A function returning the handle's current value as raw int(s), or a string when some
    bits are not 0/1."""

    def scalar(h: Any) -> Any:
        v = h.value
        if not v.is_resolvable:
            return str(v)
        if signed:
            return v.to_signed()
        return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)

    if length is None:
        return lambda: scalar(handle)
    elems = [handle[i] for i in _indices(handle, length)]

    def read_array() -> Any:
        values = [scalar(e) for e in elems]
        return values if not any(isinstance(x, str) for x in values) else " ".join(map(str, values))

    return read_array


def _indices(handle: Any, length: int) -> list[int]:
    rng = getattr(handle, "range", None)
    if rng is not None:
        return list(rng)[:length]
    return list(range(length))


def _writer(handle: Any, length: int | None) -> Any:
    if length is None:

        def write(v: int) -> None:
            handle.value = v

        return write
    elems = [handle[i] for i in _indices(handle, length)]

    def write_array(values: list[int]) -> None:
        for e, v in zip(elems, values, strict=True):
            e.value = v

    return write_array


def _port(dut: Any, name: str) -> Any:
    try:
        return getattr(dut, name)
    except AttributeError:
        raise AttributeError(
            f"the top-level entity has no port {name!r}; expected one port <bus>_<signal> per "
            "top-level bus signal"
        ) from None


@cocotb.test()
async def lockstep(dut: Any) -> None:
    """Drive the DUT and compare it with the Python model, tick by tick."""
    address, key = P.decode_address(os.environ[P.ENV_VAR])
    conn: Connection = Client(address, authkey=key)
    try:
        await _run(dut, conn)
    except AssertionError:
        raise
    except BaseException as exc:
        conn.send((P.ERROR, "".join(traceback.format_exception(exc)).rstrip()))
        raise
    finally:
        conn.close()


async def _run(dut: Any, conn: Connection) -> None:
    tag, in_wires, out_wires, reset_inputs, reset_expected, half_ps = conn.recv()
    assert tag == P.SETUP, tag
    clk, rst = _port(dut, "clk"), _port(dut, "rst")
    writers = [_writer(_port(dut, n), length) for n, _, length in in_wires]
    readers = [_reader(_port(dut, n), signed, length) for n, signed, length in out_wires]
    names = [n for n, _, _ in out_wires]
    def half() -> Timer:
        return Timer(half_ps, unit="ps")

    # Reset: one rising edge with rst high and the inputs at their initial values.
    rst.value = 1
    clk.value = 0
    for write, v in zip(writers, reset_inputs, strict=True):
        if v is not None:
            write(v)
    await half()
    clk.value = 1
    await half()
    rst.value = 0
    _compare(conn, P.RESET_TICK, readers, names, reset_expected)

    tick = 0
    while True:
        conn.send((P.NEXT,))
        msg = conn.recv()
        if msg[0] == P.END:
            break
        if msg[0] == P.ABORT:
            raise AssertionError(f"the Python model stopped the co-simulation: {msg[1]}")
        _, first, rows = msg
        assert first == tick, (first, tick)
        for inputs, expected in rows:
            clk.value = 0
            for write, v in zip(writers, inputs, strict=True):
                if v is not None:
                    write(v)
            await half()
            clk.value = 1
            await half()
            _compare(conn, tick, readers, names, expected)
            tick += 1
    clk.value = 0
    await half()
    conn.send((P.DONE, tick))


def _compare(
    conn: Connection, tick: int, readers: list[Any], names: list[str], expected: list[Any]
) -> None:
    for i, (read, want) in enumerate(zip(readers, expected, strict=True)):
        if want is None:
            continue
        got = read()
        if got != want:
            conn.send((P.MISMATCH, tick, i, got))
            when = f"at tick {tick + 1} (trace row; 0 is the reset state)"
            raise AssertionError(
                f"lock-step mismatch {when}: port {names[i]} is {got!r}, the Python model has "
                f"{want!r} (raw values)"
            )
