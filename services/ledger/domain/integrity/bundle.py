"""The container bundle formats (docs/verifiable-log.md): building and strict reading.

Format 2 serves each entry as the very document its hash covers, ``{"entry": E, "entry_hash"}``,
plus the head entry's proof as a c2sp.org/tlog-proof. Format 1 (entries re-shaped as
``body``, ``container_id``, …) is still read, so old bundles keep verifying.
``verification.verify_bundle`` checks them; this module only builds and parses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.contract import Origin, parse_event
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.hashing import entry_bytes, format_instant, hashed_document
from services.ledger.domain.integrity.tlog_proof import TlogProof

BUNDLE_FORMAT = "battery-custody-bundle/2"
BUNDLE_FORMAT_V1 = "battery-custody-bundle/1"
BUNDLE_FORMATS = (BUNDLE_FORMAT, BUNDLE_FORMAT_V1)

BUNDLE_FIELDS = frozenset(
    {"format", "container_id", "entries", "checkpoint", "inclusion_proof", "consistency"}
)
BUNDLE_V2_FIELDS = BUNDLE_FIELDS | {"tlog_proof"}
ENTRY_FIELDS = frozenset(
    {"seq", "event", "received_at", "recorded_at", "origin", "kafka", "prev_hash"}
)
V1_ENTRY_FIELDS = (ENTRY_FIELDS - {"event"}) | {"container_id", "body", "entry_hash"}
KAFKA_FIELDS = frozenset({"partition", "offset"})
_HASH_HEX = re.compile(r"[0-9a-f]{64}")


class MalformedBundle(ValueError):
    """The document is not a well-formed bundle; the message names the entry and the field."""


def entry_record_v1(entry: RecordedEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "container_id": entry.container_id,
        "body": entry.hashed_body,
        "received_at": format_instant(entry.received_at),
        "recorded_at": format_instant(entry.recorded_at),
        "origin": entry.origin.model_dump(mode="json", exclude_none=True),
        "kafka": {"partition": entry.kafka_partition, "offset": entry.kafka_offset},
        "prev_hash": entry.prev_hash.hex(),
        "entry_hash": entry.entry_hash.hex(),
    }


def served_entry(entry: RecordedEntry) -> dict[str, Any]:
    return {"entry": hashed_document(entry), "entry_hash": entry.entry_hash.hex()}


def build_bundle(
    container_id: str,
    entries: Sequence[RecordedEntry],
    checkpoint_note: str,
    inclusion: Sequence[bytes],
    consistency: tuple[int, Sequence[bytes]] | None = None,
    *,
    format_version: str = BUNDLE_FORMAT,
) -> dict[str, Any]:
    v1 = format_version == BUNDLE_FORMAT_V1
    bundle: dict[str, Any] = {
        "format": format_version,
        "container_id": container_id,
        "entries": [entry_record_v1(entry) if v1 else served_entry(entry) for entry in entries],
        "checkpoint": checkpoint_note,
        "inclusion_proof": [item.hex() for item in inclusion],
    }
    if consistency is not None:
        first, proof = consistency
        bundle["consistency"] = {"first": first, "proof": [item.hex() for item in proof]}
    if not v1:
        head = entries[-1]
        bundle["tlog_proof"] = TlogProof(
            head.seq, tuple(inclusion), checkpoint_note, entry_bytes(head)
        ).text()
    return bundle


def load_json(text: str | bytes) -> Any:
    """JSON that refuses duplicate keys: a reader must see the one value that was verified."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in pairs:
            if key in found:
                raise MalformedBundle(f"duplicate JSON key {key!r}")
            found[key] = value
        return found

    return json.loads(text, object_pairs_hook=unique)


def hash_hex(value: Any, what: str) -> bytes:
    """A SHA-256 hash written as 64 lower-case hex digits."""
    if not isinstance(value, str) or not _HASH_HEX.fullmatch(value):
        raise MalformedBundle(f"{what} is not 64 lower-case hex digits: {value!r}")
    return bytes.fromhex(value)


def parse_served_entry(record: Any, position: int) -> RecordedEntry:
    """Entry ``position`` of a format-2 bundle, checked field by field."""
    name = f"entry {position}"
    if not isinstance(record, dict):
        raise MalformedBundle(f"{name} is not an object")
    _exact_fields(record, frozenset({"entry", "entry_hash"}), name)
    document = record["entry"]
    if not isinstance(document, dict):
        raise MalformedBundle(f"{name}: 'entry' is not an object")
    if isinstance(document.get("seq"), int):
        name = f"entry seq {document['seq']}"
    _exact_fields(document, ENTRY_FIELDS, name)
    entry = _entry(
        name,
        document,
        body=document["event"],
        entry_hash=hash_hex(record["entry_hash"], f"{name}: entry_hash"),
    )
    if hashed_document(entry) != document:
        raise MalformedBundle(f"{name}: the entry is not in the form the ledger hashes")
    return entry


def parse_entry_record(record: Any, position: int) -> RecordedEntry:
    """Entry ``position`` of a format-1 bundle, checked field by field."""
    name = f"entry {position}"
    if not isinstance(record, dict):
        raise MalformedBundle(f"{name} is not an object")
    if isinstance(record.get("seq"), int):
        name = f"entry seq {record['seq']}"
    _exact_fields(record, V1_ENTRY_FIELDS, name)
    entry = _entry(
        name,
        record,
        body=record["body"],
        entry_hash=hash_hex(record["entry_hash"], f"{name}: entry_hash"),
    )
    if record["container_id"] != entry.container_id:
        raise MalformedBundle(f"{name}: container_id differs from the body's")
    return entry


def _entry(name: str, fields: dict[str, Any], *, body: Any, entry_hash: bytes) -> RecordedEntry:
    if not isinstance(body, dict):
        raise MalformedBundle(f"{name}: the event is not an object")
    kafka = fields["kafka"]
    if not isinstance(kafka, dict):
        raise MalformedBundle(f"{name}: 'kafka' is not an object")
    _exact_fields(kafka, KAFKA_FIELDS, f"{name}: kafka")
    try:
        event = parse_event(body)
        origin = Origin.model_validate(fields["origin"])
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(step) for step in problem["loc"])
        raise MalformedBundle(f"{name}: {where}: {problem['msg']}") from error
    return RecordedEntry(
        seq=_integer(fields["seq"], f"{name}: seq"),
        event=event,
        received_at=_instant(fields["received_at"], f"{name}: received_at"),
        recorded_at=_instant(fields["recorded_at"], f"{name}: recorded_at"),
        origin=origin,
        kafka_partition=_integer(kafka["partition"], f"{name}: kafka.partition"),
        kafka_offset=_integer(kafka["offset"], f"{name}: kafka.offset"),
        prev_hash=hash_hex(fields["prev_hash"], f"{name}: prev_hash"),
        entry_hash=entry_hash,
        body=body,
    )


def _exact_fields(value: dict[str, Any], expected: frozenset[str], name: str) -> None:
    unknown = sorted(set(value) - expected)
    if unknown:
        raise MalformedBundle(f"{name}: unknown field(s) {', '.join(unknown)}")
    missing = sorted(expected - set(value))
    if missing:
        raise MalformedBundle(f"{name}: missing field(s) {', '.join(missing)}")


def _integer(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise MalformedBundle(f"{what} is not a non-negative integer: {value!r}")
    return value


def _instant(value: Any, what: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedBundle(f"{what} is not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise MalformedBundle(f"{what} is not an ISO 8601 instant: {value!r}") from error
    if moment.tzinfo is None:
        raise MalformedBundle(f"{what} has no UTC offset: {value!r}")
    return moment
