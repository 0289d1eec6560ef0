"""The ledger consumer as a chain of small steps around an injected message source.

poll → decode (poison becomes a ``Rejection``) → append (one unit of work) → park the
rejections on the dead-letter topic → commit offsets to the source → keep statistics. A
database outage rewinds the batch and retries it; nothing is lost or recorded twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson
from sqlalchemy.exc import DBAPIError, OperationalError

from services.ledger.adapters.entries_statistics import EntriesStatistics
from services.ledger.adapters.message_source import DeadLetters, MessageSource
from services.ledger.consumer.decode import decode
from services.ledger.consumer.metrics import consumer_metrics
from services.ledger.domain.messages import (
    DecodedMessage,
    IncomingMessage,
    InvalidMessage,
    Rejection,
    TopicPartition,
    next_offsets,
)
from services.ledger.service.append import AppendResult

log = logging.getLogger("custody.consumer")

# SQLSTATE classes after which the same batch can succeed later: connection exceptions (08),
# read-only transaction (25006), insufficient resources such as a full disk (53) and operator
# intervention such as a server shutdown (57).
_TRANSIENT_SQLSTATES = ("08", "25006", "53", "57")


def database_unavailable(error: DBAPIError) -> bool:
    if error.connection_invalidated or isinstance(error, OperationalError):
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return sqlstate.startswith(_TRANSIENT_SQLSTATES)


def decode_all(
    messages: Sequence[IncomingMessage],
) -> tuple[list[DecodedMessage], list[Rejection]]:
    """The decode step: every message is either decoded or a rejection with its reason."""
    decoded: list[DecodedMessage] = []
    invalid: list[Rejection] = []
    for message in messages:
        try:
            decoded.append(decode(message))
        except InvalidMessage as error:
            invalid.append(Rejection.of_invalid(message, error))
    return decoded, invalid


def dlq_payload(rejection: Rejection) -> bytes:
    """The DLQ record: the reason and where the original sits, plus its raw value."""
    return orjson.dumps(
        {
            "reason_code": rejection.code,
            "reason": rejection.reason,
            "topic": rejection.message.topic,
            "partition": rejection.message.partition,
            "offset": rejection.message.offset,
            "raw": (rejection.message.value or b"").decode("utf-8", "replace"),
        }
    )


class Appender(Protocol):
    """The append use case (``services/ledger/service/append.py``)."""

    def append(
        self,
        decoded: Sequence[DecodedMessage],
        invalid: Sequence[Rejection],
        next_offsets: Mapping[TopicPartition, int],
    ) -> AppendResult: ...


@dataclass
class ConsumerStats:
    batches: int = 0
    appended: int = 0
    replays: int = 0
    rejected: int = 0


class LedgerConsumer:
    def __init__(
        self,
        *,
        source: MessageSource,
        appender: Appender,
        dead_letters: DeadLetters,
        statistics: EntriesStatistics | None,
        batch_max: int,
        poll_ms: int,
        retry_backoff_s: float = 1.0,
        release: Callable[[], None] | None = None,
    ) -> None:
        self._release = release
        self._source = source
        self._appender = appender
        self._dead_letters = dead_letters
        self._statistics = statistics
        self._batch_max = batch_max
        self._poll_ms = poll_ms
        self._retry_backoff_s = retry_backoff_s
        self.stats = ConsumerStats()
        self.ready = True

    @property
    def ready(self) -> bool:
        """False while the database is unavailable (the batch in hand is being retried)."""
        return self._ready

    @ready.setter
    def ready(self, value: bool) -> None:
        self._ready = value
        consumer_metrics().ready.set(1 if value else 0)

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is always finished first."""
        try:
            while not stop.is_set():
                self.run_once()
                self._source.keep_assigned()
        finally:
            self.close()

    def run_once(self) -> int:
        """Poll one batch and record it; returns the number of messages handled."""
        messages = self._source.poll(timeout_ms=self._poll_ms, max_records=self._batch_max)
        if not messages:
            return 0
        decoded, invalid = decode_all(messages)
        offsets = next_offsets(messages)
        started = time.perf_counter()
        try:
            result = self._appender.append(decoded, invalid, offsets)
        except DBAPIError as error:
            if not database_unavailable(error):
                raise
            self._source.rewind(messages)
            self.ready = False
            log.warning("database unavailable, batch will be retried: %s", error.orig or error)
            time.sleep(self._retry_backoff_s)
            return 0
        self.ready = True
        elapsed = time.perf_counter() - started
        self._park(result.rejected)
        self._source.commit(offsets)
        self._count(len(messages), elapsed, result)
        if result.appended:
            self._keep_statistics(result.appended)
        return len(messages)

    def _count(self, handled: int, elapsed: float, result: AppendResult) -> None:
        self.stats.batches += 1
        self.stats.appended += result.appended
        self.stats.replays += result.replays
        self.stats.rejected += len(result.rejected)
        consumer_metrics().record_batch(
            handled,
            elapsed,
            appended=result.appended,
            replays=result.replays,
            rejected=len(result.rejected),
            already_done=result.already_done,
        )
        log.info(
            "batch of %d: %d appended, %d replays, %d rejected, %d already recorded (%.1f ms)",
            handled,
            result.appended,
            result.replays,
            len(result.rejected),
            result.already_done,
            elapsed * 1000,
        )

    def _keep_statistics(self, appended: int) -> None:
        if self._statistics is None:
            return
        try:
            seconds = self._statistics.analyze_if_due(appended)
        except DBAPIError as error:  # the batch is recorded; the next check will try again
            log.warning("ledger.entries not analysed: %s", error.orig or error)
            return
        if seconds is not None:
            consumer_metrics().analyze_seconds.observe(seconds)
            log.info("analysed ledger.entries in %.0f ms", seconds * 1000)

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
        self._dead_letters.park(
            [
                (item.container_id.encode() if item.container_id else None, dlq_payload(item))
                for item in rejections
            ]
        )

    def close(self) -> None:
        """Close the source and the dead-letter producer, then release the database pool."""
        self._source.close()
        self._dead_letters.close()
        if self._release is not None:
            self._release()
