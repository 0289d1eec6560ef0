"""Signed checkpoints in the C2SP tlog-checkpoint form, as Ed25519 signed notes.

Body:   <origin>\\n<tree size>\\n<base64 root hash>\\n
Note:   body, a blank line, then ``— <key name> <base64(key hash ‖ signature)>`` lines.
Verifier keys are written ``<name>+<hex key hash>+<base64(0x01 ‖ public key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519_TYPE = b"\x01"
_SIGNATURE_PREFIX = "\u2014 "


class CheckpointError(ValueError):
    """A checkpoint or signed note that is malformed or whose signature does not verify."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes

    def body(self) -> str:
        root = base64.b64encode(self.root_hash).decode()
        return f"{self.origin}\n{self.tree_size}\n{root}\n"


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + raw_public(public_key)).digest()[
        :4
    ]


@dataclass(frozen=True, slots=True)
class VerifierKey:
    name: str
    public_key: Ed25519PublicKey

    @property
    def key_id(self) -> bytes:
        return key_hash(self.name, self.public_key)

    def __str__(self) -> str:
        encoded = base64.b64encode(ED25519_TYPE + raw_public(self.public_key)).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        name, public_key = parse_vkey(text, ED25519_TYPE, key_hash)
        return cls(name, public_key)


def parse_vkey(
    text: str, key_type: bytes, key_id: Callable[[str, Ed25519PublicKey], bytes]
) -> tuple[str, Ed25519PublicKey]:
    """A signed-note verifier key ``<name>+<hex key id>+<base64(type ‖ public key)>``."""
    try:
        name, hash_hex, encoded = text.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
        expected_id = bytes.fromhex(hash_hex)
    except (ValueError, binascii.Error) as error:
        raise CheckpointError(f"not a verifier key (name+hash+key): {text!r}") from error
    if len(raw) != 33 or raw[:1] != key_type:
        raise CheckpointError(
            f"verifier key {name} is not an Ed25519 key of type 0x{key_type.hex()}"
        )
    public_key = Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_id(name, public_key) != expected_id:
        raise CheckpointError(f"verifier key {name}: its hash does not match its name and key")
    return name, public_key


def sign_checkpoint(checkpoint: Checkpoint, name: str, private_key: Ed25519PrivateKey) -> str:
    body = checkpoint.body()
    signature = private_key.sign(body.encode())
    key_id = key_hash(name, private_key.public_key())
    line = base64.b64encode(key_id + signature).decode()
    return f"{body}\n{_SIGNATURE_PREFIX}{name} {line}\n"


def parse_checkpoint_body(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise CheckpointError("checkpoint body needs origin, size and root lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin:
        raise CheckpointError("checkpoint origin line is empty")
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointError(f"checkpoint tree size is not a decimal number: {size_text!r}")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as error:
        raise CheckpointError("checkpoint root hash is not base64") from error
    if len(root) != 32:
        raise CheckpointError("checkpoint root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root)


def verify_signed_note(note: str, verifier: VerifierKey) -> Checkpoint:
    """Check the note's signature by ``verifier``; returns the checkpoint it signs."""
    body, separator, signatures = note.partition("\n\n")
    if not separator:
        raise CheckpointError("signed note has no blank line before its signatures")
    body += "\n"
    matched = False
    for line in signatures.split("\n"):
        if not line:
            continue
        if not line.startswith(_SIGNATURE_PREFIX):
            raise CheckpointError(f"malformed signature line: {line!r}")
        name, _, encoded = line[len(_SIGNATURE_PREFIX) :].rpartition(" ")
        if name != verifier.name:
            continue
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise CheckpointError("signature is not base64") from error
        if len(raw) != 68 or raw[:4] != verifier.key_id:
            continue
        try:
            verifier.public_key.verify(raw[4:], body.encode())
        except InvalidSignature as error:
            raise CheckpointError(
                f"checkpoint signature by {verifier.name} does not verify"
            ) from error
        matched = True
    if not matched:
        raise CheckpointError(f"checkpoint carries no signature by key {verifier.name}")
    checkpoint = parse_checkpoint_body(body)
    if checkpoint.origin != verifier.name:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} is not the key's log {verifier.name!r}"
        )
    return checkpoint
