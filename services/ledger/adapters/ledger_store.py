"""Appending a consumed batch to the ledger in ONE PostgreSQL transaction.

Lock → drop what the stored offsets say is done → skip replays, park conflicts → insert entries
with gapless seq and chained hashes → refresh the read model → store offsets → commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import orjson
from sqlalchemy import Connection, Engine, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import insert

from services.ledger.adapters import tables
from services.ledger.adapters.array_match import matches_any_of
from services.ledger.adapters.bulk_copy import copy_rows, jsonb
from services.ledger.adapters.driver import PreparedRead
from services.ledger.adapters.merkle_store import append_leaves
from services.ledger.adapters.outbox import enqueue_notifications
from services.ledger.adapters.read_model import (
    DUPLICATE_CONFLICT,
    load_conflicts,
    load_entries,
    upsert_trails,
)
from services.ledger.adapters.trail_cache import TrailCache, recorded
from services.ledger.consumer.decode import DecodedMessage, IncomingMessage, InvalidMessage
from services.ledger.domain.append import AppendPlan, PendingEvent, plan_append
from services.ledger.domain.custody import CustodyRules, reconstruct
from services.ledger.domain.entries import RecordedEntry

TopicPartition = tuple[str, int]
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


@dataclass(frozen=True, slots=True)
class Rejection:
    message: IncomingMessage
    code: str
    reason: str
    event_id: str | None = None
    container_id: str | None = None

    @classmethod
    def of_invalid(cls, message: IncomingMessage, error: InvalidMessage) -> Rejection:
        event = error.raw.get("event") if isinstance(error.raw.get("event"), dict) else {}
        event_id = event.get("event_id") if isinstance(event, dict) else None
        container_id = event.get("container_id") if isinstance(event, dict) else None
        return cls(
            message,
            error.code,
            _storable(error.reason),
            event_id=_uuid_text(event_id),
            container_id=_storable(container_id) if isinstance(container_id, str) else None,
        )


def _storable(text: str) -> str:
    """``text`` as PostgreSQL can store it: U+0000 (possible in any invalid input) replaced."""
    return text.replace("\x00", "\N{REPLACEMENT CHARACTER}")


def _uuid_text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(UUID(value))
    except ValueError:
        return None


# Built once: a statement built per batch around its values (thousands of UUIDs) is freed
# only by the garbage collector, as SQLAlchemy's expressions hold reference cycles; its
# young-generation collections then took 100-290 ms, stalling the append they fell into.
_RECORDED_BODIES = PreparedRead(
    select(tables.entries.c.event_id, tables.entries.c.body).where(
        matches_any_of(tables.entries.c.event_id, "event_ids")
    )
)
# One backward probe of (container_id, seq) per container, whatever the statistics say. The
# DISTINCT ON form it replaces was planned as a scan of the whole table when ledger.entries
# had no statistics, as under steady appends before 0007 (autovacuum skipped the table its
# lock could not take): 2,000 events took 13 s at 190,000 entries.
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


@dataclass(frozen=True, slots=True)
class AppendResult:
    appended: int
    replays: int
    rejected: tuple[Rejection, ...]
    already_done: int


class LedgerStore:
    def __init__(
        self,
        engine: Engine,
        *,
        group: str,
        rules: CustodyRules,
        cache_containers: int = 5_000,
    ) -> None:
        self._engine = engine
        self._group = group
        self._rules = rules
        self._trail_cache = TrailCache(cache_containers)

    def stored_offsets(self, topic: str) -> dict[int, int]:
        offsets = tables.consumer_offsets
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(offsets.c.kafka_partition, offsets.c.next_offset).where(
                    offsets.c.consumer_group == self._group, offsets.c.topic == topic
                )
            )
            return {partition: next_offset for partition, next_offset in rows}

    def append_batch(
        self,
        decoded: Sequence[DecodedMessage],
        invalid: Sequence[Rejection],
        next_offsets: Mapping[TopicPartition, int],
    ) -> AppendResult:
        """Record one polled batch; ``next_offsets`` is where each partition resumes after it."""
        with self._engine.begin() as connection:
            connection.execute(_LOCK_FOR_APPEND)
            done = self._done_offsets(connection, next_offsets)

            def fresh(message: IncomingMessage) -> bool:
                return message.offset >= done.get((message.topic, message.partition), 0)

            todo = [item for item in decoded if fresh(item.message)]
            rejections = [item for item in invalid if fresh(item.message)]
            already_done = len(decoded) + len(invalid) - len(todo) - len(rejections)
            recorded_at = datetime.now(UTC)
            plan = self._plan(connection, todo, recorded_at)
            by_position = {(item.message.partition, item.message.offset): item for item in todo}
            rejections.extend(
                Rejection(
                    by_position[
                        (conflict.pending.kafka_partition, conflict.pending.kafka_offset)
                    ].message,
                    DUPLICATE_CONFLICT,
                    conflict.reason,
                    event_id=str(conflict.pending.envelope.event.event_id),
                    container_id=conflict.pending.envelope.event.container_id,
                )
                for conflict in plan.conflicts
            )
            self._insert_entries(connection, plan)
            if plan.entries:
                append_leaves(
                    connection, plan.entries[0].seq, [entry.entry_hash for entry in plan.entries]
                )
            self._insert_rejections(connection, rejections)
            refreshed = self._refresh_read_model(connection, plan, recorded_at)
            enqueue_notifications(connection, plan.entries, refreshed)
            self._store_offsets(connection, next_offsets)
        self._trail_cache.remember(refreshed)
        return AppendResult(len(plan.entries), plan.replays, tuple(rejections), already_done)

    def _refresh_read_model(
        self, connection: Connection, plan: AppendPlan, now: datetime
    ) -> dict[str, list[RecordedEntry]]:
        """Reconstruct every touched container; cached entries spare re-reading most of them."""
        appended: dict[str, list[RecordedEntry]] = defaultdict(list)
        for entry in plan.entries:
            appended[entry.pending.envelope.event.container_id].append(recorded(entry))
        entries, stale = self._trail_cache.extend(appended)
        stale |= {c.pending.envelope.event.container_id for c in plan.conflicts} - entries.keys()
        entries.update(load_entries(connection, stale))
        conflicts = load_conflicts(connection, entries.keys())
        upsert_trails(
            connection,
            (
                reconstruct(items, now=now, rules=self._rules, conflicts=conflicts.get(cid, ()))
                for cid, items in entries.items()
            ),
        )
        return entries

    def _done_offsets(
        self, connection: Connection, next_offsets: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        topics = list({topic for topic, _ in next_offsets})
        rows = connection.execute(_DONE_OFFSETS, {"group": self._group, "topics": topics})
        return {(topic, partition): next_offset for topic, partition, next_offset in rows}

    def _plan(
        self, connection: Connection, todo: Sequence[DecodedMessage], recorded_at: datetime
    ) -> AppendPlan:
        event_ids = list({item.envelope.event.event_id for item in todo})
        container_ids = list({item.envelope.event.container_id for item in todo})
        recorded_bodies = {}
        if event_ids:
            recorded_bodies = {
                row["event_id"]: row["body"]
                for row in _RECORDED_BODIES.rows(connection, {"event_ids": event_ids})
            }
        heads = {}
        if container_ids:
            heads = {
                row["container_id"]: row["entry_hash"]
                for row in _CHAIN_HEADS.rows(connection, {"container_ids": container_ids})
            }
        next_seq = connection.execute(_NEXT_SEQ).scalar_one()
        pending = [
            PendingEvent(item.envelope, item.body, item.message.partition, item.message.offset)
            for item in todo
        ]
        return plan_append(
            pending,
            recorded_bodies=recorded_bodies,
            next_seq=next_seq,
            chain_heads=heads,
            recorded_at=recorded_at,
        )

    @staticmethod
    def _insert_entries(connection: Connection, plan: AppendPlan) -> None:
        if not plan.entries:
            return
        rows = []
        for entry in plan.entries:
            envelope = entry.pending.envelope
            event = envelope.event
            rows.append(
                (
                    entry.seq,
                    event.event_id,
                    event.container_id,
                    event.type,
                    jsonb(entry.pending.body),
                    event.occurred_at,
                    envelope.received_at,
                    entry.recorded_at,
                    envelope.origin.kind.value,
                    envelope.origin.party_id,
                    envelope.origin.device_id,
                    entry.pending.kafka_partition,
                    entry.pending.kafka_offset,
                    entry.prev_hash,
                    entry.entry_hash,
                )
            )
        copy_rows(connection, tables.entries, ENTRY_COLUMNS, rows)

    @staticmethod
    def _insert_rejections(connection: Connection, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        connection.execute(
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

    def _store_offsets(
        self, connection: Connection, next_offsets: Mapping[TopicPartition, int]
    ) -> None:
        if not next_offsets:
            return
        connection.execute(
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


def dlq_payload(rejection: Rejection) -> bytes:
    """The DLQ record: the reason and where the original sits, plus its raw value."""
    return orjson.dumps(
        {
            "reason_code": rejection.code,
            "reason": rejection.reason,
            "topic": rejection.message.topic,
            "partition": rejection.message.partition,
            "offset": rejection.message.offset,
            "raw": (rejection.message.value or b"").decode("utf-8", "replace"),
        }
    )
