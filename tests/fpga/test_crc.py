"""The firmware's CRC-32 steps (``fpga.designs.crc``) against zlib's CRC-32, and as the
compiled backend runs them (constant tables in their narrowest dtype)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from fpga.designs.crc import INIT, XOR_OUT, crc32_step, crc32_step16


def _words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sixteen_and_four_byte_steps_give_zlibs_crc(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, 16 * 7 + 4 * 3, dtype=np.uint8).tobytes()
    data = b"\xff" * 16 + data  # the bytes whose lookups reach every table's last entry
    words = _words(data)
    crc = INIT
    for k in range(0, 4 * (len(words) // 4), 4):
        crc = crc32_step16(crc, *words[k:k + 4])
    for w in words[4 * (len(words) // 4):]:
        crc = crc32_step(crc, w)
    assert crc ^ XOR_OUT == zlib.crc32(data)
    four = INIT
    for w in words:
        four = crc32_step(four, w)
    assert four == crc


def test_the_compiled_packetiser_keeps_its_crc_tables_in_32_bits() -> None:
    """The sixteen CRC tables are 32-bit words, in one module-level array (one base
    address, each table a displacement), each read at its own offset."""
    from fpga.designs.chain import build
    from fpga.designs.crc import _tables
    from fpga.designs.params import ChainParams
    from sme.compiled.codegen import generate

    source = generate(build(ChainParams(16, 64, 16, binning=False))).source
    (line,) = [ln for ln in source.splitlines() if ln.startswith("_TABLES_uint32 = ")]
    namespace = {"np": np}
    exec(line, namespace)
    words = namespace["_TABLES_uint32"]
    assert words.dtype == np.uint32 and len(words) == 16 * 256
    for k, table in enumerate(_tables(16)):  # every table once, 256 words each
        start = next(i for i in range(0, len(words), 256)
                     if np.array_equal(words[i:i + 256], table))
        assert f"_TABLES_uint32[np.uint64({start} + " in source or start == 0, k
    assert "np.int64(_TABLES_uint32[" in source  # read as int64: no uint64 arithmetic
