"""One contract, two message sources: the in-memory one the consumer's unit tests use and the
Kafka one over the real broker (integration). Both must behave the same to the consumer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from kafka import KafkaProducer

from services.ledger.adapters.kafka_source import KafkaSource
from services.ledger.adapters.memory_source import InMemorySource
from services.ledger.adapters.message_source import MessageSource
from services.ledger.consumer.metrics import consumer_metrics
from services.ledger.domain.messages import IncomingMessage
from services.stack.topics import ensure_topics
from tests.support.stack import LiveStack

PARTITIONS = 2
StoredOffsets = Callable[[str], dict[int, int]]


@dataclass
class Harness:
    """Writes messages to a topic and opens sources on it."""

    produce: Callable[[bytes, bytes, int], None]
    open: Callable[[StoredOffsets], MessageSource]
    opened: list[MessageSource] = field(default_factory=list)

    def source(self, stored: dict[int, int] | None = None) -> MessageSource:
        source = self.open(lambda _topic: dict(stored or {}))
        self.opened.append(source)
        return source


def in_memory() -> Iterator[Harness]:
    topic = "contract.memory"
    log = InMemorySource(topic, PARTITIONS)

    def produce(key: bytes, value: bytes, partition: int) -> None:
        log.produce(key, value, partition=partition)

    def open_source(stored: StoredOffsets) -> MessageSource:
        # A new source over the same partitions, resuming where the ledger says.
        source = InMemorySource(topic, PARTITIONS, stored_offsets=stored)
        source._logs = log._logs
        return source

    yield Harness(produce, open_source)


def kafka(stack: LiveStack) -> Iterator[Harness]:
    topic = f"contract.kafka.{uuid.uuid4().hex[:8]}"
    ensure_topics(stack.kafka.bootstrap, {topic: PARTITIONS})
    producer = KafkaProducer(bootstrap_servers=stack.kafka.bootstrap, acks="all")

    def produce(key: bytes, value: bytes, partition: int) -> None:
        producer.send(topic, key=key, value=value, partition=partition).get(timeout=30)

    def open_source(stored: StoredOffsets) -> MessageSource:
        return KafkaSource(
            bootstrap=stack.kafka.bootstrap,
            topic=topic,
            group=f"contract-{uuid.uuid4().hex[:8]}",
            batch_max=100,
            stored_offsets=stored,
            lag_gauge=consumer_metrics().lag,
        )

    yield Harness(produce, open_source)
    producer.close()


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    made = in_memory() if request.param == "memory" else kafka(request.getfixturevalue("stack"))
    built = next(made)
    try:
        yield built
    finally:
        for source in built.opened:
            source.close()
        next(made, None)


def poll_until(source: MessageSource, count: int, timeout: float = 30) -> list[IncomingMessage]:
    """Poll until ``count`` messages came (the Kafka source first joins its group)."""
    got: list[IncomingMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(source.poll(timeout_ms=200, max_records=100))
        source.keep_assigned()
    return got


def positions(messages: list[IncomingMessage]) -> list[tuple[int, int, bytes | None]]:
    return sorted((m.partition, m.offset, m.value) for m in messages)


def test_messages_come_in_offset_order_per_partition_with_key_and_value(harness: Harness) -> None:
    for index in range(6):
        harness.produce(f"BX-{index % 3}".encode(), f"v{index}".encode(), index % PARTITIONS)
    got = poll_until(harness.source(), 6)
    assert len(got) == 6
    for partition in range(PARTITIONS):
        offsets = [m.offset for m in got if m.partition == partition]
        assert offsets == sorted(offsets) == list(range(3))
    assert {(m.key, m.value) for m in got} == {
        (f"BX-{i % 3}".encode(), f"v{i}".encode()) for i in range(6)
    }


def test_a_new_source_resumes_where_the_ledger_says(harness: Harness) -> None:
    for index in range(4):
        harness.produce(b"BX-R", f"v{index}".encode(), 0)
    got = poll_until(harness.source({0: 3}), 1)
    assert positions(got) == [(0, 3, b"v3")]


def test_a_rewound_batch_is_handed_out_again(harness: Harness) -> None:
    for index in range(3):
        harness.produce(b"BX-W", f"v{index}".encode(), 1)
    source = harness.source()
    first = poll_until(source, 3)
    source.rewind(first)
    again = poll_until(source, 3)
    assert positions(again) == positions(first)
    source.commit({(first[0].topic, 1): 3})
    assert source.poll(timeout_ms=200, max_records=100) == []
