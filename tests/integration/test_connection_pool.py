"""Pooled connections: reused while healthy, replaced once PostgreSQL has closed them."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, create_engine, text

from services.db.engine import make_engine
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

APPLICATION = "custody-pool-test"


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def test_a_healthy_pooled_connection_is_reused(stack: LiveStack) -> None:
    app_url, _ = stack.new_database()
    engine = make_engine(app_url, pool_size=1, application_name=APPLICATION)
    try:
        assert backend_pid(engine) == backend_pid(engine)
    finally:
        engine.dispose()


def test_connections_the_server_terminated_are_replaced_at_checkout(stack: LiveStack) -> None:
    app_url, admin_url = stack.new_database()
    engine = make_engine(app_url, pool_size=2, application_name=APPLICATION)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as first, engine.connect() as second:
            old = {
                first.execute(text("SELECT pg_backend_pid()")).scalar_one(),
                second.execute(text("SELECT pg_backend_pid()")).scalar_one(),
            }
        with admin.connect() as connection:
            terminated = connection.execute(
                text("SELECT count(*) FROM unnest(:pids) AS pid WHERE pg_terminate_backend(pid)"),
                {"pids": list(old)},
            ).scalar_one()
        assert terminated == 2

        def gone() -> bool:
            with admin.connect() as connection:
                return not connection.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                    {"pids": list(old)},
                ).scalar_one()

        wait_for(gone, what="the terminated backends to exit", timeout=10)
        # Both pooled connections are dead; each checkout must still get a live one.
        with engine.connect() as first, engine.connect() as second:
            new = {
                first.execute(text("SELECT pg_backend_pid()")).scalar_one(),
                second.execute(text("SELECT pg_backend_pid()")).scalar_one(),
            }
        assert len(new) == 2
        assert not new & old
    finally:
        engine.dispose()
        admin.dispose()
