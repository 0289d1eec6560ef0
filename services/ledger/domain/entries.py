"""A recorded ledger entry: the one entry type of the ledger (docs/architecture.md §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from services.contract import CustodyEvent, Origin
from services.contract.events import event_body


@dataclass(frozen=True, slots=True)
class RecordedEntry:
    """An entry as appended, or as read back from ``ledger.entries`` or a bundle.

    ``body`` is the event exactly as stored and hashed; left out, it is the event's own
    JSON form (the two are equal for every entry the ledger appends).
    """

    seq: int
    event: CustodyEvent
    received_at: datetime
    recorded_at: datetime
    origin: Origin
    kafka_partition: int
    kafka_offset: int
    prev_hash: bytes
    entry_hash: bytes
    body: dict[str, Any] | None = None

    @property
    def event_id(self) -> UUID:
        return self.event.event_id

    @property
    def container_id(self) -> str:
        return self.event.container_id

    @property
    def hashed_body(self) -> dict[str, Any]:
        """The event body the entry hash covers."""
        return self.body if self.body is not None else event_body(self.event)


@dataclass(frozen=True, slots=True)
class DuplicateConflict:
    """A message whose event_id was recorded before with different content."""

    event_id: UUID
    container_id: str
    rejected_at: datetime
