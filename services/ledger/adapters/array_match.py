"""``column = ANY(:name)``: one array parameter instead of ``IN`` with one per value.

The statement text stays the same for any number of values, so neither SQLAlchemy, psycopg
nor PostgreSQL parse a new statement for each batch; and the statement is built once, with
the values given when it runs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY


def matches_any_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column = ANY(:name)``; run the statement with ``{name: [values]}``."""
    return column == any_(bindparam(name, type_=ARRAY(column.type)))
