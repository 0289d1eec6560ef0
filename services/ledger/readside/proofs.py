"""Proofs and bundles for the auditor API.

They read only rows that are never changed once committed (entries, Merkle nodes, signed
checkpoints), and each statement of a session sees everything the one before it saw. So an
answer's statements need no shared snapshot, and they run without BEGIN and COMMIT: two round
trips fewer per proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import Engine, bindparam, select

from services.ledger.adapters import tables
from services.ledger.adapters.driver import PreparedRead
from services.ledger.adapters.entry_rows import recorded_entry
from services.ledger.adapters.log_tiles import cosignature_lines, cosigned_note
from services.ledger.adapters.merkle_log import (
    StoredCheckpoint,
    checkpoint_at,
    consistency_between,
    inclusion_at,
    latest_checkpoint,
)
from services.ledger.domain.integrity.bundle import BUNDLE_FORMAT, build_bundle


class ProofUnavailable(LookupError):
    """What was asked for is not (yet) provable; the message says why."""


@dataclass(frozen=True, slots=True)
class InclusionAnswer:
    seq: int
    entry_hash: bytes
    tree_size: int
    proof: list[bytes]
    checkpoint: StoredCheckpoint | None


_LEAF = PreparedRead(
    select(tables.entries.c.seq, tables.entries.c.entry_hash).where(
        tables.entries.c.event_id == bindparam("event_id")
    )
)


class ProofQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    def latest(self) -> StoredCheckpoint | None:
        with self._engine.connect() as connection:
            return latest_checkpoint(connection)

    def inclusion(self, event_id: UUID, tree_size: int | None) -> InclusionAnswer:
        with self._engine.connect() as connection:
            leaves = _LEAF.rows(connection, {"event_id": event_id})
            if not leaves:
                raise ProofUnavailable(f"event {event_id} is not recorded")
            seq, entry_hash = leaves[0]["seq"], leaves[0]["entry_hash"]
            checkpoint = (
                latest_checkpoint(connection)
                if tree_size is None
                else checkpoint_at(connection, tree_size)
            )
            if checkpoint is None:
                raise ProofUnavailable(
                    "no checkpoint has been signed yet"
                    if tree_size is None
                    else f"no signed checkpoint has tree size {tree_size}"
                )
            size = checkpoint.checkpoint.tree_size
            if seq >= size:
                raise ProofUnavailable(
                    f"event {event_id} (seq {seq}) is newer than checkpoint size {size}"
                )
            proof = inclusion_at(connection, seq, size)
        return InclusionAnswer(seq, entry_hash, size, proof, checkpoint)

    def consistency(
        self, first: int, second: int
    ) -> tuple[StoredCheckpoint, StoredCheckpoint, list[bytes]]:
        with self._engine.connect() as connection:
            older = checkpoint_at(connection, first)
            if older is None:
                raise ProofUnavailable(f"no signed checkpoint has tree size {first}")
            newer = checkpoint_at(connection, second)
            if newer is None:
                raise ProofUnavailable(f"no signed checkpoint has tree size {second}")
            return older, newer, consistency_between(connection, first, second)

    def bundle(
        self, container_id: str, trusted_size: int | None, format_version: str = BUNDLE_FORMAT
    ) -> dict[str, Any]:
        entries = tables.entries
        with self._engine.connect() as connection:
            checkpoint = latest_checkpoint(connection)
            if checkpoint is None:
                raise ProofUnavailable("no checkpoint has been signed yet")
            size = checkpoint.checkpoint.tree_size
            rows = (
                connection.execute(
                    select(entries)
                    .where(entries.c.container_id == container_id, entries.c.seq < size)
                    .order_by(entries.c.seq)
                )
                .mappings()
                .all()
            )
            if not rows:
                raise ProofUnavailable(
                    f"no entry of container {container_id!r} is covered by checkpoint size {size}"
                )
            stored = [recorded_entry(row) for row in rows]
            proof = inclusion_at(connection, stored[-1].seq, size)
            consistency = None
            if trusted_size is not None:
                if checkpoint_at(connection, trusted_size) is None:
                    raise ProofUnavailable(f"no signed checkpoint has tree size {trusted_size}")
                if trusted_size > size:
                    raise ProofUnavailable(f"trusted size {trusted_size} is beyond {size}")
                if trusted_size < size:
                    consistency = (
                        trusted_size,
                        consistency_between(connection, trusted_size, size),
                    )
            note = cosigned_note(checkpoint.note, cosignature_lines(connection, size))
        return build_bundle(
            container_id,
            stored,
            note,
            proof,
            consistency,
            format_version=format_version,
        )
