"""The tlog-tiles read path over the stored Merkle nodes, entries and cosignatures."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from services.ledger.adapters import tables
from services.ledger.adapters.driver import PreparedRead
from services.ledger.adapters.entry_rows import recorded_entry
from services.ledger.domain.integrity.hashing import entry_bytes
from services.ledger.domain.integrity.tiles import (
    TileError,
    TileRef,
    encode_entry_bundle,
    encode_hash_tile,
)

_NODES = PreparedRead(
    select(tables.merkle_nodes.c.hash)
    .where(
        tables.merkle_nodes.c.level == bindparam("level"),
        tables.merkle_nodes.c.idx >= bindparam("first"),
        tables.merkle_nodes.c.idx < bindparam("end"),
    )
    .order_by(tables.merkle_nodes.c.idx)
)
_ENTRIES = PreparedRead(
    select(tables.entries)
    .where(tables.entries.c.seq >= bindparam("first"), tables.entries.c.seq < bindparam("end"))
    .order_by(tables.entries.c.seq)
)
_COSIGNATURES = PreparedRead(
    select(tables.cosignatures.c.line)
    .where(tables.cosignatures.c.tree_size == bindparam("size"))
    .order_by(tables.cosignatures.c.witness)
)


def hash_tile(connection: Connection, ref: TileRef) -> bytes:
    """The tile's hashes, read from the stored perfect nodes, never recomputed."""
    level = ref.node_keys()[0][0]
    rows = _NODES.rows(
        connection, {"level": level, "first": ref.start, "end": ref.start + ref.width}
    )
    if len(rows) != ref.width:
        raise TileError(f"{ref.path()} is not stored yet")
    return encode_hash_tile([bytes(row["hash"]) for row in rows])


def entry_bundle(connection: Connection, ref: TileRef) -> bytes:
    rows = _ENTRIES.rows(connection, {"first": ref.start, "end": ref.start + ref.width})
    if len(rows) != ref.width:
        raise TileError(f"{ref.path()} is not recorded yet")
    return encode_entry_bundle([entry_bytes(recorded_entry(row)) for row in rows])


def cosignature_lines(connection: Connection, size: int) -> list[str]:
    return [row["line"] for row in _COSIGNATURES.rows(connection, {"size": size})]


def cosigned_note(note: str, lines: list[str]) -> str:
    """The signed note with every cosignature line after the log's own signature."""
    return note + "".join(line + "\n" for line in lines)
