"""ledger.entries is analysed by the consumer's role once autovacuum's threshold is passed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, create_engine, text

from services.db.engine import make_engine
from services.ledger.adapters.entries_statistics import EntriesStatistics
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@dataclass
class Ledger:
    app: Engine
    admin: Engine
    rows: int = 0
    unanalysed: int = 0

    def append(self, count: int) -> None:
        """Rows straight into ledger.entries: the statistics do not care how they came."""
        with self.admin.begin() as connection:
            connection.execute(text("SELECT ledger.lock_entries_for_append()"))
            connection.execute(
                text(
                    "INSERT INTO ledger.entries SELECT g, gen_random_uuid(), 'C-' || g, "
                    "'drop_off', '{}'::jsonb, now(), now(), now(), 'device', 'P', 'D', 0, g, "
                    "sha256(''::bytea), sha256(g::text::bytea) "
                    "FROM generate_series(CAST(:first AS bigint), :last) AS g"
                ),
                {"first": self.rows, "last": self.rows + count - 1},
            )
        self.rows += count
        self.unanalysed += count
        # The statistics system learns of the inserts shortly after the commit.
        wait_for(
            lambda: self.changes_since_analyze() == self.unanalysed,
            what="the inserts to reach pg_stat_user_tables",
        )

    def changes_since_analyze(self) -> int:
        with self.admin.connect() as connection:
            changed: int = connection.execute(
                text(
                    "SELECT n_mod_since_analyze FROM pg_stat_user_tables "
                    "WHERE relid = 'ledger.entries'::regclass"
                )
            ).scalar_one()
        return changed

    def estimated_rows(self) -> float:
        with self.admin.connect() as connection:
            rows: float = connection.execute(
                text("SELECT reltuples FROM pg_class WHERE oid = 'ledger.entries'::regclass")
            ).scalar_one()
        return rows


@pytest.fixture
def ledger(stack: LiveStack) -> Iterator[Ledger]:
    app_url, admin_url = stack.new_database()
    app = make_engine(app_url, pool_size=1)
    admin = create_engine(admin_url)
    with admin.begin() as connection:  # so that every ANALYZE here is the one under test
        connection.execute(text("ALTER TABLE ledger.entries SET (autovacuum_enabled = false)"))
    try:
        yield Ledger(app, admin)
    finally:
        app.dispose()
        admin.dispose()


def test_analyzed_once_autovacuums_threshold_is_passed_and_not_before(ledger: Ledger) -> None:
    statistics = EntriesStatistics(ledger.app, check_every_s=0)
    assert ledger.estimated_rows() == -1  # never analysed
    ledger.append(40)  # threshold with no estimate: more than 50 rows
    assert statistics.analyze_if_due(40) is None
    ledger.append(160)
    assert statistics.analyze_if_due(160) is not None
    assert ledger.estimated_rows() == 200
    assert ledger.changes_since_analyze() == 0
    ledger.unanalysed = 0

    ledger.append(60)  # threshold now 50 + 10 % of 200 = 70
    assert statistics.analyze_if_due(60) is None
    ledger.append(20)
    assert statistics.analyze_if_due(20) is not None
    assert ledger.estimated_rows() == 280


def test_checked_when_its_own_appends_pass_the_threshold_else_once_a_minute(
    ledger: Ledger,
) -> None:
    statistics = EntriesStatistics(ledger.app, check_every_s=60, min_gap_s=1)
    assert statistics.analyze_if_due(0, now=1000) is None  # empty: checked, 51 rows to go
    ledger.append(100)  # as another writer would: this consumer counts none of them
    assert statistics.analyze_if_due(0, now=1030) is None
    assert ledger.estimated_rows() == -1
    assert statistics.analyze_if_due(0, now=1060) is not None  # a minute on: checked anyway
    assert ledger.estimated_rows() == 100
    ledger.unanalysed = 0

    ledger.append(61)  # due after 50 + 10 % of 100 = 60 more rows; its own, this time
    assert statistics.analyze_if_due(30, now=1070) is None  # not yet its share
    assert ledger.estimated_rows() == 100
    assert statistics.analyze_if_due(31, now=1070.5) is not None
    assert ledger.estimated_rows() == 161
    ledger.unanalysed = 0

    ledger.append(70)  # due after 50 + 16.1 = 66 more
    assert statistics.analyze_if_due(70, now=1071) is None  # under a second since the last check
    assert statistics.analyze_if_due(0, now=1071.5) is not None
    assert ledger.estimated_rows() == 231
