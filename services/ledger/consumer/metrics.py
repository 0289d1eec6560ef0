"""The ledger consumer's Prometheus metrics, and the per-partition lag it reports.

The metrics are registered when the first consumer is built, not at import: every service
process imports this module, and only the consumer's should export them.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from kafka import TopicPartition
from kafka.errors import KafkaError
from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger("custody.consumer")


@dataclass(frozen=True, slots=True)
class ConsumerMetrics:
    batch_size: Histogram
    append_seconds: Histogram
    analyze_seconds: Histogram
    events: Counter
    lag: Gauge
    ready: Gauge

    def record_batch(
        self,
        size: int,
        seconds: float,
        *,
        appended: int,
        replays: int,
        rejected: int,
        already_done: int,
    ) -> None:
        self.batch_size.observe(size)
        self.append_seconds.observe(seconds)
        self.events.labels("appended").inc(appended)
        self.events.labels("replayed").inc(replays)
        self.events.labels("rejected").inc(rejected)
        self.events.labels("already_recorded").inc(already_done)


@cache
def consumer_metrics() -> ConsumerMetrics:
    return ConsumerMetrics(
        batch_size=Histogram(
            "custody_consumer_batch_size",
            "Messages per polled batch that was recorded",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10_000, 50_000),
        ),
        append_seconds=Histogram(
            "custody_consumer_append_seconds",
            "Duration of one batch's append transaction in PostgreSQL",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        ),
        analyze_seconds=Histogram(
            "custody_consumer_analyze_seconds",
            "Duration of each ANALYZE of ledger.entries the consumer ran between batches",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        ),
        events=Counter(
            "custody_consumer_events_total",
            "Messages handled: appended, replayed (event already recorded), rejected (parked), "
            "already_recorded (offset already stored)",
            ["outcome"],
        ),
        lag=Gauge(
            "custody_consumer_lag",
            "Messages on the partition not yet recorded (end offset - position)",
            ["topic", "partition"],
        ),
        ready=Gauge(
            "custody_consumer_ready", "1 while batches can be recorded, 0 while PostgreSQL is not"
        ),
    )


class OffsetSource(Protocol):
    """The part of ``KafkaConsumer`` the lag needs."""

    def assignment(self) -> set[TopicPartition]: ...

    def end_offsets(
        self, partitions: list[TopicPartition], timeout_ms: int | None = None
    ) -> dict[TopicPartition, int]: ...

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> int | None: ...


class PartitionLag:
    """Sets ``custody_consumer_lag`` for the assigned partitions, at most once per ``every_s``."""

    def __init__(self, consumer: OffsetSource, *, every_s: float = 1.0, timeout_ms: int = 500):
        self._consumer = consumer
        self._gauge = consumer_metrics().lag
        self._every_s = every_s
        self._timeout_ms = timeout_ms
        self._last = float("-inf")
        self._shown: set[TopicPartition] = set()

    def update(self, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self._last < self._every_s:
            return
        self._last = now
        assigned = set(self._consumer.assignment())
        lags: dict[TopicPartition, int] = {}
        try:
            ends = self._consumer.end_offsets(sorted(assigned), timeout_ms=self._timeout_ms)
            for partition in assigned:
                position = self._consumer.position(partition, timeout_ms=self._timeout_ms)
                if position is not None and partition in ends:
                    lags[partition] = max(0, ends[partition] - position)
        except KafkaError as error:
            log.debug("consumer lag not measured: %s", error)
            return
        for partition, lag in lags.items():
            self._gauge.labels(partition.topic, str(partition.partition)).set(lag)
        self.forget(self._shown - assigned)
        self._shown = (self._shown & assigned) | set(lags)

    def forget(self, partitions: set[TopicPartition] | None = None) -> None:
        """Stop exporting the lag of ``partitions`` (all shown ones when None)."""
        for partition in self._shown if partitions is None else partitions:
            with contextlib.suppress(KeyError):
                self._gauge.remove(partition.topic, str(partition.partition))
        if partitions is None:
            self._shown = set()
