"""Mapping between ``ledger.entries`` rows and the domain's RecordedEntry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.contract import Origin, OriginKind, parse_event
from services.ledger.domain.entries import RecordedEntry


def recorded_entry(row: Mapping[Any, Any]) -> RecordedEntry:
    """From a SQLAlchemy RowMapping or a psycopg dict row."""
    return RecordedEntry(
        seq=row["seq"],
        event=parse_event(row["body"]),
        received_at=row["received_at"],
        recorded_at=row["recorded_at"],
        origin=Origin(
            kind=OriginKind(row["origin_kind"]),
            party_id=row["origin_party"],
            device_id=row["origin_device"],
        ),
        kafka_partition=row["kafka_partition"],
        kafka_offset=row["kafka_offset"],
        prev_hash=bytes(row["prev_hash"]),
        entry_hash=bytes(row["entry_hash"]),
    )
