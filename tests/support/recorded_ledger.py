"""A fresh database holding one container's whole custody life, signed by a checkpoint.

For the tests that sweep every endpoint (authorization matrix, hostile input, schemathesis):
every path parameter they need names something that exists, so an allowed request can answer
200 and not only 404.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import text

from services.bootstrap import build_consumer, build_ingest_app
from services.db.engine import make_engine
from services.ledger.adapters.signing_keys import create_key, load_private_key
from services.ledger.service.checkpointer import Checkpointer
from services.registry.store import RegistryStore
from services.settings import Settings
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for
from tests.support.webhook_signing import receipt_body, signed_headers


@dataclass(frozen=True)
class RecordedLedger:
    settings: Settings
    network: Network
    plant_secret: str  # plant-a's webhook secret
    container_id: str
    event_id: str  # the container's dropoff
    shipment_id: str
    tree_size: int  # of the one signed checkpoint

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


def _post(ingest: TestClient, network: Network, device: str, events: list[dict[str, Any]]) -> None:
    response = ingest.post(
        "/v1/events/batch", json={"events": events}, headers=network.headers(device)
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


def record_ledger(stack: LiveStack, folder: Path, **overrides: object) -> RecordedLedger:
    key_file = folder / "keys" / "checkpoint.key"
    settings = stack.settings(signing_key_file=key_file, **overrides)
    create_key(key_file, settings.log_origin)
    network = register_network(settings)
    engine = make_engine(settings.database_url, pool_size=1)
    secret = RegistryStore(engine, cache_seconds=0).rotate_plant_secret("plant-a", timedelta(0))
    container, shipment = f"BX-{uuid.uuid4().hex[:8]}", f"BOL-{uuid.uuid4().hex[:6]}"
    dropoff = ev.dropoff(container, 0, weight_kg=110.0)

    stop = threading.Event()
    consumer = build_consumer(settings)
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with TestClient(build_ingest_app(settings)) as ingest:
            _post(ingest, network, "site-a-dev", [dropoff, ev.sealed(container, 1)])
            pickup = ev.transfer("pickup", container, 2, "site-a", "hauler-a", shipment_id=shipment)
            _post(ingest, network, "hauler-a-dev", [pickup])
            intake = ev.transfer("intake", container, 4, "hauler-a", "plant-a", weight_kg=119.0)
            _post(ingest, network, "plant-a-dev", [intake])
            body = receipt_body(container, 5, shipment_id=shipment)
            response = ingest.post(
                "/v1/webhooks/plants/plant-a", content=body, headers=signed_headers(body, secret)
            )
            assert response.status_code == 202, response.text

        def recorded() -> bool:
            with engine.connect() as connection:
                count: int = connection.execute(
                    text("SELECT count(*) FROM ledger.entries WHERE container_id = :c"),
                    {"c": container},
                ).scalar_one()
            return count == 5

        wait_for(recorded, what="the container's five entries")
    finally:
        stop.set()
        thread.join(timeout=30)
    checkpointer = Checkpointer(
        engine,
        load_private_key(key_file),
        origin=settings.log_origin,
        interval_s=3600,
        every_entries=1,
    )
    checkpoint = checkpointer.checkpoint_now()
    assert checkpoint is not None
    engine.dispose()
    return RecordedLedger(
        settings,
        network,
        secret,
        container,
        str(dropoff["event_id"]),
        shipment,
        checkpoint.tree_size,
    )
