"""The Kafka side of the ledger consumer: poll, park poison, append, commit, repeat."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from sqlalchemy.exc import DBAPIError, OperationalError

from services.ledger.adapters.entries_statistics import EntriesStatistics
from services.ledger.adapters.ledger_store import LedgerStore, Rejection, dlq_payload
from services.ledger.consumer.decode import (
    DecodedMessage,
    IncomingMessage,
    InvalidMessage,
    decode,
)
from services.ledger.consumer.metrics import PartitionLag, consumer_metrics

log = logging.getLogger("custody.consumer")

# SQLSTATE classes after which the same batch can succeed later: connection exceptions (08),
# read-only transaction (25006), insufficient resources such as a full disk (53) and operator
# intervention such as a server shutdown (57).
_TRANSIENT_SQLSTATES = ("08", "25006", "53", "57")


def _database_unavailable(error: DBAPIError) -> bool:
    if error.connection_invalidated or isinstance(error, OperationalError):
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return sqlstate.startswith(_TRANSIENT_SQLSTATES)


@dataclass
class ConsumerStats:
    batches: int = 0
    appended: int = 0
    replays: int = 0
    rejected: int = 0


def _log_failed_commit(offsets: object, outcome: object) -> None:
    if isinstance(outcome, BaseException):
        log.warning("offset commit to Kafka failed (ledger offsets are stored): %s", outcome)


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, resume where the ledger (not Kafka) says each partition ends."""

    def __init__(self, consumer: KafkaConsumer, store: LedgerStore, topic: str) -> None:
        self._consumer = consumer
        self._store = store
        self._topic = topic
        self.rebalancing_since: float | None = time.monotonic()

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.rebalancing_since = time.monotonic()
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.rebalancing_since = None
        stored = self._store.stored_offsets(self._topic)
        for partition in assigned:
            if partition.partition in stored:
                self._consumer.seek(partition, stored[partition.partition])
            else:
                self._consumer.seek_to_beginning(partition)
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


class LedgerConsumer:
    def __init__(
        self,
        *,
        store: LedgerStore,
        statistics: EntriesStatistics,
        bootstrap: str,
        topic: str,
        dlq_topic: str,
        group: str,
        batch_max: int,
        poll_ms: int,
        rejoin_after_s: float = 20.0,
        retry_backoff_s: float = 1.0,
    ) -> None:
        self._store = store
        self._statistics = statistics
        self._retry_backoff_s = retry_backoff_s
        self.ready = True
        self._rejoin_after_s = rejoin_after_s
        self._topic = topic
        self._dlq_topic = dlq_topic
        self._poll_ms = poll_ms
        self._batch_max = batch_max
        self.stats = ConsumerStats()
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
        self._await_partitions(topic, timeout_s=60)
        self._subscribe()
        self._dlq = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        self._lag = PartitionLag(self._consumer)

    @property
    def ready(self) -> bool:
        """False while the database is unavailable (the batch in hand is being retried)."""
        return self._ready

    @ready.setter
    def ready(self, value: bool) -> None:
        self._ready = value
        consumer_metrics().ready.set(1 if value else 0)

    def _subscribe(self) -> None:
        self._rebalance = _SeekToStoredOffsets(self._consumer, self._store, self._topic)
        self._consumer.subscribe([self._topic], listener=self._rebalance)

    def _stuck_in_rebalance(self) -> bool:
        started = self._rebalance.rebalancing_since
        return started is not None and time.monotonic() - started > self._rejoin_after_s

    def _await_partitions(self, topic: str, *, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                self._consumer.close()
                raise RuntimeError(f"Kafka topic {topic!r} has no partitions (does it exist?)")
            time.sleep(0.2)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is always finished first."""
        unassigned_since: float | None = None
        try:
            while not stop.is_set():
                self.run_once()
                self._lag.update()
                if self._consumer.assignment():
                    unassigned_since = None
                elif unassigned_since is None:
                    unassigned_since = time.monotonic()
                unassigned_too_long = (
                    unassigned_since is not None
                    and time.monotonic() - unassigned_since > self._rejoin_after_s
                )
                if unassigned_too_long or self._stuck_in_rebalance():
                    # Seen with kafka-python right after a group's coordinator moved or was
                    # still loading, or when a second rebalance followed the first within
                    # milliseconds: the member sat with no partitions, or with a rebalance
                    # that never completed. Join afresh.
                    log.warning(
                        "no partitions assigned for %.0f s; re-subscribing", self._rejoin_after_s
                    )
                    self._consumer.unsubscribe()
                    self._subscribe()
                    unassigned_since = None
        finally:
            self.close()

    def run_once(self) -> int:
        """Poll one batch and record it; returns the number of messages handled."""
        polled: Mapping[TopicPartition, list[Any]] = self._consumer.poll(
            timeout_ms=self._poll_ms, max_records=self._batch_max
        )
        records = [record for batch in polled.values() for record in batch]
        if not records:
            return 0
        decoded: list[DecodedMessage] = []
        invalid: list[Rejection] = []
        next_offsets: dict[tuple[str, int], int] = {}
        for record in records:
            message = IncomingMessage(
                record.topic, record.partition, record.offset, record.key, record.value
            )
            position = (record.topic, record.partition)
            next_offsets[position] = max(next_offsets.get(position, 0), record.offset + 1)
            try:
                decoded.append(decode(message))
            except InvalidMessage as error:
                invalid.append(Rejection.of_invalid(message, error))
        started = time.perf_counter()
        try:
            result = self._store.append_batch(decoded, invalid, next_offsets)
        except DBAPIError as error:
            if not _database_unavailable(error):
                raise
            self._rewind(records)
            self.ready = False
            log.warning("database unavailable, batch will be retried: %s", error.orig or error)
            time.sleep(self._retry_backoff_s)
            return 0
        self.ready = True
        elapsed = time.perf_counter() - started
        self._park(result.rejected)
        self._commit_to_kafka(next_offsets)
        self.stats.batches += 1
        self.stats.appended += result.appended
        self.stats.replays += result.replays
        self.stats.rejected += len(result.rejected)
        consumer_metrics().record_batch(
            len(records),
            elapsed,
            appended=result.appended,
            replays=result.replays,
            rejected=len(result.rejected),
            already_done=result.already_done,
        )
        log.info(
            "batch of %d: %d appended, %d replays, %d rejected, %d already recorded (%.1f ms)",
            len(records),
            result.appended,
            result.replays,
            len(result.rejected),
            result.already_done,
            elapsed * 1000,
        )
        if result.appended:
            self._keep_statistics(result.appended)
        return len(records)

    def _keep_statistics(self, appended: int) -> None:
        try:
            seconds = self._statistics.analyze_if_due(appended)
        except DBAPIError as error:  # the batch is recorded; the next check will try again
            log.warning("ledger.entries not analysed: %s", error.orig or error)
            return
        if seconds is not None:
            consumer_metrics().analyze_seconds.observe(seconds)
            log.info("analysed ledger.entries in %.0f ms", seconds * 1000)

    def _rewind(self, records: list[Any]) -> None:
        """Seek back so the next poll hands the unrecorded batch out again."""
        first: dict[TopicPartition, int] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            first[partition] = min(first.get(partition, record.offset), record.offset)
        assigned = self._consumer.assignment()
        for partition, offset in first.items():
            if partition in assigned:
                self._consumer.seek(partition, offset)

    def _commit_to_kafka(self, next_offsets: Mapping[tuple[str, int], int]) -> None:
        """Mirror the offsets to Kafka for lag tools; the ledger's copy is the truth, so the
        commit is not waited for (a synchronous one cost a broker round trip per batch)."""
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

    def _park(self, rejections: tuple[Rejection, ...]) -> None:
        for rejection in rejections:
            log.warning(
                "rejected event %s of %r at %s[%d]@%d: %s: %s",
                rejection.event_id,
                rejection.container_id,
                rejection.message.topic,
                rejection.message.partition,
                rejection.message.offset,
                rejection.code,
                rejection.reason,
                extra={
                    "event_id": rejection.event_id,
                    "container_id": rejection.container_id,
                    "code": rejection.code,
                    "partition": rejection.message.partition,
                    "offset": rejection.message.offset,
                },
            )
            key = rejection.container_id.encode() if rejection.container_id else None
            self._dlq.send(self._dlq_topic, key=key, value=dlq_payload(rejection))
        if rejections:
            self._dlq.flush(timeout=30)

    def close(self) -> None:
        self._lag.forget()
        self._consumer.close()
        self._dlq.close(timeout=10)
