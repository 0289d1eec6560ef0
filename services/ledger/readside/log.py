"""The public read path of the log (C2SP tlog-tiles): checkpoint, hash tiles, entry bundles.

Only what the latest signed checkpoint covers is served, so tiles reveal nothing unsigned.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine

from services.ledger.adapters.log_tiles import (
    cosignature_lines,
    cosigned_note,
    entry_bundle,
    hash_tile,
)
from services.ledger.adapters.merkle_log import latest_checkpoint
from services.ledger.domain.integrity.tiles import TileError, TileRef, check_within


class LogQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    def checkpoint(self) -> str | None:
        """The latest signed checkpoint with every witness cosignature collected for it."""
        with self._engine.connect() as connection:
            latest = latest_checkpoint(connection)
            if latest is None:
                return None
            return cosigned_note(
                latest.note, cosignature_lines(connection, latest.checkpoint.tree_size)
            )

    def tile(self, ref: TileRef) -> bytes:
        """A hash tile or entry bundle; TileError when the signed tree does not hold it."""
        with self._engine.connect() as connection:
            _check_signed(connection, ref)
            return entry_bundle(connection, ref) if ref.is_entries else hash_tile(connection, ref)


def _check_signed(connection: Connection, ref: TileRef) -> None:
    latest = latest_checkpoint(connection)
    if latest is None:
        raise TileError("no checkpoint has been signed yet")
    check_within(ref, latest.checkpoint.tree_size)
