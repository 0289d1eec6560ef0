"""The consumer's steps without a broker: an in-memory source and dead-letter list, and a
recording stand-in for the append use case (which integration tests run on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy.exc import OperationalError

from services.ledger.adapters.memory_source import InMemoryDeadLetters, InMemorySource
from services.ledger.consumer.runner import LedgerConsumer
from services.ledger.domain.messages import DecodedMessage, Rejection, TopicPartition
from services.ledger.service.append import AppendResult
from tests.support import events as ev

TOPIC = "custody.events.steps"


class RecordingAppender:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[tuple[list[DecodedMessage], list[Rejection], dict[TopicPartition, int]]]
        self.batches = []

    def append(
        self,
        decoded: Sequence[DecodedMessage],
        invalid: Sequence[Rejection],
        next_offsets: Mapping[TopicPartition, int],
    ) -> AppendResult:
        if self.failures:
            self.failures -= 1
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        self.batches.append((list(decoded), list(invalid), dict(next_offsets)))
        return AppendResult(len(decoded), 0, tuple(invalid), 0)


def envelope(container: str) -> bytes:
    return orjson.dumps(
        {
            "event": ev.dropoff(container),
            "received_at": datetime.now(UTC).isoformat(),
            "origin": {"kind": "device", "party_id": "site-a", "device_id": "d1"},
        }
    )


def consumer(
    source: InMemorySource, appender: RecordingAppender, dead: InMemoryDeadLetters
) -> LedgerConsumer:
    return LedgerConsumer(
        source=source,
        appender=appender,
        dead_letters=dead,
        statistics=None,
        batch_max=100,
        poll_ms=1,
        retry_backoff_s=0,
    )


def test_decoded_and_poison_messages_are_appended_together_then_parked_and_committed() -> None:
    source, appender, dead = InMemorySource(TOPIC, 2), RecordingAppender(), InMemoryDeadLetters()
    source.produce(b"BX-STEP-1", envelope("BX-STEP-1"), partition=0)
    source.produce(b"BX-STEP-2", b"not json", partition=1)
    source.produce(b"BX-WRONG", envelope("BX-STEP-3"), partition=1)
    assert consumer(source, appender, dead).run_once() == 3
    [(decoded, invalid, offsets)] = appender.batches
    assert [item.envelope.event.container_id for item in decoded] == ["BX-STEP-1"]
    assert sorted(item.code for item in invalid) == ["key_mismatch", "malformed_json"]
    assert offsets == {(TOPIC, 0): 1, (TOPIC, 1): 2}
    assert source.committed == offsets
    parked = [orjson.loads(value) for _, value in dead.parked]
    assert sorted(item["reason_code"] for item in parked) == ["key_mismatch", "malformed_json"]
    assert {item["offset"] for item in parked} == {0, 1}


def test_a_database_outage_rewinds_the_batch_and_the_retry_records_it_once() -> None:
    source, appender, dead = InMemorySource(TOPIC), RecordingAppender(1), InMemoryDeadLetters()
    source.produce(b"BX-STEP-4", envelope("BX-STEP-4"))
    steps = consumer(source, appender, dead)
    assert steps.run_once() == 0
    assert steps.ready is False
    assert source.committed == {}
    assert steps.run_once() == 1
    assert steps.ready is True
    assert len(appender.batches) == 1
    assert source.committed == {(TOPIC, 0): 1}
    assert steps.stats.appended == 1


def test_a_database_error_that_will_not_pass_stops_the_consumer() -> None:
    class Broken(RecordingAppender):
        def append(self, *args: object, **kwargs: object) -> AppendResult:
            raise ValueError("a bug, not an outage")

    source = InMemorySource(TOPIC)
    source.produce(b"BX-STEP-5", envelope("BX-STEP-5"))
    with pytest.raises(ValueError, match="a bug"):
        consumer(source, Broken(), InMemoryDeadLetters()).run_once()


def test_closing_closes_the_source() -> None:
    source = InMemorySource(TOPIC)
    consumer(source, RecordingAppender(), InMemoryDeadLetters()).close()
    assert source.closed
