"""Plant notifications in PostgreSQL: endpoints, the transactional outbox, the delivery log.

``enqueue_notifications`` runs inside the ledger append transaction (``LedgerStore.append_batch``):
a ``pickup`` naming a ``destination_party`` whose endpoint is enabled gets one ``ledger.outbox``
row, committed (or rolled back) together with the entry itself. ``services.ledger.notifier``
delivers the rows; ``ledger.webhook_deliveries`` records every attempt (append-only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import httpx
from sqlalchemy import (
    Connection,
    Engine,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert

from services.contract.events import Pickup, Sealed
from services.ledger.adapters.tables import outbox, plant_endpoints, webhook_deliveries
from services.ledger.domain.append import NewEntry
from services.ledger.domain.custody import reconstruct
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.hashing import format_instant
from services.registry.principals import PartyRole
from services.registry.store import RegistryError, new_webhook_secret

SHIPMENT_INBOUND = "shipment.inbound"

#: Fixed forever: notification ids (the ``webhook-id`` plants de-duplicate on) derive from it.
NOTIFICATION_NAMESPACE = uuid5(NAMESPACE_URL, "https://battery-custody.local/v1/notifications")


class NotificationStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DISABLED = "disabled"


# --- writing the outbox (inside the append transaction) ----------------------------------------


def notification_id(kind: str, source_event_id: UUID) -> UUID:
    """One notification of a kind per ledger event; stable, so it can serve as webhook-id."""
    return uuid5(NOTIFICATION_NAMESPACE, f"{kind}:{source_event_id}")


def inbound_payload(
    entry: NewEntry, pickup: Pickup, container_entries: Sequence[RecordedEntry]
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


def enqueue_notifications(
    connection: Connection,
    entries: Sequence[NewEntry],
    container_entries: Mapping[str, Sequence[RecordedEntry]],
) -> int:
    """Outbox rows for the batch's pickups bound for a plant with an enabled endpoint.

    ``container_entries`` holds every entry of each container the batch touched (the read-model
    refresh has them). One endpoint query per batch, none when no pickup names a destination.
    """
    pickups = [
        (entry, event)
        for entry in entries
        if isinstance(event := entry.pending.envelope.event, Pickup) and event.destination_party
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


# --- endpoints (``custody plants set-webhook``) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointSet:
    party_id: str
    url: str
    new_secret: str | None  # set when a secret was issued now (shown to the operator once)


def endpoint_url(url: str) -> str:
    """An absolute http(s) URL with a host, else RegistryError."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise RegistryError(f"not a URL: {error}") from error
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise RegistryError(f"{url!r} is not an absolute http(s) URL")
    return str(parsed)


def set_plant_endpoint(
    engine: Engine, party_id: str, url: str, *, rotate_secret: bool = False
) -> EndpointSet:
    """Create or update a plant's endpoint and (re-)enable it.

    The first call issues the outbound signing secret; later calls keep it unless
    ``rotate_secret`` (the receiver must then switch at once: there is no grace period).
    """
    url = endpoint_url(url)
    secret = new_webhook_secret()
    with engine.begin() as connection:
        role = connection.execute(
            text("SELECT role FROM registry.parties WHERE party_id = :party_id"),
            {"party_id": party_id},
        ).scalar_one_or_none()
        if role is None:
            raise RegistryError(f"unknown party {party_id!r}: add it with `custody parties add`")
        if role != PartyRole.PLANT.value:
            raise RegistryError(f"{party_id} is a {role}; only plants receive notifications")
        statement = insert(plant_endpoints).values(party_id=party_id, url=url, secret=secret)
        changes: dict[str, Any] = {
            "url": statement.excluded.url,
            "enabled": True,
            "disabled_reason": None,
            "updated_at": func.now(),
        }
        if rotate_secret:
            changes["secret"] = statement.excluded.secret
        stored = connection.execute(
            statement.on_conflict_do_update(
                index_elements=[plant_endpoints.c.party_id], set_=changes
            ).returning(plant_endpoints.c.secret)
        ).scalar_one()
    return EndpointSet(party_id, url, secret if stored == secret else None)


# --- reading the delivery log (``GET /v1/webhook-deliveries``) ---------------------------------


def list_deliveries(
    engine: Engine,
    *,
    party_id: str | None,
    status: NotificationStatus | None,
    after_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Delivery attempts, oldest first, with their notification's current status."""
    d, o = webhook_deliveries.c, outbox.c
    query = (
        select(
            d.id,
            d.outbox_id,
            o.event_id,
            o.party_id,
            o.kind,
            o.status,
            o.payload["data"]["container_id"].astext.label("container_id"),
            o.payload["data"]["shipment_id"].astext.label("shipment_id"),
            d.attempt,
            d.attempted_at,
            d.url,
            d.status_code,
            d.error,
            d.duration_ms,
            d.next_attempt_at,
        )
        .join_from(webhook_deliveries, outbox, o.id == d.outbox_id)
        .order_by(d.id)
        .limit(limit)
    )
    if party_id is not None:
        query = query.where(o.party_id == party_id)
    if status is not None:
        query = query.where(o.status == status.value)
    if after_id is not None:
        query = query.where(d.id > after_id)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    return [
        {
            "id": row["id"],
            "notification_id": str(row["event_id"]),
            "outbox_id": row["outbox_id"],
            "party_id": row["party_id"],
            "kind": row["kind"],
            "notification_status": row["status"],
            "container_id": row["container_id"],
            "shipment_id": row["shipment_id"],
            "attempt": row["attempt"],
            "attempted_at": _instant(row["attempted_at"]),
            "url": row["url"],
            "status_code": row["status_code"],
            "error": row["error"],
            "duration_ms": row["duration_ms"],
            "next_attempt_at": _instant(row["next_attempt_at"]),
        }
        for row in rows
    ]


def _instant(moment: datetime | None) -> str | None:
    return format_instant(moment) if moment is not None else None
