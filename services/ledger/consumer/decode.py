"""Decoding step: raw Kafka records into validated envelopes, or one error type for the DLQ."""

from __future__ import annotations

import orjson
from pydantic import ValidationError

from services.contract import Envelope
from services.contract.events import event_body
from services.ledger.domain.messages import DecodedMessage, IncomingMessage, InvalidMessage


def _describe(error: ValidationError) -> str:
    parts = []
    for problem in error.errors()[:5]:
        location = ".".join(str(step) for step in problem["loc"]) or "(root)"
        parts.append(f"{location}: {problem['msg']}")
    return "; ".join(parts)


def decode(message: IncomingMessage) -> DecodedMessage:
    if not message.value:
        raise InvalidMessage("empty", "the message has no value")
    try:
        raw = orjson.loads(message.value)
    except orjson.JSONDecodeError as error:
        raise InvalidMessage("malformed_json", f"not JSON: {error}") from error
    if not isinstance(raw, dict):
        raise InvalidMessage("invalid_envelope", "the message is not a JSON object")
    try:
        envelope = Envelope.model_validate(raw)
    except ValidationError as error:
        raise InvalidMessage("invalid_event", _describe(error), raw=raw) from error
    expected_key = envelope.event.container_id.encode()
    if message.key != expected_key:
        raise InvalidMessage(
            "key_mismatch",
            f"message key {message.key!r} is not the container id {envelope.event.container_id!r}",
            raw=raw,
        )
    return DecodedMessage(message=message, envelope=envelope, body=event_body(envelope.event))
