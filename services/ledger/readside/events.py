"""The EPCIS-style filter query over recorded entries (``GET /v1/events``), paged by ledger seq."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, and_, false, not_, or_, select

from services.contract.epcis_identifiers import RECEIVING_ROLES
from services.contract.events import EventType
from services.ledger.adapters import tables
from services.ledger.adapters.entry_rows import recorded_entry
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.event_filter import NO_BIZ_LOCATION, EpcMatch, StepSelection


@dataclass(frozen=True)
class EventFilter:
    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    ge_record_time: datetime | None = None
    lt_record_time: datetime | None = None
    steps: StepSelection | None = None
    biz_locations: tuple[str, ...] = ()
    read_points: tuple[str, ...] = ()
    epcs: EpcMatch | None = None


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


class EventQueries:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def find(
        self,
        flt: EventFilter,
        *,
        party_roles: Mapping[str, str],
        after_seq: int | None,
        limit: int,
    ) -> list[RecordedEntry]:
        """Entries matching every given term, in ledger order, after ``after_seq``."""
        e = tables.entries.c
        to_party = e.body["to_party"].astext
        location = e.body["location_id"].astext
        receivers = sorted(party for party, role in party_roles.items() if role in RECEIVING_ROLES)
        is_receiving_handoff = and_(
            e.event_type == EventType.HANDOFF.value, to_party.in_(receivers)
        )
        is_consigning_handoff = and_(
            e.event_type == EventType.HANDOFF.value, not_(to_party.in_(receivers))
        )
        conditions: list[ColumnElement[bool]] = []
        if flt.ge_event_time is not None:
            conditions.append(e.occurred_at >= flt.ge_event_time)
        if flt.lt_event_time is not None:
            conditions.append(e.occurred_at < flt.lt_event_time)
        if flt.ge_record_time is not None:
            conditions.append(e.recorded_at >= flt.ge_record_time)
        if flt.lt_record_time is not None:
            conditions.append(e.recorded_at < flt.lt_record_time)
        if flt.steps is not None:
            options: list[ColumnElement[bool]] = []
            if flt.steps.event_types:
                options.append(e.event_type.in_(sorted(t.value for t in flt.steps.event_types)))
            if flt.steps.receiving_handoffs:
                options.append(is_receiving_handoff)
            if flt.steps.consigning_handoffs:
                options.append(is_consigning_handoff)
            conditions.append(or_(*options) if options else false())
        if flt.read_points:
            conditions.append(location.in_(flt.read_points))
        if flt.biz_locations:
            conditions.append(location.in_(flt.biz_locations))
            conditions.append(not_(e.event_type.in_(sorted(t.value for t in NO_BIZ_LOCATION))))
            conditions.append(not_(is_consigning_handoff))
        if flt.epcs is not None:
            matches: list[ColumnElement[bool]] = []
            if flt.epcs.container_ids:
                matches.append(e.container_id.in_(flt.epcs.container_ids))
            matches.extend(
                e.container_id.like(_like_prefix(prefix), escape="\\")
                for prefix in flt.epcs.prefixes
            )
            conditions.append(or_(*matches) if matches else false())
        if after_seq is not None:
            conditions.append(e.seq > after_seq)
        query = select(tables.entries).where(*conditions).order_by(e.seq).limit(limit)
        with self._engine.connect() as connection:
            return [recorded_entry(row) for row in connection.execute(query).mappings()]
