"""Operations: the consumer's ops endpoint (lag, counters, readiness) and JSON log lines;
SIGTERM lets ingest finish the request in flight."""

from __future__ import annotations

import json
import signal
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from services.stack.processes import port_open
from tests.support import events as ev
from tests.support.network import register_network
from tests.support.services import start_service
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

EVENTS = 600


def envelope(event: dict[str, object]) -> bytes:
    return orjson.dumps(
        {
            "event": event,
            "received_at": datetime.now(UTC).isoformat(),
            "origin": {"kind": "device", "party_id": "site-a", "device_id": "site-a-dev"},
        }
    )


def samples(base_url: str, topic: str) -> dict[tuple[str, str], float]:
    """(metric, label) → value for the consumer's metrics; the label is the partition or
    outcome (lag of other topics, as left by other tests in the same process, is skipped)."""
    text = httpx.get(f"{base_url}/metrics", timeout=5).text
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "custody_consumer_lag" and sample.labels["topic"] == topic:
                values[(sample.name, sample.labels["partition"])] = sample.value
            elif sample.name in ("custody_consumer_events_total", "custody_consumer_ready"):
                values[(sample.name, sample.labels.get("outcome", ""))] = sample.value
    return values


def test_the_consumer_serves_lag_counters_and_readiness_and_logs_json(
    stack: LiveStack, tmp_path: Path
) -> None:
    # One event per batch: the backlog drains over seconds, so the lag (exported once a
    # second) is seen above zero on the way down.
    settings = stack.settings(log_format="json", consumer_batch_max=1)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    for number in range(EVENTS):
        container = f"OPS-{number:05d}"
        producer.send(settings.topic, key=container.encode(), value=envelope(ev.dropoff(container)))
    poison = ev.dropoff("OPS-POISON")
    producer.send(settings.topic, key=b"another-key", value=envelope(poison))
    producer.flush()
    producer.close()

    consumer = start_service(settings, "consumer", tmp_path)
    assert consumer.url is not None
    seen_lag = 0.0

    def drained() -> bool:
        nonlocal seen_lag
        values = samples(str(consumer.url), settings.topic)
        lags = [value for (name, _), value in values.items() if name == "custody_consumer_lag"]
        seen_lag = max(seen_lag, sum(lags))
        return (
            len(lags) == settings.topic_partitions
            and sum(lags) == 0
            and values.get(("custody_consumer_events_total", "appended")) == EVENTS
            and values.get(("custody_consumer_events_total", "rejected")) == 1
        )

    try:
        wait_for(drained, what=f"{EVENTS} events appended and no lag", timeout=90)
        assert seen_lag > 0, "the lag was never seen above zero while the backlog drained"
        values = samples(str(consumer.url), settings.topic)
        assert values[("custody_consumer_ready", "")] == 1
        ready = httpx.get(f"{consumer.url}/readyz", timeout=5)
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert httpx.get(f"{consumer.url}/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        assert consumer.stop() == 0

    lines = [json.loads(line) for line in consumer.log.read_text().splitlines() if line]
    assert lines, "the consumer logged nothing"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    [rejected] = [line for line in lines if line.get("code") == "key_mismatch"]
    assert rejected["event_id"] == poison["event_id"]
    assert rejected["container_id"] == "OPS-POISON"
    assert rejected["level"] == "WARNING"


def test_sigterm_lets_ingest_finish_the_request_in_flight(stack: LiveStack, tmp_path: Path) -> None:
    settings = stack.settings()
    network = register_network(settings)
    ingest = start_service(settings, "ingest", tmp_path)
    assert ingest.url is not None
    port = int(ingest.url.rsplit(":", 1)[1])
    container = ev.unique_container()
    body = orjson.dumps({"events": [ev.dropoff(container), ev.sealed(container)]})
    head = (
        f"POST /v1/events/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {network.headers('site-a-dev')['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(head + body[:20])
            time.sleep(0.5)  # a slow client: ingest has the headers and waits for the body
            ingest.process.send_signal(signal.SIGTERM)
            wait_for(lambda: not port_open(port), what="ingest to stop accepting", timeout=10)
            connection.sendall(body[20:])
            response = b""
            while chunk := connection.recv(65536):
                response += chunk
    finally:
        ingest.stop()
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", response
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["accepted"] == 2
    # uvicorn re-raises the signal once it has shut down gracefully
    assert ingest.process.returncode in (0, -signal.SIGTERM)
