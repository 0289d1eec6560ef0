"""Planning an append: which messages become entries, which are replays or conflicts.

Pure: the store hands in what it read under the append lock and writes what comes back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from services.contract import Envelope
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.hashing import ZERO_HASH, entry_document, entry_hash


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A decoded message waiting to be appended."""

    envelope: Envelope
    body: dict[str, Any]
    kafka_partition: int
    kafka_offset: int


@dataclass(frozen=True, slots=True)
class Conflict:
    pending: PendingEvent
    reason: str


@dataclass
class AppendPlan:
    entries: list[RecordedEntry] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    replays: int = 0


def plan_append(
    pending: Iterable[PendingEvent],
    *,
    recorded_bodies: Mapping[UUID, dict[str, Any]],
    next_seq: int,
    chain_heads: Mapping[str, bytes],
    recorded_at: datetime,
) -> AppendPlan:
    """Give each new event its seq and hashes; skip identical replays; park conflicts.

    ``recorded_bodies`` are the bodies already in the ledger for the batch's event ids and
    ``chain_heads`` the last entry hash of each container the batch touches.
    """
    plan = AppendPlan()
    bodies = dict(recorded_bodies)
    heads = dict(chain_heads)
    seq = next_seq
    for item in pending:
        event = item.envelope.event
        known = bodies.get(event.event_id)
        if known is not None:
            if known == item.body:
                plan.replays += 1
            else:
                plan.conflicts.append(
                    Conflict(
                        item,
                        f"event_id {event.event_id} was recorded before with different content",
                    )
                )
            continue
        prev_hash = heads.get(event.container_id, ZERO_HASH)
        origin = item.envelope.origin.model_dump(mode="json")
        document = entry_document(
            seq=seq,
            event=item.body,
            received_at=item.envelope.received_at,
            recorded_at=recorded_at,
            origin=origin,
            kafka_partition=item.kafka_partition,
            kafka_offset=item.kafka_offset,
            prev_hash=prev_hash,
        )
        digest = entry_hash(document)
        plan.entries.append(
            RecordedEntry(
                seq,
                event,
                item.envelope.received_at,
                recorded_at,
                item.envelope.origin,
                item.kafka_partition,
                item.kafka_offset,
                prev_hash,
                digest,
                body=item.body,
            )
        )
        bodies[event.event_id] = item.body
        heads[event.container_id] = digest
        seq += 1
    return plan
