"""Plant receipts signed the way a plant's system signs them (Standard Webhooks)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from math import floor
from typing import Any

import orjson
from standardwebhooks import Webhook

from tests.support import events as ev


def receipt_body(container_id: str, hours: float = 6, **data: Any) -> bytes:
    fields: dict[str, Any] = {
        "container_id": container_id,
        "received_at": ev.at(hours),
        "accepted_weight_kg": 119.5,
        "condition": "ok",
        "plant_reference": f"RCV-{container_id}",
    }
    fields.update(data)
    return orjson.dumps(
        {"type": "receipt.acknowledged", "timestamp": ev.at(hours + 0.1), "data": fields}
    )


def signed_headers(
    body: bytes, secret: str, *, msg_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers, the signature made by the reference library."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(floor(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }
