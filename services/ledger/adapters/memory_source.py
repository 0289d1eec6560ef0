"""An in-memory message source and dead-letter list, for unit tests of the consumer's steps.

It keeps the contract of ``message_source.MessageSource`` that the Kafka source keeps (the
contract tests run on both): per-partition offset order, resume after rewind, commits kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from services.ledger.domain.messages import IncomingMessage, TopicPartition


class InMemorySource:
    def __init__(
        self,
        topic: str,
        partitions: int = 1,
        *,
        stored_offsets: Callable[[str], dict[int, int]] | None = None,
    ) -> None:
        self.topic = topic
        self._logs: dict[int, list[IncomingMessage]] = {p: [] for p in range(partitions)}
        # Like the Kafka source on assignment: resume where the ledger says, else from 0.
        stored = stored_offsets(topic) if stored_offsets is not None else {}
        self._positions = {partition: stored.get(partition, 0) for partition in self._logs}
        self.committed: dict[TopicPartition, int] = {}
        self.closed = False

    def reopened(self, stored_offsets: Callable[[str], dict[int, int]]) -> InMemorySource:
        """A new source on the same partitions (a consumer that joined after a restart)."""
        source = InMemorySource(self.topic, len(self._logs), stored_offsets=stored_offsets)
        source._logs = self._logs
        return source

    def produce(self, key: bytes | None, value: bytes | None, *, partition: int = 0) -> int:
        """Append a message to a partition; returns its offset."""
        log = self._logs[partition]
        log.append(IncomingMessage(self.topic, partition, len(log), key, value))
        return len(log) - 1

    def poll(self, *, timeout_ms: int, max_records: int) -> list[IncomingMessage]:
        polled: list[IncomingMessage] = []
        for partition, log in self._logs.items():
            start = self._positions[partition]
            taken = log[start : start + max_records - len(polled)]
            self._positions[partition] = start + len(taken)
            polled.extend(taken)
        return polled

    def rewind(self, messages: Sequence[IncomingMessage]) -> None:
        for message in messages:
            if message.topic == self.topic:
                self._positions[message.partition] = min(
                    self._positions[message.partition], message.offset
                )

    def commit(self, next_offsets: Mapping[TopicPartition, int]) -> None:
        self.committed.update(next_offsets)

    def keep_assigned(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


class InMemoryDeadLetters:
    def __init__(self) -> None:
        self.parked: list[tuple[bytes | None, bytes]] = []

    def park(self, payloads: Sequence[tuple[bytes | None, bytes]]) -> None:
        self.parked.extend(payloads)

    def close(self) -> None:
        return None
