"""Who posted a recorded event: what ingest asks the ledger before admitting a correction.

Ingest does not import the ledger; this adapter reads the one fact it needs from the ledger's
table by plain SQL (the ledger's schema is a contract of its own, Alembic's migrations).
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Engine, text

_POSTER = text("SELECT origin_party FROM ledger.entries WHERE event_id = :event_id")


class LedgerCorrectionTargets:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def poster_of(self, event_id: UUID) -> str | None:
        """The party that posted a recorded event, or None if it is not recorded."""
        with self._engine.connect() as connection:
            poster: str | None = connection.execute(
                _POSTER, {"event_id": event_id}
            ).scalar_one_or_none()
        return poster
