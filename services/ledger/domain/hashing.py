"""Entry hashes: SHA-256(0x00 ‖ RFC 8785 canonical JSON of the entry without entry_hash).

The same hash links a container's chain and is the RFC 6962 Merkle leaf hash.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from services.ledger.domain.canonical import canonical_json

ZERO_HASH = bytes(32)
LEAF_PREFIX = b"\x00"


def format_instant(moment: datetime) -> str:
    """One fixed text form for stored instants: UTC, microseconds, ``Z``."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime cannot be hashed")
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    if utc.year < 1000:  # strftime writes such years unpadded; stored hashes keep that form
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00"


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


def entry_hash(document: dict[str, Any]) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + canonical_json(document)).digest()
