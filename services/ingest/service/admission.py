"""Admission, ingest's use cases: one scan event, a batch, a plant's receipt
(docs/architecture.md §5).

Each checks in the order the contract fixes, raises only domain errors
(``services/ingest/domain/errors.py``; nothing is produced then), stamps ``received_at`` and the
authenticated origin, and returns once Kafka acknowledged every message it produced.

The body is read through a reader the caller passes in, so that the use case decides when:
a throttled device's single event is refused before its body is read, a webhook's headers are
checked before its body is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, NotRequired, Protocol, TypedDict
from uuid import UUID

import anyio.to_thread
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from services.contract import CustodyEvent, Envelope, Origin, OriginKind, parse_event
from services.contract.events import PARTY_ID_PATTERN, Correction, ReceiptAck
from services.contract.field_errors import FieldError
from services.ingest.adapters.producer import BrokerUnavailable
from services.ingest.domain.errors import (
    Forbidden,
    Invalid,
    Refused,
    Throttled,
    TooLarge,
    Unavailable,
)
from services.ingest.domain.permissions import (
    NotAllowed,
    UnknownParty,
    check_may_post,
    check_parties_known,
)
from services.ingest.domain.rate_limit import DeviceRateLimiter, retry_after_seconds
from services.ingest.domain.receipts import read_receipt
from services.ingest.domain.webhook_signature import read_headers
from services.ingest.service.event_log import log_accepted, log_refused
from services.registry.principals import Device, PartyRole

EVENTS = Counter("custody_ingest_events_total", "Events seen by ingest", ["outcome", "reason"])
PRODUCE_SECONDS = Histogram(
    "custody_ingest_produce_seconds",
    "Time from produce to broker ack, per request",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOKS = Counter(
    "custody_ingest_webhooks_total", "Plant webhooks seen by ingest", ["outcome", "reason"]
)

#: Retry-After when Kafka did not acknowledge.
BROKER_RETRY_AFTER_S = 5

JsonReader = Callable[[], Awaitable[object]]
BodyReader = Callable[[], Awaitable[bytes]]


class Registry(Protocol):
    def party_roles(self) -> Mapping[str, PartyRole]: ...

    def plant_secrets(self, party_id: str) -> Sequence[str]:
        """The webhook secrets of a plant that verify now; none for any other party id."""
        ...


class CorrectionTargets(Protocol):
    def poster_of(self, event_id: UUID) -> str | None:
        """The party that posted a recorded event, or None if it is not recorded."""
        ...


class Producer(Protocol):
    async def send_all(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        """Send ``(key, value)`` pairs; return once the broker acked all, else raise
        ``BrokerUnavailable``."""
        ...


class EventResult(TypedDict):
    index: int
    event_id: str | None
    status: Literal["accepted", "rejected"]
    errors: NotRequired[list[FieldError]]


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    accepted: int
    results: list[EventResult]

    @property
    def rejected(self) -> int:
        return len(self.results) - self.accepted


def _utc_now() -> datetime:
    return datetime.now(UTC)


def envelope_bytes(event: CustodyEvent, received_at: datetime, origin: Origin) -> bytes:
    """The Kafka message value: the event, ingest's receive time and the authenticated origin."""
    envelope = Envelope(event=event, received_at=received_at, origin=origin)
    return envelope.model_dump_json(exclude_none=True).encode()


def message(event: CustodyEvent, received_at: datetime, origin: Origin) -> tuple[bytes, bytes]:
    """``(key, value)``: keyed by container, so one container's events keep their order."""
    return event.container_id.encode(), envelope_bytes(event, received_at, origin)


def device_origin(poster: Device) -> Origin:
    return Origin(kind=OriginKind.DEVICE, party_id=poster.party_id, device_id=poster.device_id)


@dataclass(frozen=True)
class Admission:
    registry: Registry
    corrections: CorrectionTargets
    producer: Producer
    rate_limiter: DeviceRateLimiter | None
    max_batch_events: int
    clock: Callable[[], datetime] = field(default=_utc_now)

    async def accept_event(self, poster: Device, read: JsonReader) -> CustodyEvent:
        """One event: throttled (before its body is read), admitted, produced."""
        self.throttle(poster, 1)
        raw = await read()
        try:
            event = await self.admit(poster, raw)
        except Refused as refused:
            EVENTS.labels("rejected", str(refused.status)).inc()
            log_refused(poster, raw, refused)
            raise
        await self.produce([message(event, self.clock(), device_origin(poster))])
        EVENTS.labels("accepted", "").inc()
        log_accepted(poster, [event])
        return event

    async def accept_batch(self, poster: Device, read: JsonReader) -> BatchOutcome:
        """``{"events": [...]}``: the batch as a whole is checked for shape and size and
        throttled; then each event is accepted or rejected on its own, and the accepted ones
        are produced together."""
        raw = await read()
        if (
            not isinstance(raw, dict)
            or set(raw) != {"events"}
            or not isinstance(raw["events"], list)
        ):
            raise Invalid.at("events", 'the body must be {"events": [...]}')
        items: list[object] = raw["events"]
        if not items:
            raise Invalid.at("events", "a batch needs at least one event")
        if len(items) > self.max_batch_events:
            raise TooLarge(
                "Batch too large",
                f"the batch has {len(items)} events; the limit is {self.max_batch_events}",
            )
        self.throttle(poster, len(items))
        received_at = self.clock()
        origin = device_origin(poster)
        results: list[EventResult] = []
        messages: list[tuple[bytes, bytes]] = []
        admitted: list[CustodyEvent] = []
        for index, item in enumerate(items):
            try:
                event = await self.admit(poster, item, f"events.{index}")
            except Refused as refused:
                EVENTS.labels("rejected", str(refused.status)).inc()
                log_refused(poster, item, refused)
                event_id = item.get("event_id") if isinstance(item, dict) else None
                results.append(
                    {
                        "index": index,
                        "event_id": event_id if isinstance(event_id, str) else None,
                        "status": "rejected",
                        "errors": refused.errors
                        or [{"path": f"events.{index}", "message": refused.detail}],
                    }
                )
                continue
            messages.append(message(event, received_at, origin))
            admitted.append(event)
            results.append({"index": index, "event_id": str(event.event_id), "status": "accepted"})
        if messages:
            await self.produce(messages)
            EVENTS.labels("accepted", "").inc(len(messages))
            log_accepted(poster, admitted)
        return BatchOutcome(len(messages), results)

    async def accept_receipt(
        self, party_id: str, headers: Mapping[str, str], read: BodyReader
    ) -> ReceiptAck:
        """A plant's signed receipt, checked in this order:

        1. the Standard Webhooks headers and the ±5 min tolerance (``webhook_signature``);
        2. the body read (its size limit is the reader's);
        3. the signature, with the plant's current secrets (a party id that cannot exist has
           none, and is answered like any other unknown one);
        4. only then the body as a payload (``receipts``);
        5. the ``receipt_ack`` produced like a scan, origin ``webhook`` of the plant.
        """
        try:
            signed = read_headers(headers, self.clock())
            body = await read()
            secrets: Sequence[str] = (
                await anyio.to_thread.run_sync(self.registry.plant_secrets, party_id)
                if re.match(PARTY_ID_PATTERN, party_id)
                else []
            )
            event = read_receipt(party_id, body, signed, secrets)
        except Refused as refused:
            WEBHOOKS.labels("rejected", str(refused.status)).inc()
            raise
        origin = Origin(kind=OriginKind.WEBHOOK, party_id=party_id)
        await self.produce([message(event, self.clock(), origin)])
        WEBHOOKS.labels("accepted", "").inc()
        return event

    def throttle(self, poster: Device, cost: int) -> None:
        """Refuse (nothing taken, nothing produced) when ``poster`` is over its rate limit."""
        limiter = self.rate_limiter
        if limiter is None:
            return
        wait = limiter.admit(poster.device_id, cost)
        if wait <= 0:
            return
        EVENTS.labels("throttled", "rate_limit").inc(cost)
        seconds = retry_after_seconds(wait)
        limit = limiter.limit
        raise Throttled(
            f"device {poster.device_id} may post {limit.per_second:g} events/s on average and "
            f"{limit.burst} at once; nothing of this request ({cost} event"
            f"{'s' if cost != 1 else ''}) was accepted: retry in {seconds} s",
            retry_after_s=seconds,
        )

    async def admit(
        self,
        poster: Device,
        raw: object,
        path: str = "",
        *,
        pending: Mapping[UUID, str] | None = None,
    ) -> CustodyEvent:
        """Validate and authorise one event; field paths start at ``path``.

        ``pending``: events admitted earlier in the same request, by event id, with the party
        that posts them; a correction may correct one of them (they are produced in order).
        """
        try:
            event = parse_event(raw)
        except ValidationError as error:
            raise Invalid.from_validation(error, path) from error
        try:
            check_parties_known(event, self.registry.party_roles())
        except UnknownParty as error:
            field_path = f"{path}.{error.field}" if path else error.field
            raise Invalid.at(field_path, f"unknown party {error.party_id!r}") from error
        corrected_poster = None
        if isinstance(event, Correction):
            corrected_poster = (pending or {}).get(event.corrects_event_id) or (
                await anyio.to_thread.run_sync(self.corrections.poster_of, event.corrects_event_id)
            )
        try:
            check_may_post(poster, event, corrected_poster=corrected_poster)
        except NotAllowed as error:
            raise Forbidden(str(error)) from error
        return event

    async def produce(self, messages: list[tuple[bytes, bytes]]) -> None:
        """Return once Kafka acked every message; else nothing was accepted."""
        try:
            with PRODUCE_SECONDS.time():
                await self.producer.send_all(messages)
        except BrokerUnavailable as error:
            EVENTS.labels("unavailable", "broker").inc(len(messages))
            raise Unavailable(
                f"Kafka did not acknowledge the event(s); nothing was accepted: {error}",
                retry_after_s=BROKER_RETRY_AFTER_S,
            ) from error
