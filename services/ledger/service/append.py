"""The ledger's main use case: append one consumed batch, in one unit of work.

Lock → drop what the stored offsets say is done → skip replays, park conflicts → entries with
gapless seq and chained hashes, and their Merkle leaves → rejections → the read model of every
touched container → the outbox → the Kafka offsets → commit (docs/architecture.md §4).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from services.ledger.adapters.trail_cache import TrailCache
from services.ledger.domain.append import AppendPlan, PendingEvent, plan_append
from services.ledger.domain.custody import CustodyRules, CustodyTrail, reconstruct
from services.ledger.domain.entries import DuplicateConflict, RecordedEntry
from services.ledger.domain.messages import (
    DUPLICATE_CONFLICT,
    DecodedMessage,
    IncomingMessage,
    Rejection,
    TopicPartition,
)


class AppendUnitOfWork(Protocol):
    """One transaction under the append lock (``adapters/append_unit_of_work.py``)."""

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...
    def done_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]: ...
    def recorded_bodies(self, event_ids: Sequence[UUID]) -> dict[UUID, dict[str, object]]: ...
    def chain_heads(self, container_ids: Sequence[str]) -> dict[str, bytes]: ...
    def next_seq(self) -> int: ...
    def entries_of(self, container_ids: Sequence[str]) -> dict[str, list[RecordedEntry]]: ...
    def conflicts_of(self, container_ids: Sequence[str]) -> dict[str, list[DuplicateConflict]]: ...
    def add_entries(self, entries: Sequence[RecordedEntry]) -> None: ...
    def add_rejections(self, rejections: Sequence[Rejection]) -> None: ...
    def save_trails(self, trails: Sequence[CustodyTrail]) -> None: ...
    def add_notifications(
        self,
        entries: Sequence[RecordedEntry],
        container_entries: Mapping[str, Sequence[RecordedEntry]],
    ) -> None: ...
    def store_offsets(self, next_offsets: Mapping[TopicPartition, int]) -> None: ...


@dataclass(frozen=True, slots=True)
class AppendResult:
    appended: int
    replays: int
    rejected: tuple[Rejection, ...]
    already_done: int


class LedgerAppender:
    """Appends batches; remembers recent containers' entries between them (``TrailCache``)."""

    def __init__(
        self,
        unit_of_work: Callable[[], AppendUnitOfWork],
        *,
        rules: CustodyRules,
        cache_containers: int = 5_000,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._rules = rules
        self._trail_cache = TrailCache(cache_containers)

    def append(
        self,
        decoded: Sequence[DecodedMessage],
        invalid: Sequence[Rejection],
        next_offsets: Mapping[TopicPartition, int],
    ) -> AppendResult:
        """Record one polled batch; ``next_offsets`` is where each partition resumes after it."""
        with self._unit_of_work() as uow:
            done = uow.done_offsets(sorted({topic for topic, _ in next_offsets}))

            def fresh(message: IncomingMessage) -> bool:
                return message.offset >= done.get((message.topic, message.partition), 0)

            todo = [item for item in decoded if fresh(item.message)]
            rejections = [item for item in invalid if fresh(item.message)]
            already_done = len(decoded) + len(invalid) - len(todo) - len(rejections)
            recorded_at = datetime.now(UTC)
            plan = self._plan(uow, todo, recorded_at)
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
            uow.add_entries(plan.entries)
            uow.add_rejections(rejections)
            refreshed = self._refresh_read_model(uow, plan, recorded_at)
            uow.add_notifications(plan.entries, refreshed)
            uow.store_offsets(next_offsets)
        self._trail_cache.remember(refreshed)
        return AppendResult(len(plan.entries), plan.replays, tuple(rejections), already_done)

    @staticmethod
    def _plan(
        uow: AppendUnitOfWork, todo: Sequence[DecodedMessage], recorded_at: datetime
    ) -> AppendPlan:
        event_ids = list({item.envelope.event.event_id for item in todo})
        container_ids = list({item.envelope.event.container_id for item in todo})
        return plan_append(
            [
                PendingEvent(item.envelope, item.body, item.message.partition, item.message.offset)
                for item in todo
            ],
            recorded_bodies=uow.recorded_bodies(event_ids),
            next_seq=uow.next_seq(),
            chain_heads=uow.chain_heads(container_ids),
            recorded_at=recorded_at,
        )

    def _refresh_read_model(
        self, uow: AppendUnitOfWork, plan: AppendPlan, now: datetime
    ) -> dict[str, list[RecordedEntry]]:
        """Reconstruct every touched container; cached entries spare re-reading most of them."""
        appended: dict[str, list[RecordedEntry]] = defaultdict(list)
        for entry in plan.entries:
            appended[entry.container_id].append(entry)
        entries, stale = self._trail_cache.extend(appended)
        stale |= {c.pending.envelope.event.container_id for c in plan.conflicts} - entries.keys()
        entries.update(uow.entries_of(sorted(stale)))
        conflicts = uow.conflicts_of(sorted(entries))
        uow.save_trails(
            [
                reconstruct(items, now=now, rules=self._rules, conflicts=conflicts.get(cid, ()))
                for cid, items in entries.items()
            ]
        )
        return entries
