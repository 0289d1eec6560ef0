"""The consumer's decode step: one error type with a stable code for every poison shape."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from services.ledger.consumer.decode import IncomingMessage, InvalidMessage, decode
from tests.support import events as ev

ORIGIN = {"kind": "device", "party_id": "site-a", "device_id": "d1"}


def message(value: bytes | None, key: bytes | None = b"BX-DEC-1") -> IncomingMessage:
    return IncomingMessage("custody.events", 0, 7, key, value)


def envelope(**overrides: object) -> bytes:
    body: dict[str, object] = {
        "event": ev.dropoff("BX-DEC-1"),
        "received_at": datetime.now(UTC).isoformat(),
        "origin": ORIGIN,
    }
    body.update(overrides)
    return orjson.dumps(body)


def test_a_valid_envelope_decodes_with_its_canonical_body() -> None:
    decoded = decode(message(envelope()))
    assert decoded.envelope.origin.party_id == "site-a"
    assert decoded.body["container_id"] == "BX-DEC-1"
    assert "note" not in decoded.body


@pytest.mark.parametrize(
    ("value", "key", "code"),
    [
        (None, b"BX-DEC-1", "empty"),
        (b"", b"BX-DEC-1", "empty"),
        (b"\xff\xfe", b"BX-DEC-1", "malformed_json"),
        (b'"text"', b"BX-DEC-1", "invalid_envelope"),
        (envelope(origin={"kind": "device"}), b"BX-DEC-1", "invalid_event"),
        (envelope(event={**ev.dropoff("BX-DEC-1"), "type": "x"}), b"BX-DEC-1", "invalid_event"),
        (envelope(extra=1), b"BX-DEC-1", "invalid_event"),
        (envelope(), b"BX-OTHER", "key_mismatch"),
        (envelope(), None, "key_mismatch"),
    ],
)
def test_poison_gets_a_stable_code(value: bytes | None, key: bytes | None, code: str) -> None:
    with pytest.raises(InvalidMessage) as failure:
        decode(message(value, key))
    assert failure.value.code == code
    assert failure.value.reason
