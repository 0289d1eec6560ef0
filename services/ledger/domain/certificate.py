"""Certificate of recycling for one shipment, as a PDF (pure; docs/reports.md).

The certificate shows the ledger **as of its latest signed checkpoint**: only entries with
``seq < tree_size`` are read, so everything on it is provable by that checkpoint. It names the
shipper, the hauler(s) and the plant and lists every container of the shipment (the
``shipment_id`` of its first effective pickup) with its sealed, intake and accepted weights, its
pickup, intake and processed dates and processing method. Each container that was taken in is
*certified* by its processed entry (its intake entry until it is processed): the certificate
prints that entry's ledger ``seq`` and ``entry_hash`` and the checkpoint's tree size and root.

Nothing is rendered unproven. For every certified container ``build_certificate`` first
recomputes the hash of each of its entries from the content and checks the chain links
(``prev_hash``) from its first entry, then verifies the RFC 6962 inclusion proofs of the
certified entry and of the container's last entry (its chain head at the checkpoint) against the
checkpoint's root: so every figure printed for it is bound to the signed checkpoint. The exact
signed note and the proofs are attached to the PDF as ``checkpoint.note`` and ``proofs.json``, so
an auditor can check them again offline.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from services.contract.events import event_body
from services.ledger.domain.checkpoint import Checkpoint
from services.ledger.domain.custody import reconstruct
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.hashing import ZERO_HASH, entry_document, entry_hash, format_instant
from services.ledger.domain.merkle import ProofError, verify_inclusion
from services.ledger.domain.report_facts import ContainerFacts, container_facts

MEDIA_TYPE = "application/pdf"


class CertificateUnavailable(LookupError):
    """There is nothing (yet) to certify; the message says why."""


class CertificateError(ValueError):
    """A record does not verify against its hash or the checkpoint: nothing is rendered."""


@dataclass(frozen=True)
class CertificateLine:
    facts: ContainerFacts
    certified: RecordedEntry | None  # processed entry, else intake entry; None before intake
    head: RecordedEntry | None = None  # the container's last entry at the checkpoint
    proofs: Mapping[int, tuple[bytes, ...]] = field(default_factory=dict)  # seq → proof


@dataclass(frozen=True)
class Certificate:
    shipment_id: str
    shippers: tuple[str, ...]
    plants: tuple[str, ...]
    haulers: tuple[str, ...]
    lines: tuple[CertificateLine, ...]
    checkpoint: Checkpoint
    note: str
    issued_at: datetime
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def certified(self) -> tuple[CertificateLine, ...]:
        return tuple(line for line in self.lines if line.certified is not None)


@dataclass(frozen=True)
class _Member:
    facts: ContainerFacts
    entries: tuple[RecordedEntry, ...]  # by seq, all below the checkpoint

    @property
    def certified(self) -> RecordedEntry | None:
        step = self.facts.processed or self.facts.intake
        if step is None:
            return None
        return next(entry for entry in self.entries if entry.seq == step.seq)


def _members(entries: Iterable[RecordedEntry], shipment_id: str, tree_size: int) -> list[_Member]:
    """The shipment's containers as of the checkpoint, by container id."""
    grouped: dict[str, list[RecordedEntry]] = defaultdict(list)
    for entry in entries:
        if entry.seq < tree_size:
            grouped[entry.container_id].append(entry)
    members = []
    for container_entries in grouped.values():
        latest = max(entry.received_at for entry in container_entries)
        facts = container_facts(reconstruct(container_entries, now=latest))
        if facts.shipment_id == shipment_id:
            ordered = tuple(sorted(container_entries, key=lambda e: e.seq))
            members.append(_Member(facts, ordered))
    members.sort(key=lambda member: member.facts.container_id)
    return members


def seqs_to_prove(entries: Iterable[RecordedEntry], shipment_id: str, tree_size: int) -> list[int]:
    """The entries whose inclusion proofs at ``tree_size`` a certificate needs."""
    seqs: set[int] = set()
    for member in _members(entries, shipment_id, tree_size):
        if member.certified is not None:
            seqs.update((member.certified.seq, member.entries[-1].seq))
    return sorted(seqs)


def recomputed_hash(entry: RecordedEntry) -> bytes:
    return entry_hash(
        entry_document(
            seq=entry.seq,
            event=event_body(entry.event),
            received_at=entry.received_at,
            recorded_at=entry.recorded_at,
            origin=entry.origin.model_dump(mode="json"),
            kafka_partition=entry.kafka_partition,
            kafka_offset=entry.kafka_offset,
            prev_hash=entry.prev_hash,
        )
    )


def _check_chain(entries: Sequence[RecordedEntry]) -> None:
    previous = ZERO_HASH
    for entry in entries:
        if recomputed_hash(entry) != entry.entry_hash:
            raise CertificateError(f"entry seq {entry.seq}: content does not match its entry_hash")
        if entry.prev_hash != previous:
            raise CertificateError(
                f"entry seq {entry.seq}: prev_hash does not link to the previous entry of "
                f"container {entry.container_id}"
            )
        previous = entry.entry_hash


def _check_inclusion(
    entry: RecordedEntry, checkpoint: Checkpoint, proofs: Mapping[int, Sequence[bytes]]
) -> tuple[bytes, ...]:
    proof = tuple(proofs.get(entry.seq, ()))
    try:
        verify_inclusion(
            entry.entry_hash, entry.seq, checkpoint.tree_size, proof, checkpoint.root_hash
        )
    except ProofError as error:
        raise CertificateError(f"inclusion of entry seq {entry.seq}: {error}") from error
    return proof


def build_certificate(
    shipment_id: str,
    entries: Iterable[RecordedEntry],
    *,
    checkpoint: Checkpoint,
    note: str,
    proofs: Mapping[int, Sequence[bytes]],
    issued_at: datetime,
    names: Mapping[str, str] | None = None,
) -> Certificate:
    """The certificate of ``shipment_id`` as of ``checkpoint``, every record verified first.

    ``entries`` are the recorded entries of (at least) the shipment's containers; those at or
    beyond the checkpoint's tree size are left out. ``proofs`` maps each seq of
    ``seqs_to_prove`` to its inclusion proof at ``checkpoint.tree_size``. Raises
    CertificateUnavailable when, as of the checkpoint, the shipment is unknown or none of its
    containers has been taken in; CertificateError when a hash, a chain link or an inclusion
    proof does not verify.
    """
    members = _members(entries, shipment_id, checkpoint.tree_size)
    if not members:
        raise CertificateUnavailable(
            f"shipment {shipment_id!r} is not recorded as of the latest signed checkpoint "
            f"(tree size {checkpoint.tree_size})"
        )
    lines = []
    for member in members:
        certified = member.certified
        if certified is None:
            lines.append(CertificateLine(member.facts, None))
            continue
        _check_chain(member.entries)
        head = member.entries[-1]
        checked = {
            entry.seq: _check_inclusion(entry, checkpoint, proofs) for entry in (certified, head)
        }
        lines.append(CertificateLine(member.facts, certified, head, checked))
    if not any(line.certified is not None for line in lines):
        raise CertificateUnavailable(
            f"no container of shipment {shipment_id!r} has been taken in or processed as of "
            f"the latest signed checkpoint (tree size {checkpoint.tree_size})"
        )
    facts = [member.facts for member in members]
    return Certificate(
        shipment_id=shipment_id,
        shippers=tuple(sorted({item.site for item in facts if item.site})),
        plants=tuple(sorted({item.plant for item in facts if item.plant})),
        haulers=tuple(sorted({item.pickup.to_party for item in facts if item.pickup is not None})),
        lines=tuple(lines),
        checkpoint=checkpoint,
        note=note,
        issued_at=issued_at,
        names=dict(names or {}),
    )


# --- text forms -------------------------------------------------------------------------------


def kg(value: float | None) -> str:
    """A weight with its unit: up to 3 decimals, at least one (``120.0 kg``, ``119.55 kg``)."""
    if value is None:
        return "-"
    text = f"{value:.3f}".rstrip("0")
    return f"{text}0 kg" if text.endswith(".") else f"{text} kg"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(moments: Iterable[datetime]) -> str:
    ordered = sorted(moments)
    if not ordered:
        return "not yet"
    first, last = when(ordered[0]), when(ordered[-1])
    return first if first == last else f"{first} to {last}"


def _latin(text: str) -> str:
    """The PDF core fonts cover Latin-1 only: anything else becomes ``?``."""
    return text.replace("\u2014", "-").encode("latin-1", "replace").decode("latin-1")


def _named(party: str, names: Mapping[str, str]) -> str:
    name = names.get(party)
    return f"{party} ({name})" if name and name != party else party


def proofs_document(certificate: Certificate) -> dict[str, object]:
    """The proofs attached to the PDF, for checking offline (RFC 6962 leaf = entry_hash)."""
    checkpoint = certificate.checkpoint
    return {
        "shipment_id": certificate.shipment_id,
        "checkpoint": {
            "origin": checkpoint.origin,
            "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash.hex(),
            "note": certificate.note,
        },
        "entries": [
            {
                "container_id": line.facts.container_id,
                "role": "certified"
                if line.certified is not None and entry.seq == line.certified.seq
                else "chain_head",
                "event_id": str(entry.event_id),
                "type": entry.event.type,
                "seq": entry.seq,
                "entry_hash": entry.entry_hash.hex(),
                "recorded_at": format_instant(entry.recorded_at),
                "inclusion_proof": [item.hex() for item in line.proofs[entry.seq]],
            }
            for line in certificate.certified
            for entry in _proven_entries(line)
        ],
    }


def _proven_entries(line: CertificateLine) -> list[RecordedEntry]:
    found = {entry.seq: entry for entry in (line.head, line.certified) if entry is not None}
    return [found[seq] for seq in sorted(found)]


# --- the PDF ----------------------------------------------------------------------------------

_BODY = 9.0
_SMALL = 8.0
_MONO = FontFace(family="Courier", size_pt=7.5)


class _Document(FPDF):
    def __init__(self, certificate: Certificate) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self._certificate = certificate
        self.set_margins(12, 12, 12)
        self.set_auto_page_break(auto=True, margin=14)

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font("Helvetica", "", 7)
        self.cell(
            0,
            4,
            _latin(
                f"Certificate of recycling - shipment {self._certificate.shipment_id} - "
                f"page {self.page_no()}/{{nb}}"
            ),
            align="C",
        )

    def heading(self, text: str) -> None:
        self.ln(2)
        self.set_font("Helvetica", "B", 11)
        self.cell(0, 6, _latin(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("Helvetica", "", _BODY)

    def pair(self, label: str, value: str, *, mono: bool = False) -> None:
        self.set_font("Helvetica", "B", _BODY)
        self.cell(48, 4.5, _latin(label))
        if mono:
            self.set_font("Courier", "", _SMALL)
        else:
            self.set_font("Helvetica", "", _BODY)
        self.multi_cell(0, 4.5, _latin(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def render_pdf(certificate: Certificate) -> bytes:
    """The certificate as PDF bytes (A4 landscape, core fonts, proofs attached)."""
    names = certificate.names
    lines = certificate.lines
    facts = [line.facts for line in lines]
    pdf = _Document(certificate)
    pdf.set_title(_latin(f"Certificate of recycling - shipment {certificate.shipment_id}"))
    pdf.set_author("Battery Custody")
    pdf.set_subject("Chain-of-custody certificate of recycling")
    pdf.set_creation_date(certificate.issued_at)
    pdf.add_page()

    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, "Certificate of Recycling", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", _BODY)
    pdf.multi_cell(
        0,
        5,
        _latin(
            "This certifies that the battery containers listed below were shipped under the "
            "bill of lading named here and received by the recycling plant, as recorded in the "
            "Battery Custody append-only ledger. Each record is proven by its ledger entry and "
            "a signed checkpoint of the ledger's Merkle tree."
        ),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )

    pdf.heading("Shipment")
    pdf.pair("Shipment (bill of lading)", certificate.shipment_id)
    pdf.pair("Shipper", ", ".join(_named(p, names) for p in certificate.shippers) or "-")
    pdf.pair("Hauler", ", ".join(_named(p, names) for p in certificate.haulers) or "-")
    pdf.pair("Recycling plant", ", ".join(_named(p, names) for p in certificate.plants) or "-")
    pdf.pair("Picked up", _span(f.pickup.at for f in facts if f.pickup is not None))
    pdf.pair("Taken in", _span(f.intake.at for f in facts if f.intake is not None))
    pdf.pair("Processed", _span(f.processed.at for f in facts if f.processed is not None))
    methods = sorted({f.processed.method for f in facts if f.processed is not None})
    pdf.pair("Processing method", ", ".join(methods) or "not yet processed")
    received = sum(f.intake is not None for f in facts)
    processed = sum(f.processed is not None for f in facts)
    pdf.pair(
        "Containers",
        f"{len(facts)} shipped, {received} taken in, {processed} processed",
    )
    pdf.pair("Total sealed weight", kg(sum(f.sealed_kg or 0.0 for f in facts)))
    pdf.pair(
        "Total intake weight",
        kg(sum(f.intake.weight_kg for f in facts if f.intake is not None)),
    )
    pdf.pair(
        "Total accepted weight",
        kg(sum(f.receipt.accepted_weight_kg for f in facts if f.receipt is not None)),
    )
    pdf.pair("Issued", when(certificate.issued_at))

    pdf.heading("Containers")
    pdf.set_font("Helvetica", "", _SMALL)
    with pdf.table(
        col_widths=(38, 18, 24, 24, 24, 36, 36, 36, 24, 13),
        text_align=("LEFT", "LEFT", *("RIGHT",) * 3, *("LEFT",) * 5),
        line_height=4.5,
        padding=1,
    ) as table:
        table.row(
            [
                "Container",
                "Chemistry",
                "Sealed",
                "Intake",
                "Accepted",
                "Picked up",
                "Taken in",
                "Processed",
                "Method",
                "Cond.",
            ]
        )
        for item in facts:
            table.row(
                [
                    _latin(item.container_id),
                    item.chemistry or "-",
                    kg(item.sealed_kg),
                    kg(item.intake.weight_kg if item.intake else None),
                    kg(item.receipt.accepted_weight_kg if item.receipt else None),
                    when(item.pickup.at if item.pickup else None),
                    when(item.intake.at if item.intake else None),
                    when(item.processed.at if item.processed else None),
                    item.processed.method if item.processed else "-",
                    item.receipt.condition if item.receipt else "-",
                ]
            )

    pdf.heading("Ledger proof")
    pdf.set_font("Helvetica", "", _SMALL)
    with pdf.table(
        col_widths=(40, 20, 22, 40, 151),
        text_align="LEFT",
        line_height=4.5,
        padding=1,
    ) as table:
        table.row(["Container", "Entry", "Ledger seq", "Recorded", "Entry hash (SHA-256, hex)"])
        for line in lines:
            row = table.row()
            row.cell(_latin(line.facts.container_id))
            if line.certified is None:
                row.cell("not yet taken in: no record to certify", colspan=4)
                continue
            row.cell(line.certified.event.type)
            row.cell(str(line.certified.seq))
            row.cell(when(line.certified.recorded_at))
            row.cell(line.certified.entry_hash.hex(), style=_MONO)

    checkpoint = certificate.checkpoint
    if pdf.will_page_break(55):  # keep the checkpoint and its note on one page
        pdf.add_page()
    pdf.heading("Signed checkpoint")
    pdf.pair("Log origin", checkpoint.origin)
    pdf.pair("Tree size", str(checkpoint.tree_size))
    pdf.pair("Root hash (hex)", checkpoint.root_hash.hex(), mono=True)
    pdf.pair("Signed note", certificate.note.rstrip("\n"), mono=True)
    pdf.set_font("Helvetica", "", _SMALL)
    pdf.ln(2)
    pdf.multi_cell(
        0,
        4,
        _latin(
            "This certificate shows the ledger as of this checkpoint. Before it was issued, "
            "every entry of each certified container was checked: its SHA-256 entry hash "
            "recomputed from its recorded content and its link to the previous entry; and the "
            "RFC 6962 inclusion proofs of the entry listed above and of the container's last "
            "entry lead to the root hash of this checkpoint (tree size "
            f"{checkpoint.tree_size}). The exact signed note (its signature line starts with "
            "U+2014) and the inclusion proofs are attached to this PDF as checkpoint.note and "
            "proofs.json; GET /v1/events/{event_id}/proof and custody verify check them again."
        ),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.embed_file(
        bytes=certificate.note.encode(),
        basename="checkpoint.note",
        modification_date=certificate.issued_at,
        mime_type="text/plain",
    )
    pdf.embed_file(
        bytes=json.dumps(proofs_document(certificate), indent=2).encode(),
        basename="proofs.json",
        modification_date=certificate.issued_at,
        mime_type="application/json",
    )
    return bytes(pdf.output())
