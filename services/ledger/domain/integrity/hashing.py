"""Entry hashes: SHA-256(0x00 ‖ RFC 8785 canonical JSON of the entry without entry_hash).

The same hash links a container's chain and is the RFC 6962 Merkle leaf hash.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.canonical import canonical_json

ZERO_HASH = bytes(32)
LEAF_PREFIX = b"\x00"


def format_instant(moment: datetime) -> str:
    """One fixed text form for stored instants: UTC, microseconds, ``Z``."""
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("naive datetime cannot be hashed")
    utc = moment - offset if offset else moment
    if utc.year < 1000:  # strftime writes such years unpadded; stored hashes keep that form
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 - faster than f"{:04d}"
        utc.year,
        utc.month,
        utc.day,
        utc.hour,
        utc.minute,
        utc.second,
        utc.microsecond,
    )


def entry_document(
    *,
    seq: int,
    event: dict[str, Any],
    received_at: datetime,
    recorded_at: datetime,
    origin: dict[str, Any],
    kafka_partition: int,
    kafka_offset: int,
    prev_hash: bytes,
) -> dict[str, Any]:
    """The hashed form of a ledger entry; every stored column is in it."""
    return {
        "seq": seq,
        "event": event,
        "received_at": format_instant(received_at),
        "recorded_at": format_instant(recorded_at),
        "origin": {key: value for key, value in origin.items() if value is not None},
        "kafka": {"partition": kafka_partition, "offset": kafka_offset},
        "prev_hash": prev_hash.hex(),
    }


def hashed_document(entry: RecordedEntry) -> dict[str, Any]:
    """The document an entry's hash covers, as served in bundles and entry tiles."""
    return entry_document(
        seq=entry.seq,
        event=entry.hashed_body,
        received_at=entry.received_at,
        recorded_at=entry.recorded_at,
        origin=entry.origin.model_dump(mode="json"),
        kafka_partition=entry.kafka_partition,
        kafka_offset=entry.kafka_offset,
        prev_hash=entry.prev_hash,
    )


def entry_bytes(entry: RecordedEntry) -> bytes:
    """``E``: the canonical JSON of the hashed document; the leaf hash is SHA-256(0x00 ‖ E)."""
    return canonical_json(hashed_document(entry))


def entry_hash(document: dict[str, Any]) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + canonical_json(document)).digest()
