"""Container bundles: entries + signed checkpoint + inclusion proof, verifiable offline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.ledger.domain.chain import StoredEntry
from services.ledger.domain.checkpoint import Checkpoint, VerifierKey, verify_signed_note
from services.ledger.domain.hashing import ZERO_HASH, format_instant
from services.ledger.domain.merkle import ProofError, verify_consistency, verify_inclusion

BUNDLE_FORMAT = "battery-custody-bundle/1"


class BundleError(ValueError):
    """The bundle does not verify; the message names the check and the entry."""


@dataclass(frozen=True, slots=True)
class BundleReport:
    container_id: str
    entries: int
    head_seq: int
    checkpoint: Checkpoint
    trusted_size: int | None


def entry_record(entry: StoredEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "container_id": entry.container_id,
        "body": dict(entry.body),
        "received_at": format_instant(entry.received_at),
        "recorded_at": format_instant(entry.recorded_at),
        "origin": {k: v for k, v in entry.origin.items() if v is not None},
        "kafka": {"partition": entry.kafka_partition, "offset": entry.kafka_offset},
        "prev_hash": entry.prev_hash.hex(),
        "entry_hash": entry.entry_hash.hex(),
    }


def build_bundle(
    container_id: str,
    entries: Sequence[StoredEntry],
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


def _stored_entry(record: dict[str, Any]) -> StoredEntry:
    try:
        return StoredEntry(
            seq=int(record["seq"]),
            container_id=str(record["container_id"]),
            body=record["body"],
            received_at=datetime.fromisoformat(record["received_at"]),
            recorded_at=datetime.fromisoformat(record["recorded_at"]),
            origin=record["origin"],
            kafka_partition=int(record["kafka"]["partition"]),
            kafka_offset=int(record["kafka"]["offset"]),
            prev_hash=bytes.fromhex(record["prev_hash"]),
            entry_hash=bytes.fromhex(record["entry_hash"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise BundleError(f"malformed entry record {record.get('seq', '?')}: {error}") from error


def _hashes(items: Any, what: str) -> list[bytes]:
    if not isinstance(items, list):
        raise BundleError(f"{what} must be a list of hex hashes")
    try:
        return [bytes.fromhex(item) for item in items]
    except (TypeError, ValueError) as error:
        raise BundleError(f"{what} holds a value that is not hex") from error


def verify_bundle(
    bundle: dict[str, Any], verifier: VerifierKey, trusted_note: str | None = None
) -> BundleReport:
    """Check everything a bundle claims, offline; raise BundleError naming what failed."""
    if bundle.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"not a {BUNDLE_FORMAT} bundle")
    container_id = bundle.get("container_id")
    try:
        checkpoint = verify_signed_note(str(bundle.get("checkpoint", "")), verifier)
    except ValueError as error:
        raise BundleError(f"checkpoint: {error}") from error

    records = bundle.get("entries")
    if not isinstance(records, list) or not records:
        raise BundleError("the bundle holds no entries")
    entries = [_stored_entry(record) for record in records]
    previous: StoredEntry | None = None
    for entry in entries:
        if entry.container_id != container_id or entry.body.get("container_id") != container_id:
            raise BundleError(f"entry seq {entry.seq}: belongs to another container")
        if entry.recomputed_hash() != entry.entry_hash:
            raise BundleError(f"entry seq {entry.seq}: content does not match its entry_hash")
        if previous is None:
            if entry.prev_hash != ZERO_HASH:
                raise BundleError(
                    f"entry seq {entry.seq}: the container's first entry must link to zero hash"
                )
        else:
            if entry.seq <= previous.seq:
                raise BundleError(f"entry seq {entry.seq}: entries are not in seq order")
            if entry.prev_hash != previous.entry_hash:
                raise BundleError(
                    f"entry seq {entry.seq}: prev_hash does not link to entry seq {previous.seq}"
                )
        previous = entry
    head = entries[-1]

    if head.seq >= checkpoint.tree_size:
        raise BundleError(
            f"entry seq {head.seq} is not covered by the checkpoint (size {checkpoint.tree_size})"
        )
    proof = _hashes(bundle.get("inclusion_proof"), "inclusion_proof")
    try:
        verify_inclusion(
            head.entry_hash, head.seq, checkpoint.tree_size, proof, checkpoint.root_hash
        )
    except ProofError as error:
        raise BundleError(f"inclusion of entry seq {head.seq}: {error}") from error

    trusted_size = None
    if trusted_note is not None:
        try:
            trusted = verify_signed_note(trusted_note, verifier)
        except ValueError as error:
            raise BundleError(f"trusted checkpoint: {error}") from error
        trusted_size = trusted.tree_size
        if trusted.tree_size > checkpoint.tree_size:
            raise BundleError(
                f"the bundle's checkpoint (size {checkpoint.tree_size}) is older than the "
                f"trusted one (size {trusted.tree_size})"
            )
        consistency = bundle.get("consistency")
        if trusted.tree_size == checkpoint.tree_size:
            if trusted.root_hash != checkpoint.root_hash:
                raise BundleError("the trusted checkpoint and the bundle's disagree on the root")
        elif not isinstance(consistency, dict) or consistency.get("first") != trusted.tree_size:
            raise BundleError(
                f"the bundle has no consistency proof from size {trusted.tree_size}; "
                f"download it with ?trusted_size={trusted.tree_size}"
            )
        else:
            try:
                verify_consistency(
                    trusted.tree_size,
                    checkpoint.tree_size,
                    trusted.root_hash,
                    checkpoint.root_hash,
                    _hashes(consistency.get("proof"), "consistency proof"),
                )
            except ProofError as error:
                raise BundleError(f"consistency with the trusted checkpoint: {error}") from error
    return BundleReport(str(container_id), len(entries), head.seq, checkpoint, trusted_size)
