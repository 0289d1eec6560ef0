"""Building scan events as a scanner would post them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BASE_TIME = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def at(hours: float, base: datetime = BASE_TIME) -> str:
    return (base + timedelta(hours=hours)).isoformat()


def event(
    event_type: str, container_id: str, hours: float, base: datetime = BASE_TIME, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "type": event_type,
        "container_id": container_id,
        "occurred_at": at(hours, base),
        "location_id": fields.pop("location_id", "loc-1"),
    }
    body.update(fields)
    return body


def dropoff(container_id: str, hours: float = 0, **fields: Any) -> dict[str, Any]:
    return event("dropoff", container_id, hours, chemistry="li_ion", **fields)


def sealed(
    container_id: str, hours: float = 1, weight_kg: float = 120.0, **fields: Any
) -> dict[str, Any]:
    return event(
        "sealed", container_id, hours, weight_kg=weight_kg, un_numbers=["UN3480"], **fields
    )


def transfer(
    event_type: str,
    container_id: str,
    hours: float,
    from_party: str,
    to_party: str,
    **fields: Any,
) -> dict[str, Any]:
    return event(
        event_type, container_id, hours, from_party=from_party, to_party=to_party, **fields
    )


def unique_container(prefix: str = "BX") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
