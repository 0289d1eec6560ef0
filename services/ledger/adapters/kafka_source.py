"""The Kafka side of the consumer: a ``MessageSource`` over kafka-python's ``KafkaConsumer``.

On assignment each partition resumes where the ledger (not Kafka) says it ends, so a batch is
recorded exactly once whatever Kafka's committed offsets say (docs/architecture.md §4).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from prometheus_client import Gauge

from services.ledger.domain.messages import IncomingMessage
from services.ledger.domain.messages import TopicPartition as Position

log = logging.getLogger("custody.consumer")


def _log_failed_commit(offsets: object, outcome: object) -> None:
    if isinstance(outcome, BaseException):
        log.warning("offset commit to Kafka failed (ledger offsets are stored): %s", outcome)


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, resume where the ledger (not Kafka) says each partition ends."""

    def __init__(
        self, consumer: KafkaConsumer, stored_offsets: Callable[[str], dict[int, int]], topic: str
    ) -> None:
        self._consumer = consumer
        self._stored_offsets = stored_offsets
        self._topic = topic
        self.rebalancing_since: float | None = time.monotonic()

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.rebalancing_since = time.monotonic()
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.rebalancing_since = None
        stored = self._stored_offsets(self._topic)
        for partition in assigned:
            if partition.partition in stored:
                self._consumer.seek(partition, stored[partition.partition])
            else:
                self._consumer.seek_to_beginning(partition)
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


class KafkaSource:
    """Joins ``group`` on ``topic``; ``stored_offsets(topic)`` says where partitions resume."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group: str,
        batch_max: int,
        stored_offsets: Callable[[str], dict[int, int]],
        lag_gauge: Gauge,
        rejoin_after_s: float = 20.0,
    ) -> None:
        self._topic = topic
        self._stored_offsets = stored_offsets
        self._rejoin_after_s = rejoin_after_s
        self._unassigned_since: float | None = None
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=f"{group}-{threading.get_native_id()}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=batch_max,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
        )
        # Joining the group before the topic's metadata is known can leave this member with
        # an empty assignment that kafka-python never revisits; wait for the partitions first.
        self._await_partitions(timeout_s=60)
        self._subscribe()
        self._lag = PartitionLag(self._consumer, lag_gauge)

    def _await_partitions(self, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._consumer.partitions_for_topic(self._topic):
            if time.monotonic() > deadline:
                self._consumer.close()
                raise RuntimeError(
                    f"Kafka topic {self._topic!r} has no partitions (does it exist?)"
                )
            time.sleep(0.2)

    def _subscribe(self) -> None:
        self._rebalance = _SeekToStoredOffsets(self._consumer, self._stored_offsets, self._topic)
        self._consumer.subscribe([self._topic], listener=self._rebalance)

    def poll(self, *, timeout_ms: int, max_records: int) -> list[IncomingMessage]:
        polled: Mapping[TopicPartition, list[Any]] = self._consumer.poll(
            timeout_ms=timeout_ms, max_records=max_records
        )
        return [
            IncomingMessage(record.topic, record.partition, record.offset, record.key, record.value)
            for batch in polled.values()
            for record in batch
        ]

    def rewind(self, messages: Sequence[IncomingMessage]) -> None:
        first: dict[TopicPartition, int] = {}
        for message in messages:
            partition = TopicPartition(message.topic, message.partition)
            first[partition] = min(first.get(partition, message.offset), message.offset)
        assigned = self._consumer.assignment()
        for partition, offset in first.items():
            if partition in assigned:
                self._consumer.seek(partition, offset)

    def commit(self, next_offsets: Mapping[Position, int]) -> None:
        """Not waited for: a synchronous commit cost a broker round trip per batch."""
        try:
            self._consumer.commit_async(
                {
                    TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                    for (topic, partition), offset in next_offsets.items()
                },
                callback=_log_failed_commit,
            )
        except KafkaError as error:
            _log_failed_commit(next_offsets, error)

    def keep_assigned(self) -> None:
        self._lag.update()
        if self._consumer.assignment():
            self._unassigned_since = None
        elif self._unassigned_since is None:
            self._unassigned_since = time.monotonic()
        unassigned_too_long = (
            self._unassigned_since is not None
            and time.monotonic() - self._unassigned_since > self._rejoin_after_s
        )
        started = self._rebalance.rebalancing_since
        stuck_in_rebalance = (
            started is not None and time.monotonic() - started > self._rejoin_after_s
        )
        if unassigned_too_long or stuck_in_rebalance:
            # Seen with kafka-python right after a group's coordinator moved or was still
            # loading, or when a second rebalance followed the first within milliseconds: the
            # member sat with no partitions, or with a rebalance that never completed.
            log.warning("no partitions assigned for %.0f s; re-subscribing", self._rejoin_after_s)
            self._consumer.unsubscribe()
            self._subscribe()
            self._unassigned_since = None

    def close(self) -> None:
        self._lag.forget()
        self._consumer.close()


class OffsetSource(Protocol):
    """The part of ``KafkaConsumer`` the lag needs."""

    def assignment(self) -> set[TopicPartition]: ...

    def end_offsets(
        self, partitions: list[TopicPartition], timeout_ms: int | None = None
    ) -> dict[TopicPartition, int]: ...

    def position(self, partition: TopicPartition, timeout_ms: int | None = None) -> int | None: ...


class PartitionLag:
    """Sets the lag gauge (``custody_consumer_lag``) of the assigned partitions, at most
    once per ``every_s``."""

    def __init__(
        self, consumer: OffsetSource, gauge: Gauge, *, every_s: float = 1.0, timeout_ms: int = 500
    ) -> None:
        self._consumer = consumer
        self._gauge = gauge
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
