"""CRC-32 (IEEE 802.3, the CRC of zlib and Ethernet) as the firmware computes it, with
tables of 256 entries: sixteen bytes per step ("slicing-by-16", :func:`crc32_step16`), a
leftover four bytes by the four-table step (:func:`crc32_step`). A word of K 16-bit lanes
takes K/8 sixteen-byte steps (and a four-byte step per two lanes left over).

In a sixteen-byte step only four lookups depend on the running CRC (those of its first
four bytes XOR the CRC); the other twelve depend on the data alone. The path from one
step's CRC to the next is therefore one lookup and an XOR tree, however many bytes a word
has: in hardware a short combinational path, in the simulation a short dependency chain
(sixteen 4-byte steps chained one after the other were a long one)."""

from __future__ import annotations

POLY = 0xEDB88320
"""The reflected CRC-32 polynomial."""
INIT = 0xFFFFFFFF
XOR_OUT = 0xFFFFFFFF


def _tables(count: int) -> tuple[tuple[int, ...], ...]:
    t0 = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(count - 1):
        prev = tables[-1]
        tables.append([(prev[i] >> 8) ^ t0[prev[i] & 0xFF] for i in range(256)])
    return tuple(tuple(t) for t in tables)


(CRC_T0, CRC_T1, CRC_T2, CRC_T3, CRC_T4, CRC_T5, CRC_T6, CRC_T7, CRC_T8, CRC_T9, CRC_T10,
 CRC_T11, CRC_T12, CRC_T13, CRC_T14, CRC_T15) = _tables(16)
"""``CRC_Tk[b]``: the CRC contribution of byte value b followed by k zero bytes."""


def crc32_step(crc: int, word32: int) -> int:
    """One slicing-by-4 step: the running (non-inverted) CRC after four more bytes given as
    a little-endian 32-bit word. ``Packetiser`` calls it in its process body (inlined, and
    exported to VHDL as a function of the constant tables)."""
    c = crc ^ word32
    return ((CRC_T3[c & 0xFF] ^ CRC_T2[(c >> 8) & 0xFF])
            ^ (CRC_T1[(c >> 16) & 0xFF] ^ CRC_T0[c >> 24]))


def crc32_step16(crc: int, w0: int, w1: int, w2: int, w3: int) -> int:
    """One slicing-by-16 step: the running CRC after sixteen more bytes, given as four
    little-endian 32-bit words (``w0`` first). Only ``w0``'s lookups depend on ``crc``."""
    c = crc ^ w0
    a = ((CRC_T15[c & 0xFF] ^ CRC_T14[(c >> 8) & 0xFF])
         ^ (CRC_T13[(c >> 16) & 0xFF] ^ CRC_T12[c >> 24]))
    b = ((CRC_T11[w1 & 0xFF] ^ CRC_T10[(w1 >> 8) & 0xFF])
         ^ (CRC_T9[(w1 >> 16) & 0xFF] ^ CRC_T8[w1 >> 24]))
    d = ((CRC_T7[w2 & 0xFF] ^ CRC_T6[(w2 >> 8) & 0xFF])
         ^ (CRC_T5[(w2 >> 16) & 0xFF] ^ CRC_T4[w2 >> 24]))
    e = ((CRC_T3[w3 & 0xFF] ^ CRC_T2[(w3 >> 8) & 0xFF])
         ^ (CRC_T1[(w3 >> 16) & 0xFF] ^ CRC_T0[w3 >> 24]))
    return (a ^ b) ^ (d ^ e)
