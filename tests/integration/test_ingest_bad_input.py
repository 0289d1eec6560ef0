"""Bad input at ingest: the specified status, a precise problem+json, and nothing produced."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition

from services.bootstrap import build_ingest_app
from services.settings import Settings
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.stack import LiveStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(stack: LiveStack) -> Iterator[tuple[Settings, Network, TestClient]]:
    settings = stack.settings()
    network = register_network(settings)
    with TestClient(build_ingest_app(settings)) as client:
        yield settings, network, client


def topic_size(settings: Settings) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    partitions = [
        TopicPartition(settings.topic, p) for p in consumer.partitions_for_topic(settings.topic)
    ]
    size = sum(consumer.end_offsets(partitions).values())
    consumer.close()
    return size


C = "BX-badinput-1"
SITE = "site-a-dev"


def naive() -> dict[str, Any]:
    body = ev.dropoff(C)
    body["occurred_at"] = "2026-11-02T08:00:00"
    return body


def wrong_type() -> dict[str, Any]:
    body = ev.sealed(C)
    body["weight_kg"] = "heavy"
    return body


def unknown_field() -> dict[str, Any]:
    return {**ev.dropoff(C), "colour": "red"}


CASES: list[tuple[str, str, Any, dict[str, str] | None, int, str, str | None]] = [
    # name, path, body (bytes or JSON), headers (None = site device), status, detail part, path
    ("malformed json", "/v1/events", b'{"type": "dropoff",', None, 400, "not valid JSON", None),
    ("wrong type", "/v1/events", wrong_type(), None, 422, "valid number", "weight_kg"),
    (
        "unknown type",
        "/v1/events",
        ev.event("teleport", C, 0),
        None,
        422,
        "does not match",
        "(root)",
    ),
    ("naive timestamp", "/v1/events", naive(), None, 422, "timezone", "dropoff.occurred_at"),
    ("unknown field", "/v1/events", unknown_field(), None, 422, "Extra inputs", "dropoff.colour"),
    (
        "bad container id",
        "/v1/events",
        ev.dropoff("x"),
        None,
        422,
        "pattern",
        "dropoff.container_id",
    ),
    (
        "oversized body",
        "/v1/events",
        {**ev.dropoff(C), "note": "n" * 1_100_000},
        None,
        413,
        "limit",
        None,
    ),
    (
        "oversized batch",
        "/v1/events/batch",
        {"events": [ev.dropoff(C)] * 501},
        None,
        413,
        "501 events",
        None,
    ),
    ("empty batch", "/v1/events/batch", {"events": []}, None, 422, "at least one", "events"),
    ("batch not an object", "/v1/events/batch", [ev.dropoff(C)], None, 422, "events", "events"),
    (
        "unknown party",
        "/v1/events",
        ev.transfer("pickup", C, 2, "site-a", "hauler-zz", shipment_id="B1"),
        None,
        422,
        "unknown party 'hauler-zz'",
        "to_party",
    ),
    (
        "device posting for another party",
        "/v1/events",
        ev.transfer("pickup", C, 2, "site-b", "hauler-a", shipment_id="B1"),
        None,
        403,
        "transfers it takes part in",
        None,
    ),
    (
        "hauler sealing",
        "/v1/events",
        ev.sealed(C),
        {"device": "hauler-a-dev"},
        403,
        "only sites post sealed",
        None,
    ),
    (
        "device posting a receipt_ack",
        "/v1/events",
        ev.event(
            "receipt_ack", C, 5, accepted_weight_kg=100.0, condition="ok", plant_reference="R1"
        ),
        {"device": "plant-a-dev"},
        403,
        "signed webhook",
        None,
    ),
    (
        "correction of an unrecorded event",
        "/v1/events",
        ev.event("correction", C, 5, corrects_event_id=str(uuid.uuid4()), reason="did_not_occur"),
        None,
        403,
        "is not recorded",
        None,
    ),
    ("missing token", "/v1/events", ev.dropoff(C), {"raw": ""}, 401, "missing", None),
    ("bad token", "/v1/events", ev.dropoff(C), {"raw": "Bearer bcd_nope"}, 401, "unknown", None),
    ("wrong scheme", "/v1/events", ev.dropoff(C), {"raw": "Basic abc"}, 401, "Bearer", None),
    (
        "auditor token posting",
        "/v1/events",
        ev.dropoff(C),
        {"auditor": ""},
        403,
        "only registered devices",
        None,
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "who", "status", "detail", "field"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_is_refused_precisely_and_produces_nothing(
    env: tuple[Settings, Network, TestClient],
    path: str,
    body: Any,
    who: dict[str, str] | None,
    status: int,
    detail: str,
    field: str | None,
) -> None:
    settings, network, client = env
    headers = {"content-type": "application/json"}
    if who is None:
        headers.update(network.headers(SITE))
    elif "device" in who:
        headers.update(network.headers(who["device"]))
    elif "auditor" in who:
        headers.update(network.auditor_headers())
    elif who["raw"]:
        headers["Authorization"] = who["raw"]
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    before = topic_size(settings)
    response = client.post(path, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert detail in problem["detail"], problem
    if field is not None:
        assert any(error["path"].endswith(field) for error in problem["errors"]), problem
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert topic_size(settings) == before


def test_a_batch_with_some_bad_events_accepts_only_the_good_ones(
    env: tuple[Settings, Network, TestClient],
) -> None:
    settings, network, client = env
    good = ev.dropoff(ev.unique_container())
    bad = naive()
    before = topic_size(settings)
    response = client.post(
        "/v1/events/batch", json={"events": [good, bad]}, headers=network.headers(SITE)
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["results"][0] == {"index": 0, "event_id": good["event_id"], "status": "accepted"}
    assert body["results"][1]["status"] == "rejected"
    assert body["results"][1]["errors"][0]["path"] == "events.1.dropoff.occurred_at"
    assert topic_size(settings) == before + 1
