"""``custody rebuild``: recompute the derived read model from the append-only entries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, func, select

from services.ledger.adapters import tables
from services.ledger.adapters.read_model import refresh_containers
from services.ledger.domain.custody import CustodyRules


def count_containers(engine: Engine) -> int:
    with engine.connect() as connection:
        total: int = connection.execute(
            select(func.count(func.distinct(tables.entries.c.container_id)))
        ).scalar_one()
    return total


def rebuild_read_model(
    engine: Engine,
    rules: CustodyRules,
    *,
    chunk: int = 2000,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Replace every ``ledger.containers`` row, report facts included, in one transaction.

    Returns the container count.
    """
    entries = tables.entries
    done = 0
    with engine.begin() as connection:
        connection.execute(delete(tables.containers))
        after = ""
        while True:
            ids = list(
                connection.execute(
                    select(entries.c.container_id)
                    .where(entries.c.container_id > after)
                    .group_by(entries.c.container_id)
                    .order_by(entries.c.container_id)
                    .limit(chunk)
                ).scalars()
            )
            if not ids:
                return done
            refresh_containers(connection, ids, now=datetime.now(UTC), rules=rules)
            done += len(ids)
            after = ids[-1]
            if on_progress is not None:
                on_progress(done)
