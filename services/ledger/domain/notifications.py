"""Plant notifications: what a plant is told when a shipment is bound for it (pure).

``services/ledger/adapters/outbox.py`` writes them in the append transaction;
``services/ledger/service/notifier.py`` delivers them (retries: ``delivery_policy.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from services.contract.events import Pickup, Sealed
from services.ledger.domain.custody import reconstruct
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.hashing import format_instant

SHIPMENT_INBOUND = "shipment.inbound"

#: Fixed forever: notification ids (the ``webhook-id`` plants de-duplicate on) derive from it.
NOTIFICATION_NAMESPACE = uuid5(NAMESPACE_URL, "https://battery-custody.local/v1/notifications")


class NotificationStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DISABLED = "disabled"


def notification_id(kind: str, source_event_id: UUID) -> UUID:
    """One notification of a kind per ledger event; stable, so it can serve as webhook-id."""
    return uuid5(NOTIFICATION_NAMESPACE, f"{kind}:{source_event_id}")


def inbound_payload(
    entry: RecordedEntry, pickup: Pickup, container_entries: Sequence[RecordedEntry]
) -> dict[str, Any]:
    """The ``shipment.inbound`` body: the pickup plus the container's sealed facts.

    The sealed facts are those of the latest sealed event in trail order that no correction
    voids, among the entries recorded up to and including this batch; null (and ``ddr_flag``
    false) when no sealed event is recorded yet (an offline site scanner may upload it later).
    """
    trail = reconstruct(container_entries, now=entry.recorded_at)
    sealed = next(
        (
            item.entry.event
            for item in reversed(trail.events)
            if isinstance(item.entry.event, Sealed) and not item.corrected
        ),
        None,
    )
    ddr = [value.value for value in sealed.ddr] if sealed else []
    return {
        "type": SHIPMENT_INBOUND,
        "timestamp": format_instant(entry.recorded_at),
        "data": {
            "container_id": pickup.container_id,
            "shipment_id": pickup.shipment_id,
            "from_party": pickup.from_party,
            "to_party": pickup.to_party,
            "destination_party": pickup.destination_party,
            "expected_custodian": pickup.to_party,
            "picked_up_at": format_instant(pickup.occurred_at),
            "weight_kg": sealed.weight_kg if sealed else None,
            "un_numbers": list(sealed.un_numbers) if sealed else [],
            "ddr": ddr,
            "ddr_flag": bool(ddr),
            "event_id": str(pickup.event_id),
            "ledger_seq": entry.seq,
            "entry_hash": entry.entry_hash.hex(),
        },
    }
