"""custody_consumer_lag: end offset - position per assigned partition, at most once a second."""

from __future__ import annotations

from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError
from prometheus_client import REGISTRY

from services.ledger.adapters.kafka_source import PartitionLag
from services.ledger.consumer.metrics import consumer_metrics

TOPIC = "custody.events.lag-test"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


class FakeConsumer:
    def __init__(self) -> None:
        self.assigned = {P0, P1}
        self.ends = {P0: 100, P1: 7}
        self.positions: dict[TopicPartition, int | None] = {P0: 40, P1: 7}
        self.fail = False
        self.calls = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def end_offsets(
        self, partitions: list[TopicPartition], timeout_ms: int | None = None
    ) -> dict[TopicPartition, int]:
        self.calls += 1
        if self.fail:
            raise KafkaTimeoutError("no answer")
        return {partition: self.ends[partition] for partition in partitions}

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> int | None:
        return self.positions[partition]


def lag(partition: TopicPartition) -> float | None:
    return REGISTRY.get_sample_value(
        "custody_consumer_lag", {"topic": partition.topic, "partition": str(partition.partition)}
    )


def test_lag_per_partition_throttled_and_forgotten_when_revoked() -> None:
    consumer = FakeConsumer()
    gauge = PartitionLag(consumer, consumer_metrics().lag, every_s=1.0)
    gauge.update(now=10.0)
    assert (lag(P0), lag(P1)) == (60, 0)

    consumer.positions[P0] = 100
    gauge.update(now=10.5)
    assert consumer.calls == 1
    assert lag(P0) == 60

    gauge.update(now=11.0)
    assert lag(P0) == 0

    consumer.assigned = {P1}
    consumer.ends[P1] = 9
    gauge.update(now=12.0)
    assert (lag(P0), lag(P1)) == (None, 2)

    gauge.forget()
    assert lag(P1) is None


def test_a_partition_without_a_position_or_a_slow_broker_keeps_the_last_values() -> None:
    consumer = FakeConsumer()
    gauge = PartitionLag(consumer, consumer_metrics().lag, every_s=1.0)
    consumer.positions[P1] = None
    gauge.update(now=1.0)
    assert (lag(P0), lag(P1)) == (60, None)

    consumer.fail = True
    consumer.positions[P0] = 100
    gauge.update(now=2.0)
    assert lag(P0) == 60
    gauge.forget()
