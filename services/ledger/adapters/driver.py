"""The psycopg connection beneath a SQLAlchemy one, for the few paths that need it directly.

They run inside the caller's SQLAlchemy connection and transaction, and raise psycopg's
errors as SQLAlchemy's ``DBAPIError``, so callers handle one family of errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import ClauseElement, Connection
from sqlalchemy.exc import DBAPIError


def psycopg_connection(connection: Connection) -> psycopg.Connection[Any]:
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    return driver


@contextmanager
def errors_as_dbapi_errors(statement: str) -> Iterator[None]:
    try:
        yield
    except psycopg.Error as error:
        raise DBAPIError.instance(statement, None, error, psycopg.Error) from error


class PreparedRead:
    """A Core SELECT compiled once and run as a server-side prepared statement, rows as dicts.

    For the reads of every auditor request and consumer batch: SQLAlchemy's execution and
    result layers cost more CPU per statement than PostgreSQL spends running it. The text
    still comes from ``tables``.
    """

    def __init__(self, statement: ClauseElement) -> None:
        self._statement = statement
        self._compiled: tuple[str, dict[str, Any]] | None = None

    def rows(self, connection: Connection, parameters: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self._compiled is None:
            compiled = self._statement.compile(dialect=connection.dialect)
            self._compiled = str(compiled), compiled.params  # params: the statement's literals
        sql, literals = self._compiled
        with (
            errors_as_dbapi_errors(sql),
            psycopg_connection(connection).cursor(row_factory=dict_row) as cursor,
        ):
            cursor.execute(sql, {**literals, **parameters}, prepare=True)
            return cursor.fetchall()
