"""The certificate of recycling as a PDF (A4 landscape, core fonts, proofs attached).

What the certificate certifies, and the verification before anything is drawn, is
``services/ledger/domain/certificate.py``; this module only draws it (docs/reports.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from services.ledger.domain.certificate import Certificate, CertificateLine
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.hashing import format_instant
from services.ledger.domain.weights import kg_text

MEDIA_TYPE = "application/pdf"


def weight_text(value: float | None) -> str:
    """A weight as the certificate prints it: ``kg_text`` (``120.0 kg``), ``-`` for none."""
    return "-" if value is None else kg_text(value)


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
    pdf.pair("Total sealed weight", weight_text(sum(f.sealed_kg or 0.0 for f in facts)))
    pdf.pair(
        "Total intake weight",
        weight_text(sum(f.intake.weight_kg for f in facts if f.intake is not None)),
    )
    pdf.pair(
        "Total accepted weight",
        weight_text(sum(f.receipt.accepted_weight_kg for f in facts if f.receipt is not None)),
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
                    weight_text(item.sealed_kg),
                    weight_text(item.intake.weight_kg if item.intake else None),
                    weight_text(item.receipt.accepted_weight_kg if item.receipt else None),
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
