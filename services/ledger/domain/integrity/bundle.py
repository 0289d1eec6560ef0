"""The container bundle format: entries + signed checkpoint + inclusion proof (docs/api.md).

Building and reading the document only; ``verification.verify_bundle`` checks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.contract import Origin, parse_event
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.hashing import format_instant

BUNDLE_FORMAT = "battery-custody-bundle/1"


def entry_record(entry: RecordedEntry) -> dict[str, Any]:
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


def build_bundle(
    container_id: str,
    entries: Sequence[RecordedEntry],
    checkpoint_note: str,
    inclusion: Sequence[bytes],
    consistency: tuple[int, Sequence[bytes]] | None = None,
) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "container_id": container_id,
        "entries": [entry_record(entry) for entry in entries],
        "checkpoint": checkpoint_note,
        "inclusion_proof": [item.hex() for item in inclusion],
    }
    if consistency is not None:
        first, proof = consistency
        bundle["consistency"] = {"first": first, "proof": [item.hex() for item in proof]}
    return bundle


def parse_entry_record(record: Any) -> RecordedEntry:
    """One entry record of a bundle; ValueError naming the entry when it is malformed."""
    seq = record.get("seq", "?") if isinstance(record, dict) else "?"
    try:
        body = record["body"]
        if not isinstance(body, dict):
            raise TypeError("body is not an object")
        return RecordedEntry(
            seq=int(record["seq"]),
            event=parse_event(body),
            received_at=_instant(record["received_at"]),
            recorded_at=_instant(record["recorded_at"]),
            origin=Origin.model_validate(record["origin"]),
            kafka_partition=int(record["kafka"]["partition"]),
            kafka_offset=int(record["kafka"]["offset"]),
            prev_hash=bytes.fromhex(record["prev_hash"]),
            entry_hash=bytes.fromhex(record["entry_hash"]),
            body=body,
        )
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(step) for step in problem["loc"])
        raise ValueError(f"malformed entry record {seq}: {where}: {problem['msg']}") from error
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"malformed entry record {seq}: {error}") from error


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return moment
