"""The event contract shared by ingest and the ledger (docs/architecture.md §3)."""

from services.contract.envelope import Envelope, Origin, OriginKind
from services.contract.events import (
    EVENT_TYPES,
    ContainerId,
    CustodyEvent,
    EventType,
    ScanEvent,
    parse_event,
)

__all__ = [
    "EVENT_TYPES",
    "ContainerId",
    "CustodyEvent",
    "Envelope",
    "EventType",
    "Origin",
    "OriginKind",
    "ScanEvent",
    "parse_event",
]
