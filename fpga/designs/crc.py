"""CRC-32 (IEEE 802.3, the CRC of zlib and Ethernet) as the firmware computes it: four
bytes per step with four 256-entry tables ("slicing-by-4"), so a word of K 16-bit lanes
takes K/2 table steps instead of 2K bit-serial ones."""

from __future__ import annotations

POLY = 0xEDB88320
"""The reflected CRC-32 polynomial."""
INIT = 0xFFFFFFFF
XOR_OUT = 0xFFFFFFFF


def _tables() -> tuple[tuple[int, ...], ...]:
    t0 = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(3):
        prev = tables[-1]
        tables.append([(prev[i] >> 8) ^ t0[prev[i] & 0xFF] for i in range(256)])
    return tuple(tuple(t) for t in tables)


CRC_T0, CRC_T1, CRC_T2, CRC_T3 = _tables()
"""``CRC_Tk[b]``: the CRC contribution of byte value b followed by k zero bytes."""


def crc32_step(crc: int, word32: int) -> int:
    """One slicing-by-4 step: the running (non-inverted) CRC after four more bytes given as
    a little-endian 32-bit word. ``Packetiser`` calls it in its process body (inlined, and
    exported to VHDL as a function of the constant tables)."""
    c = crc ^ word32
    return (CRC_T3[c & 0xFF] ^ CRC_T2[(c >> 8) & 0xFF] ^ CRC_T1[(c >> 16) & 0xFF]
            ^ CRC_T0[c >> 24])
