"""Filter queries over recorded entries (``GET /v1/events`` and the EPCIS query interface),
paged by ledger seq."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    Text,
    and_,
    exists,
    false,
    not_,
    or_,
    select,
)

from services.contract.epcis_identifiers import RECEIVING_ROLES
from services.contract.events import EventType
from services.ledger.adapters import tables
from services.ledger.adapters.entry_rows import recorded_entry
from services.ledger.adapters.read_model import trails
from services.ledger.domain.custody import CustodyRules, CustodyTrail
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.event_filter import (
    NO_BIZ_LOCATION,
    EpcMatch,
    EventFilter,
    TypeSelection,
)
from services.ledger.readside.scope import in_scope

_POSSESSION_TYPES = (EventType.PICKUP, EventType.HANDOFF, EventType.INTAKE)
_SHIPMENT_TYPES = (EventType.PICKUP, EventType.HANDOFF, EventType.RECEIPT_ACK)


@dataclass(frozen=True)
class EventPage:
    entries: list[RecordedEntry]
    """The matching entries, in ledger order."""
    trails: dict[str, CustodyTrail]
    """The current trail of each container on the page that has a correction (which of them
    are in force is the trail's to say); the other containers' events stand as recorded."""


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _values(types: tuple[EventType, ...] | frozenset[EventType]) -> list[str]:
    return sorted(t.value for t in types)


class EventQueries:
    def __init__(self, engine: Engine, rules: CustodyRules) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._rules = rules

    def find(
        self,
        flt: EventFilter,
        *,
        party_roles: Mapping[str, str],
        after_seq: int | None,
        limit: int,
    ) -> list[RecordedEntry]:
        """Entries matching every given term, in ledger order, after ``after_seq``."""
        query = _query(flt, party_roles, after_seq, limit)
        with self._engine.connect() as connection:
            return [recorded_entry(row) for row in connection.execute(query).mappings()]

    def page(
        self,
        flt: EventFilter,
        *,
        party_roles: Mapping[str, str],
        after_seq: int | None,
        limit: int,
        now: datetime,
    ) -> EventPage:
        """``find``, with the trails that say which corrections are in force."""
        query = _query(flt, party_roles, after_seq, limit)
        e = tables.entries.c
        with self._engine.connect() as connection:
            found = [recorded_entry(row) for row in connection.execute(query).mappings()]
            containers = sorted({entry.event.container_id for entry in found})
            corrected = connection.execute(
                select(e.container_id)
                .where(e.container_id.in_(containers), e.event_type == EventType.CORRECTION.value)
                .distinct()
            ).scalars()
            by_container = trails(connection, list(corrected), now=now, rules=self._rules)
        return EventPage(found, by_container)

    def last_seq_before(self, recorded_before: datetime) -> int:
        """The seq of the last entry recorded before a time (-1 when there is none: seqs start
        at 0)."""
        e = tables.entries.c
        query = select(e.seq).where(e.recorded_at < recorded_before).order_by(e.seq.desc())
        with self._engine.connect() as connection:
            found = connection.execute(query.limit(1)).scalar_one_or_none()
        return -1 if found is None else int(found)

    def last_seq(self) -> int:
        """The seq of the last entry (-1 when the ledger is empty)."""
        e = tables.entries.c
        with self._engine.connect() as connection:
            found = connection.execute(select(e.seq).order_by(e.seq.desc()).limit(1))
            seq = found.scalar_one_or_none()
        return -1 if seq is None else int(seq)


def _query(
    flt: EventFilter, party_roles: Mapping[str, str], after_seq: int | None, limit: int
) -> Select[Any]:
    e = tables.entries.c
    to_party = e.body["to_party"].astext
    location = e.body["location_id"].astext
    receivers = sorted(party for party, role in party_roles.items() if role in RECEIVING_ROLES)
    is_handoff = e.event_type == EventType.HANDOFF.value
    is_consigning_handoff = and_(is_handoff, not_(to_party.in_(receivers)))

    def selected(selection: TypeSelection) -> ColumnElement[bool]:
        options: list[ColumnElement[bool]] = []
        if selection.event_types:
            options.append(e.event_type.in_(_values(selection.event_types)))
        if selection.receiving_handoffs:
            options.append(and_(is_handoff, to_party.in_(receivers)))
        if selection.consigning_handoffs:
            options.append(is_consigning_handoff)
        if selection.receipt_conditions:
            options.append(
                and_(
                    e.event_type == EventType.RECEIPT_ACK.value,
                    e.body["condition"].astext.in_(sorted(selection.receipt_conditions)),
                )
            )
        return or_(*options) if options else false()

    def matched(match: EpcMatch) -> ColumnElement[bool]:
        options: list[ColumnElement[bool]] = []
        if match.container_ids:
            options.append(e.container_id.in_(match.container_ids))
        options.extend(
            e.container_id.like(_like_prefix(prefix), escape="\\") for prefix in match.prefixes
        )
        return or_(*options) if options else false()

    conditions: list[ColumnElement[bool]] = []
    if flt.ge_event_time is not None:
        conditions.append(e.occurred_at >= flt.ge_event_time)
    if flt.lt_event_time is not None:
        conditions.append(e.occurred_at < flt.lt_event_time)
    if flt.ge_record_time is not None:
        conditions.append(e.recorded_at >= flt.ge_record_time)
    if flt.lt_record_time is not None:
        conditions.append(e.recorded_at < flt.lt_record_time)
    conditions.extend(selected(selection) for selection in flt.selections)
    if flt.read_points:
        conditions.append(location.in_(flt.read_points))
    if flt.biz_locations:
        conditions.append(location.in_(flt.biz_locations))
        conditions.append(not_(e.event_type.in_(_values(NO_BIZ_LOCATION))))
        conditions.append(not_(is_consigning_handoff))
    conditions.extend(matched(match) for match in flt.epc_matches)
    if flt.from_parties:
        conditions.append(e.event_type.in_(_values(_POSSESSION_TYPES)))
        conditions.append(e.body["from_party"].astext.in_(flt.from_parties))
    if flt.to_parties:
        conditions.append(e.event_type.in_(_values(_POSSESSION_TYPES)))
        conditions.append(to_party.in_(flt.to_parties))
    if flt.shipments:
        conditions.append(e.event_type.in_(_values(_SHIPMENT_TYPES)))
        conditions.append(e.body["shipment_id"].astext.in_(flt.shipments))
    if flt.event_ids:
        conditions.append(e.event_id.in_(flt.event_ids))
    if flt.corrected_only:
        c = tables.entries.alias("correction").c
        conditions.append(
            exists().where(
                c.container_id == e.container_id,
                c.event_type == EventType.CORRECTION.value,
                c.body["corrects_event_id"].astext == e.event_id.cast(Text),
            )
        )
    scoped = in_scope(e.container_id, flt.scope)
    if scoped is not None:
        conditions.append(scoped)
    if after_seq is not None:
        conditions.append(e.seq > after_seq)
    return select(tables.entries).where(*conditions).order_by(e.seq).limit(limit)
