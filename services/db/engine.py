"""Engine construction and the readiness ping; called from the bootstrap, never at import."""

from __future__ import annotations

import select
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def server_hung_up(dbapi_connection: Any) -> bool:
    """Whether PostgreSQL has spoken, or closed, while the pooled connection sat idle.

    An idle session receives nothing unasked. A terminated or restarted server sends its
    FATAL message and closes the socket, which makes the socket readable: seen without the
    round trip of a ping.
    """
    if dbapi_connection.closed:
        return True
    poller = select.poll()
    poller.register(dbapi_connection.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))


def _discard_if_server_hung_up(
    dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
) -> None:
    if server_hung_up(dbapi_connection):
        # The pool reconnects this checkout and discards every connection older than it.
        raise InvalidatePoolError("the server closed this pooled connection")


def make_engine(url: str, *, pool_size: int = 5, application_name: str = "custody") -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        connect_args={"application_name": application_name, "connect_timeout": 5},
    )
    # Instead of pool_pre_ping, whose round trip was one of a custody trail's three.
    event.listen(engine, "checkout", _discard_if_server_hung_up)
    return engine


def ping(engine: Engine) -> None:
    """One ``SELECT 1``: raises when PostgreSQL cannot be reached (readiness checks)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
