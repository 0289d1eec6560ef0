"""Custody trails as CSV: one row per recorded event, stable columns (docs/exports.md). Pure.

``TRAIL_COLUMNS`` is the contract: columns are only ever appended, never renamed, removed or
reordered. Empty cells mean "not in this event". Instants are UTC (``…Z``, microseconds), as in
the JSON API; lists are joined with ``;``; booleans are ``true``/``false``. Free-text cells that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR) get a
leading ``'`` (OWASP CSV injection); the JSON API and the EPCIS export keep the text unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.contract.events import (
    Correction,
    Dropoff,
    Handoff,
    Incident,
    Intake,
    Pickup,
    Processed,
    ReceiptAck,
    Sealed,
)
from services.ledger.domain.custody import CustodyTrail, TrailEvent
from services.ledger.domain.integrity.hashing import format_instant

TRAIL_COLUMNS: tuple[str, ...] = (
    "container_id",  # the container's barcode
    "seq",  # ledger sequence number (global, gapless)
    "event_id",  # the event's UUID (idempotency key)
    "type",  # the event type: dropoff, sealed, … correction
    "occurred_at",  # device time, converted to UTC
    "received_at",  # ingest time (UTC)
    "recorded_at",  # ledger time (UTC)
    "location_id",
    "origin_kind",  # device or webhook
    "origin_party",  # the authenticated party that posted it
    "origin_device",  # the authenticated device, empty for webhooks
    "device_seq",
    "from_party",  # pickup, handoff, intake
    "to_party",  # pickup, handoff, intake
    "destination_party",  # pickup
    "shipment_id",  # pickup, handoff, receipt_ack (bill of lading)
    "weight_kg",  # dropoff/sealed/intake weight, receipt_ack accepted, processed input weight
    "chemistry",  # dropoff
    "battery_count",  # dropoff
    "un_numbers",  # sealed, ';'-joined
    "ddr",  # sealed, ';'-joined (damaged, defective, recalled)
    "seal_id",  # sealed
    "condition",  # receipt_ack
    "plant_reference",  # receipt_ack
    "method",  # processed
    "incident_kind",  # incident
    "description",  # incident
    "corrects_event_id",  # correction
    "correction_reason",  # correction: did_not_occur or incorrect_data
    "corrective_event_ids",  # correction, ';'-joined
    "note",
    "effective",  # applied to the state (false: corrected, after terminal, correction not in force)
    "corrected",  # a correction in force voids or supersedes this event
    "corrected_by",  # the event_id of that correction
    "anomalies",  # anomaly codes of this event, ';'-joined
    "prev_hash",  # hex, the container's previous entry hash
    "entry_hash",  # hex, SHA-256 leaf hash (verifiable with /v1/events/{event_id}/proof)
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def inert_text(value: str | None) -> str:
    """Free text from a device, made inert for spreadsheets (OWASP CSV injection)."""
    if value is None:
        return ""
    return f"'{value}" if value.startswith(_FORMULA_START) else value


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _joined(values: Iterable[object]) -> str:
    return ";".join(str(value) for value in values)


def _event_fields(item: TrailEvent) -> dict[str, str]:
    event = item.entry.event
    if isinstance(event, Dropoff):
        return {
            "chemistry": event.chemistry.value,
            "battery_count": "" if event.battery_count is None else str(event.battery_count),
            "weight_kg": _number(event.weight_kg),
        }
    if isinstance(event, Sealed):
        return {
            "weight_kg": _number(event.weight_kg),
            "un_numbers": _joined(event.un_numbers),
            "ddr": _joined(value.value for value in event.ddr),
            "seal_id": inert_text(event.seal_id),
        }
    if isinstance(event, Pickup | Handoff | Intake):
        fields = {"from_party": event.from_party, "to_party": event.to_party}
        if isinstance(event, Pickup):
            fields["destination_party"] = event.destination_party or ""
        if isinstance(event, Pickup | Handoff):
            fields["shipment_id"] = inert_text(event.shipment_id)
        if isinstance(event, Intake):
            fields["weight_kg"] = _number(event.weight_kg)
        return fields
    if isinstance(event, ReceiptAck):
        return {
            "weight_kg": _number(event.accepted_weight_kg),
            "condition": event.condition.value,
            "plant_reference": inert_text(event.plant_reference),
            "shipment_id": inert_text(event.shipment_id),
        }
    if isinstance(event, Processed):
        return {"method": event.method.value, "weight_kg": _number(event.input_weight_kg)}
    if isinstance(event, Incident):
        return {"incident_kind": event.kind.value, "description": inert_text(event.description)}
    if isinstance(event, Correction):
        return {
            "corrects_event_id": str(event.corrects_event_id),
            "correction_reason": event.reason.value,
            "corrective_event_ids": _joined(event.corrective_event_ids),
        }
    raise ValueError(f"no CSV mapping for {event.type}")  # pragma: no cover


def event_row(item: TrailEvent) -> dict[str, str]:
    """One trail event as a row holding every column of ``TRAIL_COLUMNS``."""
    entry = item.entry
    event = entry.event
    row = dict.fromkeys(TRAIL_COLUMNS, "")
    row.update(
        container_id=entry.container_id,
        seq=str(entry.seq),
        event_id=str(entry.event_id),
        type=event.type,
        occurred_at=format_instant(event.occurred_at),
        received_at=format_instant(entry.received_at),
        recorded_at=format_instant(entry.recorded_at),
        location_id=inert_text(event.location_id),
        origin_kind=entry.origin.kind.value,
        origin_party=entry.origin.party_id,
        origin_device=entry.origin.device_id or "",
        device_seq="" if event.device_seq is None else str(event.device_seq),
        note=inert_text(event.note),
        effective=_flag(item.effective),
        corrected=_flag(item.corrected),
        corrected_by="" if item.corrected_by is None else str(item.corrected_by),
        anomalies=_joined(anomaly.code.value for anomaly in item.anomalies),
        prev_hash=entry.prev_hash.hex(),
        entry_hash=entry.entry_hash.hex(),
    )
    row.update(_event_fields(item))
    return row


def trail_rows(trail: CustodyTrail) -> list[dict[str, str]]:
    """The rows of one trail, in trail order (corrected events and corrections included)."""
    return [event_row(item) for item in trail.events]


def search_rows(trails: Iterable[CustodyTrail]) -> list[dict[str, str]]:
    """The rows of several trails, one trail after the other, in the order given."""
    return [row for trail in trails for row in trail_rows(trail)]


def write_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] = TRAIL_COLUMNS) -> str:
    """RFC 4180 CSV text: a header row, then the rows; CRLF line ends, minimal quoting."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
