"""Keeping ledger.entries analysed, which autovacuum cannot do while appends hold their lock.

Autovacuum skips a table it cannot lock at once, and every append holds ledger.entries in
EXCLUSIVE mode until it commits: under steady appends the table went unanalysed, and reads of
many containers' entries were planned as scans of the whole table. The consumer calls
``analyze_if_due`` between two batches, when it holds no lock; the database function applies
autovacuum's own threshold, so this analyses when autovacuum would have.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, text

_ANALYZE_IF_STALE = text("SELECT ledger.analyze_entries_if_stale()")


class EntriesStatistics:
    """Asks PostgreSQL at most once per ``check_every_s`` (autovacuum's own nap is a minute)."""

    def __init__(self, engine: Engine, *, check_every_s: float = 60.0) -> None:
        self._engine = engine
        self._check_every_s = check_every_s
        self._last_check = float("-inf")

    def analyze_if_due(self, *, now: float | None = None) -> float | None:
        """Seconds spent analysing, or None when it was not due or not needed."""
        now = time.monotonic() if now is None else now
        if now - self._last_check < self._check_every_s:
            return None
        self._last_check = now
        started = time.perf_counter()
        with self._engine.begin() as connection:
            analysed = connection.execute(_ANALYZE_IF_STALE).scalar_one()
        return time.perf_counter() - started if analysed else None
