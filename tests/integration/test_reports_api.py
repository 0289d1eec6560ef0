"""Reports over the ledger API: mass balance, the shipment log CSV and the certificate PDF.

A small network posts through ingest (scans by devices, receipts by signed plant webhooks), the
consumer records them against the real broker and database, a checkpoint is signed, and the
three report endpoints are read back with an auditor token.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import floor
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import Engine, text
from standardwebhooks import Webhook

from services.bootstrap import build_consumer, build_ingest_app, build_ledger_api
from services.db.engine import make_engine
from services.ledger.rendering.shipment_log_csv import SHIPMENT_LOG_COLUMNS
from services.ledger.service.checkpointer import Checkpointer
from services.registry.store import RegistryStore
from services.settings import Settings
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

ORIGIN = "battery-custody.test/reports"
BASE = ev.BASE_TIME
WINDOW = {"from": BASE.isoformat(), "to": (BASE + timedelta(days=2)).isoformat()}


@dataclass
class Env:
    settings: Settings
    network: Network
    engine: Engine
    secret: str
    ingest: TestClient
    ledger: TestClient
    checkpointer: Checkpointer

    def auditor(self) -> dict[str, str]:
        return self.network.auditor_headers()


@pytest.fixture(scope="module")
def env(stack: LiveStack) -> Iterator[Env]:
    settings = stack.settings()
    network = register_network(settings)
    engine = make_engine(settings.database_url, pool_size=1)
    secret = RegistryStore(engine, cache_seconds=0).rotate_plant_secret("plant-a", timedelta(0))
    checkpointer = Checkpointer(
        engine, Ed25519PrivateKey.generate(), origin=ORIGIN, interval_s=3600, every_entries=1
    )
    stop = threading.Event()
    runner = build_consumer(settings)
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    with (
        TestClient(build_ingest_app(settings)) as ingest,
        TestClient(build_ledger_api(settings)) as ledger,
    ):
        yield Env(settings, network, engine, secret, ingest, ledger, checkpointer)
    stop.set()
    thread.join(timeout=30)
    engine.dispose()


def entry_count(env: Env) -> int:
    with env.engine.connect() as connection:
        count: int = connection.execute(text("SELECT count(*) FROM ledger.entries")).scalar_one()
    return count


def post_scans(env: Env, device: str, events: list[dict[str, Any]]) -> None:
    response = env.ingest.post(
        "/v1/events/batch", json={"events": events}, headers=env.network.headers(device)
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(events), response.text


def post_receipt(env: Env, container: str, hours: float, accepted_kg: float, shipment: str) -> None:
    body = orjson.dumps(
        {
            "type": "receipt.acknowledged",
            "timestamp": ev.at(hours + 0.1),
            "data": {
                "container_id": container,
                "shipment_id": shipment,
                "received_at": ev.at(hours),
                "accepted_weight_kg": accepted_kg,
                "condition": "ok",
                "plant_reference": f"RCV-{container}",
            },
        }
    )
    msg_id, now = f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(floor(now.timestamp())),
        "webhook-signature": Webhook(env.secret).sign(msg_id, now, body.decode()),
    }
    response = env.ingest.post("/v1/webhooks/plants/plant-a", content=body, headers=headers)
    assert response.status_code == 202, response.text


@pytest.fixture(scope="module")
def recorded(env: Env) -> dict[str, Any]:
    """Shipment R1 (site-a → plant-a, two containers) and R2 (site-b, still on the road)."""
    run = uuid.uuid4().hex[:6]
    c1, c2, c3 = (f"BX-rep-{run}-{n}" for n in (1, 2, 3))
    r1, r2 = f"BOL-R1-{run}", f"BOL-R2-{run}"
    post_scans(
        env,
        "site-a-dev",
        [
            ev.dropoff(c1, 0, weight_kg=110.0),
            ev.sealed(c1, 1, weight_kg=120.0),
            ev.event("dropoff", c2, 0, chemistry="li_metal", weight_kg=72.0),
            ev.event("sealed", c2, 1, weight_kg=80.0, un_numbers=["UN3090"]),
        ],
    )
    post_scans(env, "site-b-dev", [ev.dropoff(c3, 0), ev.sealed(c3, 1, weight_kg=50.0)])
    pickups = [
        ev.transfer(
            "pickup", c, 2, "site-a", "hauler-a", shipment_id=r1, destination_party="plant-a"
        )
        for c in (c1, c2)
    ]
    post_scans(env, "hauler-a-dev", pickups)
    post_scans(
        env,
        "hauler-b-dev",
        [
            ev.transfer(
                "pickup", c3, 3, "site-b", "hauler-b", shipment_id=r2, destination_party="plant-a"
            )
        ],
    )
    intakes = [
        ev.transfer("intake", c1, 8, "hauler-a", "plant-a", weight_kg=119.55),
        ev.transfer("intake", c2, 8.5, "hauler-a", "plant-a", weight_kg=70.0),
    ]
    processed = ev.event("processed", c1, 30, method="hydromet", input_weight_kg=119.55)
    post_scans(env, "plant-a-dev", [*intakes, processed])
    post_receipt(env, c1, 9, 119.5, r1)
    post_receipt(env, c2, 9.5, 69.0, r1)
    wait_for(lambda: entry_count(env) == 14, what="14 entries recorded")
    return {
        "c1": c1,
        "c2": c2,
        "c3": c3,
        "r1": r1,
        "r2": r2,
        "intake_c2": intakes[1],
        "processed_c1": processed,
    }


def entry(env: Env, event_id: str) -> dict[str, Any]:
    response = env.ledger.get(f"/v1/events/{event_id}", headers=env.auditor())
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


# --- mass balance --------------------------------------------------------------------------------


def test_mass_balance_per_site_plant_and_chemistry(env: Env, recorded: dict[str, Any]) -> None:
    by_site = env.ledger.get(
        "/v1/reports/mass-balance", params={**WINDOW, "group_by": "site"}, headers=env.auditor()
    )
    assert by_site.status_code == 200, by_site.text
    report = by_site.json()
    assert report["group_by"] == "site"
    assert report["tolerance"] == {"kg": 1.0, "pct": 2.0}
    totals = report["totals"]
    assert {k: v for k, v in totals.items() if k != "discrepancies"} == {
        "containers": 3,
        "shipped_containers": 3,
        "sealed_kg": 250.0,
        "taken_in_containers": 2,
        "intake_kg": 189.55,
        "accepted_containers": 2,
        "accepted_kg": 188.5,
        "not_taken_in_containers": 1,
        "not_taken_in_kg": 50.0,
        "discrepancy_count": 2,
    }
    found = {(d["container_id"], d["kind"]): d for d in totals["discrepancies"]}
    assert set(found) == {(recorded["c2"], "intake"), (recorded["c2"], "accepted")}
    intake = found[(recorded["c2"], "intake")]
    assert (intake["sealed_kg"], intake["weight_kg"], intake["difference_kg"]) == (
        80.0,
        70.0,
        -10.0,
    )
    assert intake["limit_kg"] == 1.6
    assert intake["event_id"] == recorded["intake_c2"]["event_id"]

    groups = {g["key"]: g for g in report["groups"]}
    assert set(groups) == {"site-a", "site-b"}
    assert (groups["site-a"]["shipped_containers"], groups["site-a"]["sealed_kg"]) == (2, 200.0)
    assert (groups["site-b"]["shipped_containers"], groups["site-b"]["sealed_kg"]) == (1, 50.0)
    assert groups["site-b"]["not_taken_in_kg"] == 50.0
    assert groups["site-a"]["intake_kg"] == 189.55

    by_plant = env.ledger.get(
        "/v1/reports/mass-balance", params={**WINDOW, "group_by": "plant"}, headers=env.auditor()
    ).json()
    assert [(g["key"], g["shipped_containers"]) for g in by_plant["groups"]] == [("plant-a", 3)]
    by_chemistry = env.ledger.get(
        "/v1/reports/mass-balance",
        params={**WINDOW, "group_by": "chemistry"},
        headers=env.auditor(),
    ).json()
    chemistry = {g["key"]: (g["sealed_kg"], g["intake_kg"]) for g in by_chemistry["groups"]}
    assert chemistry == {"li_ion": (170.0, 119.55), "li_metal": (80.0, 70.0)}
    assert by_chemistry["totals"] == totals


def test_mass_balance_windows_and_refusals(env: Env, recorded: dict[str, Any]) -> None:
    later = {"from": ev.at(4), "to": ev.at(48)}  # after the pickups, before nothing else
    answer = env.ledger.get("/v1/reports/mass-balance", params=later, headers=env.auditor())
    assert answer.status_code == 200, answer.text
    totals = answer.json()["totals"]
    assert (totals["shipped_containers"], totals["taken_in_containers"]) == (0, 2)
    assert answer.json()["groups"] == []

    refusals = [
        ({"to": WINDOW["to"]}, 422),
        ({"from": WINDOW["to"], "to": WINDOW["from"]}, 422),
        ({"from": "2026-11-02T08:00:00", "to": WINDOW["to"]}, 422),
        ({**WINDOW, "group_by": "hauler"}, 422),
    ]
    for params, status in refusals:
        response = env.ledger.get("/v1/reports/mass-balance", params=params, headers=env.auditor())
        assert response.status_code == status, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert env.ledger.get("/v1/reports/mass-balance", params=WINDOW).status_code == 401


# --- the shipment log ----------------------------------------------------------------------------


def log_rows(body: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(body, newline=""))
    assert tuple(reader.fieldnames or ()) == SHIPMENT_LOG_COLUMNS
    return list(reader)


def test_the_shipment_log_csv_from_each_side(env: Env, recorded: dict[str, Any]) -> None:
    r1, r2 = recorded["r1"], recorded["r2"]
    plant = env.ledger.get(
        "/v1/reports/shipment-log.csv", params={**WINDOW, "party": "plant-a"}, headers=env.auditor()
    )
    assert plant.status_code == 200, plant.text
    assert plant.headers["content-type"] == "text/csv; charset=utf-8"
    assert plant.headers["content-disposition"].startswith("attachment;")
    (row,) = log_rows(plant.text)  # R2 has not arrived
    assert row["shipment_id"] == r1
    assert (row["direction"], row["party"], row["other_party"]) == ("received", "plant-a", "site-a")
    assert (row["shipper"], row["receiving_party"], row["haulers"]) == (
        "site-a",
        "plant-a",
        "hauler-a",
    )
    assert row["ship_date"] == "2026-11-02T10:00:00.000000Z"
    assert row["receipt_date"] == "2026-11-02T16:00:00.000000Z"
    assert (row["containers"], row["containers_received"]) == ("2", "2")
    assert (row["sealed_kg"], row["intake_kg"]) == ("200.0", "189.55")
    assert (row["li_ion_containers"], row["li_ion_kg"]) == ("1", "120.0")
    assert (row["li_metal_containers"], row["li_metal_kg"]) == ("1", "80.0")
    assert (row["mixed_containers"], row["mixed_kg"]) == ("0", "0.0")
    assert row["container_ids"] == ";".join(sorted([recorded["c1"], recorded["c2"]]))

    site = env.ledger.get(
        "/v1/reports/shipment-log.csv", params={**WINDOW, "party": "site-b"}, headers=env.auditor()
    )
    (sent,) = log_rows(site.text)
    assert (sent["shipment_id"], sent["direction"], sent["other_party"]) == (r2, "sent", "plant-a")
    assert (sent["receipt_date"], sent["containers_received"], sent["sealed_kg"]) == (
        "",
        "0",
        "50.0",
    )

    everything = env.ledger.get(
        "/v1/reports/shipment-log.csv", params=WINDOW, headers=env.auditor()
    )
    assert [r["shipment_id"] for r in log_rows(everything.text)] == [r1, r2]
    bad = env.ledger.get(
        "/v1/reports/shipment-log.csv",
        params={**WINDOW, "party": "Not A Party"},
        headers=env.auditor(),
    )
    assert bad.status_code == 422


# --- the certificate -----------------------------------------------------------------------------


def test_the_certificate_pdf_proves_the_shipment(env: Env, recorded: dict[str, Any]) -> None:
    r1 = recorded["r1"]
    url = f"/v1/shipments/{r1}/certificate.pdf"
    unsigned = env.ledger.get(url, headers=env.auditor())  # nothing signed yet in this database
    assert unsigned.status_code == 404
    assert "no checkpoint" in unsigned.json()["detail"]

    assert env.checkpointer.checkpoint_now() is not None
    latest = env.ledger.get("/v1/checkpoints/latest", headers=env.auditor()).json()
    response = env.ledger.get(url, headers=env.auditor())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="certificate-{r1}.pdf"'
    )
    text = pdf_text(response.content)
    flat = re.sub(r"\s+", " ", text)
    assert r1 in text
    assert "site-a (Site-A)" in flat
    assert "plant-a (Plant-A)" in flat
    assert "hauler-a" in text
    for weight in ("120.0 kg", "119.55 kg", "119.5 kg", "80.0 kg", "70.0 kg", "69.0 kg"):
        assert weight in text, weight
    for moment in ("2026-11-02 10:00:00 UTC", "2026-11-02 16:00:00 UTC", "2026-11-03 14:00:00 UTC"):
        assert moment in text, moment
    assert "hydromet" in text
    processed = entry(env, recorded["processed_c1"]["event_id"])
    intake = entry(env, recorded["intake_c2"]["event_id"])
    for certified in (processed, intake):
        assert certified["entry_hash"] in text
        assert re.search(rf"(?<![\d.]){certified['seq']}(?![\d.])", text)
    assert latest["tree_size"] == 14
    assert re.search(rf"Tree size\s*{latest['tree_size']}\b", text)
    assert latest["root_hash"] in re.sub(r"\s+", "", text)
    attachments = PdfReader(io.BytesIO(response.content)).attachments
    assert attachments["checkpoint.note"] == [latest["note"].encode()]

    # a later entry shows only once a checkpoint covers it
    done = ev.event("processed", recorded["c2"], 31, method="shredding", input_weight_kg=70.0)
    post_scans(env, "plant-a-dev", [done])
    wait_for(lambda: entry_count(env) == 15, what="the processed entry")
    before = pdf_text(env.ledger.get(url, headers=env.auditor()).content)
    assert "shredding" not in before
    assert intake["entry_hash"] in before
    env.checkpointer.checkpoint_now()
    after = pdf_text(env.ledger.get(url, headers=env.auditor()).content)
    assert "shredding" in after
    assert entry(env, done["event_id"])["entry_hash"] in after
    assert re.search(r"Tree size\s*15\b", after)


def test_certificates_of_unknown_or_unreceived_shipments_are_404(
    env: Env, recorded: dict[str, Any]
) -> None:
    env.checkpointer.checkpoint_now()
    for shipment in (recorded["r2"], "BOL-never-seen", "with/slash"):
        response = env.ledger.get(
            f"/v1/shipments/{shipment}/certificate.pdf", headers=env.auditor()
        )
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (
        "taken in"
        in env.ledger.get(
            f"/v1/shipments/{recorded['r2']}/certificate.pdf", headers=env.auditor()
        ).json()["detail"]
    )
    anonymous = env.ledger.get(f"/v1/shipments/{recorded['r1']}/certificate.pdf")
    assert anonymous.status_code == 401
