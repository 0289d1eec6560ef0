"""Reading within a scope: the containers a set of parties took part in (docs/api.md).

A container is in the scope of parties S when one of its entries was posted by a party of S or
names one as ``from_party``, ``to_party`` or ``destination_party``: the parties that had custody
of it (the site that took the dropoff, every receiver of a transfer), posted for it, or are the
named destination of its shipment. ``None`` is no scope: every container.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, Text, cast, exists, select
from sqlalchemy.dialects.postgresql import ARRAY, array

from services.ledger.adapters import tables

Scope = frozenset[str] | None


def _parties_named() -> Any:
    """The expression ``entries_parties_ix`` (migration 0012) indexes."""
    e = tables.entries.c
    return array(
        [
            e.origin_party,
            e.body["from_party"].astext,
            e.body["to_party"].astext,
            e.body["destination_party"].astext,
        ]
    )


def names_any(scope: frozenset[str]) -> ColumnElement[bool]:
    """An entry posted by, or naming, a party of ``scope`` (``entries_parties_ix``)."""
    overlap: ColumnElement[bool] = _parties_named().overlap(cast(sorted(scope), ARRAY(Text)))
    return overlap


def containers_in(scope: frozenset[str]) -> Select[Any]:
    e = tables.entries.c
    return select(e.container_id).where(names_any(scope)).distinct()


def in_scope(container_id: ColumnElement[str], scope: Scope) -> ColumnElement[bool] | None:
    """A condition on a container-id column, or None when nothing is to be filtered."""
    if scope is None:
        return None
    return container_id.in_(containers_in(scope))


def container_visible(container_id: str, scope: frozenset[str]) -> ColumnElement[bool]:
    e = tables.entries.c
    return exists().where(e.container_id == container_id, names_any(scope))
