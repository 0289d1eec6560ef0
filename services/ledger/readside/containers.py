"""Containers: trails, search, recorded entries and anomalies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Engine,
    Label,
    Select,
    and_,
    any_,
    bindparam,
    false,
    literal,
    or_,
    select,
)

from services.ledger.adapters import tables
from services.ledger.adapters.driver import PreparedRead
from services.ledger.adapters.entry_rows import recorded_entry
from services.ledger.adapters.read_model import load_conflicts, load_entries
from services.ledger.adapters.read_model import trails as reconstruct_trails
from services.ledger.domain.custody import (
    TIME_BASED_CODES,
    AnomalyCode,
    ContainerState,
    CustodyRules,
    CustodyTrail,
    reconstruct,
)
from services.ledger.domain.entries import RecordedEntry
from services.ledger.readside.scope import Scope, container_visible, containers_in, in_scope

_SITE_STATES = (ContainerState.OPEN.value, ContainerState.SEALED.value)
TIME_CODES = tuple(code for code in AnomalyCode if code in TIME_BASED_CODES)
_ENTRY = PreparedRead(
    select(tables.entries).where(tables.entries.c.event_id == bindparam("event_id"))
)


@dataclass(frozen=True)
class ContainerFilter:
    state: ContainerState | None = None
    custodian: str | None = None
    location: str | None = None
    anomaly: AnomalyCode | None = None
    touched_by: frozenset[str] | None = None
    """Only containers one of these parties took part in (e.g. a jurisdiction's parties)."""


def time_based_condition(
    code: AnomalyCode, now: datetime, rules: CustodyRules
) -> ColumnElement[bool]:
    """SQL for an anomaly computed against ``now``, mirroring the pure reconstruction."""
    c = tables.containers.c
    if code is AnomalyCode.ACCUMULATION_LIMIT:
        return and_(c.state.in_(_SITE_STATES), c.first_dropoff_at <= now - rules.accumulation_limit)
    if code is AnomalyCode.ACCUMULATION_WARNING:
        return and_(
            c.state.in_(_SITE_STATES),
            c.first_dropoff_at <= now - rules.accumulation_warning,
            c.first_dropoff_at > now - rules.accumulation_limit,
        )
    if code is AnomalyCode.OVERDUE_IN_TRANSIT:
        return and_(
            c.state == ContainerState.IN_TRANSIT.value,
            c.state_since < now - rules.overdue_in_transit,
        )
    if code is AnomalyCode.MISSING_ACK:
        return and_(
            c.state == ContainerState.RECEIVED.value, c.state_since < now - rules.missing_ack
        )
    return false()


def anomaly_condition(code: AnomalyCode, now: datetime, rules: CustodyRules) -> ColumnElement[bool]:
    c = tables.containers.c
    return or_(literal(code.value) == any_(c.anomalies), time_based_condition(code, now, rules))


def filtered(
    query: Select[Any], flt: ContainerFilter, now: datetime, rules: CustodyRules
) -> Select[Any]:
    """``query`` restricted to the containers that match ``flt`` at ``now``."""
    c = tables.containers.c
    if flt.state is not None:
        query = query.where(c.state == flt.state.value)
    if flt.custodian is not None:
        query = query.where(c.custodian == flt.custodian)
    if flt.location is not None:
        query = query.where(c.location_id == flt.location)
    if flt.anomaly is not None:
        query = query.where(anomaly_condition(flt.anomaly, now, rules))
    touched = in_scope(c.container_id, flt.touched_by)
    if touched is not None:
        query = query.where(touched)
    return query


def time_flags(now: datetime, rules: CustodyRules) -> list[Label[bool]]:
    """One boolean column per time-based code, labelled with the code."""
    return [time_based_condition(code, now, rules).label(code.value) for code in TIME_CODES]


def anomalies_now(row: Any) -> tuple[str, ...]:
    """The stored codes of a row selected with :func:`time_flags`, plus the flags that are set."""
    return tuple(
        sorted({*row["anomalies"], *(code.value for code in TIME_CODES if row[code.value])})
    )


class ContainerQueries:
    def __init__(self, engine: Engine, rules: CustodyRules) -> None:
        # Each statement reads its own snapshot, as it would in a READ COMMITTED transaction,
        # without the BEGIN and ROLLBACK round trips: half PostgreSQL's CPU for a trail.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.rules = rules

    def trail(
        self, container_id: str, *, now: datetime, as_of: datetime | None = None
    ) -> CustodyTrail | None:
        with self._engine.connect() as connection:
            entries = load_entries(connection, [container_id]).get(container_id, [])
            conflicts = load_conflicts(connection, [container_id]).get(container_id, [])
        if as_of is not None:
            entries = [entry for entry in entries if entry.recorded_at <= as_of]
            conflicts = [item for item in conflicts if item.rejected_at <= as_of]
        if not entries:
            return None
        return reconstruct(entries, now=as_of or now, rules=self.rules, conflicts=conflicts)

    def trails(self, container_ids: list[str], *, now: datetime) -> list[CustodyTrail]:
        """The trails of several containers, in the order given; unknown ones left out."""
        with self._engine.connect() as connection:
            found = reconstruct_trails(connection, container_ids, now=now, rules=self.rules)
        return [found[container_id] for container_id in container_ids if container_id in found]

    def visible(self, container_id: str, scope: Scope) -> bool:
        """Whether a reader with ``scope`` may see the container (True: no scope)."""
        if scope is None:
            return True
        with self._engine.connect() as connection:
            return bool(connection.execute(select(container_visible(container_id, scope))).scalar())

    def outside(self, container_ids: set[str], scope: Scope) -> set[str]:
        """Those of ``container_ids`` a reader with ``scope`` may not see (none: no scope)."""
        if scope is None or not container_ids:
            return set()
        e = tables.entries.c
        inside = select(e.container_id).where(
            e.container_id.in_(sorted(container_ids)), e.container_id.in_(containers_in(scope))
        )
        with self._engine.connect() as connection:
            seen = set(connection.execute(inside.distinct()).scalars())
        return container_ids - seen

    def search(
        self,
        flt: ContainerFilter,
        *,
        now: datetime,
        after: str | None,
        limit: int,
        scope: Scope = None,
    ) -> list[dict[str, Any]]:
        c = tables.containers.c
        query = filtered(
            select(tables.containers, *time_flags(now, self.rules)), flt, now, self.rules
        )
        scoped = in_scope(c.container_id, scope)
        if scoped is not None:
            query = query.where(scoped)
        if after is not None:
            query = query.where(c.container_id > after)
        query = query.order_by(c.container_id).limit(limit)
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        columns = tables.containers.c.keys()
        return [
            {**{name: row[name] for name in columns}, "anomalies": list(anomalies_now(row))}
            for row in rows
        ]

    def entry(self, event_id: UUID) -> RecordedEntry | None:
        with self._engine.connect() as connection:
            rows = _ENTRY.rows(connection, {"event_id": event_id})
        return recorded_entry(rows[0]) if rows else None

    def trails_with_anomalies(
        self,
        code: AnomalyCode | None,
        *,
        now: datetime,
        after: str | None,
        limit: int,
        scope: Scope = None,
    ) -> list[CustodyTrail]:
        c = tables.containers.c
        if code is not None:
            condition = anomaly_condition(code, now, self.rules)
        else:
            condition = or_(
                c.anomalies != [],
                *(time_based_condition(time_code, now, self.rules) for time_code in AnomalyCode),
            )
        query = select(c.container_id).where(condition).order_by(c.container_id).limit(limit)
        scoped = in_scope(c.container_id, scope)
        if scoped is not None:
            query = query.where(scoped)
        if after is not None:
            query = query.where(c.container_id > after)
        with self._engine.connect() as connection:
            ids = list(connection.execute(query).scalars())
            entries = load_entries(connection, ids)
            conflicts = load_conflicts(connection, ids)
        return [
            reconstruct(
                entries[container_id],
                now=now,
                rules=self.rules,
                conflicts=conflicts.get(container_id, ()),
            )
            for container_id in ids
            if container_id in entries
        ]
