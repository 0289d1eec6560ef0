"""Parked messages to the dead-letter topic (``custody.events.dlq``).

The ledger's ``rejected`` table holds the same rejections, written in the append transaction;
the record here carries the reason and where the original sits (``consumer/runner.dlq_payload``).
"""

from __future__ import annotations

from collections.abc import Sequence

from kafka import KafkaProducer


class KafkaDeadLetters:
    """Parked messages to the dead-letter topic, acks=all, idempotent."""

    def __init__(self, *, bootstrap: str, topic: str) -> None:
        self._topic = topic
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )

    def park(self, payloads: Sequence[tuple[bytes | None, bytes]]) -> None:
        for key, value in payloads:
            self._producer.send(self._topic, key=key, value=value)
        if payloads:
            self._producer.flush(timeout=30)

    def close(self) -> None:
        self._producer.close(timeout=10)
