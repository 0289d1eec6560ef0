"""Offline bundle verification (pure): every check fails on its own kind of tampering."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.contract import Envelope, Origin, OriginKind, parse_event
from services.contract.events import event_body
from services.ledger.domain.append import PendingEvent, plan_append
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.bundle import build_bundle
from services.ledger.domain.integrity.checkpoint import Checkpoint, VerifierKey, sign_checkpoint
from services.ledger.domain.integrity.merkle import (
    consistency_proof,
    in_memory_source,
    inclusion_proof,
    root_hash,
)
from services.ledger.domain.integrity.verification import BundleError, verify_bundle
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


def bundle_of(container: str, trusted: int | None = None) -> dict[str, Any]:
    mine = [entry for entry in ENTRIES if entry.container_id == container]
    consistency = (trusted, consistency_proof(trusted, SIZE, SOURCE)) if trusted else None
    return build_bundle(
        container, mine, note(SIZE), inclusion_proof(mine[-1].seq, SIZE, SOURCE), consistency
    )


def test_a_genuine_bundle_verifies_with_and_without_a_trusted_checkpoint() -> None:
    report = verify_bundle(bundle_of(A), VERIFIER)
    assert (report.entries, report.head_seq, report.checkpoint.tree_size) == (3, 4, SIZE)
    report = verify_bundle(bundle_of(A, trusted=3), VERIFIER, note(3))
    assert report.trusted_size == 3


def tampered(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(bundle_of(A))
    change(document)
    return document


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["entries"][1]["body"].update(weight_kg=1.0), "entry seq 2: content does"),
        (
            lambda d: d["entries"][1].update(received_at="2026-11-28T12:00:01.000000Z"),
            "entry seq 2: content does",
        ),
        (lambda d: d["entries"].pop(1), "entry seq 4: prev_hash does not link to entry seq 0"),
        (lambda d: d["entries"].pop(0), "first entry must link to zero hash"),
        (lambda d: d["inclusion_proof"].__setitem__(0, "00" * 32), "inclusion of entry seq 4"),
        (lambda d: d["inclusion_proof"].pop(), "inclusion of entry seq 4"),
        (
            lambda d: d.update(checkpoint=d["checkpoint"].replace(f"\n{SIZE}\n", "\n5\n")),
            "checkpoint: ",
        ),
        (lambda d: d.update(container_id=B), "belongs to another container"),
        (lambda d: d.update(entries=[]), "no entries"),
    ],
)
def test_each_kind_of_tampering_is_named(change: Any, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        verify_bundle(tampered(change), VERIFIER)


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
