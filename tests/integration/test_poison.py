"""Poison written straight to the topic is parked (DLQ + rejected table); the rest goes on."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import text

from services.bootstrap import build_consumer
from services.db.engine import make_engine
from tests.support import events as ev
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def envelope(event: dict[str, object]) -> bytes:
    return orjson.dumps(
        {
            "event": event,
            "received_at": datetime.now(UTC).isoformat(),
            "origin": {"kind": "device", "party_id": "site-a", "device_id": "site-a-dev"},
        }
    )


def test_poison_messages_are_parked_and_valid_ones_after_them_recorded(stack: LiveStack) -> None:
    settings = stack.settings()
    container = ev.unique_container()
    good_before = ev.dropoff(container)
    good_after = ev.sealed(container)
    duplicate_changed = {**good_before, "note": "rewritten"}
    bad_event = ev.dropoff(container)
    bad_event["occurred_at"] = "2026-11-02T08:00:00"  # naive
    poison: list[tuple[bytes | None, bytes | None, str]] = [
        (container.encode(), b"{not json", "malformed_json"),
        (container.encode(), b"[1, 2, 3]", "invalid_envelope"),
        (container.encode(), envelope(bad_event), "invalid_event"),
        (b"another-key", envelope(ev.dropoff(container)), "key_mismatch"),
        (container.encode(), None, "empty"),
        (container.encode(), envelope(duplicate_changed), "duplicate_conflict"),
    ]
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    producer.send(settings.topic, key=container.encode(), value=envelope(good_before))
    for key, value, _ in poison:
        producer.send(settings.topic, key=key, value=value)
    producer.send(settings.topic, key=container.encode(), value=envelope(good_after))
    producer.flush()
    producer.close()

    engine = make_engine(settings.database_url, pool_size=1)

    def counts() -> tuple[int, int]:
        with engine.connect() as connection:
            entries = connection.execute(text("SELECT count(*) FROM ledger.entries")).scalar_one()
            rejected = connection.execute(text("SELECT count(*) FROM ledger.rejected")).scalar_one()
        return entries, rejected

    stop = threading.Event()
    consumer = build_consumer(settings)
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: counts() == (2, len(poison)), what="2 entries and 6 rejections")
    finally:
        stop.set()
        thread.join(timeout=30)

    with engine.connect() as connection:
        recorded = list(
            connection.execute(
                text("SELECT event_id::text FROM ledger.entries ORDER BY seq")
            ).scalars()
        )
        reasons = sorted(
            connection.execute(text("SELECT reason_code FROM ledger.rejected")).scalars()
        )
    engine.dispose()
    assert recorded == [good_before["event_id"], good_after["event_id"]]
    assert reasons == sorted(code for _, _, code in poison)

    dlq = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, consumer_timeout_ms=5000)
    partition = TopicPartition(settings.dlq_topic, 0)
    dlq.assign([partition])
    dlq.seek_to_beginning(partition)
    parked = [orjson.loads(record.value) for record in dlq]
    dlq.close()
    assert sorted(item["reason_code"] for item in parked) == sorted(code for _, _, code in poison)
    assert all(item["reason"] for item in parked)
