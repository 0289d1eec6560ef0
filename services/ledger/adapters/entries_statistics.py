"""Keeping ledger.entries analysed while it grows faster than autovacuum looks at it.

Autovacuum visits a table at most once a minute. A young ledger outgrew its plans within that
minute: a prepared lookup planned when the table was small kept scanning it whole at 100,000
entries. The consumer calls ``analyze_if_due`` between two batches; the database function
applies autovacuum's own threshold, so this analyses when autovacuum would, only sooner.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, text

_ANALYZE_IF_STALE = text(
    "SELECT analysed, changes_until_due FROM ledger.analyze_entries_if_stale()"
)


class EntriesStatistics:
    """Asks PostgreSQL once this consumer's own appends would pass the threshold, and at least
    every ``check_every_s`` for what other writers appended (autovacuum naps a minute).

    A growing ledger passes the threshold (50 rows + 10 % of the table) ever more rarely; a new
    one passes it often, and its plans went stale within a minute while it grew from nothing.
    """

    def __init__(
        self, engine: Engine, *, check_every_s: float = 60.0, min_gap_s: float = 1.0
    ) -> None:
        self._engine = engine
        self._check_every_s = check_every_s
        # A backend publishes its table counts up to a second after it commits: checking more
        # often would only find the last batches missing.
        self._min_gap_s = min(min_gap_s, check_every_s)
        self._last_check = float("-inf")
        self._changes_until_due = 0

    def analyze_if_due(self, appended: int, *, now: float | None = None) -> float | None:
        """Note ``appended`` entries; the seconds spent analysing, or None if it was not due."""
        now = time.monotonic() if now is None else now
        self._changes_until_due -= appended
        waited = now - self._last_check
        if waited < self._min_gap_s:
            return None
        if self._changes_until_due > 0 and waited < self._check_every_s:
            return None
        self._last_check = now
        started = time.perf_counter()
        with self._engine.begin() as connection:
            analysed, self._changes_until_due = connection.execute(_ANALYZE_IF_STALE).one()
        return time.perf_counter() - started if analysed else None
