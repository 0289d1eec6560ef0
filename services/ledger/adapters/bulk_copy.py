"""COPY rows into a table inside the caller's SQLAlchemy transaction (psycopg 3).

``copy_rows`` appends; ``merge_rows`` upserts by COPYing into a temporary table and merging
it with one ``INSERT … SELECT … ON CONFLICT``, which spares building, sending and parsing a
statement with a bind parameter per value. Both use COPY's binary format, whose values cost
psycopg about half the CPU of the text format; the column types come from ``tables``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

import orjson
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Dialect, Table

from services.ledger.adapters.driver import errors_as_dbapi_errors, psycopg_connection


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


@cache
def _column_types(table: Table, columns: tuple[str, ...], dialect: Dialect) -> list[str]:
    return [table.c[column].type.compile(dialect=dialect).lower() for column in columns]


def copy_rows(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    into: str | None = None,
) -> None:
    """COPY ``rows`` into ``table`` (or into ``into``, a table shaped like it)."""
    destination = into or table.fullname
    statement = f"COPY {destination} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    with (
        errors_as_dbapi_errors(statement),
        psycopg_connection(connection).cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        copy.set_types(_column_types(table, tuple(columns), connection.dialect))
        for row in rows:
            copy.write_row(row)


def merge_rows(
    connection: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    key: str,
    also_set: Mapping[str, str] | None = None,
) -> None:
    """Insert ``rows``, or update every given column of the row with the same ``key``.

    ``also_set`` maps further columns to SQL expressions set on insert and update alike.
    """
    target = table.fullname
    # One staging table per session and column list, emptied at each commit: creating and
    # dropping one per batch cost catalog writes that small batches felt.
    shape = hashlib.sha256(f"{target}({','.join(columns)})".encode()).hexdigest()[:12]
    staging = f"merge_{table.name}_{shape}"
    extra = dict(also_set or {})
    targets = [*columns, *extra]
    sources = [*columns, *extra.values()]
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in targets if column != key)
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {target} INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    copy_rows(connection, table, columns, rows, into=staging)
    connection.exec_driver_sql(
        f"INSERT INTO {target} ({', '.join(targets)}) SELECT {', '.join(sources)} FROM {staging} "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )
    connection.exec_driver_sql(f"DELETE FROM {staging}")  # for a next merge before the commit
