"""``column = ANY(:values)``: one array parameter instead of ``IN`` with one per value.

The statement text stays the same for any number of values, so neither SQLAlchemy, psycopg
nor PostgreSQL parse a new statement for each batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY


def matches_any(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


def matches_any_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column = ANY(:name)`` for a statement built once and given the values when run."""
    return column == any_(bindparam(name, type_=ARRAY(column.type)))
