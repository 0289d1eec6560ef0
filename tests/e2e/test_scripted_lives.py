"""Scripted container lives through the HTTP API, delivered out of order, duplicated and late
by several devices; the ledger must reconstruct the exact trails and anomalies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from services.db.engine import make_engine
from services.settings import Settings
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.services import ServiceProcess, running
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

Event = dict[str, Any]


@pytest.fixture(scope="module")
def system(
    stack: LiveStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Network, dict[str, ServiceProcess]]]:
    settings = stack.settings()
    network = register_network(settings)
    logs = tmp_path_factory.mktemp("scripted-logs")
    with running(settings, ["ingest", "ledger", "consumer"], Path(logs)) as services:
        yield settings, network, services


class Scanner:
    def __init__(self, base_url: str, network: Network) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30)
        self.network = network

    def post(self, device: str, event: Event) -> None:
        response = self.client.post("/v1/events", json=event, headers=self.network.headers(device))
        assert response.status_code == 202, response.text

    def upload(self, device: str, events: list[Event]) -> None:
        response = self.client.post(
            "/v1/events/batch", json={"events": events}, headers=self.network.headers(device)
        )
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(events), response.text


def recorded(settings: Settings) -> set[str]:
    engine = make_engine(settings.database_url, pool_size=1)
    with engine.connect() as connection:
        ids = set(connection.execute(text("SELECT event_id::text FROM ledger.entries")).scalars())
    engine.dispose()
    return ids


def test_scripted_lives_reconstruct_exactly(
    system: tuple[Settings, Network, dict[str, ServiceProcess]],
) -> None:
    settings, network, services = system
    assert services["ingest"].url
    assert services["ledger"].url
    scanner = Scanner(services["ingest"].url, network)
    base = datetime.now(UTC) - timedelta(hours=3)

    def make(event_type: str, container: str, hours: float, **fields: Any) -> Event:
        return ev.event(event_type, container, hours, base=base, **fields)

    # A: a full life over a hub, posted by six devices, out of order and twice in places.
    a = ev.unique_container("A")
    a1 = make("dropoff", a, 0, chemistry="li_ion", device_seq=1)
    a2 = make("dropoff", a, 0.5, chemistry="li_ion", battery_count=40)
    a3 = make("sealed", a, 1, weight_kg=120.0, un_numbers=["UN3480"], device_seq=2)
    a4 = make(
        "pickup",
        a,
        2,
        from_party="site-a",
        to_party="hauler-a",
        shipment_id="BOL-A",
        destination_party="plant-a",
    )
    a5 = make("handoff", a, 2.5, from_party="hauler-a", to_party="hub-a")
    a6 = make("handoff", a, 2.8, from_party="hub-a", to_party="hauler-b", shipment_id="BOL-A2")
    a7 = make("intake", a, 2.9, from_party="hauler-b", to_party="plant-a", weight_kg=119.5)
    a8 = make("processed", a, 2.95, method="shredding")

    # B: custody mismatch, weight discrepancy and a device clock running 10 minutes fast.
    b = ev.unique_container("B")
    b1 = make("dropoff", b, 0, chemistry="mixed")
    b2 = make("sealed", b, 1, weight_kg=120.0, un_numbers=["UN3480", "UN3090"])
    b3 = make("pickup", b, 2, from_party="site-b", to_party="hauler-a", shipment_id="BOL-B")
    b4 = make("intake", b, 2.5, from_party="hauler-a", to_party="plant-a", weight_kg=100.0)
    b5 = make("incident", b, 3 + 10 / 60, kind="damaged", description="crushed corner")

    # C: uploaded 30 h late, then a wrong pickup voided by its poster's correction.
    c = ev.unique_container("C")
    c0 = make("dropoff", c, -30, chemistry="nimh")
    c1 = make("sealed", c, 0, weight_kg=55.0, un_numbers=["UN3496"])
    c2 = make("pickup", c, 1, from_party="site-b", to_party="hauler-a", shipment_id="BOL-C")

    scanner.upload("plant-a-dev", [a7, a8])
    scanner.post("hauler-b-dev", a6)
    scanner.upload("site-a-dev", [a3, a1, b2])
    scanner.post("hub-a-dev", a5)
    scanner.post("plant-a-dev", b4)
    scanner.post("hauler-a-dev", a4)
    scanner.post("site-b-dev", b3)
    scanner.upload("site-b-dev", [c1, c0])
    scanner.post("site-a-dev2", a2)
    scanner.post("site-a-dev", b1)
    scanner.post("hauler-a-dev", c2)
    scanner.post("plant-a-dev", b5)
    scanner.post("site-a-dev", a3)  # a retry of an upload that had succeeded
    scanner.upload("hauler-b-dev", [a6])

    everything = [a1, a2, a3, a4, a5, a6, a7, a8, b1, b2, b3, b4, b5, c0, c1, c2]
    wait_for(lambda: recorded(settings) >= {e["event_id"] for e in everything}, what="events")
    c3 = make("correction", c, 1.5, corrects_event_id=c2["event_id"], reason="did_not_occur")
    scanner.post("hauler-a-dev", c3)
    everything.append(c3)
    wait_for(lambda: c3["event_id"] in recorded(settings), what="the correction")
    assert recorded(settings) == {e["event_id"] for e in everything}

    ledger = httpx.Client(
        base_url=services["ledger"].url, headers=network.auditor_headers(), timeout=30
    )

    def trail(container: str) -> dict[str, Any]:
        response = ledger.get(f"/v1/containers/{container}/custody")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def intervals(body: dict[str, Any]) -> list[tuple[str, str, str | None]]:
        return [(i["custodian"], i["opened_by"], i["closed_by"]) for i in body["intervals"]]

    def anomalies(body: dict[str, Any]) -> list[tuple[str, str | None]]:
        return [(item["code"], item["event_id"]) for item in body["anomalies"]]

    trail_a = trail(a)
    assert trail_a["state"] == "processed"
    assert trail_a["custodian"] == "plant-a"
    assert [e["event_id"] for e in trail_a["events"]] == [
        x["event_id"] for x in (a1, a2, a3, a4, a5, a6, a7, a8)
    ]
    assert intervals(trail_a) == [
        ("site-a", a1["event_id"], a4["event_id"]),
        ("hauler-a", a4["event_id"], a5["event_id"]),
        ("hub-a", a5["event_id"], a6["event_id"]),
        ("hauler-b", a6["event_id"], a7["event_id"]),
        ("plant-a", a7["event_id"], a8["event_id"]),
    ]
    assert trail_a["intervals"][0]["from"].startswith(a1["occurred_at"][:19])
    assert anomalies(trail_a) == []
    assert {e["origin"]["device_id"] for e in trail_a["events"]} == {
        "site-a-dev",
        "site-a-dev2",
        "hauler-a-dev",
        "hub-a-dev",
        "hauler-b-dev",
        "plant-a-dev",
    }

    trail_b = trail(b)
    assert (trail_b["state"], trail_b["custodian"]) == ("received", "plant-a")
    assert anomalies(trail_b) == [
        ("custody_mismatch", b3["event_id"]),
        ("weight_discrepancy", b4["event_id"]),
        ("clock_skew", b5["event_id"]),
    ]
    assert "100.0 kg" in trail_b["anomalies"][1]["detail"]

    trail_c = trail(c)
    assert (trail_c["state"], trail_c["custodian"]) == ("sealed", "site-b")
    assert intervals(trail_c) == [("site-b", c0["event_id"], None)]
    by_id = {e["event_id"]: e for e in trail_c["events"]}
    assert by_id[c2["event_id"]]["corrected"] is True
    assert by_id[c2["event_id"]]["corrected_by"] == c3["event_id"]
    assert [e["event_id"] for e in trail_c["events"]] == [x["event_id"] for x in (c0, c1, c2, c3)]
    assert anomalies(trail_c) == [("late_arrival", c0["event_id"])]

    flagged = ledger.get("/v1/containers", params={"anomaly": "weight_discrepancy"}).json()
    assert [item["container_id"] for item in flagged["items"]] == [b]
    in_transit_or_sealed = ledger.get("/v1/containers", params={"state": "sealed"}).json()
    assert [item["container_id"] for item in in_transit_or_sealed["items"]] == [c]
    listed = ledger.get("/v1/anomalies").json()["items"]
    assert {(item["container_id"], item["code"]) for item in listed} == {
        (b, "custody_mismatch"),
        (b, "weight_discrepancy"),
        (b, "clock_skew"),
        (c, "late_arrival"),
    }
    entry = ledger.get(f"/v1/events/{a4['event_id']}").json()
    assert entry["seq"] >= 0
    assert len(entry["entry_hash"]) == 64
    assert entry["origin"] == {
        "kind": "device",
        "party_id": "hauler-a",
        "device_id": "hauler-a-dev",
    }
