"""The ingest HTTP API: the only door in (DESIGN.md §5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol
from uuid import UUID

import orjson
from fastapi import Depends, FastAPI, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, TypeAdapter, ValidationError

from services.contract import CustodyEvent, Envelope, Origin, OriginKind, parse_event
from services.contract.events import Correction, ScanEvent
from services.contract.json_schemas import BatchRequest
from services.ingest.adapters.producer import BrokerUnavailable, EventProducer
from services.ingest.domain.permissions import (
    NotAllowed,
    UnknownParty,
    check_may_post,
    check_parties_known,
)
from services.ingest.domain.rate_limit import DeviceRateLimiter, retry_after_seconds
from services.ingest.service.event_log import log_accepted, log_refused
from services.registry.principals import Device
from services.registry.store import RegistryStore
from services.web.auth import DEVICE_TOKEN, authenticate_request
from services.web.openapi import component_schemas, install_openapi, json_body, problem_responses
from services.web.ops import ReadinessCheck, install_ops_routes
from services.web.problems import Problem, field_errors, install_problem_handlers, invalid

EVENTS = Counter("custody_ingest_events_total", "Events seen by ingest", ["outcome", "reason"])
PRODUCE_SECONDS = Histogram(
    "custody_ingest_produce_seconds",
    "Time from produce to broker ack, per request",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class CorrectionTargets(Protocol):
    def poster_of(self, event_id: UUID) -> str | None: ...


@dataclass(frozen=True)
class IngestContext:
    registry: RegistryStore
    corrections: CorrectionTargets
    producer: EventProducer
    max_body_bytes: int
    max_batch_events: int
    rate_limiter: DeviceRateLimiter | None = None


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


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(
            413, "Payload too large", f"the body is {declared} bytes; the limit is {limit}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise Problem(413, "Payload too large", f"the body exceeds the limit of {limit} bytes")
    return bytes(body)


async def read_json(request: Request, limit: int) -> Any:
    body = await read_body(request, limit)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Problem(400, "Malformed JSON", f"the body is not valid JSON: {error}") from error


def envelope_bytes(event: CustodyEvent, received_at: datetime, origin: Origin) -> bytes:
    """The Kafka message value: the event, ingest's receive time and the authenticated origin."""
    envelope = Envelope(event=event, received_at=received_at, origin=origin)
    return envelope.model_dump_json(exclude_none=True).encode()


async def produce(producer: EventProducer, messages: list[tuple[bytes, bytes]]) -> None:
    """Send ``(key, value)`` messages; return once Kafka acked all, else raise Problem 503."""
    try:
        with PRODUCE_SECONDS.time():
            await producer.send_all(messages)
    except BrokerUnavailable as error:
        EVENTS.labels("unavailable", "broker").inc(len(messages))
        raise Problem(
            503,
            "Service unavailable",
            f"Kafka did not acknowledge the event(s); nothing was accepted: {error}",
            headers={"Retry-After": "5"},
        ) from error


def device_origin(poster: Device) -> Origin:
    return Origin(kind=OriginKind.DEVICE, party_id=poster.party_id, device_id=poster.device_id)


def throttle(limiter: DeviceRateLimiter | None, poster: Device, cost: int) -> None:
    """Raise Problem 429 (nothing taken, nothing produced) when ``poster`` is over its limit."""
    if limiter is None:
        return
    wait = limiter.admit(poster.device_id, cost)
    if wait <= 0:
        return
    EVENTS.labels("throttled", "rate_limit").inc(cost)
    seconds = retry_after_seconds(wait)
    limit = limiter.limit
    raise Problem(
        429,
        "Too many requests",
        f"device {poster.device_id} may post {limit.per_second:g} events/s on average and "
        f"{limit.burst} at once; nothing of this request ({cost} event"
        f"{'s' if cost != 1 else ''}) was accepted: retry in {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


async def current_device(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(DEVICE_TOKEN)] = None,
) -> Device:
    context: IngestContext = request.app.state.ingest
    principal = await authenticate_request(request, context.registry)
    if not isinstance(principal, Device):
        raise Problem(403, "Forbidden", "only registered devices may post scan events")
    return principal


CurrentDevice = Annotated[Device, Depends(current_device)]


def create_app(context: IngestContext, checks: dict[str, ReadinessCheck]) -> FastAPI:
    app = FastAPI(
        title="Battery Custody — ingest",
        version="0.1.0",
        description="Scanner events and plant webhooks in; Kafka out (acks=all).",
    )
    install_problem_handlers(app)
    install_ops_routes(app, checks)

    app.state.ingest = context

    async def admit(poster: Device, raw: Any, path: str = "") -> CustodyEvent:
        """Validate and authorise one event; raises Problem (nothing is produced then)."""
        try:
            event = parse_event(raw)
        except ValidationError as error:
            raise invalid(field_errors(error, path)) from error
        try:
            check_parties_known(event, context.registry.party_roles())
        except UnknownParty as error:
            field = f"{path}.{error.field}" if path else error.field
            raise invalid(
                [{"path": field, "message": f"unknown party {error.party_id!r}"}]
            ) from error
        corrected_poster = None
        if isinstance(event, Correction):
            corrected_poster = await run_in_threadpool(
                context.corrections.poster_of, event.corrects_event_id
            )
        try:
            check_may_post(poster, event, corrected_poster=corrected_poster)
        except NotAllowed as error:
            raise Problem(403, "Forbidden", str(error)) from error
        return event

    @app.post(
        "/v1/events",
        status_code=202,
        response_model=Accepted,
        tags=["events"],
        summary="Post one scan event; 202 once Kafka acknowledged it",
        responses=problem_responses(400, 413, 422, 429, 503),
        openapi_extra=json_body("ScanEvent", "One scan event."),
    )
    async def post_event(request: Request, poster: CurrentDevice) -> JSONResponse:
        throttle(context.rate_limiter, poster, 1)
        raw = await read_json(request, context.max_body_bytes)
        try:
            event = await admit(poster, raw)
        except Problem as problem:
            EVENTS.labels("rejected", str(problem.status)).inc()
            log_refused(poster, raw, problem)
            raise
        received_at = datetime.now(UTC)
        key = event.container_id.encode()
        await produce(
            context.producer, [(key, envelope_bytes(event, received_at, device_origin(poster)))]
        )
        EVENTS.labels("accepted", "").inc()
        log_accepted(poster, [event])
        return JSONResponse({"event_id": str(event.event_id), "status": "accepted"}, 202)

    @app.post(
        "/v1/events/batch",
        response_model=BatchResponse,
        tags=["events"],
        summary="Post 1–500 events; each is accepted or rejected on its own",
        responses=problem_responses(400, 413, 422, 429, 503),
        openapi_extra=json_body("BatchRequest", "1–500 scan events."),
    )
    async def post_batch(request: Request, poster: CurrentDevice) -> Response:
        raw = await read_json(request, context.max_body_bytes)
        if (
            not isinstance(raw, dict)
            or set(raw) != {"events"}
            or not isinstance(raw["events"], list)
        ):
            raise invalid([{"path": "events", "message": 'the body must be {"events": [...]}'}])
        items = raw["events"]
        if not items:
            raise invalid([{"path": "events", "message": "a batch needs at least one event"}])
        if len(items) > context.max_batch_events:
            raise Problem(
                413,
                "Batch too large",
                f"the batch has {len(items)} events; the limit is {context.max_batch_events}",
            )
        throttle(context.rate_limiter, poster, len(items))
        received_at = datetime.now(UTC)
        origin = device_origin(poster)
        results: list[dict[str, Any]] = []
        messages: list[tuple[bytes, bytes]] = []
        admitted: list[CustodyEvent] = []
        for index, item in enumerate(items):
            event_id = item.get("event_id") if isinstance(item, dict) else None
            try:
                event = await admit(poster, item, f"events.{index}")
            except Problem as problem:
                EVENTS.labels("rejected", str(problem.status)).inc()
                log_refused(poster, item, problem)
                results.append(
                    {
                        "index": index,
                        "event_id": event_id if isinstance(event_id, str) else None,
                        "status": "rejected",
                        "errors": problem.errors
                        or [{"path": f"events.{index}", "message": problem.detail}],
                    }
                )
                continue
            messages.append(
                (event.container_id.encode(), envelope_bytes(event, received_at, origin))
            )
            admitted.append(event)
            results.append({"index": index, "event_id": str(event.event_id), "status": "accepted"})
        if messages:
            await produce(context.producer, messages)
            EVENTS.labels("accepted", "").inc(len(messages))
            log_accepted(poster, admitted)
        return Response(
            orjson.dumps(
                {
                    "accepted": len(messages),
                    "rejected": len(results) - len(messages),
                    "results": results,
                }
            ),
            media_type="application/json",
        )

    # Imported here: the webhook router builds on this module's body reading and produce path.
    from services.ingest.api.webhooks import ReceiptWebhook
    from services.ingest.api.webhooks import router as webhooks_router

    app.include_router(webhooks_router)
    install_openapi(
        app,
        {
            **component_schemas("ScanEvent", TypeAdapter(ScanEvent)),
            **component_schemas("BatchRequest", BatchRequest),
            **component_schemas("ReceiptWebhook", ReceiptWebhook),
        },
    )
    return app
