"""Reading the Merkle log: tree size, roots, proofs and checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select

from services.ledger.adapters import tables
from services.ledger.adapters.driver import PreparedRead
from services.ledger.adapters.merkle_store import source_for
from services.ledger.domain.integrity.checkpoint import Checkpoint
from services.ledger.domain.integrity.merkle import consistency_proof, inclusion_proof, root_hash


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    checkpoint: Checkpoint
    key_name: str
    note: str
    created_at: datetime | None = None


def tree_size(connection: Connection) -> int:
    size: int = connection.execute(
        select(func.coalesce(func.max(tables.entries.c.seq) + 1, 0))
    ).scalar_one()
    return size


def root_at(connection: Connection, size: int) -> bytes:
    return root_hash(size, source_for(connection, lambda source: root_hash(size, source)))


def inclusion_at(connection: Connection, index: int, size: int) -> list[bytes]:
    return inclusion_proof(
        index, size, source_for(connection, lambda source: inclusion_proof(index, size, source))
    )


def consistency_between(connection: Connection, first: int, second: int) -> list[bytes]:
    return consistency_proof(
        first,
        second,
        source_for(connection, lambda source: consistency_proof(first, second, source)),
    )


def _stored(row: Mapping[Any, Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        Checkpoint(row["origin"], row["tree_size"], bytes(row["root_hash"])),
        row["key_name"],
        row["note"],
        row["created_at"],
    )


_LATEST = PreparedRead(
    select(tables.checkpoints).order_by(tables.checkpoints.c.tree_size.desc()).limit(1)
)
_AT_SIZE = PreparedRead(
    select(tables.checkpoints).where(tables.checkpoints.c.tree_size == bindparam("size"))
)


def latest_checkpoint(connection: Connection) -> StoredCheckpoint | None:
    rows = _LATEST.rows(connection, {})
    return _stored(rows[0]) if rows else None


def checkpoint_at(connection: Connection, size: int) -> StoredCheckpoint | None:
    rows = _AT_SIZE.rows(connection, {"size": size})
    return _stored(rows[0]) if rows else None


def all_checkpoints(engine: Engine) -> list[StoredCheckpoint]:
    with engine.connect() as connection:
        rows = (
            connection.execute(select(tables.checkpoints).order_by(tables.checkpoints.c.tree_size))
            .mappings()
            .all()
        )
    return [_stored(row) for row in rows]
