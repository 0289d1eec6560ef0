"""Custody reconstruction (docs/architecture.md §3): a trail as a pure function of its entries.

``reconstruct`` orders the entries (``order_entries``), resolves corrections, folds the effective
events through the state machine and returns the state, custodian, custody intervals, the ordered
events (corrected ones shown and marked) and the anomalies. Anomalies are recorded, never reasons
to drop an event: an event that is not allowed from the current state is still applied.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from services.contract.events import (
    Correction,
    Dropoff,
    EventType,
    Handoff,
    Intake,
    Pickup,
    ReceiptAck,
    Sealed,
)
from services.ledger.domain.entries import DuplicateConflict, RecordedEntry
from services.ledger.domain.weights import kg_text


class ContainerState(StrEnum):
    OPEN = "open"
    SEALED = "sealed"
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    PROCESSED = "processed"


class AnomalyCode(StrEnum):
    CUSTODY_MISMATCH = "custody_mismatch"
    OUT_OF_ORDER = "out_of_order"
    WEIGHT_DISCREPANCY = "weight_discrepancy"
    AFTER_TERMINAL = "after_terminal"
    CLOCK_SKEW = "clock_skew"
    LATE_ARRIVAL = "late_arrival"
    DUPLICATE_CONFLICT = "duplicate_conflict"
    ACCUMULATION_WARNING = "accumulation_warning"
    ACCUMULATION_LIMIT = "accumulation_limit"
    OVERDUE_IN_TRANSIT = "overdue_in_transit"
    MISSING_ACK = "missing_ack"


TIME_BASED_CODES: frozenset[AnomalyCode] = frozenset(
    {
        AnomalyCode.ACCUMULATION_WARNING,
        AnomalyCode.ACCUMULATION_LIMIT,
        AnomalyCode.OVERDUE_IN_TRANSIT,
        AnomalyCode.MISSING_ACK,
    }
)


@dataclass(frozen=True)
class CustodyRules:
    weight_tolerance_kg: float = 1.0
    weight_tolerance_pct: float = 2.0
    clock_skew: timedelta = timedelta(minutes=5)
    late_arrival: timedelta = timedelta(hours=24)
    accumulation_warning: timedelta = timedelta(days=300)
    accumulation_limit: timedelta = timedelta(days=365)
    overdue_in_transit: timedelta = timedelta(days=14)
    missing_ack: timedelta = timedelta(hours=72)


@dataclass(frozen=True)
class Anomaly:
    code: AnomalyCode
    event_id: UUID | None
    detail: str


@dataclass(frozen=True)
class CustodyInterval:
    custodian: str
    start: datetime
    end: datetime | None
    opened_by: UUID
    closed_by: UUID | None


@dataclass(frozen=True)
class TrailEvent:
    entry: RecordedEntry
    corrected: bool
    corrected_by: UUID | None
    effective: bool
    anomalies: tuple[Anomaly, ...]


@dataclass(frozen=True)
class CustodyTrail:
    container_id: str
    state: ContainerState | None
    custodian: str | None
    location_id: str | None
    first_dropoff_at: datetime | None
    state_since: datetime | None
    last_occurred_at: datetime | None
    intervals: tuple[CustodyInterval, ...]
    events: tuple[TrailEvent, ...]
    anomalies: tuple[Anomaly, ...]
    head_seq: int | None


# --- ordering ---------------------------------------------------------------------------------


def _instant(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def order_entries(entries: Iterable[RecordedEntry]) -> list[RecordedEntry]:
    """Order by occurred_at (as an instant), then device_seq within a device, then ledger seq.

    Within a group of equal occurred_at, the events of one device that all carry a device_seq
    are re-ordered by device_seq among the positions that device occupies in the group; every
    other event keeps its seq position. The result depends only on the entries, never on the
    order they are given in.
    """
    keyed = sorted(
        ((_instant(e.event.occurred_at), e.seq, e) for e in entries), key=lambda k: k[:2]
    )
    ordered = [entry for _, _, entry in keyed]
    start = 0
    while start < len(ordered):
        moment = keyed[start][0]
        end = start + 1
        while end < len(ordered) and keyed[end][0] == moment:
            end += 1
        if end - start > 1:
            ordered[start:end] = _order_tie(ordered[start:end])
        start = end
    return ordered


def _order_tie(group: list[RecordedEntry]) -> list[RecordedEntry]:
    positions: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, entry in enumerate(group):
        if entry.origin.device_id is not None:
            positions[(entry.origin.party_id, entry.origin.device_id)].append(index)
    result = list(group)
    for indexes in positions.values():
        members = [group[i] for i in indexes]
        if len(members) < 2 or any(m.event.device_seq is None for m in members):
            continue
        members.sort(key=lambda m: (m.event.device_seq or 0, m.seq))
        for index, member in zip(indexes, members, strict=True):
            result[index] = member
    return result


# --- corrections ------------------------------------------------------------------------------


def _resolve_corrections(ordered: list[RecordedEntry]) -> tuple[set[UUID], dict[UUID, UUID]]:
    """Which corrections are in force, and which event each corrected event is corrected by.

    A correction is in force when its target is among the entries and no correction in force
    corrects the correction itself (a correction of a correction reinstates the original).
    Corrections that target each other in a cycle are never in force. Position in time does
    not matter: a correction recorded later still voids an earlier event.
    """
    known = {entry.event_id for entry in ordered}
    corrections = [entry.event for entry in ordered if isinstance(entry.event, Correction)]
    attackers: dict[UUID, list[UUID]] = defaultdict(list)
    for correction in corrections:
        if correction.corrects_event_id in known:
            attackers[correction.corrects_event_id].append(correction.event_id)
    targets = {c.event_id: c.corrects_event_id for c in corrections}

    # Decide each correction once all corrections of it are decided (leaves first).
    pending = {c.event_id: len(attackers[c.event_id]) for c in corrections}
    ready = [event_id for event_id, count in pending.items() if count == 0]
    in_force: set[UUID] = set()
    while ready:
        event_id = ready.pop()
        target = targets[event_id]
        if target in known and not any(a in in_force for a in attackers[event_id]):
            in_force.add(event_id)
        if target in pending:  # the target is itself a correction
            pending[target] -= 1
            if pending[target] == 0:
                ready.append(target)

    corrected_by: dict[UUID, UUID] = {}
    for correction in corrections:  # trail order: the first correction in force names it
        if correction.event_id in in_force:
            corrected_by.setdefault(correction.corrects_event_id, correction.event_id)
    return in_force, corrected_by


# --- the state machine ------------------------------------------------------------------------

_S = ContainerState
_ALLOWED_FROM: dict[EventType, frozenset[ContainerState | None]] = {
    EventType.DROPOFF: frozenset({None, _S.OPEN}),
    EventType.SEALED: frozenset({_S.OPEN}),
    EventType.PICKUP: frozenset({_S.SEALED, _S.IN_TRANSIT}),
    EventType.HANDOFF: frozenset({_S.SEALED, _S.IN_TRANSIT}),
    EventType.INTAKE: frozenset({_S.IN_TRANSIT}),
    EventType.RECEIPT_ACK: frozenset({_S.RECEIVED}),
    EventType.PROCESSED: frozenset({_S.RECEIVED, _S.ACKNOWLEDGED}),
}
_TRANSFER = Pickup | Handoff | Intake
_EVENT_TYPES = {kind.value: kind for kind in EventType}
STATE_AFTER: Mapping[EventType, ContainerState] = {
    EventType.DROPOFF: _S.OPEN,
    EventType.SEALED: _S.SEALED,
    EventType.PICKUP: _S.IN_TRANSIT,
    EventType.HANDOFF: _S.IN_TRANSIT,
    EventType.INTAKE: _S.RECEIVED,
    EventType.RECEIPT_ACK: _S.ACKNOWLEDGED,
    EventType.PROCESSED: _S.PROCESSED,
}
"""The state each event type brings a container to (incidents and corrections bring none)."""


def _span(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = [
        f"{value} {unit}"
        for value, unit in ((days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s"))
        if value
    ]
    return ("-" if delta < timedelta(0) else "") + (" ".join(parts) or "0 s")


def _state_name(state: ContainerState | None) -> str:
    return state.value if state is not None else "none (no earlier event)"


@dataclass
class _Fold:
    rules: CustodyRules
    state: ContainerState | None = None
    custodian: str | None = None
    state_since: datetime | None = None
    entered_by: UUID | None = None
    location_id: str | None = None
    first_dropoff_at: datetime | None = None
    sealed_weight: float | None = None
    intervals: list[CustodyInterval] = field(default_factory=list)

    def apply(self, entry: RecordedEntry) -> tuple[bool, list[Anomaly]]:
        """Fold one uncorrected, non-correction event; returns (applied, anomalies)."""
        event = entry.event
        event_id = event.event_id
        kind = _EVENT_TYPES[event.type]
        if self.state is _S.PROCESSED:
            return False, [
                Anomaly(
                    AnomalyCode.AFTER_TERMINAL,
                    event_id,
                    f"{kind.value} after the container was processed; not applied",
                )
            ]
        anomalies: list[Anomaly] = []
        mismatch = self._custody_mismatch(entry, kind)
        if mismatch is not None:
            anomalies.append(mismatch)

        new_state: ContainerState | None = self.state
        new_custodian = self.custodian
        if kind is not EventType.INCIDENT:
            allowed = self.state in _ALLOWED_FROM[kind]
            target = STATE_AFTER[kind]
            new_state = target
            if not allowed:
                anomalies.append(
                    Anomaly(
                        AnomalyCode.OUT_OF_ORDER,
                        event_id,
                        f"{kind.value} is not allowed from state {_state_name(self.state)}; "
                        f"applied as {target.value}",
                    )
                )
            if isinstance(event, _TRANSFER):
                new_custodian = event.to_party
            elif isinstance(event, Dropoff) and (self.state is None or not allowed):
                new_custodian = entry.origin.party_id

        if isinstance(event, Intake):
            anomalies.extend(self._weight_check("intake weight", event.weight_kg, event_id))
        elif isinstance(event, ReceiptAck):
            anomalies.extend(
                self._weight_check("accepted weight", event.accepted_weight_kg, event_id)
            )
        elif isinstance(event, Sealed):
            self.sealed_weight = event.weight_kg
        elif isinstance(event, Dropoff) and self.first_dropoff_at is None:
            self.first_dropoff_at = event.occurred_at

        if new_state is not self.state:
            self.state = new_state
            self.state_since = event.occurred_at
            self.entered_by = event_id
        if new_custodian is not None and new_custodian != self.custodian:
            self._close_interval(event.occurred_at, event_id)
            self.intervals.append(
                CustodyInterval(new_custodian, event.occurred_at, None, event_id, None)
            )
            self.custodian = new_custodian
        if new_state is _S.PROCESSED:
            self._close_interval(event.occurred_at, event_id)
        self.location_id = event.location_id
        return True, anomalies

    def _custody_mismatch(self, entry: RecordedEntry, kind: EventType) -> Anomaly | None:
        if self.custodian is None:
            return None
        event = entry.event
        if isinstance(event, _TRANSFER):
            if event.from_party == self.custodian:
                return None
            detail = f"{kind.value} from_party {event.from_party} is not the custodian"
        elif kind in (
            EventType.SEALED,
            EventType.INCIDENT,
            EventType.PROCESSED,
            EventType.RECEIPT_ACK,
        ) or (kind is EventType.DROPOFF and self.state is _S.OPEN):
            if entry.origin.party_id == self.custodian:
                return None
            detail = f"{kind.value} posted by {entry.origin.party_id}, which is not the custodian"
        else:
            return None
        return Anomaly(AnomalyCode.CUSTODY_MISMATCH, event.event_id, f"{detail} {self.custodian}")

    def _weight_check(self, label: str, weight: float, event_id: UUID) -> list[Anomaly]:
        sealed = self.sealed_weight
        if sealed is None:
            return []
        limit = max(self.rules.weight_tolerance_kg, sealed * self.rules.weight_tolerance_pct / 100)
        difference = abs(weight - sealed)
        if difference <= limit:
            return []
        return [
            Anomaly(
                AnomalyCode.WEIGHT_DISCREPANCY,
                event_id,
                f"{label} {kg_text(weight)} differs from sealed weight {kg_text(sealed)} "
                f"by {kg_text(difference)} (limit {kg_text(limit)})",
            )
        ]

    def _close_interval(self, at: datetime, event_id: UUID) -> None:
        if self.intervals and self.intervals[-1].end is None:
            last = self.intervals[-1]
            self.intervals[-1] = CustodyInterval(
                last.custodian, last.start, at, last.opened_by, event_id
            )

    def time_based(self, now: datetime) -> list[Anomaly]:
        rules = self.rules
        if self.state in (_S.OPEN, _S.SEALED) and self.first_dropoff_at is not None:
            age = now - self.first_dropoff_at
            for code, limit in (
                (AnomalyCode.ACCUMULATION_LIMIT, rules.accumulation_limit),
                (AnomalyCode.ACCUMULATION_WARNING, rules.accumulation_warning),
            ):
                if age >= limit:
                    return [
                        Anomaly(
                            code,
                            self.entered_by,
                            f"accumulating for {_span(age)} since the first dropoff "
                            f"(threshold {_span(limit)})",
                        )
                    ]
            return []
        if self.state_since is None:
            return []
        age = now - self.state_since
        if self.state is _S.IN_TRANSIT and age > rules.overdue_in_transit:
            return [
                Anomaly(
                    AnomalyCode.OVERDUE_IN_TRANSIT,
                    self.entered_by,
                    f"in transit for {_span(age)} (limit {_span(rules.overdue_in_transit)})",
                )
            ]
        if self.state is _S.RECEIVED and age > rules.missing_ack:
            return [
                Anomaly(
                    AnomalyCode.MISSING_ACK,
                    self.entered_by,
                    f"received {_span(age)} ago without a receipt_ack "
                    f"(limit {_span(rules.missing_ack)})",
                )
            ]
        return []


def _timing(entry: RecordedEntry, rules: CustodyRules) -> list[Anomaly]:
    event_id = entry.event_id
    lead = entry.event.occurred_at - entry.received_at
    if lead > rules.clock_skew:
        return [
            Anomaly(
                AnomalyCode.CLOCK_SKEW,
                event_id,
                f"occurred_at is {_span(lead)} after received_at (limit {_span(rules.clock_skew)})",
            )
        ]
    if -lead > rules.late_arrival:
        return [
            Anomaly(
                AnomalyCode.LATE_ARRIVAL,
                event_id,
                f"received {_span(-lead)} after it occurred (limit {_span(rules.late_arrival)})",
            )
        ]
    return []


def reconstruct(
    entries: Iterable[RecordedEntry],
    *,
    now: datetime,
    rules: CustodyRules = CustodyRules(),
    conflicts: Iterable[DuplicateConflict] = (),
) -> CustodyTrail:
    """The custody trail of one container from its entries (in any order)."""
    ordered = order_entries(entries)
    container_ids = {entry.container_id for entry in ordered}
    if len(container_ids) > 1:
        raise ValueError(f"entries of more than one container: {sorted(container_ids)}")

    conflict_anomalies: dict[UUID, list[Anomaly]] = defaultdict(list)
    for conflict in sorted(conflicts, key=lambda c: (c.rejected_at, str(c.event_id))):
        conflict_anomalies[conflict.event_id].append(
            Anomaly(
                AnomalyCode.DUPLICATE_CONFLICT,
                conflict.event_id,
                f"event_id {conflict.event_id} was sent again with different content "
                f"(rejected at {conflict.rejected_at.isoformat()})",
            )
        )

    in_force, corrected_by = _resolve_corrections(ordered)
    fold = _Fold(rules)
    events: list[TrailEvent] = []
    for entry in ordered:
        event_id = entry.event_id
        correction = corrected_by.get(event_id)
        anomalies: list[Anomaly] = []
        if isinstance(entry.event, Correction):
            effective = event_id in in_force
        elif correction is not None:
            effective = False
        else:
            effective, anomalies = fold.apply(entry)
        anomalies.extend(_timing(entry, rules))
        anomalies.extend(conflict_anomalies.pop(event_id, ()))
        events.append(
            TrailEvent(
                entry=entry,
                corrected=correction is not None,
                corrected_by=correction,
                effective=effective,
                anomalies=tuple(anomalies),
            )
        )

    all_anomalies = [anomaly for event in events for anomaly in event.anomalies]
    all_anomalies.extend(a for unmatched in conflict_anomalies.values() for a in unmatched)
    all_anomalies.extend(fold.time_based(now))
    return CustodyTrail(
        container_id=ordered[0].container_id if ordered else "",
        state=fold.state,
        custodian=fold.custodian,
        location_id=fold.location_id,
        first_dropoff_at=fold.first_dropoff_at,
        state_since=fold.state_since,
        last_occurred_at=max((e.event.occurred_at for e in ordered), default=None),
        intervals=tuple(fold.intervals),
        events=tuple(events),
        anomalies=tuple(all_anomalies),
        head_seq=max((e.seq for e in ordered), default=None),
    )
