"""SIGKILL the consumer in the middle of 20,000 events: after a restart every event is
recorded exactly once, seq is gapless and every chain link verifies."""

from __future__ import annotations

import concurrent.futures
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.db.engine import make_engine
from tests.support import events as ev
from tests.support.fault_report import report_fault
from tests.support.network import register_network
from tests.support.services import running, start_service
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

CONTAINERS = 4000  # x 5 events = 20,000


def lives(base: datetime) -> dict[str, list[dict[str, Any]]]:
    """Events per posting device, in the order each device uploads them."""
    by_device: dict[str, list[dict[str, Any]]] = {
        "site-a-dev": [],
        "hauler-a-dev": [],
        "plant-a-dev": [],
    }
    for number in range(CONTAINERS):
        container = f"K-{number:06d}"
        by_device["site-a-dev"] += [
            ev.event("dropoff", container, 0, base=base, chemistry="li_ion"),
            ev.event("sealed", container, 1, base=base, weight_kg=80.0, un_numbers=["UN3480"]),
        ]
        by_device["hauler-a-dev"].append(
            ev.event(
                "pickup",
                container,
                2,
                base=base,
                from_party="site-a",
                to_party="hauler-a",
                shipment_id=f"BOL-{number // 50}",
            )
        )
        by_device["plant-a-dev"] += [
            ev.event(
                "intake",
                container,
                3,
                base=base,
                from_party="hauler-a",
                to_party="plant-a",
                weight_kg=79.5,
            ),
            ev.event("processed", container, 4, base=base, method="hydromet"),
        ]
    return by_device


def test_consumer_sigkill_mid_stream_loses_and_duplicates_nothing(
    stack: LiveStack, tmp_path: Path
) -> None:
    settings = stack.settings(consumer_batch_max=500)
    network = register_network(settings)
    engine = make_engine(settings.database_url, pool_size=2)

    def count() -> int:
        with engine.connect() as connection:
            n: int = connection.execute(text("SELECT count(*) FROM ledger.entries")).scalar_one()
        return n

    by_device = lives(datetime.now(UTC) - timedelta(hours=5))
    posted = {e["event_id"] for events in by_device.values() for e in events}
    assert len(posted) == 5 * CONTAINERS

    with running(settings, ["ingest"], tmp_path) as services:
        assert services["ingest"].url is not None
        client = httpx.Client(base_url=services["ingest"].url, timeout=60)

        def upload(device: str) -> None:
            events = by_device[device]
            for start in range(0, len(events), 500):
                response = client.post(
                    "/v1/events/batch",
                    json={"events": events[start : start + 500]},
                    headers=network.headers(device),
                )
                assert response.status_code == 200, response.text
                assert response.json()["accepted"] == len(events[start : start + 500])

        consumer = start_service(settings, "consumer", tmp_path)
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            uploading = pool.submit(lambda: [upload(d) for d in by_device])
            wait_for(lambda: count() >= 3000, what="3,000 entries before the kill", timeout=180)
            consumer.kill()
            killed_at = count()
            uploading.result(timeout=300)
        assert killed_at < len(posted), "the kill came after everything was recorded"

    restarted = start_service(settings, "consumer", tmp_path)
    try:
        wait_for(lambda: count() >= len(posted), what="all events recorded", timeout=300)
        # Let the restarted consumer drain completely, then stop it gracefully.
        assert restarted.stop() == 0
    finally:
        restarted.stop()

    figures = report_fault(
        engine,
        "consumer SIGKILLed mid-stream, then restarted",
        sent=len(posted),
        acknowledged=posted,
        recorded_at_kill=killed_at,
    )
    with engine.connect() as connection:
        processed = connection.execute(
            text("SELECT count(*) FROM ledger.containers WHERE state = 'processed'")
        ).scalar_one()
    engine.dispose()
    assert (figures["recorded"], figures["duplicated"], figures["lost"]) == (len(posted), 0, 0)
    assert processed == CONTAINERS
