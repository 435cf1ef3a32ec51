"""SME C#'s AES256CBC example ported (``sme/examples/aes256cbc.py``) encrypts as the
standards say: FIPS-197 Appendix C.3's AES-256 block, NIST SP 800-38A's CBC-AES256
vectors (F.2.5, the C# tester's run) and the ``cryptography`` package's AES-256-CBC on
random data — in the interpreter, the compiled backend and, tick for tick, GHDL."""

from __future__ import annotations

import random
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fpga.pytest_plugin import HardwareTester
from sme import Simulator, Trace
from sme.examples import aes256cbc as aes

FIPS197_C3 = ("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
              "00112233445566778899aabbccddeeff", "8ea2b7ca516745bfeafc49904b496089")
"""FIPS-197 Appendix C.3 (AES-256): key, plaintext, ciphertext."""
SP800_38A_F25 = ("f58c4c04d6e5f1ba779eabfb5f7bfbd6", "9cfc4e967edb808d679f777bc6702c7d",
                 "39f23369a9d9bacfa530e26304231461", "b2eb05e2c39be9fcda6c19078c6a9d1b")
"""NIST SP 800-38A F.2.5 CBC-AES256.Encrypt: the ciphertexts of its four blocks."""


def _ciphertexts(trace: Trace) -> list[str]:
    ready, d0, d1 = (trace.column(f"aes_out.{s}")[1:] for s in ("data_ready", "data0", "data1"))
    return [f"{a:016x}{b:016x}" for r, a, b in zip(ready, d0, d1, strict=True) if r]


def _library_cbc(key: bytes, iv: bytes, blocks: list[bytes]) -> list[str]:
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    data = enc.update(b"".join(blocks)) + enc.finalize()
    return [data[i:i + 16].hex() for i in range(0, len(data), 16)]


def _mixed_stimulus() -> tuple[list[dict[str, Any]], list[str]]:
    """FIPS-197's block (CBC with a zero IV is the bare cipher), a key reload with
    SP 800-38A's key and blocks, then a third key on random blocks; and what a
    standard's table or the ``cryptography`` package says each ciphertext is."""
    key, plain, cipher = (bytes.fromhex(h) for h in FIPS197_C3)
    stim = list(aes.cbc_stimulus(key, bytes(16), [plain]))
    expected = [cipher.hex()]
    stim += list(aes.cbc_stimulus(aes.SP800_38A_KEY, aes.SP800_38A_IV,
                                  list(aes.SP800_38A_PLAINTEXT)))[1:]
    expected += list(SP800_38A_F25)
    rng = random.Random(256)
    key, iv = rng.randbytes(32), rng.randbytes(16)
    blocks = [rng.randbytes(16) for _ in range(5)] + [bytes(16), b"\xff" * 16]
    stim += list(aes.cbc_stimulus(key, iv, blocks))[1:]
    expected += _library_cbc(key, iv, blocks)
    return stim, expected


def test_the_tables_are_the_standards() -> None:
    """Spot checks against FIPS-197 Figure 7 (S-box) and 5.2 (Rcon)."""
    assert (aes.SBOX[0x00], aes.SBOX[0x01], aes.SBOX[0x53], aes.SBOX[0xFF]) == (
        0x63, 0x7C, 0xED, 0x16)
    assert sorted(aes.SBOX) == list(range(256))
    assert aes.RCON == (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1B, 0x36)


@pytest.mark.parametrize("backend", ["interp", "compiled"])
def test_cbc_aes256_equals_sp800_38a(backend: str) -> None:
    trace = Simulator(aes.build(), backend=backend).run(stimulus=list(aes.stimulus()))
    assert trace is not None
    assert _ciphertexts(trace) == list(SP800_38A_F25)
    # one block a tick, each ready on the tick after its plaintext (ticks 2..5)
    assert [t for t, r in enumerate(trace.column("aes_out.data_ready")) if r] == [3, 4, 5, 6]


@pytest.mark.ghdl
def test_fips197_sp800_38a_and_library_in_every_backend(sme_hw: HardwareTester) -> None:
    stimulus, expected = _mixed_stimulus()
    trace = sme_hw.all_backends(aes.build(), stimulus)  # interp = compiled = GHDL
    assert _ciphertexts(trace) == expected
