"""An EPCIS capture job: what one capture did, as the EPCIS capture-job document shows it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Behaviour = Literal["rollback", "proceed"]


@dataclass(frozen=True, slots=True)
class EventErrors:
    index: int
    event_id: str | None
    errors: list[dict[str, str]]

    def as_json(self) -> dict[str, Any]:
        return {"eventIndex": self.index, "eventID": self.event_id, "errors": self.errors}


@dataclass(frozen=True, slots=True)
class CaptureJob:
    capture_id: uuid.UUID
    party_id: str
    device_id: str
    behaviour: Behaviour
    events: int
    accepted: int
    errors: tuple[EventErrors, ...]
    created_at: datetime
    finished_at: datetime

    @property
    def success(self) -> bool:
        return not self.errors

    def as_json(self) -> dict[str, Any]:
        """The EPCIS capture job document."""
        return {
            "captureID": str(self.capture_id),
            "createdAt": self.created_at.isoformat(),
            "finishedAt": self.finished_at.isoformat(),
            "running": False,
            "success": self.success,
            "captureErrorBehaviour": self.behaviour,
            "events": self.events,
            "acceptedEvents": self.accepted,
            "errors": [item.as_json() for item in self.errors],
        }
