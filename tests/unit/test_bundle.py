"""Offline bundle verification (pure): every check fails on its own kind of tampering.

Format 2 is strict (unknown fields, duplicate keys, malformed hashes, wrong proof lengths are
refused by name); format 1 bundles keep verifying.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.contract import Envelope, Origin, OriginKind, parse_event
from services.contract.events import event_body
from services.ledger.domain.append import PendingEvent, plan_append
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.bundle import (
    BUNDLE_FORMAT_V1,
    MalformedBundle,
    build_bundle,
    load_json,
)
from services.ledger.domain.integrity.canonical import canonical_json
from services.ledger.domain.integrity.checkpoint import Checkpoint, VerifierKey, sign_checkpoint
from services.ledger.domain.integrity.hashing import entry_bytes
from services.ledger.domain.integrity.merkle import (
    consistency_proof,
    in_memory_source,
    inclusion_proof,
    root_hash,
)
from services.ledger.domain.integrity.tlog_proof import parse_tlog_proof
from services.ledger.domain.integrity.verification import (
    BundleError,
    VerificationError,
    verify_bundle,
    verify_tlog_proof,
)
from tests.support import events as ev

ORIGIN = "custody.test/ledger"
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
KEY = Ed25519PrivateKey.generate()
VERIFIER = VerifierKey(ORIGIN, KEY.public_key())


def ledger(events: list[dict[str, Any]]) -> list[RecordedEntry]:
    pending = []
    for offset, raw in enumerate(events):
        event = parse_event(raw)
        envelope = Envelope(
            event=event,
            received_at=NOW,
            origin=Origin(kind=OriginKind.DEVICE, party_id="site-a", device_id="d1"),
        )
        pending.append(PendingEvent(envelope, event_body(event), 0, offset))
    plan = plan_append(pending, recorded_bodies={}, next_seq=0, chain_heads={}, recorded_at=NOW)
    return plan.entries


A, B = "BX-BUNDLE-A", "BX-BUNDLE-B"
ENTRIES = ledger(
    [
        ev.dropoff(A),
        ev.dropoff(B),
        ev.sealed(A),
        ev.sealed(B),
        ev.transfer("pickup", A, 2, "site-a", "hauler-a", shipment_id="S1"),
        ev.dropoff("BX-BUNDLE-C"),
    ]
)
SIZE, SOURCE = in_memory_source(entry.entry_hash for entry in ENTRIES)


def note(size: int) -> str:
    _, source = in_memory_source(entry.entry_hash for entry in ENTRIES[:size])
    return sign_checkpoint(Checkpoint(ORIGIN, size, root_hash(size, source)), ORIGIN, KEY)


def bundle_of(
    container: str, trusted: int | None = None, version: str | None = None
) -> dict[str, Any]:
    mine = [entry for entry in ENTRIES if entry.container_id == container]
    consistency = (trusted, consistency_proof(trusted, SIZE, SOURCE)) if trusted else None
    extra = {"format_version": version} if version else {}
    return build_bundle(
        container,
        mine,
        note(SIZE),
        inclusion_proof(mine[-1].seq, SIZE, SOURCE),
        consistency,
        **extra,
    )


def test_a_genuine_bundle_verifies_with_and_without_a_trusted_checkpoint() -> None:
    report = verify_bundle(bundle_of(A), VERIFIER)
    assert (report.entries, report.head_seq, report.checkpoint.tree_size) == (3, 4, SIZE)
    report = verify_bundle(bundle_of(A, trusted=3), VERIFIER, note(3))
    assert report.trusted_size == 3


def test_each_served_entry_is_the_document_its_hash_covers() -> None:
    import hashlib

    for record in bundle_of(A)["entries"]:
        served = canonical_json(record["entry"])
        assert hashlib.sha256(b"\x00" + served).hexdigest() == record["entry_hash"]
        assert set(record["entry"]) == {
            "seq",
            "event",
            "received_at",
            "recorded_at",
            "origin",
            "kafka",
            "prev_hash",
        }


def test_the_old_format_still_verifies_and_is_strict_too() -> None:
    old = bundle_of(A, version=BUNDLE_FORMAT_V1)
    assert old["format"] == "battery-custody-bundle/1"
    assert "body" in old["entries"][0]
    assert verify_bundle(old, VERIFIER).entries == 3
    old["entries"][1]["occurred_at"] = "2020-01-01T00:00:00Z"
    with pytest.raises(BundleError, match=r"entry seq 2: unknown field\(s\) occurred_at"):
        verify_bundle(old, VERIFIER)


def tampered(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(bundle_of(A))
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["entries"][1]["entry"]["event"].update(weight_kg=1.0),
            "entry seq 2: content does",
        ),
        (
            lambda d: d["entries"][1]["entry"].update(received_at="2026-11-28T12:00:01.000000Z"),
            "entry seq 2: content does",
        ),
        (
            lambda d: d["entries"][1]["entry"].update(received_at="2026-11-28T12:00:00+00:00"),
            "entry seq 2: the entry is not in the form the ledger hashes",
        ),
        (
            lambda d: d["entries"][1]["entry"].update(occurred_at="2020-01-01T00:00:00Z"),
            "entry seq 2: unknown field.s. occurred_at",
        ),
        (lambda d: d["entries"][1].update(note="trust me"), "entry 1: unknown field.s. note"),
        (
            lambda d: d["entries"][1]["entry"]["event"].update(extra=1),
            "entry seq 2: sealed.extra: Extra inputs are not permitted",
        ),
        (
            lambda d: d["entries"][1]["entry"]["kafka"].update(topic="x"),
            "entry seq 2: kafka: unknown",
        ),
        (lambda d: d["entries"][1]["entry"].pop("origin"), "entry seq 2: missing field.s. origin"),
        (
            lambda d: d["entries"][1]["entry"].update(seq="2"),
            "entry 1: .*seq is not a non-negative integer",
        ),
        (
            lambda d: d["entries"][1]["entry"].update(
                prev_hash=d["entries"][1]["entry"]["prev_hash"].upper()
            ),
            "entry seq 2: prev_hash is not 64 lower-case hex",
        ),
        (
            lambda d: d["entries"][1].update(entry_hash="ab" * 31),
            "entry seq 2: entry_hash is not 64 lower-case hex",
        ),
        (lambda d: d["entries"].pop(1), "entry seq 4: prev_hash does not link to entry seq 0"),
        (lambda d: d["entries"].pop(0), "first entry must link to zero hash"),
        (lambda d: d["inclusion_proof"].__setitem__(0, "00" * 32), "inclusion of entry seq 4"),
        (
            lambda d: d["inclusion_proof"].pop(),
            "the proof has 1 hashes; a leaf at index 4 of a tree of size 6 needs 2",
        ),
        (
            lambda d: d["inclusion_proof"].__setitem__(0, "zz"),
            "inclusion_proof item 0 is not 64 lower-case hex",
        ),
        (
            lambda d: d.update(checkpoint=d["checkpoint"].replace(f"\n{SIZE}\n", "\n5\n")),
            "checkpoint: ",
        ),
        (lambda d: d.update(container_id=B), f"entry seq 0: belongs to container {A}, not {B}"),
        (lambda d: d.update(entries=[]), "no entries"),
        (lambda d: d.update(signed_by="auditor"), "unknown field.s. signed_by"),
        (
            lambda d: d.update(tlog_proof=d["tlog_proof"].replace("index 4", "index 3")),
            "tlog_proof does not prove",
        ),
        (lambda d: d.pop("tlog_proof"), "no tlog_proof"),
    ],
)
def test_each_kind_of_tampering_is_named(change: Any, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        verify_bundle(tampered(change), VERIFIER)


def test_an_entry_of_another_container_is_refused_by_seq() -> None:
    other = bundle_of(B)["entries"][0]
    document = tampered(lambda d: d["entries"].insert(1, other))
    with pytest.raises(BundleError, match=f"entry seq 1: belongs to container {B}"):
        verify_bundle(document, VERIFIER)


def test_duplicate_json_keys_are_refused() -> None:
    text = json.dumps(bundle_of(A))
    assert verify_bundle(load_json(text), VERIFIER).entries == 3
    doubled = text.replace('"format":', '"container_id": "BX-OTHER", "format":', 1)
    with pytest.raises(MalformedBundle, match="duplicate JSON key 'container_id'"):
        load_json(doubled)


def test_a_consistency_proof_of_the_wrong_length_is_named() -> None:
    forged = bundle_of(A, trusted=3)
    forged["consistency"]["proof"].append("11" * 32)
    with pytest.raises(BundleError, match=r"the proof has \d+ hashes; sizes 3 → 6 need"):
        verify_bundle(forged, VERIFIER, note(3))


def test_the_head_entry_tlog_proof_verifies_alone() -> None:
    text = bundle_of(A)["tlog_proof"]
    assert text.startswith("c2sp.org/tlog-proof@v1\nextra ")
    report = verify_tlog_proof(text, VERIFIER)
    assert (report.seq, report.checkpoint.tree_size) == (4, SIZE)
    head = [entry for entry in ENTRIES if entry.container_id == A][-1]
    bare = parse_tlog_proof(text)
    without_extra = text.replace(text.split("\n")[1] + "\n", "", 1)
    assert verify_tlog_proof(without_extra, VERIFIER, entry_bytes(head)).seq == bare.index
    with pytest.raises(VerificationError, match="carries no entry"):
        verify_tlog_proof(without_extra, VERIFIER)
    other = [entry for entry in ENTRIES if entry.container_id == B][-1]
    with pytest.raises(VerificationError, match="index 4 is not the entry's seq 3"):
        verify_tlog_proof(without_extra, VERIFIER, entry_bytes(other))


def test_another_key_and_a_missing_consistency_proof_are_refused() -> None:
    stranger = VerifierKey(ORIGIN, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(BundleError, match="no signature by key"):
        verify_bundle(bundle_of(A), stranger)
    with pytest.raises(BundleError, match="no consistency proof from size 3"):
        verify_bundle(bundle_of(A), VERIFIER, note(3))
    forged = bundle_of(A, trusted=3)
    forged["consistency"]["proof"][0] = "11" * 32
    with pytest.raises(BundleError, match="consistency with the trusted checkpoint"):
        verify_bundle(forged, VERIFIER, note(3))
