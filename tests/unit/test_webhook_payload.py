"""Plant webhooks without Kafka or PostgreSQL: headers, signatures, payload, event, HTTP layer.

Signatures are made with the ``standardwebhooks`` reference library. Its verifier reads the real
clock (no injection), so signed requests use timestamps near now; the tolerance rules
themselves are tested on ``read_headers`` with an injected clock.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from math import floor
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from services.contract import Envelope
from services.contract.events import ReceiptAck, event_body
from services.ingest.api.app import IngestContext, create_app
from services.ingest.api.errors import problem_of
from services.ingest.domain.errors import Refused
from services.ingest.domain.receipts import (
    WEBHOOK_EVENT_NAMESPACE,
    ReceiptWebhook,
    parse_payload,
    read_receipt,
    receipt_event,
    webhook_event_id,
)
from services.ingest.domain.webhook_signature import (
    NO_MATCHING_SIGNATURE,
    WebhookHeaders,
    read_headers,
    verify_signature,
)
from services.ledger.domain.append import PendingEvent, plan_append
from services.registry.store import new_webhook_secret
from services.web.problems import Problem

SECRET = new_webhook_secret()
OTHER_SECRET = new_webhook_secret()
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
MIGRATION = Path(__file__).parents[2] / "migrations/versions/0003_plant_webhook_secrets.py"


def payload(**data: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "container_id": "BX-WH-1",
        "shipment_id": "BOL-7",
        "received_at": "2026-11-02T09:30:00+01:00",
        "accepted_weight_kg": 118.5,
        "condition": "ok",
        "plant_reference": "RCV-0042",
    }
    fields.update(data)
    return {"type": "receipt.acknowledged", "timestamp": "2026-11-02T08:31:00Z", "data": fields}


def body_of(document: Any) -> bytes:
    return orjson.dumps(document)


def signed(
    body: bytes,
    secret: str = SECRET,
    *,
    msg_id: str = "msg_2Lq0Xxy",
    at: datetime | None = None,
) -> dict[str, str]:
    """Headers as a Standard Webhooks sender makes them, signed by the reference library."""
    at = at or datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(floor(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def refusal(call: Any) -> Problem:
    """The domain error ``call`` raises, as the problem+json the API answers with."""
    with pytest.raises(Refused) as caught:
        call()
    return problem_of(caught.value)


# --- headers and the ±5 min tolerance (injected clock) --------------------------------------


def stamp_headers(offset_s: float, **extra: str) -> dict[str, str]:
    return {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(floor(NOW.timestamp() + offset_s)),
        "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode(),
        **extra,
    }


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamps_within_five_minutes_either_way_pass(offset: int) -> None:
    headers = read_headers(stamp_headers(offset), NOW)
    assert headers.timestamp == floor(NOW.timestamp()) + offset


@pytest.mark.parametrize(("offset", "words"), [(-301, "too old"), (-600, "too old")])
def test_stale_timestamps_are_unauthorized(offset: int, words: str) -> None:
    problem = refusal(lambda: read_headers(stamp_headers(offset), NOW))
    assert problem.status == 401
    assert words in problem.detail
    assert problem.headers is not None
    assert "WWW-Authenticate" in problem.headers


@pytest.mark.parametrize("offset", [301, 600, 86_400 * 365 * 100])
def test_future_timestamps_are_unauthorized(offset: int) -> None:
    problem = refusal(lambda: read_headers(stamp_headers(offset), NOW))
    assert problem.status == 401
    assert "too new" in problem.detail


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_missing_header_is_named(header: str) -> None:
    headers = stamp_headers(0)
    del headers[header]
    problem = refusal(lambda: read_headers(headers, NOW))
    assert problem.status == 400
    assert f"missing header {header}" in problem.detail


def test_an_empty_header_counts_as_missing_and_all_missing_are_named() -> None:
    problem = refusal(lambda: read_headers({"webhook-id": "  "}, NOW))
    assert problem.status == 400
    assert "webhook-id, webhook-timestamp, webhook-signature" in problem.detail


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("webhook-id", "msg 1"),
        ("webhook-id", "msg_\u00e9"),
        ("webhook-id", "m" * 257),
        ("webhook-timestamp", "1762084800.5"),
        ("webhook-timestamp", "01762084800"),
        ("webhook-timestamp", "-5"),
        ("webhook-timestamp", "soon"),
        ("webhook-signature", "garbage"),
        ("webhook-signature", "v1,"),
        ("webhook-signature", ",abc="),
        ("webhook-signature", "v1,a,b"),
        ("webhook-signature", "v1,not*base64"),
        ("webhook-signature", "v1,abc"),
        ("webhook-signature", " ".join(["v1,YWJj"] * 17)),
    ],
)
def test_malformed_headers_are_bad_requests_naming_the_header(header: str, value: str) -> None:
    headers = stamp_headers(0, **{header: value})
    problem = refusal(lambda: read_headers(headers, NOW))
    assert problem.status == 400
    assert problem.detail.startswith(header)


def test_header_names_are_case_insensitive_and_signature_lists_normalised() -> None:
    raw = stamp_headers(0)
    headers = read_headers(
        {
            "Webhook-Id": raw["webhook-id"],
            "WEBHOOK-TIMESTAMP": raw["webhook-timestamp"],
            "Webhook-Signature": f"v1a,c2ln  {raw['webhook-signature']}\t",
        },
        NOW,
    )
    assert headers.webhook_id == "msg_1"
    assert headers.signature == f"v1a,c2ln {raw['webhook-signature']}"


# --- signatures, verified by the reference library (real clock) ------------------------------


def verified_headers(headers: dict[str, str]) -> WebhookHeaders:
    return read_headers(headers, datetime.now(UTC))


def test_a_library_signed_body_verifies() -> None:
    body = body_of(payload())
    verify_signature(body, verified_headers(signed(body)), [SECRET])


def test_any_current_secret_verifies_during_a_rotation() -> None:
    body = body_of(payload())
    headers = verified_headers(signed(body, OTHER_SECRET))
    verify_signature(body, headers, [SECRET, OTHER_SECRET])
    verify_signature(body, headers, [OTHER_SECRET, SECRET])


def test_one_matching_signature_among_several_is_enough() -> None:
    body = body_of(payload())
    good = signed(body)
    other = signed(body, OTHER_SECRET)["webhook-signature"]
    good["webhook-signature"] = f"{other} v1a,c2lnbmF0dXJl {good['webhook-signature']}"
    verify_signature(body, verified_headers(good), [SECRET])


@pytest.mark.parametrize(
    "case", ["wrong secret", "no secrets", "altered body", "other webhook-id", "forged signature"]
)
def test_a_signature_that_does_not_verify_is_one_generic_401(case: str) -> None:
    body = body_of(payload())
    headers = signed(body)
    secrets: Sequence[str] = [SECRET]
    if case == "wrong secret":
        secrets = [OTHER_SECRET]
    elif case == "no secrets":  # an unknown party, or one that is not a plant
        secrets = []
    elif case == "altered body":
        body = body_of(payload(accepted_weight_kg=10.0))
    elif case == "other webhook-id":
        headers["webhook-id"] = "msg_other"
    else:
        headers["webhook-signature"] = "v1," + base64.b64encode(b"\0" * 32).decode()
    problem = refusal(lambda: verify_signature(body, verified_headers(headers), secrets))
    assert problem.status == 401
    assert problem.detail == NO_MATCHING_SIGNATURE


def test_a_signature_over_another_timestamp_does_not_verify() -> None:
    body = body_of(payload())
    now = datetime.now(UTC)
    headers = signed(body, at=now - timedelta(seconds=30))
    headers["webhook-timestamp"] = str(floor(now.timestamp()))
    problem = refusal(lambda: verify_signature(body, verified_headers(headers), [SECRET]))
    assert problem.status == 401


def test_a_body_that_is_not_utf8_is_malformed() -> None:
    body = b'{"type": "\xff"}'
    headers = WebhookHeaders("msg_1", floor(datetime.now(UTC).timestamp()), "v1,YWJj")
    problem = refusal(lambda: verify_signature(body, headers, [SECRET]))
    assert problem.status == 400


def test_the_signature_is_checked_before_the_payload_is_read() -> None:
    body = b"not json at all"
    headers = verified_headers(signed(body, OTHER_SECRET))
    problem = refusal(lambda: read_receipt("plant-a", body, headers, [SECRET]))
    assert problem.status == 401


# --- the payload ------------------------------------------------------------------------------


def test_a_valid_payload_parses() -> None:
    parsed = parse_payload(body_of(payload()))
    assert parsed.data.container_id == "BX-WH-1"
    assert parsed.data.condition.value == "ok"


def test_shipment_id_is_optional() -> None:
    document = payload()
    del document["data"]["shipment_id"]
    assert parse_payload(body_of(document)).data.shipment_id is None


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({**payload(), "type": "receipt.rejected"}, "type"),
        ({**payload(), "extra": 1}, "extra"),
        (payload(colour="red"), "data.colour"),
        (payload(condition="fine"), "data.condition"),
        (payload(accepted_weight_kg=-1), "data.accepted_weight_kg"),
        (payload(accepted_weight_kg="heavy"), "data.accepted_weight_kg"),
        (payload(received_at="2026-11-02T09:30:00"), "data.received_at"),
        (payload(container_id="x"), "data.container_id"),
        (payload(plant_reference=""), "data.plant_reference"),
        ({**payload(), "timestamp": "yesterday"}, "timestamp"),
        ({"type": "receipt.acknowledged", "timestamp": "2026-11-02T08:31:00Z"}, "data"),
        ([payload()], "(root)"),
    ],
)
def test_invalid_payloads_are_422_with_field_paths(document: Any, path: str) -> None:
    problem = refusal(lambda: parse_payload(body_of(document)))
    assert problem.status == 422
    assert problem.errors is not None
    assert path in [error["path"] for error in problem.errors], problem.errors


def test_a_body_that_is_not_json_is_400() -> None:
    problem = refusal(lambda: parse_payload(b'{"type": "receipt.acknowledged",'))
    assert problem.status == 400
    assert "not valid JSON" in problem.detail


# --- the event ----------------------------------------------------------------------------


def test_the_event_id_derives_from_plant_and_webhook_id_only() -> None:
    # Pinned: recorded receipts' ids depend on this namespace, it may never change.
    assert UUID("37973ac8-8ea1-5cad-b22e-8377c3dc270b") == WEBHOOK_EVENT_NAMESPACE
    assert webhook_event_id("plant-a", "msg_1") == UUID("30fcb91a-74c6-5431-bb51-f8bb33622312")
    assert webhook_event_id("plant-a", "msg_1") == webhook_event_id("plant-a", "msg_1")
    assert webhook_event_id("plant-a", "msg_1") != webhook_event_id("plant-b", "msg_1")
    assert webhook_event_id("plant-a", "msg_1") != webhook_event_id("plant-a", "msg_2")
    assert webhook_event_id("plant-a", "msg_1").version == 5


def test_the_receipt_event_maps_the_payload() -> None:
    event = receipt_event("plant-a", "msg_1", ReceiptWebhook.model_validate(payload()))
    assert isinstance(event, ReceiptAck)
    assert event_body(event) == {
        "event_id": "30fcb91a-74c6-5431-bb51-f8bb33622312",
        "type": "receipt_ack",
        "container_id": "BX-WH-1",
        "occurred_at": "2026-11-02T09:30:00+01:00",
        "location_id": "plant-a:webhook",
        "sent_at": "2026-11-02T08:31:00Z",
        "accepted_weight_kg": 118.5,
        "condition": "ok",
        "plant_reference": "RCV-0042",
        "shipment_id": "BOL-7",
    }


def pending(event: ReceiptAck, received_at: datetime, offset: int) -> PendingEvent:
    envelope = Envelope.model_validate(
        {
            "event": event_body(event),
            "received_at": received_at,
            "origin": {"kind": "webhook", "party_id": "plant-a"},
        }
    )
    return PendingEvent(envelope, event_body(envelope.event), 0, offset)


def test_a_redelivery_is_an_identical_replay_and_a_changed_body_a_conflict() -> None:
    """What the ledger does with a webhook-id seen twice (pure append planning)."""
    first = receipt_event("plant-a", "msg_1", ReceiptWebhook.model_validate(payload()))
    again = receipt_event("plant-a", "msg_1", ReceiptWebhook.model_validate(payload()))
    changed = receipt_event(
        "plant-a", "msg_1", ReceiptWebhook.model_validate(payload(accepted_weight_kg=90.0))
    )
    recorded = {first.event_id: event_body(first)}
    later = NOW + timedelta(minutes=3)
    plan = plan_append(
        [pending(again, later, 1), pending(changed, later, 2)],
        recorded_bodies=recorded,
        next_seq=1,
        chain_heads={},
        recorded_at=later,
    )
    assert plan.replays == 1
    assert plan.entries == []
    assert len(plan.conflicts) == 1
    assert plan.conflicts[0].pending.kafka_offset == 2


# --- secrets ------------------------------------------------------------------------------


def test_new_secrets_are_standard_webhooks_secrets_the_schema_accepts() -> None:
    check = re.search(r"secret ~ '(.+?)'", MIGRATION.read_text())
    assert check is not None
    pattern = check.group(1).replace("{{", "{").replace("}}", "}")
    secrets = {new_webhook_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert re.fullmatch(pattern, secret), secret
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
        Webhook(secret).sign("msg_1", NOW, "{}")


# --- the HTTP layer, with an in-memory registry and producer --------------------------------


class FakeRegistry:
    def __init__(self, secrets: dict[str, list[str]]) -> None:
        self.secrets = secrets

    def plant_secrets(self, party_id: str) -> list[str]:
        return list(self.secrets.get(party_id, []))


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes]] = []

    async def send_all(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        self.sent.extend(messages)


@pytest.fixture
def http() -> tuple[TestClient, FakeProducer]:
    producer = FakeProducer()
    context = IngestContext(
        registry=FakeRegistry({"plant-a": [SECRET]}),  # type: ignore[arg-type]
        corrections=FakeRegistry({}),  # type: ignore[arg-type]
        producer=producer,  # type: ignore[arg-type]
        max_body_bytes=4096,
        max_batch_events=500,
    )
    return TestClient(create_app(context, {})), producer


def test_a_signed_receipt_is_produced_with_webhook_origin(
    http: tuple[TestClient, FakeProducer],
) -> None:
    client, producer = http
    body = body_of(payload())
    response = client.post("/v1/webhooks/plants/plant-a", content=body, headers=signed(body))
    assert response.status_code == 202, response.text
    expected_id = str(webhook_event_id("plant-a", "msg_2Lq0Xxy"))
    assert response.json() == {"event_id": expected_id, "status": "accepted"}
    [(key, value)] = producer.sent
    assert key == b"BX-WH-1"
    envelope = Envelope.model_validate_json(value)
    assert envelope.origin.model_dump(exclude_none=True) == {
        "kind": "webhook",
        "party_id": "plant-a",
    }
    assert str(envelope.event.event_id) == expected_id
    assert envelope.event.type == "receipt_ack"


def test_a_redelivery_is_accepted_again_as_the_same_event(
    http: tuple[TestClient, FakeProducer],
) -> None:
    client, producer = http
    body = body_of(payload())
    first = signed(body, at=datetime.now(UTC) - timedelta(seconds=90))
    for headers in (first, signed(body)):
        response = client.post("/v1/webhooks/plants/plant-a", content=body, headers=headers)
        assert response.status_code == 202, response.text
    events = [Envelope.model_validate_json(value).event for _, value in producer.sent]
    assert len(events) == 2
    assert event_body(events[0]) == event_body(events[1])


@pytest.mark.parametrize(
    ("party", "make", "status"),
    [
        ("plant-zz", lambda body: signed(body), 401),
        ("site-a", lambda body: signed(body), 401),
        ("plant-a", lambda body: signed(body, OTHER_SECRET), 401),
        ("plant-a", lambda body: signed(body, at=datetime.now(UTC) - timedelta(minutes=10)), 401),
        ("plant-a", lambda body: signed(body, at=datetime.now(UTC) + timedelta(minutes=10)), 401),
        ("plant-a", lambda body: {}, 400),
    ],
    ids=["unknown plant", "site party", "wrong secret", "stale", "future", "no headers"],
)
def test_refusals_are_problem_json_and_produce_nothing(
    http: tuple[TestClient, FakeProducer], party: str, make: Any, status: int
) -> None:
    client, producer = http
    body = body_of(payload())
    response = client.post(f"/v1/webhooks/plants/{party}", content=body, headers=make(body))
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    if status == 401:
        assert "www-authenticate" in response.headers
    assert producer.sent == []


def test_an_unknown_plant_gets_the_same_answer_as_a_wrong_secret(
    http: tuple[TestClient, FakeProducer],
) -> None:
    client, _ = http
    body = body_of(payload())
    unknown = client.post("/v1/webhooks/plants/plant-zz", content=body, headers=signed(body))
    wrong = client.post(
        "/v1/webhooks/plants/plant-a", content=body, headers=signed(body, OTHER_SECRET)
    )
    assert unknown.status_code == wrong.status_code == 401
    assert {k: v for k, v in unknown.json().items() if k != "instance"} == {
        k: v for k, v in wrong.json().items() if k != "instance"
    }


def test_signed_but_invalid_payloads_are_422_and_oversized_bodies_413(
    http: tuple[TestClient, FakeProducer],
) -> None:
    client, producer = http
    body = body_of(payload(condition="fine"))
    response = client.post("/v1/webhooks/plants/plant-a", content=body, headers=signed(body))
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "data.condition"
    big = body_of(payload(plant_reference="r" * 5000))
    response = client.post("/v1/webhooks/plants/plant-a", content=big, headers=signed(big))
    assert response.status_code == 413
    assert producer.sent == []
