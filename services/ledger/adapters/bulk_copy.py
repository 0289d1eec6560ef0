"""COPY rows into a table inside the caller's SQLAlchemy transaction (psycopg 3).

``copy_rows`` appends; ``merge_rows`` upserts by COPYing into a temporary table and merging
it with one ``INSERT … SELECT … ON CONFLICT``, which spares building, sending and parsing a
statement with a bind parameter per value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def copy_rows(
    connection: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as error:
        # Raised as SQLAlchemy raises everything else, so callers handle one family of errors.
        raise DBAPIError.instance(statement, None, error, psycopg.Error) from error


def merge_rows(
    connection: Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    key: str,
    also_set: Mapping[str, str] | None = None,
) -> None:
    """Insert ``rows``, or update every given column of the row with the same ``key``.

    ``also_set`` maps further columns to SQL expressions set on insert and update alike.
    """
    staging = f"merge_{table.replace('.', '_')}"
    extra = dict(also_set or {})
    targets = [*columns, *extra]
    sources = [*columns, *extra.values()]
    updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in targets if column != key)
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE {staging} (LIKE {table} INCLUDING DEFAULTS)"
    )
    copy_rows(connection, staging, columns, rows)
    connection.exec_driver_sql(
        f"INSERT INTO {table} ({', '.join(targets)}) SELECT {', '.join(sources)} FROM {staging} "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )
    connection.exec_driver_sql(f"DROP TABLE {staging}")
