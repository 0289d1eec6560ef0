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

from sqlalchemy import Connection, Engine, Select, func, or_, select, true

from services.contract.events import EventType
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
from services.ledger.readside.scope import Scope, containers_in, in_scope, names_any

HOURS = 24
_CODE = func.unnest(tables.containers.c.anomalies).table_valued("code").lateral("code")


def _stored_code_counts(scope: Scope) -> Select[Any]:
    """Per stored anomaly code: containers carrying it, and those not yet processed."""
    c = tables.containers.c
    code = _CODE.c.code
    query = (
        select(
            code,
            func.count().label("containers"),
            func.count().filter(c.state != ContainerState.PROCESSED.value).label("unprocessed"),
        )
        .select_from(tables.containers.join(_CODE, true()))
        .group_by(code)
    )
    scoped = in_scope(c.container_id, scope)
    return query.where(scoped) if scoped is not None else query


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


@dataclass(frozen=True, slots=True)
class OurContainers:
    """A scoped reader's containers, by where they stand for its parties."""

    in_custody: tuple[ContainerRow, ...]
    inbound: tuple[ContainerRow, ...]
    """In transit, to a destination of ours."""
    outbound: tuple[ContainerRow, ...]
    """Had by us once, now with someone else (and not coming to us)."""
    with_anomalies: tuple[ContainerRow, ...]


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class DashboardQueries:
    def __init__(self, engine: Engine, rules: CustodyRules) -> None:
        self._engine = engine
        self.rules = rules

    # --- dashboard ---------------------------------------------------------------------------

    def overview(self, now: datetime, scope: Scope = None) -> Overview:
        """The dashboard's figures; within a scope, over its containers (and no checkpoint or
        ledger size, which describe every party's entries)."""
        with self._engine.connect() as connection:
            states = self._states(connection, scope)
            anomalies = self._anomalies(connection, now, scope)
            per_hour = self._per_hour(connection, now, scope)
            checkpoint = self._checkpoint(connection) if scope is None else None
            size: int = (
                connection.execute(
                    select(func.coalesce(func.max(tables.entries.c.seq) + 1, 0))
                ).scalar_one()
                if scope is None
                else 0
            )
        return Overview(
            now=now,
            states=states,
            containers=sum(count for _, count in states),
            anomalies=anomalies,
            per_hour=per_hour,
            checkpoint=checkpoint,
            ledger_size=size,
        )

    def _states(self, connection: Connection, scope: Scope) -> tuple[tuple[str, int], ...]:
        c = tables.containers.c
        query = select(c.state, func.count()).group_by(c.state)
        scoped = in_scope(c.container_id, scope)
        if scoped is not None:
            query = query.where(scoped)
        counts: dict[str, int] = {
            str(state): int(count) for state, count in connection.execute(query)
        }
        known = [state.value for state in ContainerState]
        ordered = [(state, counts.pop(state, 0)) for state in known]
        ordered += sorted(counts.items())
        return tuple(ordered)

    def anomaly_counts(self, now: datetime, scope: Scope = None) -> tuple[AnomalyCount, ...]:
        with self._engine.connect() as connection:
            return self._anomalies(connection, now, scope)

    def _anomalies(
        self, connection: Connection, now: datetime, scope: Scope
    ) -> tuple[AnomalyCount, ...]:
        found = [
            AnomalyCount(str(code), int(containers), int(unprocessed))
            for code, containers, unprocessed in connection.execute(_stored_code_counts(scope))
        ]
        timed = select(
            *(
                func.count().filter(time_based_condition(code, now, self.rules))
                for code in TIME_CODES
            )
        ).select_from(tables.containers)
        scoped = in_scope(tables.containers.c.container_id, scope)
        if scoped is not None:
            timed = timed.where(scoped)
        time_counts = connection.execute(timed).one()
        for code, count in zip(TIME_CODES, time_counts, strict=True):
            if count:
                # Time-based codes apply only to containers not yet processed.
                found.append(AnomalyCount(code.value, int(count), int(count)))
        return tuple(sorted(found, key=lambda item: (-item.containers, item.code)))

    def _per_hour(
        self, connection: Connection, now: datetime, scope: Scope
    ) -> tuple[HourCount, ...]:
        hour = now.replace(minute=0, second=0, microsecond=0)
        since = hour - timedelta(hours=HOURS - 1)
        e = tables.entries.c
        bucket = func.floor(func.extract("epoch", e.recorded_at - since) / 3600).label("bucket")
        query = select(bucket, func.count()).where(e.recorded_at >= since).group_by(bucket)
        scoped = in_scope(e.container_id, scope)
        if scoped is not None:
            query = query.where(scoped)
        rows = connection.execute(query)
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
        self,
        query: Select[Any],
        flt: ContainerFilter,
        id_prefix: str | None,
        now: datetime,
        scope: Scope = None,
    ) -> Select[Any]:
        query = filtered(query, flt, now, self.rules)
        scoped = in_scope(tables.containers.c.container_id, scope)
        if scoped is not None:
            query = query.where(scoped)
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
        scope: Scope = None,
    ) -> ContainerPage:
        """One page of matching containers by id, with the time-based codes that apply now."""
        c = tables.containers.c
        page = self._where(self._rows(now), flt, id_prefix, now, scope)
        if after is not None:
            page = page.where(c.container_id > after)
        page = page.order_by(c.container_id).limit(limit)
        count = self._where(
            select(func.count()).select_from(tables.containers), flt, id_prefix, now, scope
        )
        with self._engine.connect() as connection:
            rows = connection.execute(page).mappings().all()
            total: int = connection.execute(count).scalar_one()
        return ContainerPage(
            tuple(_row(row) for row in rows),
            total,
        )

    def _rows(self, now: datetime) -> Select[Any]:
        c = tables.containers.c
        return select(
            c.container_id,
            c.state,
            c.custodian,
            c.location_id,
            c.entry_count,
            c.last_occurred_at,
            c.anomalies,
            *time_flags(now, self.rules),
        )

    def ours(self, scope: frozenset[str], now: datetime, limit: int) -> OurContainers:
        """A scoped reader's containers by where they stand for its parties, newest first."""
        c, e = tables.containers.c, tables.entries.c
        parties = sorted(scope)
        coming_to_us = select(e.container_id).where(
            names_any(scope),  # the index finds our entries; the rest picks the transfers to us
            e.event_type.in_([EventType.PICKUP.value, EventType.HANDOFF.value]),
            or_(
                e.body["destination_party"].astext.in_(parties),
                e.body["to_party"].astext.in_(parties),
            ),
        )
        mine = self._rows(now).where(c.container_id.in_(containers_in(scope)))
        not_with_us = or_(c.custodian.is_(None), c.custodian.not_in(parties))
        sections = {
            "in_custody": mine.where(c.custodian.in_(parties)),
            "inbound": mine.where(
                c.state == ContainerState.IN_TRANSIT.value,
                not_with_us,
                c.container_id.in_(coming_to_us),
            ),
            "outbound": mine.where(not_with_us, c.container_id.not_in(coming_to_us)),
            "with_anomalies": mine.where(c.anomalies != []),
        }
        found: dict[str, tuple[ContainerRow, ...]] = {}
        with self._engine.connect() as connection:
            for name, query in sections.items():
                ordered = query.order_by(c.last_occurred_at.desc(), c.container_id).limit(limit)
                found[name] = tuple(_row(row) for row in connection.execute(ordered).mappings())
        return OurContainers(**found)


def _row(row: Any) -> ContainerRow:
    return ContainerRow(
        container_id=row["container_id"],
        state=row["state"],
        custodian=row["custodian"],
        location_id=row["location_id"],
        entry_count=row["entry_count"],
        last_occurred_at=row["last_occurred_at"],
        anomalies=anomalies_now(row),
    )
