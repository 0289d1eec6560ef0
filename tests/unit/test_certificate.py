"""Certificate of recycling (services/ledger/domain/certificate.py), rendered and read back.

A hand-made shipment is recorded as real ledger entries (hash chained, RFC 6962 Merkle tree,
an Ed25519 signed checkpoint); the PDF's text is extracted with pypdf and must carry the
shipper, the plant, every weight with its unit, the dates, the seq and entry hash of each
proven entry and the checkpoint's size and root.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pypdf import PdfReader

from services.contract import Origin, OriginKind, parse_event
from services.contract.events import event_body
from services.ledger.domain.certificate import (
    Certificate,
    CertificateError,
    CertificateUnavailable,
    build_certificate,
    seqs_to_prove,
)
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.checkpoint import Checkpoint, sign_checkpoint
from services.ledger.domain.integrity.hashing import ZERO_HASH, entry_document, entry_hash
from services.ledger.domain.integrity.merkle import in_memory_source, inclusion_proof, root_hash
from services.ledger.rendering.certificate_pdf import render_pdf, weight_text
from tests.support import events as ev

ORIGIN = "battery-custody.test/ledger"
ISSUED = datetime(2026, 11, 9, 12, 0, tzinfo=UTC)
RECORDED = ev.BASE_TIME + timedelta(days=3)
SHIPMENT = "BOL-2026-0042"
NAMES = {"site-a": "Collection point A", "plant-a": "Recycling plant A"}


class Ledger:
    """Entries appended as the ledger would: gapless seq, per-container hash chain."""

    def __init__(self) -> None:
        self.entries: list[RecordedEntry] = []
        self.heads: dict[str, bytes] = {}

    def append(self, body: dict[str, Any], party: str, device: str | None = None) -> RecordedEntry:
        event = parse_event(body)
        seq = len(self.entries)
        origin = Origin(
            kind=OriginKind.DEVICE if device else OriginKind.WEBHOOK,
            party_id=party,
            device_id=device,
        )
        prev = self.heads.get(event.container_id, ZERO_HASH)
        received = event.occurred_at + timedelta(minutes=1)
        digest = entry_hash(
            entry_document(
                seq=seq,
                event=event_body(event),
                received_at=received,
                recorded_at=RECORDED,
                origin=origin.model_dump(mode="json"),
                kafka_partition=0,
                kafka_offset=seq,
                prev_hash=prev,
            )
        )
        entry = RecordedEntry(seq, event, received, RECORDED, origin, 0, seq, prev, digest)
        self.entries.append(entry)
        self.heads[event.container_id] = digest
        return entry

    def checkpoint(self, size: int | None = None) -> tuple[Checkpoint, str, dict[int, list[bytes]]]:
        size = len(self.entries) if size is None else size
        _, source = in_memory_source(entry.entry_hash for entry in self.entries[:size])
        checkpoint = Checkpoint(ORIGIN, size, root_hash(size, source))
        note = sign_checkpoint(checkpoint, ORIGIN, Ed25519PrivateKey.generate())
        proofs = {seq: inclusion_proof(seq, size, source) for seq in range(size)}
        return checkpoint, note, proofs


def life(
    ledger: Ledger,
    container: str,
    *,
    sealed_kg: float,
    intake_kg: float | None,
    accepted_kg: float | None = None,
    method: str | None = None,
    start: float = 0,
) -> None:
    site, hauler, plant = ("site-a", "site-a-dev"), ("hauler-a", "hauler-a-dev"), "plant-a"
    ledger.append(ev.dropoff(container, start, weight_kg=sealed_kg - 8), *site)
    ledger.append(ev.sealed(container, start + 1, weight_kg=sealed_kg), *site)
    pickup = ev.transfer(
        "pickup",
        container,
        start + 2,
        "site-a",
        "hauler-a",
        shipment_id=SHIPMENT,
        destination_party=plant,
    )
    ledger.append(pickup, *hauler)
    if intake_kg is None:
        return
    intake = ev.transfer(
        "intake", container, start + 8, "hauler-a", plant, weight_kg=intake_kg, location_id="gate"
    )
    ledger.append(intake, plant, "plant-a-dev")
    if accepted_kg is not None:
        ack = ev.event(
            "receipt_ack",
            container,
            start + 9,
            accepted_weight_kg=accepted_kg,
            condition="ok",
            plant_reference=f"RCV-{container}",
            shipment_id=SHIPMENT,
        )
        ledger.append(ack, plant)
    if method is not None:
        done = ev.event("processed", container, start + 30, method=method, location_id="line")
        ledger.append(done, plant, "plant-a-dev")


@pytest.fixture
def ledger() -> Ledger:
    ledger = Ledger()
    ledger.append(ev.dropoff("BX-noise-0001", 0), "site-b", "site-b-dev")
    life(
        ledger,
        "BX-cert-0001",
        sealed_kg=120.0,
        intake_kg=119.55,
        accepted_kg=119.5,
        method="hydromet",
    )
    life(ledger, "BX-cert-0002", sealed_kg=86.4, intake_kg=86.25, start=0.25)
    dented = ev.event(
        "incident",
        "BX-cert-0002",
        12,
        kind="damaged",
        description="Outer packaging dented; contents intact.",
        location_id="gate",
    )
    ledger.append(dented, "plant-a", "plant-a-dev")
    life(ledger, "BX-cert-0003", sealed_kg=42.5, intake_kg=None, start=0.5)
    ledger.append(ev.sealed("BX-noise-0001", 3), "site-b", "site-b-dev")
    return ledger


def certificate_of(ledger: Ledger, size: int | None = None) -> Certificate:
    checkpoint, note, proofs = ledger.checkpoint(size)
    needed = seqs_to_prove(ledger.entries, SHIPMENT, checkpoint.tree_size)
    return build_certificate(
        SHIPMENT,
        ledger.entries,
        checkpoint=checkpoint,
        note=note,
        proofs={seq: proofs[seq] for seq in needed},
        issued_at=ISSUED,
        names=NAMES,
    )


def seq_of(ledger: Ledger, container: str, event_type: str) -> int:
    return next(
        e.seq for e in ledger.entries if e.container_id == container and e.event.type == event_type
    )


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_the_certificate_pdf_carries_parties_weights_dates_and_proofs(ledger: Ledger) -> None:
    certificate = certificate_of(ledger)
    data = render_pdf(certificate)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    flat = re.sub(r"\s+", " ", text)

    assert "Certificate of Recycling" in text
    assert SHIPMENT in text
    assert "site-a (Collection point A)" in flat
    assert "plant-a (Recycling plant A)" in flat
    assert "hauler-a" in text
    for weight in ("120.0 kg", "119.55 kg", "119.5 kg", "86.4 kg", "86.25 kg", "42.5 kg"):
        assert weight in text, weight
    assert "248.9 kg" in text  # total sealed: 120.0 + 86.4 + 42.5
    assert "205.8 kg" in text  # total intake: 119.55 + 86.25
    assert "3 shipped, 2 taken in, 1 processed" in flat
    assert "hydromet" in text
    for when in ("2026-11-02 10:00:00 UTC", "2026-11-02 16:00:00 UTC", "2026-11-03 14:00:00 UTC"):
        assert when in text, when  # pickup, intake and processed of the first container

    certified = {
        line.facts.container_id: line.certified
        for line in certificate.lines
        if line.certified is not None
    }
    assert set(certified) == {"BX-cert-0001", "BX-cert-0002"}
    assert certified["BX-cert-0001"].event.type == "processed"
    assert certified["BX-cert-0002"].event.type == "intake"
    compact = re.sub(r"\s+", "", text)
    for entry in certified.values():
        assert entry.entry_hash.hex() in text
        assert re.search(rf"(?<![\d.]){entry.seq}(?![\d.])", text)
    assert "not yet taken in" in text  # the third container, still on the road

    checkpoint = certificate.checkpoint
    assert checkpoint.tree_size == len(ledger.entries)
    assert re.search(rf"Tree size\s*{checkpoint.tree_size}\b", text)
    assert checkpoint.root_hash.hex() in compact


def test_the_exact_note_and_the_proofs_are_attached(ledger: Ledger) -> None:
    certificate = certificate_of(ledger)
    reader = PdfReader(io.BytesIO(render_pdf(certificate)))
    attachments = reader.attachments
    assert attachments["checkpoint.note"] == [certificate.note.encode()]
    document = json.loads(attachments["proofs.json"][0])
    assert document["checkpoint"]["tree_size"] == certificate.checkpoint.tree_size
    assert document["checkpoint"]["root_hash"] == certificate.checkpoint.root_hash.hex()
    proven = [(item["container_id"], item["role"], item["seq"]) for item in document["entries"]]
    assert proven == [
        ("BX-cert-0001", "certified", seq_of(ledger, "BX-cert-0001", "processed")),
        ("BX-cert-0002", "certified", seq_of(ledger, "BX-cert-0002", "intake")),
        ("BX-cert-0002", "chain_head", seq_of(ledger, "BX-cert-0002", "incident")),
    ]
    assert all(item["inclusion_proof"] for item in document["entries"])


def test_rendering_is_deterministic(ledger: Ledger) -> None:
    certificate = certificate_of(ledger)
    assert render_pdf(certificate) == render_pdf(certificate)


def test_weights_keep_their_unit_and_decimals() -> None:
    assert weight_text(120) == "120.0 kg"
    assert weight_text(119.55) == "119.55 kg"
    assert weight_text(0.0005) == "0.001 kg"
    assert weight_text(None) == "-"


def test_a_bad_inclusion_proof_renders_nothing(ledger: Ledger) -> None:
    checkpoint, note, proofs = ledger.checkpoint()
    seq = seq_of(ledger, "BX-cert-0001", "processed")
    proofs[seq] = [bytes(32), *proofs[seq][1:]]
    with pytest.raises(CertificateError, match=f"inclusion of entry seq {seq}"):
        build_certificate(
            SHIPMENT,
            ledger.entries,
            checkpoint=checkpoint,
            note=note,
            proofs=proofs,
            issued_at=ISSUED,
        )
    _, _, proofs = ledger.checkpoint()
    head = seq_of(ledger, "BX-cert-0002", "incident")
    del proofs[head]  # the chain head must be proven too
    with pytest.raises(CertificateError, match=f"inclusion of entry seq {head}"):
        build_certificate(
            SHIPMENT,
            ledger.entries,
            checkpoint=checkpoint,
            note=note,
            proofs=proofs,
            issued_at=ISSUED,
        )


def test_content_that_does_not_match_its_hash_renders_nothing(ledger: Ledger) -> None:
    """The forged intake is not the certified entry (processed is): the chain check finds it."""
    checkpoint, note, proofs = ledger.checkpoint()
    target = ledger.entries[seq_of(ledger, "BX-cert-0001", "intake")]
    forged = target.event.model_copy(update={"weight_kg": 200.0})
    index = ledger.entries.index(target)
    ledger.entries[index] = RecordedEntry(
        target.seq,
        forged,
        target.received_at,
        target.recorded_at,
        target.origin,
        target.kafka_partition,
        target.kafka_offset,
        target.prev_hash,
        target.entry_hash,
    )
    with pytest.raises(CertificateError, match="does not match its entry_hash"):
        build_certificate(
            SHIPMENT,
            ledger.entries,
            checkpoint=checkpoint,
            note=note,
            proofs=proofs,
            issued_at=ISSUED,
        )


def test_the_certificate_shows_the_ledger_as_of_its_checkpoint(ledger: Ledger) -> None:
    processed = seq_of(ledger, "BX-cert-0001", "processed")
    certificate = certificate_of(ledger, size=processed)  # signed before the processed entry
    (line,) = certificate.lines  # the other containers were not picked up yet then
    assert line.certified is not None
    assert line.certified.seq == seq_of(ledger, "BX-cert-0001", "intake")
    assert line.head is not None
    assert line.head.seq == seq_of(ledger, "BX-cert-0001", "receipt_ack")
    text = pdf_text(render_pdf(certificate))
    assert "not yet processed" in text
    assert "hydromet" not in text
    with pytest.raises(CertificateUnavailable, match="is not recorded as of"):
        certificate_of(ledger, size=seq_of(ledger, "BX-cert-0001", "pickup"))


def test_unknown_or_unreceived_shipments_have_no_certificate(ledger: Ledger) -> None:
    checkpoint, note, proofs = ledger.checkpoint()
    with pytest.raises(CertificateUnavailable, match="is not recorded"):
        build_certificate(
            "BOL-unknown",
            ledger.entries,
            checkpoint=checkpoint,
            note=note,
            proofs=proofs,
            issued_at=ISSUED,
        )
    on_the_road = Ledger()
    life(on_the_road, "BX-cert-0009", sealed_kg=50.0, intake_kg=None)
    checkpoint, note, proofs = on_the_road.checkpoint()
    with pytest.raises(CertificateUnavailable, match="taken in or processed as of"):
        build_certificate(
            SHIPMENT,
            on_the_road.entries,
            checkpoint=checkpoint,
            note=note,
            proofs=proofs,
            issued_at=ISSUED,
        )


def test_a_corrected_intake_is_not_certified() -> None:
    ledger = Ledger()
    life(ledger, "BX-cert-0010", sealed_kg=60.0, intake_kg=59.9)
    life(ledger, "BX-cert-0011", sealed_kg=70.0, intake_kg=69.8)
    wrong = next(
        e for e in ledger.entries if e.container_id == "BX-cert-0011" and e.event.type == "intake"
    )
    ledger.append(
        ev.event(
            "correction",
            "BX-cert-0011",
            20,
            corrects_event_id=str(wrong.event_id),
            reason="did_not_occur",
            location_id="gate",
        ),
        "plant-a",
        "plant-a-dev",
    )
    certificate = certificate_of(ledger)
    certified = {line.facts.container_id: line.certified for line in certificate.lines}
    assert certified["BX-cert-0010"] is not None
    assert certified["BX-cert-0011"] is None
    assert "69.8 kg" not in pdf_text(render_pdf(certificate))
