"""JSON shapes of ledger entries and custody trails."""

from __future__ import annotations

from typing import Any

from services.contract.events import event_body
from services.ledger.domain.custody import Anomaly, CustodyTrail
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.hashing import format_instant


def entry_json(entry: RecordedEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "event_id": str(entry.event_id),
        "container_id": entry.container_id,
        "type": entry.event.type,
        "event": event_body(entry.event),
        "occurred_at": format_instant(entry.event.occurred_at),
        "received_at": format_instant(entry.received_at),
        "recorded_at": format_instant(entry.recorded_at),
        "origin": entry.origin.model_dump(mode="json", exclude_none=True),
        "kafka": {"partition": entry.kafka_partition, "offset": entry.kafka_offset},
        "prev_hash": entry.prev_hash.hex(),
        "entry_hash": entry.entry_hash.hex(),
    }


def anomaly_json(anomaly: Anomaly) -> dict[str, Any]:
    return {
        "code": anomaly.code.value,
        "event_id": str(anomaly.event_id) if anomaly.event_id else None,
        "detail": anomaly.detail,
    }


def _instant(value: Any) -> str | None:
    return format_instant(value) if value is not None else None


def trail_json(trail: CustodyTrail) -> dict[str, Any]:
    return {
        "container_id": trail.container_id,
        "state": trail.state.value if trail.state else None,
        "custodian": trail.custodian,
        "location_id": trail.location_id,
        "first_dropoff_at": _instant(trail.first_dropoff_at),
        "state_since": _instant(trail.state_since),
        "head_seq": trail.head_seq,
        "intervals": [
            {
                "custodian": interval.custodian,
                "from": _instant(interval.start),
                "to": _instant(interval.end),
                "opened_by": str(interval.opened_by),
                "closed_by": str(interval.closed_by) if interval.closed_by else None,
            }
            for interval in trail.intervals
        ],
        "events": [
            {
                **entry_json(item.entry),
                "corrected": item.corrected,
                "corrected_by": str(item.corrected_by) if item.corrected_by else None,
                "effective": item.effective,
                "anomalies": [anomaly_json(anomaly) for anomaly in item.anomalies],
            }
            for item in trail.events
        ],
        "anomalies": [anomaly_json(anomaly) for anomaly in trail.anomalies],
    }
