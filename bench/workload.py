"""The benchmark workload: container lives of five events, as envelopes on the wire."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

ORIGINS = {
    "site": {"kind": "device", "party_id": "site-a", "device_id": "site-a-dev"},
    "hauler": {"kind": "device", "party_id": "hauler-a", "device_id": "hauler-a-dev"},
    "plant": {"kind": "device", "party_id": "plant-a", "device_id": "plant-a-dev"},
}


def _scan(
    container: str, base: datetime, type_: str, hours: float, **fields: Any
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": type_,
        "container_id": container,
        "occurred_at": (base + timedelta(hours=hours)).isoformat(),
        "location_id": "loc-bench",
        **fields,
    }


def life(container: str, base: datetime) -> list[tuple[str, dict[str, Any]]]:
    def event(type_: str, hours: float, **fields: Any) -> dict[str, Any]:
        return _scan(container, base, type_, hours, **fields)

    return [
        ("site", event("dropoff", 0, chemistry="li_ion", battery_count=40)),
        ("site", event("sealed", 1, weight_kg=82.5, un_numbers=["UN3480"])),
        (
            "hauler",
            event(
                "pickup",
                2,
                from_party="site-a",
                to_party="hauler-a",
                shipment_id=f"BOL-{container}",
            ),
        ),
        ("plant", event("intake", 3, from_party="hauler-a", to_party="plant-a", weight_kg=82.1)),
        ("plant", event("processed", 4, method="hydromet")),
    ]


def long_life(container: str, base: datetime) -> list[tuple[str, dict[str, Any]]]:
    """Ten events: the five above plus two incidents, a hub round trip and the plant's ack."""
    dropoff, sealed, pickup, intake, processed = life(container, base)

    def event(type_: str, hours: float, **fields: Any) -> dict[str, Any]:
        return _scan(container, base, type_, hours, **fields)

    return [
        dropoff,
        sealed,
        ("site", event("incident", 1.5, kind="damaged", description="dented lid, no leak")),
        pickup,
        ("hauler", event("handoff", 2.2, from_party="hauler-a", to_party="hub-a")),
        ("hauler", event("incident", 2.4, kind="leak", description="electrolyte smell")),
        ("hauler", event("handoff", 2.6, from_party="hub-a", to_party="hauler-a")),
        intake,
        (
            "plant",
            event(
                "receipt_ack",
                3.5,
                accepted_weight_kg=82.1,
                condition="ok",
                plant_reference=f"PR-{container}",
            ),
        ),
        processed,
    ]


def lives(
    count: int, *, prefix: str = "BN", long: bool = False, spread: timedelta = timedelta(0)
) -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """``count`` containers' lives: five events each, or ten with ``long``; with ``spread``,
    the lives start evenly over that much time before the last one."""
    latest = datetime.now(UTC) - timedelta(hours=6)
    for number in range(count):
        container = f"{prefix}-{number:07d}"
        base = latest - spread + spread * number / count
        yield container, (long_life if long else life)(container, base)


def envelopes(containers: int, *, prefix: str = "BN") -> list[tuple[bytes, bytes]]:
    """(key, value) Kafka messages exactly as ingest writes them."""
    received = datetime.now(UTC).isoformat()
    messages = []
    for container, events in lives(containers, prefix=prefix):
        for role, event in events:
            value = {"event": event, "received_at": received, "origin": ORIGINS[role]}
            messages.append((container.encode(), orjson.dumps(value)))
    return messages
