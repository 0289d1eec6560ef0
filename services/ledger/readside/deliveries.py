"""The delivery log of plant notifications (``GET /v1/webhook-deliveries``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from services.ledger.adapters.tables import outbox, webhook_deliveries
from services.ledger.domain.integrity.hashing import format_instant
from services.ledger.domain.notifications import NotificationStatus


class DeliveryQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def attempts(
        self,
        *,
        party_id: str | None,
        status: NotificationStatus | None,
        after_id: int | None,
        limit: int,
        recipients: frozenset[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Delivery attempts, oldest first, with their notification's current status; with
        ``recipients``, only those of notifications addressed to these parties."""
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
        if recipients is not None:
            query = query.where(o.party_id.in_(sorted(recipients)))
        if status is not None:
            query = query.where(o.status == status.value)
        if after_id is not None:
            query = query.where(d.id > after_id)
        with self._engine.connect() as connection:
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
