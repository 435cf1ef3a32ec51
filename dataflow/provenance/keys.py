"""Ed25519 keys and record signatures: key files, ``key_id``, signing and checking.

A record is signed over its canonical JSON without its ``"signature"`` entry
(``canonical_json``: sorted keys, no whitespace, UTF-8, no NaN). The public key travels
in the signature block; ``key_id`` is the SHA-256 of its 32 raw bytes. A valid signature
proves the record is unchanged since the key holder signed it; that the key is the
beamline's is what a list of trusted keys adds (``verify_run(trusted_keys=...)``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import KeyFileError

ALGORITHM = "ed25519"
"""The signature algorithm named in every signature block."""


def canonical_json(obj: Any) -> bytes:
    """The bytes that are signed: JSON with sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """Hex SHA-256 of the raw public key: a short name for a key."""
    return hashlib.sha256(public_key_bytes(key)).hexdigest()


def public_key_path(private_path: str | os.PathLike[str]) -> Path:
    """Where ``generate_key`` puts the public key: ``<private key file>.pub``."""
    p = Path(private_path)
    return p.with_name(p.name + ".pub")


def generate_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Create an Ed25519 signing key: private PEM at ``path`` (mode 0600), public at ``.pub``.

    Never overwrites: a signing key that is replaced can no longer vouch for the records
    it signed, so an existing file is an error.

    Raises
    ------
    KeyFileError
        When either file exists or the folder is missing.
    """
    private_path = Path(path)
    pub_path = public_key_path(private_path)
    for p in (private_path, pub_path):
        if p.exists() or p.is_symlink():
            raise KeyFileError(f"{p}: file exists; refusing to overwrite a key (choose "
                               "another name or remove it yourself)")
    if not private_path.parent.is_dir():
        raise KeyFileError(f"{private_path}: folder {private_path.parent} does not exist")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public = key.public_key()
    pub_pem = public.public_bytes(serialization.Encoding.PEM,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        _write_new(private_path, pem, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{private_path}: file exists; refusing to overwrite a key") \
            from None
    try:
        _write_new(pub_path, pub_pem, 0o644)
    except OSError as exc:
        private_path.unlink(missing_ok=True)  # no half-made key pair
        raise KeyFileError(f"{pub_path}: cannot write the public key: {exc}") from None
    return public


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a file that must not exist yet, created with ``mode``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _key_kind(key: object) -> str:
    """``"an RSA key"``-style name of a key that is not the expected Ed25519 one."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, x448, x25519

    kinds: list[tuple[tuple[type, ...], str]] = [
        ((rsa.RSAPrivateKey, rsa.RSAPublicKey), "an RSA key"),
        ((ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey), "an EC key"),
        ((dsa.DSAPrivateKey, dsa.DSAPublicKey), "a DSA key"),
        ((ed448.Ed448PrivateKey, ed448.Ed448PublicKey), "an Ed448 key"),
        ((x25519.X25519PrivateKey, x25519.X25519PublicKey, x448.X448PrivateKey,
          x448.X448PublicKey), "a key-exchange (X25519/X448) key")]
    for classes, name in kinds:
        if isinstance(key, classes):
            return name
    return f"a {type(key).__name__}"


def _read_key_file(path: str | os.PathLike[str], what: str) -> bytes:
    p = Path(path)
    if not p.exists():
        raise KeyFileError(f"{p}: no such {what} file")
    if not p.is_file():
        raise KeyFileError(f"{p}: not a file ({what} expected)")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The Ed25519 signing key in a PEM file made by ``generate_key``.

    Raises
    ------
    KeyFileError
        Missing file, readable by group or others (it must be 0600 or stricter, as ssh
        insists), encrypted, not PEM, or not an Ed25519 private key.
    """
    p = Path(path)
    data = _read_key_file(p, "private key")
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"{p}: permissions {mode:04o} are too open for a private key; "
                           f"run chmod 600 {p}")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError(f"{p}: the private key is encrypted; smeflow needs an "
                           "unencrypted PEM key (protect it with file permissions)") from None
    except (ValueError, UnsupportedAlgorithm):
        hint = " (this is a public key)" if b"PUBLIC KEY" in data else ""
        raise KeyFileError(f"{p}: not a PEM private key{hint}; create one with "
                           "'smeflow catalog keygen PATH'") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{p}: {_key_kind(key)}, expected an Ed25519 private key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file (the ``.pub`` written by ``generate_key``).

    Raises
    ------
    KeyFileError
        Missing file, a private key, not PEM, or not Ed25519.
    """
    p = Path(path)
    data = _read_key_file(p, "public key")
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"{p}: holds a private key; give the public key "
                           f"({public_key_path(p).name}) and keep the private one secret")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(f"{p}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{p}: {_key_kind(key)}, expected an Ed25519 public key")
    return key


SIGNING_KEYS_DIR = "signing-keys"
"""Sub-folder of a record folder listing the public keys its records are signed with."""


def register_signing_key(record_dir: str | os.PathLike[str], key: Ed25519PrivateKey) -> Path:
    """Note in ``<record_dir>/signing-keys/`` that records there are signed by ``key``
    (its public key, named by its id): from then on ``verify`` refuses an unsigned record
    of that folder — a signature stripped from a record no longer passes as unsigned."""
    public = key.public_key()
    folder = Path(record_dir) / SIGNING_KEYS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key_id(public)[:16]}.pem"
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            _write_new(path, public.public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo),
                       0o644)
    return path


def registered_signing_keys(record_dir: str | os.PathLike[str]) -> list[Ed25519PublicKey]:
    """The public keys ``register_signing_key`` noted for ``record_dir`` (unreadable files
    are skipped: they only make the folder require signatures, which it does anyway)."""
    folder = Path(record_dir) / SIGNING_KEYS_DIR
    keys: list[Ed25519PublicKey] = []
    for path in sorted(folder.glob("*.pem")) if folder.is_dir() else []:
        with contextlib.suppress(KeyFileError):
            keys.append(load_public_key(path))
    return keys


def _unsigned(record: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a record that is signed: all of it but its ``"signature"``."""
    return {k: v for k, v in record.items() if k != "signature"}


def sign_record(record: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``record`` with a ``"signature"`` over its canonical JSON."""
    body = _unsigned(record)
    public = key.public_key()
    return {**body, "signature": {
        "algorithm": ALGORITHM, "public_key": public_key_bytes(public).hex(),
        "key_id": key_id(public), "value": key.sign(canonical_json(body)).hex()}}


@dataclass(frozen=True)
class SignatureState:
    """What the signature of a record says: ``valid`` and the key that made it."""

    signed: bool
    valid: bool
    key: Ed25519PublicKey | None
    reason: str


def check_signature(record: Mapping[str, Any]) -> SignatureState:
    """Verify the Ed25519 signature of a record against the public key it carries."""
    sig = record.get("signature")
    if sig is None:
        return SignatureState(False, False, None, "record is unsigned")
    if not isinstance(sig, Mapping):
        return SignatureState(True, False, None, "malformed signature block")
    if sig.get("algorithm") != ALGORITHM:
        return SignatureState(True, False, None,
                              f"unknown algorithm {sig.get('algorithm')!r}")
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(sig.get("public_key"))))
        value = bytes.fromhex(str(sig.get("value")))
    except ValueError:
        return SignatureState(True, False, None, "malformed public key or signature")
    if sig.get("key_id") != key_id(key):
        return SignatureState(True, False, key, "key_id does not match the public key")
    try:
        key.verify(value, canonical_json(_unsigned(record)))
    except InvalidSignature:
        return SignatureState(True, False, key,
                              "signature does not match the record (record changed "
                              "since it was signed)")
    except ValueError as exc:  # NaN or similar in a tampered record
        return SignatureState(True, False, key, f"record cannot be serialised: {exc}")
    return SignatureState(True, True, key, "signature valid")
