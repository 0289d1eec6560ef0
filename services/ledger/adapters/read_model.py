"""The ``containers`` read model: derived from entries by the pure reconstruction.

Each row also carries the container's report facts (``report_facts`` and the indexed
``shipment_id``, ``pickup_at``, ``intake_at``, ``receipt_at``), which the mass balance and the
shipment log read instead of reconstructing trails (docs/reports.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, select

from services.ledger.adapters import tables
from services.ledger.adapters.array_match import matches_any_of
from services.ledger.adapters.bulk_copy import jsonb, merge_rows
from services.ledger.adapters.driver import PreparedRead
from services.ledger.adapters.entry_rows import recorded_entry
from services.ledger.domain.custody import (
    TIME_BASED_CODES,
    CustodyRules,
    CustodyTrail,
    reconstruct,
)
from services.ledger.domain.entries import DuplicateConflict, RecordedEntry
from services.ledger.domain.messages import DUPLICATE_CONFLICT
from services.ledger.domain.report_facts import ContainerFacts, container_facts, facts_document

_ENTRIES_OF = (
    select(tables.entries)
    .where(matches_any_of(tables.entries.c.container_id, "container_ids"))
    .order_by(tables.entries.c.seq)
)
_DELETE_CONTAINERS = delete(tables.containers).where(
    matches_any_of(tables.containers.c.container_id, "container_ids")
)
_ENTRIES = PreparedRead(_ENTRIES_OF)
_ENTRIES_UP_TO = PreparedRead(_ENTRIES_OF.where(tables.entries.c.seq <= bindparam("up_to_seq")))
_CONFLICTS = PreparedRead(
    select(
        tables.rejected.c.event_id, tables.rejected.c.container_id, tables.rejected.c.rejected_at
    ).where(
        matches_any_of(tables.rejected.c.container_id, "container_ids"),
        tables.rejected.c.reason_code == DUPLICATE_CONFLICT,
    )
)


def load_entries(
    connection: Connection, container_ids: Collection[str], *, up_to_seq: int | None = None
) -> dict[str, list[RecordedEntry]]:
    parameters: dict[str, object] = {"container_ids": list(container_ids)}
    query = _ENTRIES
    if up_to_seq is not None:
        query = _ENTRIES_UP_TO
        parameters["up_to_seq"] = up_to_seq
    grouped: dict[str, list[RecordedEntry]] = defaultdict(list)
    for row in query.rows(connection, parameters):
        grouped[row["container_id"]].append(recorded_entry(row))
    return grouped


def load_conflicts(
    connection: Connection, container_ids: Collection[str]
) -> dict[str, list[DuplicateConflict]]:
    grouped: dict[str, list[DuplicateConflict]] = defaultdict(list)
    for row in _CONFLICTS.rows(connection, {"container_ids": list(container_ids)}):
        grouped[row["container_id"]].append(
            DuplicateConflict(row["event_id"], row["container_id"], row["rejected_at"])
        )
    return grouped


def trails(
    connection: Connection, container_ids: Collection[str], *, now: datetime, rules: CustodyRules
) -> dict[str, CustodyTrail]:
    entries = load_entries(connection, container_ids)
    conflicts = load_conflicts(connection, container_ids)
    return {
        container_id: reconstruct(
            container_entries, now=now, rules=rules, conflicts=conflicts.get(container_id, ())
        )
        for container_id, container_entries in entries.items()
    }


def refresh_containers(
    connection: Connection, container_ids: Collection[str], *, now: datetime, rules: CustodyRules
) -> None:
    """Recompute the read-model rows of ``container_ids`` from their entries."""
    if container_ids:
        upsert_trails(connection, trails(connection, container_ids, now=now, rules=rules).values())


def report_facts_columns(facts: ContainerFacts) -> dict[str, object]:
    return {
        "report_facts": facts_document(facts),
        "shipment_id": facts.shipment_id,
        "pickup_at": facts.pickup.at if facts.pickup is not None else None,
        "intake_at": facts.intake.at if facts.intake is not None else None,
        "receipt_at": facts.receipt.at if facts.receipt is not None else None,
    }


def _container_row(trail: CustodyTrail) -> dict[str, object]:
    assert trail.state is not None
    stored_codes = sorted(
        {anomaly.code.value for anomaly in trail.anomalies}
        - {code.value for code in TIME_BASED_CODES}
    )
    facts = report_facts_columns(container_facts(trail))
    return {
        "container_id": trail.container_id,
        "state": trail.state.value,
        "custodian": trail.custodian,
        "location_id": trail.location_id,
        "first_dropoff_at": trail.first_dropoff_at,
        "state_since": trail.state_since,
        "last_occurred_at": trail.last_occurred_at,
        "entry_count": len(trail.events),
        "head_seq": trail.head_seq,
        "anomalies": stored_codes,
        **facts,
        "report_facts": jsonb(facts["report_facts"]),
    }


def upsert_trails(connection: Connection, trails: Iterable[CustodyTrail]) -> None:
    rows = []
    stateless = []
    for trail in trails:
        if trail.state is None or trail.head_seq is None or trail.last_occurred_at is None:
            # No effective event gives it a state (say all were corrected): like a rebuild,
            # the read model holds no row for it; its entries stay in the ledger.
            stateless.append(trail.container_id)
        else:
            rows.append(_container_row(trail))
    if stateless:
        connection.execute(_DELETE_CONTAINERS, {"container_ids": stateless})
    if rows:
        merge_rows(
            connection,
            tables.containers,
            list(rows[0]),
            [tuple(row.values()) for row in rows],
            key="container_id",
            also_set={"updated_at": "now()"},
        )
