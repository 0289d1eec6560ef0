"""The consumer's port to the topic: where messages come from and where offsets go.

Two implementations: ``kafka_source.KafkaSource`` (the real broker) and
``memory_source.InMemorySource`` (unit tests of the consumer's steps); one contract test suite
runs on both (tests/contract/test_message_source.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from services.ledger.domain.messages import IncomingMessage, TopicPartition


class MessageSource(Protocol):
    def poll(self, *, timeout_ms: int, max_records: int) -> list[IncomingMessage]:
        """The next messages of the assigned partitions, in offset order per partition; [] if
        none arrived within ``timeout_ms``."""
        ...

    def rewind(self, messages: Sequence[IncomingMessage]) -> None:
        """Hand ``messages`` out again on the next polls (their batch was not recorded)."""
        ...

    def commit(self, next_offsets: Mapping[TopicPartition, int]) -> None:
        """Mirror the recorded offsets to the broker (the ledger's copy is the truth)."""
        ...

    def keep_assigned(self) -> None:
        """Called between polls: report lag, rejoin the group if left without partitions."""
        ...

    def close(self) -> None: ...


class DeadLetters(Protocol):
    """Where a parked message goes besides the ledger's rejected table."""

    def park(self, payloads: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Send ``(key, value)`` records; return once all are acknowledged."""
        ...

    def close(self) -> None: ...
