"""The per-device rate limit at ingest: 429 + Retry-After, the whole request refused, nothing
produced, other devices unaffected, and the refusals counted."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition
from prometheus_client import REGISTRY

from services.bootstrap import build_ingest_app
from services.settings import Settings
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.stack import LiveStack

pytestmark = pytest.mark.integration

RATE, BURST = 0.5, 5  # a full bucket of 5 events, one more every 2 s


@pytest.fixture(scope="module")
def env(stack: LiveStack) -> Iterator[tuple[Settings, Network, TestClient]]:
    settings = stack.settings(
        rate_limit_per_device=RATE, rate_limit_burst=BURST, max_batch_events=BURST
    )
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
    return int(size)


def throttled() -> float:
    value = REGISTRY.get_sample_value(
        "custody_ingest_events_total", {"outcome": "throttled", "reason": "rate_limit"}
    )
    return value or 0.0


def test_over_the_limit_a_device_gets_429_and_nothing_is_accepted(
    env: tuple[Settings, Network, TestClient],
) -> None:
    settings, network, client = env
    site = network.headers("site-a-dev")
    containers = [ev.unique_container("RL") for _ in range(BURST)]
    full = client.post(
        "/v1/events/batch", json={"events": [ev.dropoff(c) for c in containers]}, headers=site
    )
    assert full.status_code == 200, full.text
    assert full.json()["accepted"] == BURST
    produced, counted = topic_size(settings), throttled()

    batch = client.post(
        "/v1/events/batch",
        json={"events": [ev.sealed(c) for c in containers[:3]]},
        headers=site,
    )
    single = client.post("/v1/events", json=ev.sealed(containers[0]), headers=site)
    for response, cost in ((batch, 3), (single, 1)):
        assert response.status_code == 429, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == 429
        assert "nothing of this request" in problem["detail"]
        retry_after = response.headers["retry-after"]
        assert retry_after.isdigit()
        assert 1 <= int(retry_after) <= cost / RATE
    assert topic_size(settings) == produced, "a refused request produced something"
    assert throttled() == counted + 3 + 1

    other = client.post(
        "/v1/events",
        json=ev.dropoff(ev.unique_container("RL")),
        headers=network.headers("site-a-dev2"),
    )
    assert other.status_code == 202, "another device of the same party has its own bucket"

    time.sleep(int(single.headers["retry-after"]))
    again = client.post("/v1/events", json=ev.sealed(containers[0]), headers=site)
    assert again.status_code == 202, again.text


def test_an_invalid_request_over_the_limit_is_still_refused_before_reading(
    env: tuple[Settings, Network, TestClient],
) -> None:
    _, network, client = env
    hauler = network.headers("hauler-a-dev")
    for _ in range(BURST):
        assert client.post("/v1/events", content=b"{", headers=hauler).status_code == 400
    response = client.post("/v1/events", content=b"{", headers=hauler)
    assert response.status_code == 429
