"""Ingest → Kafka → consumer → ledger, in-process against the real broker and database."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from services.bootstrap import build_consumer, build_ingest_app, build_ledger_api
from services.db.engine import make_engine
from services.ledger.domain.custody import CustodyRules
from services.ledger.service.rebuild import rebuild_read_model
from services.settings import Settings
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(stack: LiveStack) -> tuple[Settings, Network]:
    # Checked after every batch, so the test need not wait out the one-minute default.
    settings = stack.settings(consumer_analyze_check_s=0)
    admin = make_engine(settings.admin_database_url, pool_size=1)
    with admin.begin() as connection:  # so that every ANALYZE here is the consumer's
        connection.execute(text("ALTER TABLE ledger.entries SET (autovacuum_enabled = false)"))
    admin.dispose()
    return settings, register_network(settings)


@pytest.fixture(scope="module")
def consumer(env: tuple[Settings, Network]) -> Iterator[None]:
    settings, _ = env
    stop = threading.Event()
    runner = build_consumer(settings)
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


def entry_count(settings: Settings, container_id: str) -> int:
    engine = make_engine(settings.database_url, pool_size=1)
    with engine.connect() as connection:
        count: int = connection.execute(
            text("SELECT count(*) FROM ledger.entries WHERE container_id = :c"),
            {"c": container_id},
        ).scalar_one()
    engine.dispose()
    return count


def test_posted_event_is_recorded_and_visible_in_the_trail(
    env: tuple[Settings, Network], consumer: None
) -> None:
    settings, network = env
    container = ev.unique_container()
    with (
        TestClient(build_ingest_app(settings)) as ingest,
        TestClient(build_ledger_api(settings)) as ledger,
    ):
        first = ev.dropoff(container)
        response = ingest.post("/v1/events", json=first, headers=network.headers("site-a-dev"))
        assert response.status_code == 202, response.text
        assert response.json() == {"event_id": first["event_id"], "status": "accepted"}
        batch = {
            "events": [
                ev.sealed(container),
                ev.transfer("pickup", container, 2, "site-a", "hauler-a", shipment_id="BOL-1"),
            ]
        }
        response = ingest.post(
            "/v1/events/batch", json=batch, headers=network.headers("site-a-dev")
        )
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 2

        wait_for(lambda: entry_count(settings, container) == 3, what="3 entries recorded")
        trail = ledger.get(f"/v1/containers/{container}/custody", headers=network.auditor_headers())
        assert trail.status_code == 200, trail.text
        body = trail.json()
        assert body["state"] == "in_transit"
        assert body["custodian"] == "hauler-a"
        assert [i["custodian"] for i in body["intervals"]] == ["site-a", "hauler-a"]
        assert body["events"][0]["origin"] == {
            "kind": "device",
            "party_id": "site-a",
            "device_id": "site-a-dev",
        }


def test_rebuild_recreates_the_read_model_exactly(
    env: tuple[Settings, Network], consumer: None
) -> None:
    settings, network = env
    container = ev.unique_container()
    with TestClient(build_ingest_app(settings)) as ingest:
        for event in (ev.dropoff(container), ev.sealed(container)):
            response = ingest.post("/v1/events", json=event, headers=network.headers("site-a-dev"))
            assert response.status_code == 202
    wait_for(lambda: entry_count(settings, container) == 2, what="2 entries recorded")
    engine = make_engine(settings.database_url, pool_size=1)
    columns = "container_id, state, custodian, location_id, entry_count, head_seq, anomalies"

    def snapshot() -> list[tuple[object, ...]]:
        with engine.connect() as connection:
            return [
                tuple(row)
                for row in connection.execute(
                    text(f"SELECT {columns} FROM ledger.containers ORDER BY container_id")
                )
            ]

    before = snapshot()
    assert any(row[0] == container and row[1] == "sealed" for row in before)
    assert rebuild_read_model(engine, CustodyRules()) == len(before)
    assert snapshot() == before
    engine.dispose()


def test_the_consumer_keeps_the_ledger_analysed(
    env: tuple[Settings, Network], consumer: None
) -> None:
    settings, network = env
    admin = make_engine(settings.admin_database_url, pool_size=1)

    def table_stats() -> tuple[float, int]:
        """Rows at the last ANALYZE (-1 if never), and rows changed since."""
        with admin.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT c.reltuples, s.n_mod_since_analyze FROM pg_class AS c "
                    "JOIN pg_stat_user_tables AS s ON s.relid = c.oid "
                    "WHERE c.oid = 'ledger.entries'::regclass"
                )
            ).one()
        return float(row[0]), int(row[1])

    def post(events: list[dict[str, object]]) -> None:
        with TestClient(build_ingest_app(settings)) as ingest:
            response = ingest.post(
                "/v1/events/batch", json={"events": events}, headers=network.headers("site-a-dev")
            )
            assert response.status_code == 200, response.text

    post([ev.dropoff(ev.unique_container()) for _ in range(120)])  # autovacuum's bar: 50
    # A backend may publish its table counts up to a second after it commits, so the check right
    # after the batch that crossed the bar may not see it yet; the next batch's check does.
    wait_for(lambda: max(table_stats()) >= 120, what="the 120 entries to reach the statistics")
    post([ev.dropoff(ev.unique_container())])
    wait_for(lambda: table_stats()[0] >= 121, what="ANALYZE to count the new entries")
    assert table_stats()[1] < 120
    admin.dispose()
