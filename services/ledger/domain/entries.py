"""A recorded ledger entry as the pure core sees it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from services.contract import CustodyEvent, Origin


@dataclass(frozen=True, slots=True)
class RecordedEntry:
    seq: int
    event: CustodyEvent
    received_at: datetime
    recorded_at: datetime
    origin: Origin
    kafka_partition: int
    kafka_offset: int
    prev_hash: bytes
    entry_hash: bytes

    @property
    def event_id(self) -> UUID:
        return self.event.event_id

    @property
    def container_id(self) -> str:
        return self.event.container_id


@dataclass(frozen=True, slots=True)
class DuplicateConflict:
    """A message whose event_id was recorded before with different content."""

    event_id: UUID
    container_id: str
    rejected_at: datetime
