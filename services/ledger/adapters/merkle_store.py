"""The Merkle log's stored nodes: maintained in the append transaction, read for proofs."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from sqlalchemy import Connection, text

from services.ledger.adapters import tables
from services.ledger.adapters.bulk_copy import copy_rows
from services.ledger.adapters.driver import PreparedRead
from services.ledger.domain.integrity.merkle import Frontier, NodeKey, NodeSource, nodes_needed

# The keys go as two arrays, so the statement text is the same whatever their number and
# PostgreSQL can keep one prepared plan for it.
_FETCH_NODES = PreparedRead(
    text(
        "SELECT n.level, n.idx, n.hash FROM ledger.merkle_nodes AS n "
        "JOIN unnest(CAST(:levels AS smallint[]), CAST(:indexes AS bigint[])) AS k (level, idx) "
        "USING (level, idx)"
    )
)


def fetch_nodes(connection: Connection, keys: Collection[NodeKey]) -> dict[NodeKey, bytes]:
    if not keys:
        return {}
    levels, indexes = zip(*keys, strict=True)
    rows = _FETCH_NODES.rows(connection, {"levels": list(levels), "indexes": list(indexes)})
    return {(row["level"], row["idx"]): row["hash"] for row in rows}


def prefetched_source(connection: Connection, keys: Collection[NodeKey]) -> NodeSource:
    found = fetch_nodes(connection, keys)

    def source(level: int, index: int) -> bytes:
        try:
            return found[(level, index)]
        except KeyError:
            raise LookupError(f"Merkle node ({level}, {index}) is missing") from None

    return source


def append_leaves(connection: Connection, size: int, leaves: Sequence[bytes]) -> bytes:
    """Extend the stored tree of ``size`` leaves by ``leaves``; returns the new root."""
    frontier = Frontier.load(size, prefetched_source(connection, Frontier.keys_for(size)))
    created = [node for leaf in leaves for node in frontier.append(leaf)]
    if created:
        copy_rows(connection, tables.merkle_nodes, ("level", "idx", "hash"), created)
    return frontier.root()


def source_for(connection: Connection, compute: Callable[[NodeSource], object]) -> NodeSource:
    """Fetch in one query every node ``compute(source)`` reads, then serve them."""
    return prefetched_source(connection, nodes_needed(compute))
