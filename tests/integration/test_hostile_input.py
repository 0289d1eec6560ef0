"""Hostile input in ids, filters and bodies: a clean 4xx or an empty answer, never a 5xx, and
nothing changes in the database or on the topic.

Each hostile value goes into every place a caller can put a string: path parameters (container,
event and shipment ids), query filters of the API and the UI, and the fields of posted events.
A value that is legitimately valid somewhere (SQL in a note is just text) is recorded verbatim.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import text

from services.bootstrap import build_consumer, build_ingest_app, build_ledger_api
from services.db.engine import make_engine
from services.settings import Settings
from tests.support import events as ev
from tests.support.db_snapshot import database_snapshot
from tests.support.recorded_ledger import RecordedLedger, record_ledger
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for
from tests.support.webhook_signing import receipt_body, signed_headers

pytestmark = pytest.mark.integration

HOSTILE = {
    "sql quote": "' OR '1'='1",
    "sql drop": "x'; DROP TABLE ledger.entries; --",
    "sql comment": 'BX-1" OR 1=1 /*',
    "like wildcards": "%_%",
    "backslashes": "\\\\x\\",
    "traversal": "../../../../etc/passwd",
    "encoded traversal": "..%2F..%2F..%2Fetc%2Fpasswd",
    "absolute path": "/etc/passwd",
    "nul": "BX-\x00-1",
    "only nul": "\x00",
    "control chars": "BX\r\nX-Injected: 1\t\x1b[31m",
    "unicode": "BX-ü-ß-漢字-😀",
    "bidi override": "BX-\u202e1-XB",
    "zero width": "BX\u200b-1",
    "lone surrogate escape": "\\ud800",
    "format string": "%s%s%n%x{0}{container_id}",
    "json": '{"$gt": ""}',
    "huge": "B" * 15_000,
}
IDS = list(HOSTILE)


@dataclass
class Env:
    recorded: RecordedLedger
    ingest: TestClient
    ledger: TestClient

    @property
    def auditor(self) -> dict[str, str]:
        return self.recorded.bearer(self.recorded.network.auditor)

    @property
    def ui(self) -> dict[str, str]:
        return {"Cookie": f"custody_ui_token={self.recorded.network.auditor}"}


@pytest.fixture(scope="module")
def env(stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    recorded = record_ledger(stack, tmp_path_factory.mktemp("hostile"))
    with (
        TestClient(build_ingest_app(recorded.settings)) as ingest,
        TestClient(build_ledger_api(recorded.settings), follow_redirects=False) as ledger,
    ):
        yield Env(recorded, ingest, ledger)


def topic_size(settings: Settings) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    partitions = [
        TopicPartition(settings.topic, p) for p in consumer.partitions_for_topic(settings.topic)
    ]
    size = sum(consumer.end_offsets(partitions).values())
    consumer.close()
    return int(size)


@pytest.fixture
def unchanged(env: Env) -> Iterator[None]:
    """The test must leave every table and the topic exactly as they were."""
    settings = env.recorded.settings
    before, produced = database_snapshot(settings), topic_size(settings)
    yield
    assert topic_size(settings) == produced, "something was produced to Kafka"
    assert database_snapshot(settings) == before, "the database changed"


def clean(response: httpx.Response, *, problem: bool = True) -> None:
    """No server error; an API refusal is problem+json carrying its own status."""
    answer = f"{response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, answer
    if problem and response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", answer
        assert response.json()["status"] == response.status_code, answer


def segment(value: str) -> str:
    return quote(value, safe="")


def api_requests(env: Env, value: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, query) pairs with ``value`` in every id and filter of the ledger API."""
    v, recorded = segment(value), env.recorded
    window = {"from": ev.at(-24), "to": ev.at(48)}
    return [
        (f"/v1/containers/{v}/custody", {}),
        (f"/v1/containers/{v}/custody.csv", {}),
        (f"/v1/containers/{v}/custody.epcis.json", {}),
        (f"/v1/containers/{v}/bundle", {}),
        (f"/v1/containers/{recorded.container_id}/custody", {"as_of": value}),
        (f"/v1/containers/{recorded.container_id}/bundle", {"trusted_size": value}),
        (f"/v1/events/{v}", {}),
        (f"/v1/events/{v}/proof", {}),
        (f"/v1/events/{recorded.event_id}/proof", {"tree_size": value}),
        (f"/v1/shipments/{v}/certificate.pdf", {}),
        ("/v1/containers", {"state": value}),
        ("/v1/containers", {"custodian": value}),
        ("/v1/containers", {"location": value}),
        ("/v1/containers", {"anomaly": value}),
        ("/v1/containers", {"cursor": value}),
        ("/v1/containers", {"limit": value}),
        ("/v1/containers.csv", {"custodian": value, "location": value, "cursor": value}),
        ("/v1/events", {"EQ_bizStep": value}),
        ("/v1/events", {"EQ_bizLocation": value}),
        ("/v1/events", {"EQ_readPoint": value}),
        ("/v1/events", {"MATCH_epc": value}),
        ("/v1/events", {"MATCH_epc": value + "*"}),
        ("/v1/events", {"GE_eventTime": value}),
        ("/v1/events", {"LT_recordTime": value}),
        ("/v1/events", {"cursor": value}),
        ("/v1/anomalies", {"code": value}),
        ("/v1/anomalies", {"cursor": value}),
        ("/v1/checkpoints/consistency", {"first": value, "second": value}),
        ("/v1/webhook-deliveries", {"party_id": value}),
        ("/v1/webhook-deliveries", {"status": value, "cursor": value}),
        ("/v1/reports/mass-balance", {"from": value, "to": value}),
        ("/v1/reports/mass-balance", {**window, "group_by": value}),
        ("/v1/reports/shipment-log.csv", {**window, "party": value}),
    ]


def ui_requests(env: Env, value: str) -> list[tuple[str, dict[str, Any]]]:
    v = segment(value)
    return [
        ("/ui/containers", {"q": value}),
        ("/ui/containers", {"custodian": value, "location": value}),
        ("/ui/containers", {"state": value, "anomaly": value, "cursor": value}),
        (f"/ui/containers/{v}", {}),
        (f"/ui/containers/{v}/download/csv", {}),
        (f"/ui/containers/{env.recorded.container_id}/download/{v}", {}),
        ("/ui/anomalies", {"code": value, "cursor": value}),
        ("/ui/mass-balance", {"from": value, "to": value, "group_by": value}),
        (f"/ui/static/{v}", {}),
        ("/ui/signin", {"next": value}),
    ]


def items_of(response: httpx.Response) -> list[Any]:
    body = response.json()
    return list(body["items"]) if isinstance(body, dict) and "items" in body else []


@pytest.mark.parametrize("name", IDS)
def test_the_ledger_api_answers_hostile_ids_and_filters_cleanly(
    env: Env, name: str, unchanged: None
) -> None:
    value = HOSTILE[name]
    for path, query in api_requests(env, value):
        response = env.ledger.get(path, params=query, headers=env.auditor)
        clean(response)
        if response.status_code == 200 and path in ("/v1/containers", "/v1/events"):
            recorded = env.recorded.container_id
            assert all(value not in str(item) for item in items_of(response)), path
            assert all(recorded in str(item) for item in items_of(response)), path


@pytest.mark.parametrize("name", IDS)
def test_the_ui_answers_hostile_ids_and_filters_cleanly(
    env: Env, name: str, unchanged: None
) -> None:
    value = HOSTILE[name]
    for path, query in ui_requests(env, value):
        response = env.ledger.get(path, params=query, headers=env.ui)
        clean(response, problem=False)
        assert response.status_code != 303 or "/ui/signin" not in response.headers["location"]
        if response.status_code == 303:  # only the sign-in page's next= may redirect
            assert response.headers["location"].startswith("/ui/")
        if "text/html" in response.headers.get("content-type", ""):
            assert "<script" not in response.text.lower()
            if len(value) < 1000 and "<" in value:
                assert value not in response.text
    response = env.ledger.post(
        "/ui/signin",
        content=f"token={quote(value)}&next={quote(value)}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code in (401, 413), response.text[:300]


def event_variants(value: str) -> dict[str, dict[str, Any]]:
    """Events with ``value`` where the contract allows no such thing."""
    container = ev.unique_container("HX")
    return {
        "container_id": ev.dropoff(value),
        "event_id": {**ev.dropoff(container), "event_id": value},
        "corrects_event_id": ev.event(
            "correction", container, 1, corrects_event_id=value, reason="did_not_occur"
        ),
        "from_party": ev.transfer("pickup", container, 2, value, "hauler-a", shipment_id="B1"),
        "type": {**ev.dropoff(container), "type": value},
        "occurred_at": {**ev.dropoff(container), "occurred_at": value},
        "field name": {**ev.dropoff(container), value: "x"},
    }


@pytest.mark.parametrize("name", IDS)
def test_ingest_refuses_hostile_ids_and_produces_nothing(
    env: Env, name: str, unchanged: None
) -> None:
    value = HOSTILE[name]
    site = env.recorded.network.headers("site-a-dev")
    for field, event in event_variants(value).items():
        response = env.ingest.post("/v1/events", json=event, headers=site)
        clean(response)
        assert response.status_code in (403, 413, 422), (field, response.text[:300])
        response = env.ingest.post("/v1/events/batch", json={"events": [event]}, headers=site)
        clean(response)
        if response.status_code == 200:
            assert response.json()["accepted"] == 0, (field, response.text[:300])
    body = receipt_body(env.recorded.container_id, 7)
    response = env.ingest.post(
        f"/v1/webhooks/plants/{segment(value)}",
        content=body,
        headers=signed_headers(body, env.recorded.plant_secret),
    )
    clean(response)
    assert response.status_code in (401, 404), response.text[:300]
    for header in ("webhook-id", "webhook-signature"):
        headers = signed_headers(body, env.recorded.plant_secret)
        headers[header] = value.encode("utf-8", "surrogatepass").decode("latin-1")
        try:
            response = env.ingest.post("/v1/webhooks/plants/plant-a", content=body, headers=headers)
        except (httpx.LocalProtocolError, ValueError):
            continue  # a header no HTTP client can send
        clean(response)
        assert response.status_code in (400, 401), response.text[:300]


@pytest.mark.parametrize("field", ["note", "description"])
def test_nul_in_free_text_is_refused_at_the_door(env: Env, field: str, unchanged: None) -> None:
    """PostgreSQL cannot store U+0000 in text or jsonb: accepting it would strand the event."""
    event = ev.event("incident", ev.unique_container("HX"), 1, kind="leak", description="drip")
    event[field] = "before\x00after"
    response = env.ingest.post(
        "/v1/events", json=event, headers=env.recorded.network.headers("site-a-dev")
    )
    clean(response)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"] == f"incident.{field}"


def test_hostile_free_text_is_recorded_verbatim(env: Env) -> None:
    """Where any text is allowed, SQL and unicode are just text: stored and read back as sent."""
    words = "'; DROP TABLE ledger.entries; -- %_\\ ü 漢字 😀 \u202e <script>alert(1)</script>"
    container = ev.unique_container("HX")
    event = ev.event("incident", container, 1, kind="damaged", description=words, note=words[:500])
    response = env.ingest.post(
        "/v1/events", json=event, headers=env.recorded.network.headers("site-a-dev")
    )
    assert response.status_code == 202, response.text
    stop = threading.Event()
    consumer = build_consumer(env.recorded.settings)
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:

        def recorded() -> bool:
            answer = env.ledger.get(f"/v1/events/{event['event_id']}", headers=env.auditor)
            return answer.status_code == 200

        wait_for(recorded, what="the incident recorded")
    finally:
        stop.set()
        thread.join(timeout=30)
    entry = env.ledger.get(f"/v1/events/{event['event_id']}", headers=env.auditor).json()
    assert entry["event"]["description"] == words
    assert entry["event"]["note"] == words[:500]
    trail = env.ledger.get(f"/v1/containers/{container}/custody", headers=env.auditor)
    assert trail.status_code == 200
    page = env.ledger.get(f"/ui/containers/{container}", headers=env.ui)
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text


def test_nul_poison_on_the_topic_is_parked_and_never_stalls_the_consumer(
    stack: LiveStack,
) -> None:
    """Messages that did not come through ingest: U+0000 in a note, an id, an unknown field."""
    settings = stack.settings()
    container = ev.unique_container("NX")
    with_note = {**ev.dropoff(container), "note": "a\x00b"}
    bad_id = ev.dropoff("BX-\x00-1")
    bad_field = {**ev.dropoff(container), "\x00": "x"}
    after = ev.dropoff(container, 1)
    origin = {"kind": "device", "party_id": "site-a", "device_id": "site-a-dev"}
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    for event in (with_note, bad_id, bad_field, after):
        value = {"event": event, "received_at": ev.at(2), "origin": origin}
        producer.send(settings.topic, key=container.encode(), value=orjson.dumps(value))
    producer.flush()
    producer.close()
    engine = make_engine(settings.database_url, pool_size=1)

    def counts() -> tuple[int, int]:
        with engine.connect() as connection:
            entries = connection.execute(text("SELECT count(*) FROM ledger.entries")).scalar_one()
            rejected = connection.execute(text("SELECT count(*) FROM ledger.rejected")).scalar_one()
        return int(entries), int(rejected)

    stop = threading.Event()
    consumer = build_consumer(settings)
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: counts() == (1, 3), what="1 entry and 3 rejections")
    finally:
        stop.set()
        thread.join(timeout=30)
        engine.dispose()
    assert thread.is_alive() is False
