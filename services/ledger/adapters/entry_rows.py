"""``ledger.entries`` rows as the domain's RecordedEntry: one at a time, or all in seq order."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Engine, select

from services.contract import Origin, OriginKind, parse_event
from services.ledger.adapters import tables
from services.ledger.domain.entries import RecordedEntry


def recorded_entry(row: Mapping[Any, Any]) -> RecordedEntry:
    """From a SQLAlchemy RowMapping or a psycopg dict row; ``body`` is kept as stored."""
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
        body=row["body"],
    )


def stream_entries(engine: Engine, *, chunk: int = 5000) -> Iterator[RecordedEntry]:
    """Every entry in seq order, read in chunks of ``chunk`` (for audits)."""
    entries = tables.entries
    after = -1
    while True:
        with engine.connect() as connection:
            rows = (
                connection.execute(
                    select(entries)
                    .where(entries.c.seq > after)
                    .order_by(entries.c.seq)
                    .limit(chunk)
                )
                .mappings()
                .all()
            )
        if not rows:
            return
        for row in rows:
            yield recorded_entry(row)
        after = rows[-1]["seq"]
