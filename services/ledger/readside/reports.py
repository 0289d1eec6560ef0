"""Reads for the reports: mass balance, the shipment log and certificates (docs/reports.md).

Each answer is read in one REPEATABLE READ snapshot. The mass balance and the shipment log read
the report facts the read model keeps per container (one indexed query per window); the
certificate, as of its checkpoint, reads the shipment's entries. The reports themselves are pure
functions (services/ledger/domain/mass_balance.py, shipment_log.py, certificate.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, ColumnElement, Connection, Engine, and_, or_, select

from services.contract.events import EventType
from services.ledger.adapters import tables
from services.ledger.adapters.merkle_log import StoredCheckpoint, inclusion_at, latest_checkpoint
from services.ledger.adapters.read_model import load_entries
from services.ledger.domain.certificate import seqs_to_prove
from services.ledger.domain.custody import CustodyRules
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.mass_balance import Window
from services.ledger.domain.report_facts import ContainerFacts, facts_from_document
from services.ledger.readside.proofs import ProofUnavailable
from services.ledger.readside.scope import Scope, in_scope
from services.registry import tables as registry_tables

_CHUNK = 5000  # containers per IN list (PostgreSQL takes at most 65,535 bind parameters)


@dataclass(frozen=True)
class CertificateInputs:
    entries: list[RecordedEntry]  # every entry of the shipment's containers below the checkpoint
    checkpoint: StoredCheckpoint
    proofs: dict[int, list[bytes]]  # seq → inclusion proof at the checkpoint's tree size
    names: dict[str, str]  # party id → registered name


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def _during(column: Column[datetime], window: Window) -> ColumnElement[bool]:
    return and_(column >= window.start, column < window.end)


def _facts(
    connection: Connection, condition: ColumnElement[bool], scope: Scope
) -> list[ContainerFacts]:
    c = tables.containers.c
    query = select(c.container_id, c.report_facts).where(condition)
    scoped = in_scope(c.container_id, scope)
    if scoped is not None:
        query = query.where(scoped)
    rows = connection.execute(query)
    return [facts_from_document(container_id, document) for container_id, document in rows]


def _shipment_containers(
    connection: Connection, shipment_ids: Sequence[str], *, below_seq: int | None = None
) -> set[str]:
    entries = tables.entries.c
    found: set[str] = set()
    for chunk in _chunks(shipment_ids):
        query = select(entries.container_id).distinct()
        query = query.where(
            entries.event_type == EventType.PICKUP.value,
            entries.body["shipment_id"].astext.in_(chunk),
        )
        if below_seq is not None:
            query = query.where(entries.seq < below_seq)
        found.update(connection.execute(query).scalars())
    return found


class ReportQueries:
    def __init__(self, engine: Engine, rules: CustodyRules) -> None:
        self._engine = engine.execution_options(isolation_level="REPEATABLE READ")
        self.rules = rules

    def mass_balance_facts(self, window: Window, scope: Scope = None) -> list[ContainerFacts]:
        """Facts of the containers with a pickup, intake or receipt_ack in the window (within
        the scope, if any)."""
        c = tables.containers.c
        with self._engine.begin() as connection:
            return _facts(
                connection,
                or_(
                    _during(c.pickup_at, window),
                    _during(c.intake_at, window),
                    _during(c.receipt_at, window),
                ),
                scope,
            )

    def shipment_log_facts(self, window: Window, scope: Scope = None) -> list[ContainerFacts]:
        """Facts of every container of each shipment picked up or taken in in the window
        (those within the scope, if any)."""
        c = tables.containers.c
        shipments = select(c.shipment_id).where(
            or_(_during(c.pickup_at, window), _during(c.intake_at, window))
        )
        with self._engine.begin() as connection:
            return _facts(connection, c.shipment_id.in_(shipments), scope)

    def party_names(self) -> dict[str, str]:
        with self._engine.connect() as connection:
            return _party_names(connection)

    def certificate_inputs(self, shipment_id: str) -> CertificateInputs:
        """The shipment's entries as of the latest checkpoint, with the proofs it needs.

        Raises ProofUnavailable when no checkpoint has been signed yet.
        """
        with self._engine.begin() as connection:
            stored = latest_checkpoint(connection)
            if stored is None:
                raise ProofUnavailable("no checkpoint has been signed yet")
            size = stored.checkpoint.tree_size
            ids = _shipment_containers(connection, [shipment_id], below_seq=size)
            entries = [
                entry
                for chunk in _chunks(sorted(ids))
                for container_entries in load_entries(
                    connection, chunk, up_to_seq=size - 1
                ).values()
                for entry in container_entries
            ]
            proofs = {
                seq: inclusion_at(connection, seq, size)
                for seq in seqs_to_prove(entries, shipment_id, size)
            }
            names = _party_names(connection)
        return CertificateInputs(entries, stored, proofs, names)


def _party_names(connection: Connection) -> dict[str, str]:
    parties = registry_tables.parties.c
    return {
        party_id: name
        for party_id, name in connection.execute(select(parties.party_id, parties.name))
    }
