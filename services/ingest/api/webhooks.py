"""Plant receipts in by Standard Webhooks: ``POST /v1/webhooks/plants/{party_id}`` (DESIGN.md §5).

Checks in order; any refusal produces nothing and answers problem+json:

1. ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` present and well formed, else
   400 naming the header (the request is malformed; no credential could be checked).
2. ``webhook-timestamp`` within ±5 minutes of now, else 401 "too old" / "too new".
3. The body (≤ ``max_body_bytes``, else 413) signed by a current secret of the plant, verified
   by the ``standardwebhooks`` reference library with each secret that is valid now (two during a
   rotation's grace period), else 401. An unknown party, or one that is not a plant, has no
   secrets and gets exactly the answer a wrong secret gets: the endpoint does not tell an
   unauthenticated caller which plants exist.
4. Only then is the body read as the payload: 400 if not JSON, 422 with field paths if not a
   ``receipt.acknowledged`` payload.
5. The ``receipt_ack`` event is produced exactly like a scan (key = container id, acks=all; 503
   if Kafka does not acknowledge), origin ``webhook`` of the plant → 202.

Replays: the event id is ``uuid5(WEBHOOK_EVENT_NAMESPACE, "<party_id>:<webhook-id>")`` and every
event field comes from the signed body (never from the headers or the clock), so a redelivery —
Standard Webhooks senders retry with the same id and body, re-signed with a new timestamp — is
the identical event, answered 202 again and recorded once by the ledger. The same webhook-id
with a *different* body is produced too: the ledger parks it as ``duplicate_conflict`` and the
container's trail shows that anomaly, so a suspicious redelivery stays visible to auditors
instead of being decided away at the door.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.contract import Origin, OriginKind
from services.contract.events import (
    PARTY_ID_PATTERN,
    Condition,
    ContainerId,
    ReceiptAck,
    Reference,
    Timestamp,
)
from services.ingest.api.app import Accepted, IngestContext, envelope_bytes, produce, read_body
from services.web.openapi import json_body, problem_responses
from services.web.problems import Problem, field_errors, invalid

WEBHOOKS = Counter(
    "custody_ingest_webhooks_total", "Plant webhooks seen by ingest", ["outcome", "reason"]
)

#: Standard Webhooks' tolerance, also the one the reference library applies.
TOLERANCE = timedelta(minutes=5)
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
MAX_SIGNATURES = 16

#: Fixed forever: recorded receipt event ids are derived from it.
WEBHOOK_EVENT_NAMESPACE = uuid5(NAMESPACE_URL, "https://battery-custody.local/v1/webhooks/plants")

_WEBHOOK_ID = re.compile(r"^[\x21-\x7e]{1,256}$")
_UNIX_SECONDS = re.compile(r"^(?:0|[1-9][0-9]{0,11})$")
_CHALLENGE = {"WWW-Authenticate": 'Webhook realm="custody-plants"'}
NO_MATCHING_SIGNATURE = "the webhook-signature matches no current webhook secret of this plant"


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


@dataclass(frozen=True, slots=True)
class WebhookHeaders:
    webhook_id: str
    timestamp: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            ID_HEADER: self.webhook_id,
            TIMESTAMP_HEADER: str(self.timestamp),
            SIGNATURE_HEADER: self.signature,
        }


def _malformed(header: str, detail: str) -> Problem:
    return Problem(400, "Malformed webhook header", f"{header}: {detail}")


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers=_CHALLENGE)


def read_headers(headers: Mapping[str, str], now: datetime) -> WebhookHeaders:
    """Presence and form of the three headers (400), then the ±5 min tolerance (401)."""
    found = {name.lower(): value.strip() for name, value in headers.items()}
    missing = [
        name for name in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) if not found.get(name)
    ]
    if missing:
        raise Problem(
            400,
            "Missing webhook header",
            f"missing header{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            "(Standard Webhooks needs webhook-id, webhook-timestamp and webhook-signature)",
        )
    webhook_id = found[ID_HEADER]
    if not _WEBHOOK_ID.match(webhook_id):
        raise _malformed(ID_HEADER, "must be 1–256 visible ASCII characters")
    stamp = found[TIMESTAMP_HEADER]
    if not _UNIX_SECONDS.match(stamp):
        raise _malformed(TIMESTAMP_HEADER, f"{stamp[:40]!r} is not integer Unix seconds")
    signatures = found[SIGNATURE_HEADER].split()
    if len(signatures) > MAX_SIGNATURES:
        raise _malformed(SIGNATURE_HEADER, f"more than {MAX_SIGNATURES} signatures")
    for item in signatures:
        version, comma, value = item.partition(",")
        if not comma or not version or not value or "," in value:
            raise _malformed(SIGNATURE_HEADER, "each signature must be '<version>,<base64>'")
        if version == "v1":
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error as error:
                raise _malformed(
                    SIGNATURE_HEADER, f"v1 signature is not base64: {error}"
                ) from error

    timestamp = int(stamp)
    offset = timestamp - now.timestamp()
    limit = TOLERANCE.total_seconds()
    if offset < -limit:
        raise _unauthorized(
            f"webhook-timestamp is too old: signed {-offset:.0f} s ago, "
            f"the tolerance is ±{limit:.0f} s"
        )
    if offset > limit:
        raise _unauthorized(
            f"webhook-timestamp is too new: {offset:.0f} s in the future, "
            f"the tolerance is ±{limit:.0f} s"
        )
    return WebhookHeaders(webhook_id, timestamp, " ".join(signatures))


def verify_signature(body: bytes, headers: WebhookHeaders, secrets: Sequence[str]) -> None:
    """Accept if the reference library verifies the body with any of ``secrets``, else 401.

    ``read_headers`` has checked the tolerance against the same clock the library reads, so a
    library refusal means no signature matched (at the very edge of the window it may also be
    the library's own timestamp check; the answer is the same generic 401 either way, which
    also keeps an unknown plant indistinguishable from a wrong secret).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Problem(400, "Malformed body", f"the body is not UTF-8: {error}") from error
    signed = headers.as_dict()
    for secret in secrets:
        try:
            Webhook(secret).verify(text, signed, json_parse=False)
        except WebhookVerificationError:
            continue
        return
    raise _unauthorized(NO_MATCHING_SIGNATURE)


def parse_payload(body: bytes) -> ReceiptWebhook:
    """The verified body as a receipt payload: 400 if not JSON, 422 with field paths."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Problem(400, "Malformed JSON", f"the body is not valid JSON: {error}") from error
    try:
        return ReceiptWebhook.model_validate(raw)
    except ValidationError as error:
        raise invalid(field_errors(error)) from error


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


router = APIRouter(tags=["webhooks"])

_SIGNED_HEADERS = [
    {
        "name": ID_HEADER,
        "in": "header",
        "required": True,
        "description": "The notification id, stable across retries (1–256 visible ASCII).",
        "schema": {"type": "string", "pattern": _WEBHOOK_ID.pattern},
    },
    {
        "name": TIMESTAMP_HEADER,
        "in": "header",
        "required": True,
        "description": "Integer Unix seconds; within ±5 minutes of the server's clock.",
        "schema": {"type": "string", "pattern": _UNIX_SECONDS.pattern},
    },
    {
        "name": SIGNATURE_HEADER,
        "in": "header",
        "required": True,
        "description": "Space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>`.",
        "schema": {"type": "string"},
    },
]


@router.post(
    "/v1/webhooks/plants/{party_id}",
    status_code=202,
    response_model=Accepted,
    summary="A plant's signed receipt acknowledgement (Standard Webhooks); 202 once Kafka acked",
    responses=problem_responses(400, 401, 413, 422, 503),
    openapi_extra={
        **json_body("ReceiptWebhook", "The signed receipt; verified before it is read."),
        "parameters": _SIGNED_HEADERS,
    },
)
async def post_plant_webhook(party_id: str, request: Request) -> JSONResponse:
    context: IngestContext = request.app.state.ingest
    try:
        headers = read_headers(request.headers, datetime.now(UTC))
        body = await read_body(request, context.max_body_bytes)
        secrets = (
            await run_in_threadpool(context.registry.plant_secrets, party_id)
            if re.match(PARTY_ID_PATTERN, party_id)
            else []  # no such party can exist; answered like any other unknown one
        )
        event = read_receipt(party_id, body, headers, secrets)
    except Problem as problem:
        WEBHOOKS.labels("rejected", str(problem.status)).inc()
        raise
    origin = Origin(kind=OriginKind.WEBHOOK, party_id=party_id)
    value = envelope_bytes(event, datetime.now(UTC), origin)
    await produce(context.producer, [(event.container_id.encode(), value)])
    WEBHOOKS.labels("accepted", "").inc()
    return JSONResponse({"event_id": str(event.event_id), "status": "accepted"}, 202)
