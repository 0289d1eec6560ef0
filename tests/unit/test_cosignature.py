"""Witness cosignatures and tlog-policy quorums (pure)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.ledger.domain.integrity.checkpoint import (
    Checkpoint,
    CheckpointError,
    VerifierKey,
    sign_checkpoint,
)
from services.ledger.domain.integrity.cosignature import (
    WitnessKey,
    cosign,
    cosigned_by,
    note_body,
    parse_policy,
    verify_cosignature,
)

ORIGIN = "custody.test/log"
LOG_KEY = Ed25519PrivateKey.generate()
LOG = VerifierKey(ORIGIN, LOG_KEY.public_key())
WITNESS_KEYS = {name: Ed25519PrivateKey.generate() for name in ("w.example/a", "w.example/b")}
WITNESSES = {name: WitnessKey(name, key.public_key()) for name, key in WITNESS_KEYS.items()}
NOTE = sign_checkpoint(Checkpoint(ORIGIN, 7, bytes(range(32))), ORIGIN, LOG_KEY)


def cosigned(*names: str) -> str:
    body = note_body(NOTE)
    lines = [cosign(body, WITNESSES[name], WITNESS_KEYS[name], 1_700_000_000) for name in names]
    return NOTE + "".join(line + "\n" for line in lines)


def policy(quorum_lines: str) -> str:
    a, b = WITNESSES["w.example/a"], WITNESSES["w.example/b"]
    return f"# test\nlog {LOG}\n\nwitness A {a} http://a\nwitness B {b}\n{quorum_lines}\n"


def test_a_cosignature_round_trips_and_binds_key_time_and_body() -> None:
    key = WITNESSES["w.example/a"]
    line = cosigned("w.example/a").rstrip("\n").split("\n")[-1]
    assert verify_cosignature(note_body(NOTE), line, key) == 1_700_000_000
    assert str(WitnessKey.parse(str(key))) == str(key)
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_cosignature(note_body(NOTE).replace("\n7\n", "\n8\n"), line, key)
    with pytest.raises(CheckpointError, match="not a cosignature of this key"):
        verify_cosignature(note_body(NOTE), line, WitnessKey(key.name, LOG_KEY.public_key()))
    assert cosigned_by(NOTE, key) is None


def test_a_log_key_is_not_a_witness_key() -> None:
    with pytest.raises(CheckpointError, match="not an Ed25519 key of type 0x04"):
        WitnessKey.parse(str(LOG))


@pytest.mark.parametrize(
    ("quorum", "names", "met"),
    [
        ("quorum none", (), True),
        ("quorum A", ("w.example/a",), True),
        ("quorum A", ("w.example/b",), False),
        ("group G any A B\nquorum G", ("w.example/b",), True),
        ("group G all A B\nquorum G", ("w.example/b",), False),
        ("group G all A B\nquorum G", ("w.example/a", "w.example/b"), True),
        ("group G 2 A B\ngroup H any G\nquorum H", ("w.example/a",), False),
    ],
)
def test_the_quorum_is_evaluated_as_the_policy_says(
    quorum: str, names: tuple[str, ...], met: bool
) -> None:
    rules = parse_policy(policy(quorum))
    if met:
        checkpoint, found = rules.verify(cosigned(*names))
        assert checkpoint.tree_size == 7
        assert len(found) == len(names)
    else:
        with pytest.raises(CheckpointError, match="lacks the policy's quorum"):
            rules.verify(cosigned(*names))


def test_a_checkpoint_signed_by_no_listed_log_is_refused() -> None:
    stranger = Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, bytes(32)), ORIGIN, stranger)
    with pytest.raises(CheckpointError, match="signed by no log of the policy"):
        parse_policy(policy("quorum none")).verify(note)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("log x\nquorum none", "not a verifier key"),
        (policy("quorum C"), "quorum 'C' is not defined above"),
        (policy("group G 3 A B\nquorum G"), "threshold must be all, any or 1..2"),
        (policy("group G any A A\nquorum G"), "members must be distinct"),
        (policy("quorum A\nquorum B"), "exactly one quorum line"),
        (policy("witness A x\nquorum A"), "defined twice"),
        (f"log {LOG}\n", "no quorum line"),
        (policy("frobnicate\nquorum none"), "policy line 6: not a log, witness, group"),
    ],
)
def test_malformed_policies_are_refused_by_line(text: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_policy(text)
