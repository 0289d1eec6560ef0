"""The transactional outbox: plant notifications written in the append transaction.

``enqueue_notifications`` runs inside the ledger's append unit of work: a ``pickup`` naming a
``destination_party`` whose endpoint is enabled gets one ``ledger.outbox`` row, committed (or
rolled back) together with the entry itself. ``services/ledger/service/notifier.py`` delivers
the rows; ``ledger.webhook_deliveries`` records every attempt (append-only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert

from services.contract.events import Pickup
from services.ledger.adapters.tables import outbox
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.notifications import SHIPMENT_INBOUND, inbound_payload, notification_id
from services.registry.tables import plant_endpoints


def enqueue_notifications(
    connection: Connection,
    entries: Sequence[RecordedEntry],
    container_entries: Mapping[str, Sequence[RecordedEntry]],
) -> int:
    """Outbox rows for the batch's pickups bound for a plant with an enabled endpoint.

    ``container_entries`` holds every entry of each container the batch touched (the read-model
    refresh has them). One endpoint query per batch, none when no pickup names a destination.
    """
    pickups = [
        (entry, event)
        for entry in entries
        if isinstance(event := entry.event, Pickup) and event.destination_party
    ]
    if not pickups:
        return 0
    destinations = {event.destination_party for _, event in pickups}
    enabled = set(
        connection.execute(
            select(plant_endpoints.c.party_id).where(
                plant_endpoints.c.party_id.in_(destinations), plant_endpoints.c.enabled
            )
        ).scalars()
    )
    rows = [
        {
            "entry_seq": entry.seq,
            "event_id": notification_id(SHIPMENT_INBOUND, event.event_id),
            "party_id": event.destination_party,
            "kind": SHIPMENT_INBOUND,
            "payload": inbound_payload(entry, event, container_entries[event.container_id]),
        }
        for entry, event in pickups
        if event.destination_party in enabled
    ]
    if rows:
        connection.execute(
            insert(outbox).on_conflict_do_nothing(index_elements=[outbox.c.event_id]), rows
        )
    return len(rows)
