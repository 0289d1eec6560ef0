"""Ingest's use cases (services/ingest/service/admission.py) over in-memory ports: what is
produced, in what order the checks run, and which domain error each refusal is."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import orjson
import pytest
from prometheus_client import REGISTRY

from services.contract import Envelope
from services.ingest.adapters.producer import BrokerUnavailable
from services.ingest.domain.errors import (
    Forbidden,
    Invalid,
    Malformed,
    Refused,
    Throttled,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from services.ingest.domain.rate_limit import DeviceRateLimiter, RateLimit
from services.ingest.domain.receipts import webhook_event_id
from services.ingest.domain.webhook_signature import NO_MATCHING_SIGNATURE
from services.ingest.service.admission import Admission
from services.registry.principals import Device, PartyRole
from services.registry.store import new_webhook_secret
from tests.support import events as ev
from tests.support.webhook_signing import receipt_body, signed_headers

T = TypeVar("T")

SITE = Device("site-a-dev", "site-a", PartyRole.SITE)
HAULER = Device("hauler-a-dev", "hauler-a", PartyRole.HAULER)
ROLES = {
    "site-a": PartyRole.SITE,
    "site-b": PartyRole.SITE,
    "hauler-a": PartyRole.HAULER,
    "plant-a": PartyRole.PLANT,
}
SECRET = new_webhook_secret()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
RECORDED = UUID("8d7e3b8e-2f0c-4a51-9a57-0c1d2e3f4a5b")


class MemoryRegistry:
    def __init__(self) -> None:
        self.secrets_asked: list[str] = []

    def party_roles(self) -> Mapping[str, PartyRole]:
        return ROLES

    def plant_secrets(self, party_id: str) -> Sequence[str]:
        self.secrets_asked.append(party_id)
        return [SECRET] if party_id == "plant-a" else []


class MemoryCorrections:
    def __init__(self, posters: dict[UUID, str]) -> None:
        self.posters = posters
        self.asked: list[UUID] = []

    def poster_of(self, event_id: UUID) -> str | None:
        self.asked.append(event_id)
        return self.posters.get(event_id)


class MemoryProducer:
    """Records each ``send_all`` call; with ``down`` set, raises as the Kafka adapter does."""

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.calls: list[list[tuple[bytes, bytes]]] = []

    async def send_all(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        if self.down:
            raise BrokerUnavailable("no broker")
        self.calls.append(list(messages))

    @property
    def sent(self) -> list[tuple[bytes, bytes]]:
        return [sent for call in self.calls for sent in call]


class Reader:
    """A body reader that counts whether the use case read the body."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.reads = 0

    async def __call__(self) -> Any:
        self.reads += 1
        return self.value


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(
    *,
    producer: MemoryProducer | None = None,
    registry: MemoryRegistry | None = None,
    corrections: MemoryCorrections | None = None,
    limiter: DeviceRateLimiter | None = None,
    max_batch_events: int = 10,
    clock: Callable[[], datetime] = lambda: NOW,
) -> Admission:
    return Admission(
        registry=registry or MemoryRegistry(),
        corrections=corrections or MemoryCorrections({RECORDED: "site-a"}),
        producer=producer or MemoryProducer(),
        rate_limiter=limiter,
        max_batch_events=max_batch_events,
        clock=clock,
    )


def run(call: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(call)


def refused(call: Callable[[], Awaitable[Any]], kind: type[Refused]) -> Any:
    async def attempt() -> Refused:
        with pytest.raises(kind) as caught:
            await call()
        return caught.value

    return run(attempt())


def counted(outcome: str, reason: str, metric: str = "custody_ingest_events_total") -> float:
    value = REGISTRY.get_sample_value(metric, {"outcome": outcome, "reason": reason})
    return value or 0.0


def envelope(value: bytes) -> Envelope:
    return Envelope.model_validate_json(value)


# --- one event ----------------------------------------------------------------------------


def test_an_admitted_event_is_produced_keyed_by_container_with_origin_and_receive_time() -> None:
    producer = MemoryProducer()
    body = ev.dropoff("BX-ADM-1")
    event = run(admission(producer=producer).accept_event(SITE, Reader(body)))
    assert str(event.event_id) == body["event_id"]
    [(key, value)] = producer.sent
    assert key == b"BX-ADM-1"
    produced = envelope(value)
    assert str(produced.event.event_id) == body["event_id"]
    assert produced.received_at == NOW
    assert produced.origin.model_dump(exclude_none=True) == {
        "kind": "device",
        "party_id": "site-a",
        "device_id": "site-a-dev",
    }


def test_a_throttled_device_is_refused_before_its_body_is_read() -> None:
    clock = Clock()
    limiter = DeviceRateLimiter(RateLimit(0.5, 1), clock)
    producer = MemoryProducer()
    use_case = admission(producer=producer, limiter=limiter)
    run(use_case.accept_event(SITE, Reader(ev.dropoff("BX-ADM-2"))))
    before = counted("throttled", "rate_limit")
    second = Reader(ev.sealed("BX-ADM-2"))
    error = refused(lambda: use_case.accept_event(SITE, second), Throttled)
    assert second.reads == 0
    assert error.status == 429
    assert error.retry_after_s == 2
    assert "nothing of this request (1 event) was accepted: retry in 2 s" in error.detail
    assert counted("throttled", "rate_limit") == before + 1
    assert len(producer.sent) == 1


def test_an_invalid_event_is_refused_with_field_paths_and_nothing_produced() -> None:
    producer = MemoryProducer()
    body = {**ev.dropoff("BX-ADM-3"), "colour": "red"}
    error = refused(lambda: admission(producer=producer).accept_event(SITE, Reader(body)), Invalid)
    assert error.status == 422
    assert error.title == "Invalid event"
    assert [item["path"] for item in error.errors] == ["dropoff.colour"]
    assert error.detail.startswith("dropoff.colour: ")
    assert producer.calls == []


def test_a_body_that_is_not_an_event_object_is_invalid_at_the_root() -> None:
    error = refused(lambda: admission().accept_event(SITE, Reader([1, 2])), Invalid)
    assert error.errors[0]["path"] == "(root)"


def test_an_unknown_party_is_invalid_at_its_field() -> None:
    body = ev.transfer("pickup", "BX-ADM-4", 2, "site-a", "hauler-zz", shipment_id="B1")
    error = refused(lambda: admission().accept_event(SITE, Reader(body)), Invalid)
    assert error.errors == [{"path": "to_party", "message": "unknown party 'hauler-zz'"}]
    assert error.detail == "to_party: unknown party 'hauler-zz'"


def test_an_event_the_party_may_not_post_is_forbidden() -> None:
    error = refused(lambda: admission().accept_event(HAULER, Reader(ev.sealed("BX-5"))), Forbidden)
    assert error.status == 403
    assert error.detail == "only sites post sealed events; hauler-a is a hauler"
    assert error.errors is None


def correction(target: UUID) -> dict[str, Any]:
    return ev.event(
        "correction", "BX-ADM-6", 5, corrects_event_id=str(target), reason="did_not_occur"
    )


def test_a_correction_asks_who_posted_its_target() -> None:
    corrections = MemoryCorrections({RECORDED: "site-a"})
    producer = MemoryProducer()
    use_case = admission(producer=producer, corrections=corrections)
    run(use_case.accept_event(SITE, Reader(correction(RECORDED))))
    assert corrections.asked == [RECORDED]
    assert len(producer.sent) == 1
    other = refused(lambda: use_case.accept_event(HAULER, Reader(correction(RECORDED))), Forbidden)
    assert "only the original poster (site-a)" in other.detail
    unknown = uuid.uuid4()
    missing = refused(lambda: use_case.accept_event(SITE, Reader(correction(unknown))), Forbidden)
    assert missing.detail == f"event {unknown} is not recorded"
    assert len(producer.sent) == 1


def test_a_refused_event_is_counted_by_status_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    before = counted("rejected", "403")
    with caplog.at_level(logging.INFO, logger="custody.ingest"):
        refused(lambda: admission().accept_event(HAULER, Reader(ev.sealed("BX-7"))), Forbidden)
    assert counted("rejected", "403") == before + 1
    [record] = [r for r in caplog.records if r.name == "custody.ingest"]
    assert record.getMessage().endswith("403 only sites post sealed events; hauler-a is a hauler")


def test_when_kafka_does_not_acknowledge_nothing_is_accepted() -> None:
    before = counted("unavailable", "broker")
    use_case = admission(producer=MemoryProducer(down=True))
    error = refused(lambda: use_case.accept_event(SITE, Reader(ev.dropoff("BX-8"))), Unavailable)
    assert error.status == 503
    assert error.retry_after_s == 5
    assert error.detail == (
        "Kafka did not acknowledge the event(s); nothing was accepted: no broker"
    )
    assert counted("unavailable", "broker") == before + 1


# --- a batch --------------------------------------------------------------------------------


def test_a_batch_accepts_each_event_on_its_own_and_produces_the_accepted_together() -> None:
    producer = MemoryProducer()
    good, sealed = ev.dropoff("BX-B-1"), ev.sealed("BX-B-2")
    naive = {**ev.dropoff("BX-B-3"), "occurred_at": "2026-11-02T08:00:00"}
    stranger = ev.transfer("pickup", "BX-B-4", 2, "site-b", "hauler-a", shipment_id="B1")
    items = [good, naive, "not an event", stranger, sealed, {"event_id": 7}]
    outcome = run(admission(producer=producer).accept_batch(SITE, Reader({"events": items})))
    assert (outcome.accepted, outcome.rejected) == (2, 4)
    assert [result["status"] for result in outcome.results] == [
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
        "rejected",
    ]
    assert outcome.results[0] == {"index": 0, "event_id": good["event_id"], "status": "accepted"}
    assert outcome.results[1]["event_id"] == naive["event_id"]
    assert outcome.results[1]["errors"][0]["path"] == "events.1.dropoff.occurred_at"
    assert outcome.results[2]["event_id"] is None
    assert outcome.results[2]["errors"][0]["path"] == "events.2"
    assert outcome.results[3]["errors"] == [
        {
            "path": "events.3",
            "message": "site-a may only post transfers it takes part in "
            "(from_party site-b, to_party hauler-a)",
        }
    ]
    assert outcome.results[5]["event_id"] is None
    [call] = producer.calls
    assert [key for key, _ in call] == [b"BX-B-1", b"BX-B-2"]
    assert {envelope(value).received_at for _, value in call} == {NOW}


def test_a_batch_with_no_acceptable_event_produces_nothing() -> None:
    producer = MemoryProducer()
    body = {"events": [ev.sealed("BX-B-5")]}
    outcome = run(admission(producer=producer).accept_batch(HAULER, Reader(body)))
    assert (outcome.accepted, outcome.rejected) == (0, 1)
    assert producer.calls == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([ev.dropoff("BX-B-6")], 'the body must be {"events": [...]}'),
        ({"events": [], "more": 1}, 'the body must be {"events": [...]}'),
        ({"events": {"0": ev.dropoff("BX-B-6")}}, 'the body must be {"events": [...]}'),
        ({"events": []}, "a batch needs at least one event"),
    ],
)
def test_a_batch_of_the_wrong_shape_is_invalid_at_events(body: Any, message: str) -> None:
    error = refused(lambda: admission().accept_batch(SITE, Reader(body)), Invalid)
    assert error.errors == [{"path": "events", "message": message}]


def test_a_batch_over_the_limit_is_too_large_and_takes_no_tokens() -> None:
    limiter = DeviceRateLimiter(RateLimit(1.0, 3), Clock())
    use_case = admission(limiter=limiter, max_batch_events=3)
    body = {"events": [ev.dropoff(f"BX-L-{n}") for n in range(4)]}
    error = refused(lambda: use_case.accept_batch(SITE, Reader(body)), TooLarge)
    assert (error.status, error.title) == (413, "Batch too large")
    assert error.detail == "the batch has 4 events; the limit is 3"
    assert limiter.admit(SITE.device_id, 3) == 0.0


def test_a_batch_costs_its_number_of_events() -> None:
    clock = Clock()
    limiter = DeviceRateLimiter(RateLimit(1.0, 3), clock)
    producer = MemoryProducer()
    use_case = admission(producer=producer, limiter=limiter)
    first = {"events": [ev.dropoff("BX-T-1"), ev.dropoff("BX-T-2")]}
    assert run(use_case.accept_batch(SITE, Reader(first))).accepted == 2
    second = {"events": [ev.sealed("BX-T-1"), ev.sealed("BX-T-2")]}
    error = refused(lambda: use_case.accept_batch(SITE, Reader(second)), Throttled)
    assert "(2 events)" in error.detail
    assert error.retry_after_s == 1
    assert len(producer.sent) == 2


# --- a plant's receipt --------------------------------------------------------------------


def real_now() -> datetime:
    return datetime.now(UTC)


def test_a_signed_receipt_is_produced_with_the_plant_as_webhook_origin() -> None:
    producer, registry = MemoryProducer(), MemoryRegistry()
    use_case = admission(producer=producer, registry=registry, clock=real_now)
    body = receipt_body("BX-R-1")
    headers = signed_headers(body, SECRET, msg_id="msg_r1")
    event = run(use_case.accept_receipt("plant-a", headers, Reader(body)))
    assert event.event_id == webhook_event_id("plant-a", "msg_r1")
    assert registry.secrets_asked == ["plant-a"]
    [(key, value)] = producer.sent
    assert key == b"BX-R-1"
    assert envelope(value).origin.model_dump(exclude_none=True) == {
        "kind": "webhook",
        "party_id": "plant-a",
    }


def test_a_receipt_without_its_headers_is_refused_before_the_body_is_read() -> None:
    before = counted("rejected", "400", "custody_ingest_webhooks_total")
    reader = Reader(receipt_body("BX-R-2"))
    use_case = admission(clock=real_now)
    error = refused(lambda: use_case.accept_receipt("plant-a", {}, reader), Malformed)
    assert error.title == "Missing webhook header"
    assert reader.reads == 0
    assert counted("rejected", "400", "custody_ingest_webhooks_total") == before + 1


def test_a_party_id_that_cannot_exist_is_not_looked_up_and_answered_like_a_wrong_secret() -> None:
    registry = MemoryRegistry()
    use_case = admission(registry=registry, clock=real_now)
    body = receipt_body("BX-R-3")
    headers = signed_headers(body, SECRET)
    error = refused(
        lambda: use_case.accept_receipt("Plant A!", headers, Reader(body)), Unauthenticated
    )
    assert error.detail == NO_MATCHING_SIGNATURE
    assert error.challenge == 'Webhook realm="custody-plants"'
    assert registry.secrets_asked == []


def test_an_unsigned_body_is_never_read_as_a_payload() -> None:
    producer = MemoryProducer()
    use_case = admission(producer=producer, clock=real_now)
    body = b"not json at all"
    headers = signed_headers(body, new_webhook_secret())
    refused(lambda: use_case.accept_receipt("plant-a", headers, Reader(body)), Unauthenticated)
    assert producer.calls == []


def test_a_signed_invalid_receipt_is_invalid_and_counted_as_a_rejected_webhook() -> None:
    before = counted("rejected", "422", "custody_ingest_webhooks_total")
    body = orjson.dumps({"type": "receipt.acknowledged"})
    headers = signed_headers(body, SECRET)
    error = refused(
        lambda: admission(clock=real_now).accept_receipt("plant-a", headers, Reader(body)),
        Invalid,
    )
    assert {item["path"] for item in error.errors} == {"timestamp", "data"}
    assert counted("rejected", "422", "custody_ingest_webhooks_total") == before + 1
