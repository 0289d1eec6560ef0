"""The application's role may only INSERT and SELECT ledger rows; triggers stop the rest."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from services.db.migrations import upgrade
from services.ledger.domain.integrity.merkle import in_memory_source, root_hash
from tests.support.stack import LiveStack

pytestmark = pytest.mark.integration

LOCK = "SELECT ledger.lock_entries_for_append()"
ROW = """
INSERT INTO ledger.entries (seq, event_id, container_id, event_type, body, occurred_at,
  received_at, recorded_at, origin_kind, origin_party, origin_device, kafka_partition,
  kafka_offset, prev_hash, entry_hash)
VALUES (0, gen_random_uuid(), 'BX-1', 'dropoff', '{}', now(), now(), now(), 'device',
  'site-a', 'd1', 0, 0, decode(repeat('00', 32), 'hex'), decode(repeat('11', 32), 'hex'))
"""
SECOND_ROW = (
    ROW.replace("VALUES (0,", "VALUES (1,")
    .replace("'d1', 0, 0", "'d1', 0, 1")
    .replace("repeat('11', 32)", "repeat('22', 32)")
)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger.entries SET container_id = 'BX-2'",
        "DELETE FROM ledger.entries",
        "TRUNCATE ledger.entries",
        "UPDATE ledger.rejected SET reason = 'x'",
        "DELETE FROM ledger.rejected",
    ],
)
def test_app_role_cannot_rewrite_the_ledger(stack: LiveStack, statement: str) -> None:
    app_url, _ = stack.new_database()
    engine = create_engine(app_url)
    with engine.begin() as connection:
        connection.execute(text(LOCK))
        connection.execute(text(ROW))
    with pytest.raises(DBAPIError) as failure, engine.begin() as connection:
        connection.execute(text(statement))
    assert "permission denied" in str(failure.value) or "append-only" in str(failure.value)
    with engine.connect() as connection:
        row = connection.execute(text("SELECT container_id FROM ledger.entries")).one()
    assert row.container_id == "BX-1"
    engine.dispose()


def test_triggers_stop_even_the_owner(stack: LiveStack) -> None:
    _, admin_url = stack.new_database()
    engine = create_engine(admin_url)
    with engine.begin() as connection:
        connection.execute(text(LOCK))
        connection.execute(text(ROW))
    for statement in (
        "UPDATE ledger.entries SET seq = 5",
        "DELETE FROM ledger.entries",
        # CASCADE gets past the foreign keys that reference entries, so the trigger answers.
        "TRUNCATE ledger.entries CASCADE",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM ledger.entries")).scalar_one() == 1
    engine.dispose()


def test_app_role_holds_only_insert_and_select_on_entries(stack: LiveStack) -> None:
    _, admin_url = stack.new_database()
    engine = create_engine(admin_url)
    with engine.connect() as connection:
        privileges = set(
            connection.execute(
                text(
                    "SELECT privilege_type FROM information_schema.role_table_grants "
                    "WHERE grantee = 'custody_app' AND table_schema = 'ledger' "
                    "AND table_name = 'entries'"
                )
            ).scalars()
        )
    engine.dispose()
    assert privileges == {"INSERT", "SELECT"}


def test_upgrading_a_ledger_with_entries_backfills_its_merkle_nodes(stack: LiveStack) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    server = create_engine(stack.postgres.url(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    server.dispose()
    admin_url = stack.postgres.url(database=name)
    upgrade(admin_url, "0001")
    engine = create_engine(admin_url)
    leaves = [bytes([n]) * 32 for n in range(1, 6)]
    with engine.begin() as connection:
        for seq, leaf in enumerate(leaves):
            connection.execute(
                text(
                    ROW.replace("VALUES (0,", "VALUES (:seq,")
                    .replace("decode(repeat('11', 32), 'hex')", ":leaf")
                    .replace("'d1', 0, 0", "'d1', 0, :seq")
                ),
                {"seq": seq, "leaf": leaf},
            )
    upgrade(admin_url)
    _, expected = in_memory_source(leaves)
    with engine.connect() as connection:
        stored = dict(
            ((level, idx), bytes(digest))
            for level, idx, digest in connection.execute(
                text("SELECT level, idx, hash FROM ledger.merkle_nodes")
            )
        )
    engine.dispose()
    assert root_hash(5, lambda level, idx: stored[(level, idx)]) == root_hash(5, expected)
    assert len(stored) == 2 * 5 - bin(5).count("1")


@pytest.mark.parametrize("role", ["application", "owner"])
def test_an_append_without_the_append_lock_is_refused(stack: LiveStack, role: str) -> None:
    app_url, admin_url = stack.new_database()
    engine = create_engine(app_url if role == "application" else admin_url)
    with (
        pytest.raises(DBAPIError, match="needs the append lock") as failure,
        engine.begin() as connection,
    ):
        connection.execute(text(ROW))
    assert getattr(failure.value.orig, "sqlstate", None) == "55000"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM ledger.entries")).scalar_one() == 0
    engine.dispose()


def test_appenders_take_turns_until_commit(stack: LiveStack) -> None:
    app_url, _ = stack.new_database()
    engine = create_engine(app_url)
    with engine.connect() as first, engine.connect() as second:
        first.execute(text(LOCK))
        first.execute(text(ROW))
        second.execute(text("SET lock_timeout = '200ms'"))
        with pytest.raises(DBAPIError) as waited:
            second.execute(text(LOCK))
        assert getattr(waited.value.orig, "sqlstate", None) == "55P03"  # lock_not_available
        second.rollback()
        first.commit()
        second.execute(text(LOCK))  # free once the first append committed
        second.execute(text(SECOND_ROW))
        second.commit()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM ledger.entries")).scalar_one() == 2
    engine.dispose()


def test_vacuum_and_analyze_do_not_wait_for_an_append_in_progress(stack: LiveStack) -> None:
    """The EXCLUSIVE table lock the append lock replaced made both wait, so autovacuum skipped
    ledger.entries, or was cancelled after stalling the next append for deadlock_timeout."""
    app_url, admin_url = stack.new_database()
    appender = create_engine(app_url)
    owner = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with appender.connect() as append, owner.connect() as maintenance:
        append.execute(text(LOCK))
        append.execute(text(ROW))  # still uncommitted: the append lock and the insert's locks
        maintenance.execute(text("SET lock_timeout = '2s'"))
        maintenance.execute(text("VACUUM ledger.entries"))
        maintenance.execute(text("ANALYZE ledger.entries"))
        analysed = maintenance.execute(
            text(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                "WHERE relid = 'ledger.entries'::regclass"
            )
        ).scalar_one()
        append.commit()
    assert analysed
    appender.dispose()
    owner.dispose()
