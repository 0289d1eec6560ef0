"""Plant receipts in by Standard Webhooks: ``POST /v1/webhooks/plants/{party_id}``
(docs/architecture.md §5). The checks and their order are ``Admission.accept_receipt``'s."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.ingest.api.body import read_body
from services.ingest.api.deps import admission_of, context_of
from services.ingest.api.events import Accepted, accepted
from services.ingest.domain.webhook_signature import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    UNIX_SECONDS,
    WEBHOOK_ID,
)
from services.web.openapi import json_body, problem_responses

router = APIRouter(tags=["webhooks"])

_SIGNED_HEADERS = [
    {
        "name": ID_HEADER,
        "in": "header",
        "required": True,
        "description": "The notification id, stable across retries (1–256 visible ASCII).",
        "schema": {"type": "string", "pattern": WEBHOOK_ID.pattern},
    },
    {
        "name": TIMESTAMP_HEADER,
        "in": "header",
        "required": True,
        "description": "Integer Unix seconds; within ±5 minutes of the server's clock.",
        "schema": {"type": "string", "pattern": UNIX_SECONDS.pattern},
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
    context = context_of(request)
    event = await admission_of(request).accept_receipt(
        party_id, request.headers, lambda: read_body(request, context.max_body_bytes)
    )
    return accepted(event)
