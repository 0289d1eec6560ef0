"""The application's role may only INSERT and SELECT ledger rows; triggers stop the rest."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from tests.support.stack import LiveStack

pytestmark = pytest.mark.integration

ROW = """
INSERT INTO ledger.entries (seq, event_id, container_id, event_type, body, occurred_at,
  received_at, recorded_at, origin_kind, origin_party, origin_device, kafka_partition,
  kafka_offset, prev_hash, entry_hash)
VALUES (0, gen_random_uuid(), 'BX-1', 'dropoff', '{}', now(), now(), now(), 'device',
  'site-a', 'd1', 0, 0, decode(repeat('00', 32), 'hex'), decode(repeat('11', 32), 'hex'))
"""


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
        connection.execute(text(ROW))
    for statement in (
        "UPDATE ledger.entries SET seq = 5",
        "DELETE FROM ledger.entries",
        "TRUNCATE ledger.entries",
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
