"""What the consumer hands the append: messages as read from the topic, decoded or refused.

Pure values; the Kafka source makes ``IncomingMessage``s, the decode step the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from services.contract import Envelope

TopicPartition = tuple[str, int]
#: The rejection code of a message whose event_id was recorded before with other content.
DUPLICATE_CONFLICT = "duplicate_conflict"


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    message: IncomingMessage
    envelope: Envelope
    body: dict[str, Any]


class InvalidMessage(Exception):
    """A message that can never be recorded; it is parked with its reason, never retried."""

    def __init__(self, code: str, reason: str, *, raw: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.raw = raw or {}


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message parked in the ledger's rejected table and on the dead-letter topic."""

    message: IncomingMessage
    code: str
    reason: str
    event_id: str | None = None
    container_id: str | None = None

    @classmethod
    def of_invalid(cls, message: IncomingMessage, error: InvalidMessage) -> Rejection:
        event = error.raw.get("event") if isinstance(error.raw.get("event"), dict) else {}
        event_id = event.get("event_id") if isinstance(event, dict) else None
        container_id = event.get("container_id") if isinstance(event, dict) else None
        return cls(
            message,
            error.code,
            storable(error.reason),
            event_id=_uuid_text(event_id),
            container_id=storable(container_id) if isinstance(container_id, str) else None,
        )


def storable(text: str) -> str:
    """``text`` as PostgreSQL can store it: U+0000 (possible in any invalid input) replaced."""
    return text.replace("\x00", "\N{REPLACEMENT CHARACTER}")


def _uuid_text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(UUID(value))
    except ValueError:
        return None


def next_offsets(messages: list[IncomingMessage]) -> dict[TopicPartition, int]:
    """Where each partition resumes after ``messages``."""
    offsets: dict[TopicPartition, int] = {}
    for message in messages:
        position = (message.topic, message.partition)
        offsets[position] = max(offsets.get(position, 0), message.offset + 1)
    return offsets
