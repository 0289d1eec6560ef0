"""Streaming ``ledger.entries`` in seq order as stored, for audits and chain checks."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import Engine, RowMapping, select

from services.ledger.adapters import tables
from services.ledger.domain.chain import StoredEntry


def stream_stored_entries(engine: Engine, *, chunk: int = 5000) -> Iterator[StoredEntry]:
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
            yield stored_entry(row)
        after = rows[-1]["seq"]


def stored_entry(row: RowMapping) -> StoredEntry:
    return StoredEntry(
        seq=row["seq"],
        container_id=row["container_id"],
        body=row["body"],
        received_at=row["received_at"],
        recorded_at=row["recorded_at"],
        origin={
            "kind": row["origin_kind"],
            "party_id": row["origin_party"],
            "device_id": row["origin_device"],
        },
        kafka_partition=row["kafka_partition"],
        kafka_offset=row["kafka_offset"],
        prev_hash=bytes(row["prev_hash"]),
        entry_hash=bytes(row["entry_hash"]),
    )
