"""EPCIS named queries and subscriptions in PostgreSQL (``epcis.*``, migration 0010)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.ledger.adapters.tables import epcis_queries, epcis_subscriptions


@dataclass(frozen=True)
class NamedQuery:
    name: str
    query: dict[str, Any]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Subscription:
    subscription_id: UUID
    query_name: str
    dest: str
    signature_token: str | None
    stream: bool
    schedule: dict[str, str] | None
    report_if_empty: bool
    initial_record_time: datetime | None
    created_by: str
    """The token whose scope the deliveries are read within."""
    created_at: datetime
    after_seq: int
    batch_size: int
    attempts: int
    next_attempt_at: datetime
    last_notified_at: datetime | None
    last_error: str | None


class QueryExists(Exception):
    pass


def _subscription(row: Any) -> Subscription:
    fields = {name: row[name] for name in Subscription.__dataclass_fields__}
    return Subscription(**fields)


class EpcisQueryStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- named queries ---

    def create_query(self, name: str, query: dict[str, Any], created_by: str) -> NamedQuery:
        try:
            with self._engine.begin() as connection:
                row = connection.execute(
                    insert(epcis_queries)
                    .values(name=name, query=query, created_by=created_by)
                    .returning(*epcis_queries.c)
                ).one()
        except IntegrityError as error:
            raise QueryExists(name) from error
        return NamedQuery(**row._mapping)

    def query(self, name: str) -> NamedQuery | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(epcis_queries).where(epcis_queries.c.name == name)
            ).first()
        return NamedQuery(**row._mapping) if row is not None else None

    def queries(self, *, limit: int) -> list[NamedQuery]:
        query = select(epcis_queries).order_by(epcis_queries.c.name).limit(limit)
        with self._engine.connect() as connection:
            return [NamedQuery(**row._mapping) for row in connection.execute(query)]

    def delete_query(self, name: str) -> bool:
        """Deletes the query and (by the foreign key) its subscriptions."""
        with self._engine.begin() as connection:
            deleted = connection.execute(
                delete(epcis_queries).where(epcis_queries.c.name == name)
            ).rowcount
        return bool(deleted)

    # --- subscriptions ---

    def subscribe(self, values: dict[str, Any]) -> Subscription:
        with self._engine.begin() as connection:
            row = (
                connection.execute(
                    insert(epcis_subscriptions).values(**values).returning(*epcis_subscriptions.c)
                )
                .mappings()
                .one()
            )
        return _subscription(row)

    def subscriptions(self, query_name: str) -> list[Subscription]:
        s = epcis_subscriptions.c
        query = select(epcis_subscriptions).where(s.query_name == query_name).order_by(s.created_at)
        with self._engine.connect() as connection:
            return [_subscription(row) for row in connection.execute(query).mappings()]

    def subscription(self, query_name: str, subscription_id: UUID) -> Subscription | None:
        s = epcis_subscriptions.c
        query = select(epcis_subscriptions).where(
            s.query_name == query_name, s.subscription_id == subscription_id
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        return _subscription(row) if row is not None else None

    def unsubscribe(self, query_name: str, subscription_id: UUID) -> bool:
        s = epcis_subscriptions.c
        with self._engine.begin() as connection:
            deleted = connection.execute(
                delete(epcis_subscriptions).where(
                    s.query_name == query_name, s.subscription_id == subscription_id
                )
            ).rowcount
        return bool(deleted)


# --- what the notifier does with them, within its own transaction ---


def claim_due(connection: Connection, now: datetime) -> tuple[Subscription, dict[str, Any]] | None:
    """The subscription due soonest, locked until the transaction ends, with its query."""
    s, q = epcis_subscriptions.c, epcis_queries.c
    row = (
        connection.execute(
            select(epcis_subscriptions, q.query)
            .join_from(epcis_subscriptions, epcis_queries, q.name == s.query_name)
            .where(s.next_attempt_at <= now)
            .order_by(s.next_attempt_at)
            .limit(1)
            .with_for_update(of=epcis_subscriptions, skip_locked=True)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    return _subscription(row), dict(row["query"])


def save_progress(connection: Connection, subscription_id: UUID, **values: Any) -> None:
    connection.execute(
        update(epcis_subscriptions)
        .where(epcis_subscriptions.c.subscription_id == subscription_id)
        .values(**values)
    )


def soonest_due(connection: Connection) -> datetime | None:
    found: datetime | None = connection.execute(
        select(func.min(epcis_subscriptions.c.next_attempt_at))
    ).scalar_one_or_none()
    return found
