"""A plant's signed receipt acknowledgement, and the ``receipt_ack`` event it becomes
(docs/architecture.md §5).

Replays: the event id is ``uuid5(WEBHOOK_EVENT_NAMESPACE, "<party_id>:<webhook-id>")`` and every
event field comes from the signed body (never from the headers or the clock), so a redelivery —
Standard Webhooks senders retry with the same id and body, re-signed with a new timestamp — is
the identical event, accepted again and recorded once by the ledger. The same webhook-id with a
*different* body is produced too: the ledger parks it as ``duplicate_conflict`` and the
container's trail shows that anomaly, so a suspicious redelivery stays visible to auditors
instead of being decided away at the door.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.contract.events import Condition, ContainerId, ReceiptAck, Reference, Timestamp
from services.ingest.domain.errors import Invalid, Malformed
from services.ingest.domain.webhook_signature import WebhookHeaders, verify_signature

#: Fixed forever: recorded receipt event ids are derived from it.
WEBHOOK_EVENT_NAMESPACE = uuid5(NAMESPACE_URL, "https://battery-custody.local/v1/webhooks/plants")


class ReceiptData(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    container_id: ContainerId
    shipment_id: Reference | None = None
    received_at: Timestamp = Field(description="When the plant received the container.")
    accepted_weight_kg: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]
    condition: Condition
    plant_reference: Reference


class ReceiptWebhook(BaseModel):
    """The signed body of a plant's receipt acknowledgement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["receipt.acknowledged"]
    timestamp: Timestamp = Field(description="When the plant's system emitted the receipt.")
    data: ReceiptData


def parse_payload(body: bytes) -> ReceiptWebhook:
    """The verified body as a receipt payload: Malformed if not JSON, Invalid with field paths."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Malformed.not_json(error) from error
    try:
        return ReceiptWebhook.model_validate(raw)
    except ValidationError as error:
        raise Invalid.from_validation(error) from error


def webhook_event_id(party_id: str, webhook_id: str) -> UUID:
    """The receipt's event id: the same plant and webhook-id always give the same id."""
    return uuid5(WEBHOOK_EVENT_NAMESPACE, f"{party_id}:{webhook_id}")


def receipt_event(party_id: str, webhook_id: str, payload: ReceiptWebhook) -> ReceiptAck:
    """The receipt_ack event; a pure function of plant, webhook-id and body (replays match)."""
    data = payload.data
    return ReceiptAck(
        event_id=webhook_event_id(party_id, webhook_id),
        type="receipt_ack",
        container_id=data.container_id,
        occurred_at=data.received_at,
        location_id=f"{party_id}:webhook",
        sent_at=payload.timestamp,
        accepted_weight_kg=data.accepted_weight_kg,
        condition=data.condition,
        plant_reference=data.plant_reference,
        shipment_id=data.shipment_id,
    )


def read_receipt(
    party_id: str, body: bytes, headers: WebhookHeaders, secrets: Sequence[str]
) -> ReceiptAck:
    """Signature first, then the payload: an unsigned body is never interpreted."""
    verify_signature(body, headers, secrets)
    return receipt_event(party_id, headers.webhook_id, parse_payload(body))
