"""Read queries behind the auditor web UI: the dashboard overview and the container browser.

Everything reads the ``containers`` read model or an indexed range of ``ledger.entries``:
counts by state (``containers_state_ix``), anomaly codes (one pass over the read model's
``anomalies`` arrays, plus the time-based codes computed against now in the same SQL the API's
search uses), events recorded per hour over the last 24 h (``entries_recorded_at_ix``) and the
latest checkpoint (primary key). Nothing here reconstructs a trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, select, text

from services.ledger.adapters import tables
from services.ledger.domain.custody import ContainerState, CustodyRules
from services.ledger.readside.containers import (
    TIME_CODES,
    ContainerFilter,
    anomalies_now,
    filtered,
    time_based_condition,
    time_flags,
)

HOURS = 24
_STORED_CODE_COUNTS = text(
    """
    SELECT code, count(*) AS containers,
           count(*) FILTER (WHERE c.state <> 'processed') AS unprocessed
    FROM ledger.containers AS c, unnest(c.anomalies) AS code
    GROUP BY code
    """
)


@dataclass(frozen=True, slots=True)
class CheckpointSummary:
    tree_size: int
    origin: str
    key_name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AnomalyCount:
    code: str
    containers: int
    unprocessed: int


@dataclass(frozen=True, slots=True)
class HourCount:
    start: datetime
    events: int


@dataclass(frozen=True, slots=True)
class Overview:
    now: datetime
    states: tuple[tuple[str, int], ...]
    """Every state in lifecycle order, with its container count (0 included)."""
    containers: int
    anomalies: tuple[AnomalyCount, ...]
    """Codes found on at least one container, most frequent first."""
    per_hour: tuple[HourCount, ...]
    """The last 24 clock hours (UTC), oldest first; the last one is the current hour."""
    checkpoint: CheckpointSummary | None
    ledger_size: int


@dataclass(frozen=True, slots=True)
class ContainerRow:
    container_id: str
    state: str
    custodian: str | None
    location_id: str | None
    entry_count: int
    last_occurred_at: datetime
    anomalies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ContainerPage:
    rows: tuple[ContainerRow, ...]
    total: int
    """How many containers match the filters, on every page."""


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class DashboardQueries:
    def __init__(self, engine: Engine, rules: CustodyRules) -> None:
        self._engine = engine
        self.rules = rules

    # --- dashboard ---------------------------------------------------------------------------

    def overview(self, now: datetime) -> Overview:
        with self._engine.connect() as connection:
            states = self._states(connection)
            anomalies = self._anomalies(connection, now)
            per_hour = self._per_hour(connection, now)
            checkpoint = self._checkpoint(connection)
            size: int = connection.execute(
                select(func.coalesce(func.max(tables.entries.c.seq) + 1, 0))
            ).scalar_one()
        return Overview(
            now=now,
            states=states,
            containers=sum(count for _, count in states),
            anomalies=anomalies,
            per_hour=per_hour,
            checkpoint=checkpoint,
            ledger_size=size,
        )

    def _states(self, connection: Connection) -> tuple[tuple[str, int], ...]:
        c = tables.containers.c
        counts: dict[str, int] = {
            str(state): int(count)
            for state, count in connection.execute(select(c.state, func.count()).group_by(c.state))
        }
        known = [state.value for state in ContainerState]
        ordered = [(state, counts.pop(state, 0)) for state in known]
        ordered += sorted(counts.items())
        return tuple(ordered)

    def anomaly_counts(self, now: datetime) -> tuple[AnomalyCount, ...]:
        with self._engine.connect() as connection:
            return self._anomalies(connection, now)

    def _anomalies(self, connection: Connection, now: datetime) -> tuple[AnomalyCount, ...]:
        found = [
            AnomalyCount(str(code), int(containers), int(unprocessed))
            for code, containers, unprocessed in connection.execute(_STORED_CODE_COUNTS)
        ]
        time_counts = connection.execute(
            select(
                *(
                    func.count().filter(time_based_condition(code, now, self.rules))
                    for code in TIME_CODES
                )
            ).select_from(tables.containers)
        ).one()
        for code, count in zip(TIME_CODES, time_counts, strict=True):
            if count:
                # Time-based codes apply only to containers not yet processed.
                found.append(AnomalyCount(code.value, int(count), int(count)))
        return tuple(sorted(found, key=lambda item: (-item.containers, item.code)))

    def _per_hour(self, connection: Connection, now: datetime) -> tuple[HourCount, ...]:
        hour = now.replace(minute=0, second=0, microsecond=0)
        since = hour - timedelta(hours=HOURS - 1)
        e = tables.entries.c
        bucket = func.floor(func.extract("epoch", e.recorded_at - since) / 3600).label("bucket")
        rows = connection.execute(
            select(bucket, func.count()).where(e.recorded_at >= since).group_by(bucket)
        )
        counts = {int(index): int(count) for index, count in rows}
        return tuple(
            HourCount(since + timedelta(hours=index), counts.get(index, 0))
            for index in range(HOURS)
        )

    def _checkpoint(self, connection: Connection) -> CheckpointSummary | None:
        k = tables.checkpoints.c
        row = connection.execute(
            select(k.tree_size, k.origin, k.key_name, k.created_at)
            .order_by(k.tree_size.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return CheckpointSummary(int(row.tree_size), row.origin, row.key_name, row.created_at)

    # --- container browser -------------------------------------------------------------------

    def _where(
        self, query: Select[Any], flt: ContainerFilter, id_prefix: str | None, now: datetime
    ) -> Select[Any]:
        query = filtered(query, flt, now, self.rules)
        if id_prefix:
            query = query.where(
                tables.containers.c.container_id.like(_like_prefix(id_prefix), escape="\\")
            )
        return query

    def search(
        self,
        flt: ContainerFilter,
        *,
        id_prefix: str | None,
        now: datetime,
        after: str | None,
        limit: int,
    ) -> ContainerPage:
        """One page of matching containers by id, with the time-based codes that apply now."""
        c = tables.containers.c
        page = self._where(
            select(
                c.container_id,
                c.state,
                c.custodian,
                c.location_id,
                c.entry_count,
                c.last_occurred_at,
                c.anomalies,
                *time_flags(now, self.rules),
            ),
            flt,
            id_prefix,
            now,
        )
        if after is not None:
            page = page.where(c.container_id > after)
        page = page.order_by(c.container_id).limit(limit)
        count = self._where(
            select(func.count()).select_from(tables.containers), flt, id_prefix, now
        )
        with self._engine.connect() as connection:
            rows = connection.execute(page).mappings().all()
            total: int = connection.execute(count).scalar_one()
        return ContainerPage(
            tuple(
                ContainerRow(
                    container_id=row["container_id"],
                    state=row["state"],
                    custodian=row["custodian"],
                    location_id=row["location_id"],
                    entry_count=row["entry_count"],
                    last_occurred_at=row["last_occurred_at"],
                    anomalies=anomalies_now(row),
                )
                for row in rows
            ),
            total,
        )
