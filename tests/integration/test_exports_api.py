"""Exports over the ledger API: EPCIS 2.0 JSON-LD, trail CSV and container-search CSV.

Events go in through ingest, the consumer records them against the real broker and database,
and the three export endpoints are read back with an auditor token.
"""

from __future__ import annotations

import csv
import io
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema_rs import Draft7Validator
from sqlalchemy import text

from services.bootstrap import build_consumer, build_ingest_app, build_ledger_api
from services.contract.epcis_schema import DOCUMENT_SCHEMA
from services.contract.epcis_schema import validator as epcis_validator
from services.db.engine import make_engine
from services.ledger.rendering.csv_export import TRAIL_COLUMNS
from services.settings import Settings
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for
from tests.unit.test_epcis import schema_errors

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(stack: LiveStack) -> tuple[Settings, Network]:
    settings = stack.settings()
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


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    return epcis_validator(DOCUMENT_SCHEMA)


def entry_count(settings: Settings, container_id: str) -> int:
    engine = make_engine(settings.database_url, pool_size=1)
    with engine.connect() as connection:
        count: int = connection.execute(
            text("SELECT count(*) FROM ledger.entries WHERE container_id = :c"),
            {"c": container_id},
        ).scalar_one()
    engine.dispose()
    return count


def csv_rows(body: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(body, newline=""))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module")
def recorded(env: tuple[Settings, Network], consumer: None) -> dict[str, Any]:
    """Two containers at one fresh location; the first with a hub leg and a correction."""
    settings, network = env
    location = f"dock-{uuid.uuid4().hex[:8]}"
    first, second = ev.unique_container(), ev.unique_container()
    site = network.headers("site-a-dev")
    dropoff = ev.dropoff(first, 0, location_id=location, battery_count=12, weight_kg=8.5)
    extra = ev.dropoff(first, 0.5, location_id=location, weight_kg=2.0, note="scanned, twice")
    events = [
        dropoff,
        extra,
        ev.sealed(first, 1, location_id=location),
        ev.transfer(
            "pickup", first, 2, "site-a", "hauler-a", shipment_id="BOL-X1", location_id=location
        ),
        ev.dropoff(second, 0, location_id=location),
    ]
    with TestClient(build_ingest_app(settings)) as ingest:
        response = ingest.post("/v1/events/batch", json={"events": events}, headers=site)
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(events)
        to_hub = ev.transfer(
            "handoff", first, 4, "hauler-a", "hub-a", shipment_id="BOL-X1", location_id=location
        )
        response = ingest.post("/v1/events", json=to_hub, headers=network.headers("hub-a-dev"))
        assert response.status_code == 202, response.text
        wait_for(lambda: entry_count(settings, first) == 5, what="5 entries of the first")
        correction = ev.event(
            "correction",
            first,
            3,
            location_id=location,
            corrects_event_id=extra["event_id"],
            reason="incorrect_data",
            corrective_event_ids=[dropoff["event_id"]],
        )
        response = ingest.post("/v1/events", json=correction, headers=site)
        assert response.status_code == 202, response.text
    wait_for(lambda: entry_count(settings, first) == 6, what="6 entries of the first")
    wait_for(lambda: entry_count(settings, second) == 1, what="the second container")
    return {
        "location": location,
        "first": first,
        "second": second,
        "dropoff": dropoff,
        "extra": extra,
        "to_hub": to_hub,
        "correction": correction,
    }


def test_epcis_export_validates_and_declares_the_correction(
    env: tuple[Settings, Network], recorded: dict[str, Any], validator: Draft7Validator
) -> None:
    settings, network = env
    first = recorded["first"]
    with TestClient(build_ledger_api(settings)) as ledger:
        response = ledger.get(
            f"/v1/containers/{first}/custody.epcis.json", headers=network.auditor_headers()
        )
        again = ledger.get(
            f"/v1/containers/{first}/custody.epcis.json", headers=network.auditor_headers()
        )
        missing = ledger.get(
            "/v1/containers/BX-never-seen/custody.epcis.json", headers=network.auditor_headers()
        )
        anonymous = ledger.get(f"/v1/containers/{first}/custody.epcis.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/ld+json")
    document = response.json()
    assert schema_errors(validator, document) == []
    assert document["type"] == "EPCISDocument"
    events = {event["eventID"]: event for event in document["epcisBody"]["eventList"]}
    assert len(events) == 5  # the correction is declared on the event it corrects
    assert [e["eventID"] for e in again.json()["epcisBody"]["eventList"]] == list(events)

    voided = events[f"urn:uuid:{recorded['extra']['event_id']}"]
    declaration = voided["errorDeclaration"]
    assert declaration["reason"] == "incorrect_data"
    assert declaration["correctiveEventIDs"] == [f"urn:uuid:{recorded['dropoff']['event_id']}"]
    assert declaration["bc:correctionEventID"] == f"urn:uuid:{recorded['correction']['event_id']}"

    to_hub = events[f"urn:uuid:{recorded['to_hub']['event_id']}"]
    assert (to_hub["bizStep"], to_hub["disposition"]) == ("receiving", "in_progress")
    pickup = next(e for e in events.values() if e["bc:eventType"] == "pickup")
    assert (pickup["bizStep"], pickup["disposition"]) == ("consigning", "in_transit")
    assert pickup["bizTransactionList"][0]["type"] == "bol"

    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert anonymous.status_code == 401


def test_trail_csv_has_one_row_per_event(
    env: tuple[Settings, Network], recorded: dict[str, Any]
) -> None:
    settings, network = env
    first = recorded["first"]
    with TestClient(build_ledger_api(settings)) as ledger:
        response = ledger.get(
            f"/v1/containers/{first}/custody.csv", headers=network.auditor_headers()
        )
        missing = ledger.get(
            "/v1/containers/BX-never-seen/custody.csv", headers=network.auditor_headers()
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith("attachment;")
    header, rows = csv_rows(response.text)
    assert header == list(TRAIL_COLUMNS)
    assert len(rows) == 6
    assert {row["container_id"] for row in rows} == {first}
    by_id = {row["event_id"]: row for row in rows}
    voided = by_id[recorded["extra"]["event_id"]]
    assert voided["corrected"] == "true"
    assert voided["corrected_by"] == recorded["correction"]["event_id"]
    assert voided["note"] == "scanned, twice"
    assert missing.status_code == 404


def test_search_csv_pages_through_the_containers(
    env: tuple[Settings, Network], recorded: dict[str, Any]
) -> None:
    settings, network = env
    headers = network.auditor_headers()
    with TestClient(build_ledger_api(settings)) as ledger:
        everything = ledger.get(
            "/v1/containers.csv", params={"location": recorded["location"]}, headers=headers
        )
        page = ledger.get(
            "/v1/containers.csv",
            params={"location": recorded["location"], "limit": 1},
            headers=headers,
        )
        link = page.headers.get("link", "")
        following = ledger.get(link[1 : link.index(">")], headers=headers) if link else None
        too_many = ledger.get("/v1/containers.csv", params={"limit": 501}, headers=headers)
    assert everything.status_code == 200, everything.text
    assert everything.headers["content-type"] == "text/csv; charset=utf-8"
    assert everything.headers["content-disposition"].startswith("attachment;")
    header, rows = csv_rows(everything.text)
    assert header == list(TRAIL_COLUMNS)
    first, second = sorted([recorded["first"], recorded["second"]])
    assert [row["container_id"] for row in rows].count(recorded["first"]) == 6
    assert [row["container_id"] for row in rows].count(recorded["second"]) == 1
    assert {row["container_id"] for row in rows} == {first, second}
    assert "link" not in everything.headers

    assert page.status_code == 200
    assert {row["container_id"] for row in csv_rows(page.text)[1]} == {first}
    assert link.endswith('; rel="next"')
    assert following is not None
    assert following.status_code == 200
    assert {row["container_id"] for row in csv_rows(following.text)[1]} == {second}
    assert too_many.status_code == 422
