"""SME C#'s AES256CBC example: AES-256 encryption in CBC mode, one block per tick.

``AesCore`` reads ``AesInput``: on a tick where ``load_key`` is set, the 256-bit key
(``key0`` .. ``key3``, most significant 64 bits first) is expanded into the 60 round-key
words and ``data0``/``data1`` become the initialisation vector; on a tick where
``data_ready`` is set instead, the 128-bit block ``data0``/``data1`` is XORed with the
chaining value (the IV, then the previous ciphertext), encrypted with the 14 rounds of
AES-256, and put on ``AesOutput`` with ``data_ready`` set one tick later (the next block's
chaining value is that ciphertext). Bytes are packed big-endian, as FIPS-197 writes them:
``data0`` holds bytes 0..7 of the block.

The rounds use the usual 32-bit "T-table" formulation (SubBytes, ShiftRows and
MixColumns folded into four 256-word tables); the tables and the S-box are module
constants computed here from the definition in FIPS-197 (the multiplicative inverse in
GF(2^8) followed by the affine map), so they become constant ROMs in the VHDL.

    smeflow vhdl sme.examples.aes256cbc:build -o out/aes \\
        --stimulus sme.examples.aes256cbc:stimulus --run
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sme import Array, Bool, Bus, In, Network, Out, Process, UInt

ROUNDS = 14
"""AES-256 has 14 rounds."""
KEY_WORDS = 8
"""Nk: the key is eight 32-bit words."""
EXPANDED_WORDS = 4 * (ROUNDS + 1)
"""60 round-key words."""


def _xtime(b: int) -> int:
    """Multiplication by x (2) in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1."""
    b <<= 1
    return (b ^ 0x11B) if b & 0x100 else b


def _gmul(a: int, b: int) -> int:
    p = 0
    while b:
        if b & 1:
            p ^= a
        a, b = _xtime(a), b >> 1
    return p


def _sbox() -> tuple[int, ...]:
    """FIPS-197 5.1.1: inverse in GF(2^8) (0 maps to 0), then the affine transformation."""
    inverse = [0] * 256
    for a in range(1, 256):
        inverse[a] = next(b for b in range(1, 256) if _gmul(a, b) == 1)
    table = []
    for a in range(256):
        x = inverse[a]
        s = x
        for shift in range(1, 5):
            s ^= ((x << shift) | (x >> (8 - shift))) & 0xFF
        table.append(s ^ 0x63)
    return tuple(table)


SBOX = _sbox()
"""The AES S-box (SubBytes of one byte)."""
RCON = tuple(1 << i if i < 8 else (0x1B, 0x36)[i - 8] for i in range(10))
"""Round constants x^(i) of the key expansion (bytes, for rounds 1..10)."""


def _t_table(rotate: int) -> tuple[int, ...]:
    """SubBytes + MixColumns of one byte as a column word, rotated right by ``rotate`` bytes."""
    words = []
    for a in range(256):
        s = SBOX[a]
        w = (_gmul(s, 2) << 24) | (s << 16) | (s << 8) | _gmul(s, 3)
        words.append(((w >> (8 * rotate)) | (w << (32 - 8 * rotate))) & 0xFFFFFFFF)
    return tuple(words)


T0, T1, T2, T3 = (_t_table(r) for r in range(4))


class AesInput(Bus):
    """A key (and IV) to load, or a block to encrypt."""

    load_key: Bool = False
    data_ready: Bool = False
    key0: UInt[64] = 0
    key1: UInt[64] = 0
    key2: UInt[64] = 0
    key3: UInt[64] = 0
    data0: UInt[64] = 0
    data1: UInt[64] = 0


class AesOutput(Bus):
    """A ciphertext block, ``data_ready`` for the one tick after its plaintext."""

    data_ready: Bool = False
    data0: UInt[64] = 0
    data1: UInt[64] = 0


def sub_word(w: int) -> int:
    """SubBytes of each byte of a 32-bit word."""
    return ((SBOX[w >> 24] << 24) | (SBOX[(w >> 16) & 0xFF] << 16)
            | (SBOX[(w >> 8) & 0xFF] << 8) | SBOX[w & 0xFF])


def round_word(a: int, b: int, c: int, d: int, k: int) -> int:
    """One column of a middle round: the first byte of column ``a``, the second of ``b``..."""
    return T0[a >> 24] ^ T1[(b >> 16) & 0xFF] ^ T2[(c >> 8) & 0xFF] ^ T3[d & 0xFF] ^ k


def last_word(a: int, b: int, c: int, d: int, k: int) -> int:
    """One column of the final round (no MixColumns)."""
    return ((SBOX[a >> 24] << 24) | (SBOX[(b >> 16) & 0xFF] << 16)
            | (SBOX[(c >> 8) & 0xFF] << 8) | SBOX[d & 0xFF]) ^ k


class AesCore(Process):
    """Key expansion in the load tick; the whole cipher of one block in each data tick."""

    input: In[AesInput]
    output: Out[AesOutput]
    ekey: Array[UInt[32], EXPANDED_WORDS] = [0] * EXPANDED_WORDS
    iv0: UInt[64] = 0
    iv1: UInt[64] = 0

    def on_tick(self) -> None:
        self.output.data0 = self.output.data1 = 0  # no latching of old values
        self.output.data_ready = False
        if self.input.load_key:
            self.ekey[0] = self.input.key0 >> 32
            self.ekey[1] = self.input.key0 & 0xFFFFFFFF
            self.ekey[2] = self.input.key1 >> 32
            self.ekey[3] = self.input.key1 & 0xFFFFFFFF
            self.ekey[4] = self.input.key2 >> 32
            self.ekey[5] = self.input.key2 & 0xFFFFFFFF
            self.ekey[6] = self.input.key3 >> 32
            self.ekey[7] = self.input.key3 & 0xFFFFFFFF
            for i in range(KEY_WORDS, EXPANDED_WORDS):
                temp: UInt[32] = self.ekey[i - 1]
                if i % KEY_WORDS == 0:
                    rotated = ((temp << 8) & 0xFFFFFFFF) | (temp >> 24)
                    temp = sub_word(rotated) ^ (RCON[i // KEY_WORDS - 1] << 24)
                elif i % KEY_WORDS == 4:
                    temp = sub_word(temp)
                self.ekey[i] = self.ekey[i - KEY_WORDS] ^ temp
            self.iv0 = self.input.data0
            self.iv1 = self.input.data1
        elif self.input.data_ready:
            block0 = self.input.data0 ^ self.iv0  # CBC: chain with the previous block
            block1 = self.input.data1 ^ self.iv1
            a0: UInt[32] = (block0 >> 32) ^ self.ekey[0]
            a1: UInt[32] = (block0 & 0xFFFFFFFF) ^ self.ekey[1]
            a2: UInt[32] = (block1 >> 32) ^ self.ekey[2]
            a3: UInt[32] = (block1 & 0xFFFFFFFF) ^ self.ekey[3]
            for r in range(1, ROUNDS):
                b0 = round_word(a0, a1, a2, a3, self.ekey[4 * r])
                b1 = round_word(a1, a2, a3, a0, self.ekey[4 * r + 1])
                b2 = round_word(a2, a3, a0, a1, self.ekey[4 * r + 2])
                b3 = round_word(a3, a0, a1, a2, self.ekey[4 * r + 3])
                a0 = b0
                a1 = b1
                a2 = b2
                a3 = b3
            k = 4 * ROUNDS
            c0 = last_word(a0, a1, a2, a3, self.ekey[k])
            c1 = last_word(a1, a2, a3, a0, self.ekey[k + 1])
            c2 = last_word(a2, a3, a0, a1, self.ekey[k + 2])
            c3 = last_word(a3, a0, a1, a2, self.ekey[k + 3])
            self.iv0 = (c0 << 32) | c1
            self.iv1 = (c2 << 32) | c3
            self.output.data0 = self.iv0
            self.output.data1 = self.iv1
            self.output.data_ready = True


def build() -> Network:
    """The input bus (top-level) → the core → the ciphertext bus."""
    return Network("aes256cbc", [AesCore(input=AesInput(name="aes_in"),
                                         output=AesOutput(name="aes_out"))])


def split(value: bytes, words: int) -> list[int]:
    """``value`` as big-endian 64-bit words."""
    return [int.from_bytes(value[8 * i:8 * i + 8], "big") for i in range(words)]


def cbc_stimulus(key: bytes, iv: bytes, blocks: Sequence[bytes]) -> Iterator[dict[str, Any]]:
    """As the C# tester: an idle tick, the key and IV, then one block per tick, then idle."""
    idle = {"aes_in.load_key": False, "aes_in.data_ready": False}
    yield idle
    k, v = split(key, 4), split(iv, 2)
    yield {"aes_in.load_key": True, **{f"aes_in.key{i}": k[i] for i in range(4)},
           "aes_in.data0": v[0], "aes_in.data1": v[1]}
    for block in blocks:
        d = split(block, 2)
        yield {"aes_in.load_key": False, "aes_in.data_ready": True,
               "aes_in.data0": d[0], "aes_in.data1": d[1]}
    yield idle


SP800_38A_KEY = bytes.fromhex(
    "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
"""The AES-256 key of NIST SP 800-38A's examples (F.2.5 for CBC)."""
SP800_38A_IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
SP800_38A_PLAINTEXT = tuple(bytes.fromhex(h) for h in (
    "6bc1bee22e409f96e93d7e117393172a", "ae2d8a571e03ac9c9eb76fac45af8e51",
    "30c81c46a35ce411e5fbc1191a0a52ef", "f69f2445df4f9b17ad2b417be66c3710"))
"""The four plaintext blocks of SP 800-38A (the C# tester's reference vectors)."""


def stimulus() -> Iterator[dict[str, Any]]:
    """The C# tester's run: SP 800-38A's key, IV and four blocks."""
    return cbc_stimulus(SP800_38A_KEY, SP800_38A_IV, SP800_38A_PLAINTEXT)
