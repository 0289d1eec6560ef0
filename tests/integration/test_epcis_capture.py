"""EPCIS 2.0 capture against the real broker and database: jobs, error behaviours, limits,
idempotent re-capture, GS1's examples, and the round trip export → capture → same trail."""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from services.bootstrap import build_consumer, build_ingest_app, build_ledger_api
from services.contract.epcis_identifiers import container_uri, location_uri
from services.db.engine import make_engine
from services.settings import Settings
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "standards" / "epcis" / "examples"
CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]


class Ledger:
    """One fresh database with its registered network, consumer, ingest and ledger API."""

    def __init__(self, stack: LiveStack, **overrides: Any) -> None:
        self.settings: Settings = stack.settings(**overrides)
        self.network: Network = register_network(self.settings)
        self.engine = make_engine(self.settings.database_url, pool_size=1)
        self._stop = threading.Event()
        self._consumer = threading.Thread(
            target=build_consumer(self.settings).run, args=(self._stop,), daemon=True
        )
        self._consumer.start()
        self.ingest = TestClient(build_ingest_app(self.settings)).__enter__()
        self.ledger = TestClient(build_ledger_api(self.settings)).__enter__()

    def close(self) -> None:
        self.ingest.__exit__(None, None, None)
        self.ledger.__exit__(None, None, None)
        self._stop.set()
        self._consumer.join(timeout=30)
        self.engine.dispose()

    def entries(self, container: str) -> int:
        with self.engine.connect() as connection:
            count: int = connection.execute(
                text("SELECT count(*) FROM ledger.entries WHERE container_id = :c"),
                {"c": container},
            ).scalar_one()
        return count

    def capture(self, device: str, document: Any, **headers: str) -> Any:
        return self.ingest.post(
            "/epcis/capture", json=document, headers={**self.network.headers(device), **headers}
        )


@pytest.fixture(scope="module")
def ledger(stack: LiveStack) -> Iterator[Ledger]:
    opened = Ledger(stack, epcis_capture_max_events=50)
    yield opened
    opened.close()


def incident(container: str, **extra: Any) -> dict[str, Any]:
    event = {
        "type": "ObjectEvent",
        "eventTime": ev.at(1),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [container_uri(container)],
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "disposition": "damaged",
        "readPoint": {"id": location_uri("site-a:dock")},
        "bc:description": "dented lid",
    }
    event.update(extra)
    return event


def document(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": [*CONTEXT, {"bc": "https://battery-custody.example/epcis/"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": ev.at(2),
        "epcisBody": {"eventList": list(events)},
    }


def test_options_advertise_the_limits_and_versions(ledger: Ledger) -> None:
    response = ledger.ingest.options("/epcis/capture")
    assert response.status_code == 204
    assert response.headers["GS1-EPCIS-Capture-Limit"] == "50"
    assert int(response.headers["GS1-EPCIS-Capture-File-Size-Limit"]) > 0
    assert response.headers["GS1-EPCIS-Version"] == "2.0.0"


def test_a_capture_is_a_job_and_a_recapture_records_nothing_twice(ledger: Ledger) -> None:
    container = ev.unique_container("EC")
    events = [incident(container, eventID=f"urn:uuid:{uuid.uuid4()}"), incident(container)]
    response = ledger.capture("site-a-dev", document(*events))
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["success"], job["running"], job["acceptedEvents"]) == (True, False, 2)
    assert response.headers["Location"] == f"/epcis/capture/{job['captureID']}"
    wait_for(lambda: ledger.entries(container) == 2, what="both captured events")
    # The event without an eventID got GS1's hash ID, so the same document is the same events.
    again = ledger.capture("site-a-dev", document(*events))
    assert again.json()["acceptedEvents"] == 2
    sentinel = ev.unique_container("EC")
    ledger.capture("site-a-dev", document(incident(sentinel)))
    wait_for(lambda: ledger.entries(sentinel) == 1, what="a capture made after the repeat")
    assert ledger.entries(container) == 2
    shown = ledger.ingest.get(job_path(job), headers=ledger.network.headers("site-a-dev2"))
    assert shown.status_code == 200
    assert shown.json()["captureID"] == job["captureID"]
    other = ledger.ingest.get(job_path(job), headers=ledger.network.headers("hauler-a-dev"))
    assert other.status_code == 404
    listed = ledger.ingest.get("/epcis/capture", headers=ledger.network.headers("site-a-dev"))
    assert job["captureID"] in [item["captureID"] for item in listed.json()]


def job_path(job: dict[str, Any]) -> str:
    return f"/epcis/capture/{job['captureID']}"


def test_rollback_captures_nothing_and_proceed_the_valid_events(ledger: Ledger) -> None:
    container = ev.unique_container("EC")
    bad = incident(container, bizStep="shipping")
    unlisted = incident(container, readPoint={"id": "urn:epc:id:sgln:0614141.07346.1234"})
    valid = incident(container)
    rolled = ledger.capture("site-a-dev", document(valid, bad, unlisted))
    assert rolled.status_code == 202
    job = rolled.json()
    assert (job["success"], job["acceptedEvents"], job["captureErrorBehaviour"]) == (
        False,
        0,
        "rollback",
    )
    assert [(e["eventIndex"], e["errors"][0]["path"]) for e in job["errors"]] == [
        (1, "eventList.1.bizStep"),
        (2, "eventList.2.readPoint.id"),
    ]
    assert (
        "'shipping' is outside the custody vocabulary" in job["errors"][0]["errors"][0]["message"]
    )
    proceeded = ledger.capture(
        "site-a-dev",
        document(valid, bad, unlisted),
        **{"GS1-Capture-Error-Behaviour": "proceed"},
    )
    assert proceeded.json()["acceptedEvents"] == 1
    wait_for(lambda: ledger.entries(container) == 1, what="the one valid event")


def test_schema_permissions_and_limits_are_enforced(ledger: Ledger) -> None:
    container = ev.unique_container("EC")
    broken = incident(container, eventTime="yesterday")
    job = ledger.capture("site-a-dev", document(broken)).json()
    assert job["errors"][0]["errors"][0]["path"] == "eventList.0.eventTime"
    sealed = incident(container, bizStep="packing", sensorElementList=[])
    job = ledger.capture("hauler-a-dev", document(sealed)).json()
    assert job["errors"][0]["errors"][0]["path"] == "eventList.0.sensorElementList"
    too_many = ledger.capture("site-a-dev", document(*[incident(container)] * 51))
    assert too_many.status_code == 413
    assert "GS1-EPCIS-Capture-Limit is 50" in too_many.json()["detail"]
    header = ledger.capture(
        "site-a-dev", document(incident(container)), **{"GS1-Capture-Error-Behaviour": "maybe"}
    )
    assert header.status_code == 400
    assert ledger.capture("site-a-dev", {"type": "Nonsense"}).status_code == 422


@pytest.mark.parametrize("example", sorted(path.name for path in EXAMPLES.glob("*.jsonld")))
def test_gs1_examples_outside_the_custody_vocabulary_are_refused_per_event(
    ledger: Ledger, example: str
) -> None:
    official = json.loads((EXAMPLES / example).read_text())
    response = ledger.capture("site-a-dev", official)
    assert response.status_code in (202, 422), response.text
    if response.status_code == 202:
        job = response.json()
        events = (
            official["epcisBody"].get("eventList")
            or official["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        )
        assert job["success"] is False
        assert job["acceptedEvents"] == 0
        assert len(job["errors"]) == len(events)
        assert all(item["errors"][0]["message"] for item in job["errors"])


def test_an_exported_trail_captured_into_a_fresh_ledger_is_the_same_trail(
    stack: LiveStack, ledger: Ledger
) -> None:
    container = ev.unique_container("RT")
    life = [
        ("site-a-dev", ev.dropoff(container, 0, weight_kg=30.0)),
        ("site-a-dev", ev.sealed(container, 1, weight_kg=120.0)),
        (
            "hauler-a-dev",
            ev.transfer("pickup", container, 2, "site-a", "hauler-a", shipment_id="BOL-RT"),
        ),
        (
            "plant-a-dev",
            ev.transfer("intake", container, 5, "hauler-a", "plant-a", weight_kg=119.0),
        ),
        ("plant-a-dev", ev.event("processed", container, 8, method="shredding")),
    ]
    for device, body in life:
        response = ledger.ingest.post(
            "/v1/events", json=body, headers=ledger.network.headers(device)
        )
        assert response.status_code == 202, response.text
    wait_for(lambda: ledger.entries(container) == len(life), what="the container's life")
    auditor = ledger.network.auditor_headers()
    exported = ledger.ledger.get(f"/v1/containers/{container}/custody.epcis.json", headers=auditor)
    assert exported.status_code == 200, exported.text
    fresh = Ledger(stack)
    try:
        device_of = {"site-a": "site-a-dev", "hauler-a": "hauler-a-dev", "plant-a": "plant-a-dev"}
        for event in exported.json()["epcisBody"]["eventList"]:
            part = copy.deepcopy(exported.json())
            part["epcisBody"]["eventList"] = [event]
            poster = event["bc:postedBy"].rsplit("/", 1)[-1]
            job = fresh.capture(device_of[poster], part).json()
            assert job["success"], job
        wait_for(lambda: fresh.entries(container) == len(life), what="the captured life")
        before = trail_view(
            ledger.ledger.get(f"/v1/containers/{container}/custody", headers=auditor)
        )
        after = trail_view(
            fresh.ledger.get(
                f"/v1/containers/{container}/custody", headers=fresh.network.auditor_headers()
            )
        )
        assert after == before
    finally:
        fresh.close()


def trail_view(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    trail = response.json()
    return {
        "state": trail["state"],
        "custodian": trail["custodian"],
        "intervals": trail["intervals"],
        "anomalies": sorted(item["code"] for item in trail["anomalies"]),
        "events": [(item["type"], item["event_id"]) for item in trail["events"]],
    }
