"""The checkpoint signing key on disk: PKCS#8 PEM (mode 0600) plus ``.pub`` verifier key."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from services.ledger.domain.integrity.checkpoint import CheckpointError, VerifierKey


def verifier_path(key_file: Path) -> Path:
    return key_file.with_suffix(key_file.suffix + ".pub")


def create_key(key_file: Path, name: str, *, force: bool = False) -> VerifierKey:
    if key_file.exists() and not force:
        raise FileExistsError(f"{key_file} exists; pass --force to replace it")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    key_file.chmod(0o600)
    verifier = VerifierKey(name, private_key.public_key())
    verifier_path(key_file).write_text(f"{verifier}\n")
    return verifier


def load_private_key(key_file: Path) -> Ed25519PrivateKey:
    try:
        key = load_pem_private_key(key_file.read_bytes(), password=None)
    except FileNotFoundError as error:
        raise CheckpointError(
            f"no signing key at {key_file}: create one with `custody keys init`"
        ) from error
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointError(f"{key_file} is not an Ed25519 private key")
    return key


def load_verifier(path: Path) -> VerifierKey:
    """A verifier key from a ``.pub`` file (or any file holding the key string)."""
    try:
        return VerifierKey.parse(path.read_text())
    except FileNotFoundError as error:
        raise CheckpointError(f"no verifier key at {path}") from error
