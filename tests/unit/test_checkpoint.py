"""Signed checkpoints: C2SP form, Ed25519 signature, and every way a note can be wrong."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.ledger.domain.integrity.checkpoint import (
    Checkpoint,
    CheckpointError,
    VerifierKey,
    sign_checkpoint,
    verify_signed_note,
)

ORIGIN = "custody.example/ledger"
ROOT = bytes(range(32))


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_note_has_the_c2sp_shape_and_verifies(key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), ORIGIN, key)
    lines = note.split("\n")
    assert lines[:4] == [ORIGIN, "42", base64.b64encode(ROOT).decode(), ""]
    assert lines[4].startswith(f"\u2014 {ORIGIN} ")
    verifier = VerifierKey(ORIGIN, key.public_key())
    assert verify_signed_note(note, VerifierKey.parse(str(verifier))) == Checkpoint(
        ORIGIN, 42, ROOT
    )


def test_a_changed_size_root_or_origin_fails(key: Ed25519PrivateKey) -> None:
    verifier = VerifierKey(ORIGIN, key.public_key())
    note = sign_checkpoint(Checkpoint(ORIGIN, 42, ROOT), ORIGIN, key)
    for tampered in (
        note.replace("\n42\n", "\n43\n"),
        note.replace(base64.b64encode(ROOT).decode(), base64.b64encode(bytes(32)).decode()),
    ):
        with pytest.raises(CheckpointError, match="does not verify"):
            verify_signed_note(tampered, verifier)


def test_another_key_is_refused(key: Ed25519PrivateKey) -> None:
    note = sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), ORIGIN, key)
    stranger = VerifierKey(ORIGIN, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(CheckpointError, match="no signature by key"):
        verify_signed_note(note, stranger)


def test_a_verifier_key_with_a_wrong_hash_is_refused(key: Ed25519PrivateKey) -> None:
    text = str(VerifierKey(ORIGIN, key.public_key()))
    name, _, rest = text.split("+", 2)[0], None, text.split("+", 2)[2]
    with pytest.raises(CheckpointError, match="hash does not match"):
        VerifierKey.parse(f"{name}+00000000+{rest}")


def test_verifier_keys_round_trip_whatever_their_base64_holds() -> None:
    for _ in range(64):  # base64 of a random key often contains '+', the field separator
        verifier = VerifierKey(ORIGIN, Ed25519PrivateKey.generate().public_key())
        parsed = VerifierKey.parse(str(verifier))
        assert str(parsed) == str(verifier)
