"""Scan events in: ``POST /v1/events`` and ``POST /v1/events/batch`` (docs/architecture.md §5)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from services.contract import CustodyEvent
from services.ingest.api.body import read_json
from services.ingest.api.deps import CurrentDevice, admission_of, context_of
from services.web.openapi import json_body, problem_responses


class Accepted(BaseModel):
    event_id: str
    status: str = "accepted"


class BatchResult(BaseModel):
    index: int
    event_id: str | None
    status: str
    errors: list[dict[str, Any]] | None = None


class BatchResponse(BaseModel):
    accepted: int
    rejected: int
    results: list[BatchResult]


def accepted(event: CustodyEvent) -> JSONResponse:
    """202: Kafka acknowledged the event."""
    return JSONResponse({"event_id": str(event.event_id), "status": "accepted"}, 202)


router = APIRouter(tags=["events"])


@router.post(
    "/v1/events",
    status_code=202,
    response_model=Accepted,
    summary="Post one scan event; 202 once Kafka acknowledged it",
    responses=problem_responses(400, 413, 422, 429, 503),
    openapi_extra=json_body("ScanEvent", "One scan event."),
)
async def post_event(request: Request, poster: CurrentDevice) -> JSONResponse:
    context = context_of(request)
    event = await admission_of(request).accept_event(
        poster, lambda: read_json(request, context.max_body_bytes)
    )
    return accepted(event)


@router.post(
    "/v1/events/batch",
    response_model=BatchResponse,
    summary="Post 1–500 events; each is accepted or rejected on its own",
    responses=problem_responses(400, 413, 422, 429, 503),
    openapi_extra=json_body("BatchRequest", "1–500 scan events."),
)
async def post_batch(request: Request, poster: CurrentDevice) -> Response:
    context = context_of(request)
    outcome = await admission_of(request).accept_batch(
        poster, lambda: read_json(request, context.max_body_bytes)
    )
    return Response(
        orjson.dumps(
            {"accepted": outcome.accepted, "rejected": outcome.rejected, "results": outcome.results}
        ),
        media_type="application/json",
    )
