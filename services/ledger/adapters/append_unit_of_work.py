"""The append's one PostgreSQL transaction (docs/architecture.md §4).

``PostgresAppendUnitOfWork`` opens the transaction and takes the ledger's append lock; the
append use case (``services/ledger/service/append.py``) reads through it what it needs under
the lock, then writes entries, Merkle nodes, rejections, the read model, the outbox and the
Kafka offsets through it. Leaving the block commits all of it, or nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from sqlalchemy import Connection, Engine, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import insert

from services.ledger.adapters import tables
from services.ledger.adapters.array_match import matches_any_of
from services.ledger.adapters.bulk_copy import copy_rows, jsonb
from services.ledger.adapters.driver import PreparedRead
from services.ledger.adapters.merkle_store import append_leaves
from services.ledger.adapters.outbox import enqueue_notifications
from services.ledger.adapters.read_model import load_conflicts, load_entries, upsert_trails
from services.ledger.domain.custody import CustodyTrail
from services.ledger.domain.entries import DuplicateConflict, RecordedEntry
from services.ledger.domain.messages import Rejection, TopicPartition

ENTRY_COLUMNS = (
    "seq",
    "event_id",
    "container_id",
    "event_type",
    "body",
    "occurred_at",
    "received_at",
    "recorded_at",
    "origin_kind",
    "origin_party",
    "origin_device",
    "kafka_partition",
    "kafka_offset",
    "prev_hash",
    "entry_hash",
)

# Built once: a statement built per batch around its values (thousands of UUIDs) is freed
# only by the garbage collector, as SQLAlchemy's expressions hold reference cycles, and its
# collections stalled the append they fell into.
_RECORDED_BODIES = PreparedRead(
    select(tables.entries.c.event_id, tables.entries.c.body).where(
        matches_any_of(tables.entries.c.event_id, "event_ids")
    )
)
# One backward probe of (container_id, seq) per container, whatever the statistics say: a
# DISTINCT ON form was planned as a scan of the whole table when ledger.entries had none.
_CHAIN_HEADS = PreparedRead(
    text(
        "SELECT k.container_id, h.entry_hash "
        "FROM unnest(CAST(:container_ids AS text[])) AS k (container_id) "
        "CROSS JOIN LATERAL (SELECT e.entry_hash FROM ledger.entries AS e "
        "WHERE e.container_id = k.container_id ORDER BY e.seq DESC LIMIT 1) AS h"
    )
)
_NEXT_SEQ = select(func.coalesce(func.max(tables.entries.c.seq) + 1, 0))
_LOCK_FOR_APPEND = text("SELECT ledger.lock_entries_for_append()")
_DONE_OFFSETS = select(
    tables.consumer_offsets.c.topic,
    tables.consumer_offsets.c.kafka_partition,
    tables.consumer_offsets.c.next_offset,
).where(
    tables.consumer_offsets.c.consumer_group == bindparam("group"),
    matches_any_of(tables.consumer_offsets.c.topic, "topics"),
)
_INSERT_REJECTIONS = insert(tables.rejected).on_conflict_do_nothing(
    index_elements=["kafka_topic", "kafka_partition", "kafka_offset"]
)
_new_offsets = insert(tables.consumer_offsets)
_STORE_OFFSETS = _new_offsets.on_conflict_do_update(
    index_elements=["consumer_group", "topic", "kafka_partition"],
    set_={
        "next_offset": func.greatest(
            tables.consumer_offsets.c.next_offset, _new_offsets.excluded.next_offset
        )
    },
)


def stored_offsets(engine: Engine, group: str, topic: str) -> dict[int, int]:
    """Where the ledger says each partition of ``topic`` resumes for consumer ``group``."""
    offsets = tables.consumer_offsets
    with engine.connect() as connection:
        rows = connection.execute(
            select(offsets.c.kafka_partition, offsets.c.next_offset).where(
                offsets.c.consumer_group == group, offsets.c.topic == topic
            )
        )
        return {partition: next_offset for partition, next_offset in rows}


class PostgresAppendUnitOfWork:
    """``with uow:`` is one transaction under the append lock; it commits on a clean exit."""

    def __init__(self, engine: Engine, group: str) -> None:
        self._engine = engine
        self._group = group
        self._connection: Connection | None = None

    def __enter__(self) -> Self:
        self._connection = self._engine.connect()
        self._connection.begin()
        self._connection.execute(_LOCK_FOR_APPEND)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        connection, self._connection = self.connection, None
        try:
            if kind is None:
                connection.commit()
            else:
                connection.rollback()
        finally:
            connection.close()

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("the unit of work is used outside its with block")
        return self._connection

    # --- reads under the lock -----------------------------------------------------------------

    def done_offsets(self, topics: Collection[str]) -> dict[TopicPartition, int]:
        rows = self.connection.execute(
            _DONE_OFFSETS, {"group": self._group, "topics": list(topics)}
        )
        return {(topic, partition): next_offset for topic, partition, next_offset in rows}

    def recorded_bodies(self, event_ids: Collection[UUID]) -> dict[UUID, dict[str, Any]]:
        if not event_ids:
            return {}
        rows = _RECORDED_BODIES.rows(self.connection, {"event_ids": list(event_ids)})
        return {row["event_id"]: row["body"] for row in rows}

    def chain_heads(self, container_ids: Collection[str]) -> dict[str, bytes]:
        if not container_ids:
            return {}
        rows = _CHAIN_HEADS.rows(self.connection, {"container_ids": list(container_ids)})
        return {row["container_id"]: row["entry_hash"] for row in rows}

    def next_seq(self) -> int:
        seq: int = self.connection.execute(_NEXT_SEQ).scalar_one()
        return seq

    def entries_of(self, container_ids: Collection[str]) -> dict[str, list[RecordedEntry]]:
        return load_entries(self.connection, container_ids)

    def conflicts_of(self, container_ids: Collection[str]) -> dict[str, list[DuplicateConflict]]:
        return load_conflicts(self.connection, container_ids)

    # --- writes --------------------------------------------------------------------------------

    def add_entries(self, entries: Sequence[RecordedEntry]) -> None:
        """The entries (gapless from the first's seq) and their Merkle leaves."""
        if not entries:
            return
        rows = []
        for entry in entries:
            event, origin = entry.event, entry.origin
            rows.append(
                (
                    entry.seq,
                    event.event_id,
                    event.container_id,
                    event.type,
                    jsonb(entry.hashed_body),
                    event.occurred_at,
                    entry.received_at,
                    entry.recorded_at,
                    origin.kind.value,
                    origin.party_id,
                    origin.device_id,
                    entry.kafka_partition,
                    entry.kafka_offset,
                    entry.prev_hash,
                    entry.entry_hash,
                )
            )
        copy_rows(self.connection, tables.entries, ENTRY_COLUMNS, rows)
        append_leaves(self.connection, entries[0].seq, [entry.entry_hash for entry in entries])

    def add_rejections(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        self.connection.execute(
            _INSERT_REJECTIONS,
            [
                {
                    "kafka_topic": item.message.topic,
                    "kafka_partition": item.message.partition,
                    "kafka_offset": item.message.offset,
                    "reason_code": item.code,
                    "reason": item.reason,
                    "raw": item.message.value or b"",
                    "event_id": item.event_id,
                    "container_id": item.container_id,
                }
                for item in rejections
            ],
        )

    def save_trails(self, trails: Iterable[CustodyTrail]) -> None:
        upsert_trails(self.connection, trails)

    def add_notifications(
        self,
        entries: Sequence[RecordedEntry],
        container_entries: Mapping[str, Sequence[RecordedEntry]],
    ) -> None:
        enqueue_notifications(self.connection, entries, container_entries)

    def store_offsets(self, next_offsets: Mapping[TopicPartition, int]) -> None:
        if not next_offsets:
            return
        self.connection.execute(
            _STORE_OFFSETS,
            [
                {
                    "consumer_group": self._group,
                    "topic": topic,
                    "kafka_partition": partition,
                    "next_offset": next_offset,
                }
                for (topic, partition), next_offset in next_offsets.items()
            ],
        )
