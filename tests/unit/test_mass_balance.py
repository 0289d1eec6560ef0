"""Mass balance and the 40 CFR 273 shipment log over a simulated month (pure).

A month of a simulated network (services/simulation/scenario.py) is replayed through the pure
reconstruction, plus a plant receipt (receipt_ack) for every intake, into each container's report
facts as the read model stores them (JSON). The report's figures must equal sums written out
plainly here, straight from the scenario's event dicts.
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.contract import Origin, OriginKind, parse_event
from services.ledger.domain.custody import CustodyRules, reconstruct
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.mass_balance import (
    DiscrepancyKind,
    Figures,
    GroupBy,
    MassBalance,
    Window,
    mass_balance,
)
from services.ledger.domain.report_facts import (
    ContainerFacts,
    container_facts,
    facts_document,
    facts_from_document,
)
from services.ledger.domain.shipment_log import CHEMISTRY_TYPES, shipment_log
from services.ledger.rendering.shipment_log_csv import SHIPMENT_LOG_COLUMNS, write_log_csv
from services.simulation.scenario import Scenario, ScenarioConfig, build_scenario
from tests.support import events as ev

NOW = datetime(2026, 11, 2, 14, 30, 12, tzinfo=UTC)
RECEIVED_AT = NOW + timedelta(seconds=30)
FULL_MONTH = Window(NOW - timedelta(days=31), NOW + timedelta(hours=1))
MID_MONTH = Window(NOW - timedelta(days=20), NOW - timedelta(days=6))
WINDOWS = {"full month": FULL_MONTH, "mid month": MID_MONTH}
ACK_EVERY = 7  # every 7th receipt accepts 10 % less: a discrepancy


@dataclass
class Posted:
    party: str
    device: str | None
    body: dict[str, Any]


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(ScenarioConfig(run_id="mb7", now=NOW, containers=200, days=30, seed=11))


@pytest.fixture(scope="module")
def posted(scenario: Scenario) -> list[Posted]:
    """Every distinct event once, with its poster, plus a plant receipt for each intake."""
    party_of = {device.device_id: device.party_id for device in scenario.devices}
    seen: set[str] = set()
    events: list[Posted] = []
    for upload in scenario.uploads:
        for body in upload.events:
            if body["event_id"] not in seen:
                seen.add(body["event_id"])
                events.append(Posted(party_of[upload.device_id], upload.device_id, body))
    intakes = sorted(
        (p.body for p in events if p.body["type"] == "intake"), key=lambda b: b["container_id"]
    )
    for number, intake in enumerate(intakes):
        factor = 0.9 if number % ACK_EVERY == 0 else 0.998
        at = datetime.fromisoformat(intake["occurred_at"]) + timedelta(hours=2)
        receipt = {
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"ack:{intake['event_id']}")),
            "type": "receipt_ack",
            "container_id": intake["container_id"],
            "occurred_at": at.isoformat(),
            "location_id": f"{intake['to_party']}:webhook",
            "accepted_weight_kg": round(intake["weight_kg"] * factor, 2),
            "condition": "ok" if factor > 0.95 else "discrepancy",
            "plant_reference": f"RCV-{number}",
        }
        events.append(Posted(intake["to_party"], None, receipt))
    return events


def replay(events: list[Posted]) -> list[ContainerFacts]:
    entries: dict[str, list[RecordedEntry]] = defaultdict(list)
    for seq, item in enumerate(events):
        event = parse_event(item.body)
        origin = Origin(
            kind=OriginKind.DEVICE if item.device else OriginKind.WEBHOOK,
            party_id=item.party,
            device_id=item.device,
        )
        entries[event.container_id].append(
            RecordedEntry(seq, event, RECEIVED_AT, RECEIVED_AT, origin, 0, seq, b"", b"")
        )
    return [
        facts_from_document(
            container_id,
            orjson.loads(
                orjson.dumps(facts_document(container_facts(reconstruct(items, now=NOW))))
            ),
        )
        for container_id, items in entries.items()
    ]


@pytest.fixture(scope="module")
def facts(posted: list[Posted]) -> list[ContainerFacts]:
    return replay(posted)


# --- the independent sums -----------------------------------------------------------------------


def instant(body: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(body["occurred_at"])


def inside(body: dict[str, Any], window: Window) -> bool:
    return window.start <= instant(body) < window.end


@dataclass
class Expected:
    containers: set[str]
    shipped: int
    sealed_kg: float
    taken_in: int
    intake_kg: float
    accepted: int
    accepted_kg: float
    not_taken_in: int
    not_taken_in_kg: float
    discrepancies: set[tuple[str, str]]


def expected_figures(
    events: list[Posted], window: Window, keep: set[str] | None = None
) -> Expected:
    """Plain sums over the event dicts: each container has at most one of each type here."""
    voided = {p.body["corrects_event_id"] for p in events if p.body["type"] == "correction"}
    bodies = [p.body for p in events if p.body["event_id"] not in voided]
    if keep is not None:
        bodies = [b for b in bodies if b["container_id"] in keep]
    sealed = {b["container_id"]: b["weight_kg"] for b in bodies if b["type"] == "sealed"}
    intake_at = {b["container_id"]: instant(b) for b in bodies if b["type"] == "intake"}
    result = Expected(set(), 0, 0.0, 0, 0.0, 0, 0.0, 0, 0.0, set())

    def off(container: str, weight: float) -> bool:
        return abs(weight - sealed[container]) > max(1.0, sealed[container] * 2.0 / 100)

    for body in bodies:
        container = body["container_id"]
        if not inside(body, window):
            continue
        if body["type"] == "pickup":
            result.containers.add(container)
            result.shipped += 1
            result.sealed_kg += sealed[container]
            if container not in intake_at or intake_at[container] >= window.end:
                result.not_taken_in += 1
                result.not_taken_in_kg += sealed[container]
        elif body["type"] == "intake":
            result.containers.add(container)
            result.taken_in += 1
            result.intake_kg += body["weight_kg"]
            if off(container, body["weight_kg"]):
                result.discrepancies.add((container, "intake"))
        elif body["type"] == "receipt_ack":
            result.containers.add(container)
            result.accepted += 1
            result.accepted_kg += body["accepted_weight_kg"]
            if off(container, body["accepted_weight_kg"]):
                result.discrepancies.add((container, "accepted"))
    return result


def site_of(events: list[Posted]) -> dict[str, str]:
    """The site a container was dropped off at, from the dropoff's location ("site-03:dock")."""
    found: dict[str, str] = {}
    for item in events:
        if item.body["type"] == "dropoff":
            found.setdefault(item.body["container_id"], item.body["location_id"].split(":")[0])
    return found


def assert_figures(figures: Figures, expected: Expected) -> None:
    assert figures.containers == len(expected.containers)
    assert figures.shipped_containers == expected.shipped
    assert figures.sealed_kg == pytest.approx(expected.sealed_kg, abs=1e-6)
    assert figures.taken_in_containers == expected.taken_in
    assert figures.intake_kg == pytest.approx(expected.intake_kg, abs=1e-6)
    assert figures.accepted_containers == expected.accepted
    assert figures.accepted_kg == pytest.approx(expected.accepted_kg, abs=1e-6)
    assert figures.not_taken_in_containers == expected.not_taken_in
    assert figures.not_taken_in_kg == pytest.approx(expected.not_taken_in_kg, abs=1e-6)
    found = {(item.container_id, item.kind.value) for item in figures.discrepancies}
    assert found == expected.discrepancies


# --- mass balance ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(WINDOWS))
def test_a_simulated_month_matches_an_independent_sum(
    name: str, posted: list[Posted], facts: list[ContainerFacts]
) -> None:
    window = WINDOWS[name]
    report = mass_balance(facts, window)
    expected = expected_figures(posted, window)
    assert_figures(report.totals, expected)
    assert report.groups == ()
    # the month is busy enough for the comparison to mean something
    assert expected.shipped >= 40
    assert expected.taken_in >= 40
    assert expected.accepted >= 40
    assert expected.not_taken_in >= 1
    assert any(kind == "accepted" for _, kind in expected.discrepancies)
    if window is FULL_MONTH:  # the scenario plants its intake discrepancies somewhere in it
        assert any(kind == "intake" for _, kind in expected.discrepancies)


def test_the_window_is_half_open_and_matters(
    posted: list[Posted], facts: list[ContainerFacts]
) -> None:
    pickups = sorted(instant(p.body) for p in posted if p.body["type"] == "pickup")
    assert pickups[0] < MID_MONTH.start
    assert pickups[-1] >= MID_MONTH.end
    edge = pickups[len(pickups) // 2]
    before = mass_balance(facts, Window(pickups[0], edge)).totals.shipped_containers
    after = mass_balance(facts, Window(edge, pickups[-1] + timedelta(seconds=1)))
    assert before + after.totals.shipped_containers == len(pickups)
    assert before == sum(1 for at in pickups if at < edge)


@pytest.mark.parametrize("group_by", list(GroupBy))
def test_groups_add_up_to_the_totals(group_by: GroupBy, facts: list[ContainerFacts]) -> None:
    report = mass_balance(facts, MID_MONTH, group_by=group_by)
    assert len(report.groups) >= 2
    totals = report.totals
    groups = report.groups
    for field in (
        "containers",
        "shipped_containers",
        "taken_in_containers",
        "accepted_containers",
        "not_taken_in_containers",
    ):
        assert sum(getattr(g, field) for g in groups) == getattr(totals, field), field
    for field in ("sealed_kg", "intake_kg", "accepted_kg", "not_taken_in_kg"):
        assert math.fsum(getattr(g, field) for g in groups) == pytest.approx(
            getattr(totals, field), abs=1e-6
        ), field
    assert {d for g in groups for d in g.discrepancies} == set(totals.discrepancies)
    assert sum(len(g.discrepancies) for g in groups) == len(totals.discrepancies)
    keys = [g.key for g in groups]
    assert len(set(keys)) == len(keys)
    if group_by is GroupBy.CHEMISTRY:
        assert set(keys) <= {"li_ion", "li_metal", "mixed"}
    if group_by is GroupBy.PLANT:
        assert set(keys) == {"plant-01", "plant-02"}


def test_per_site_figures_match_an_independent_sum(
    posted: list[Posted], facts: list[ContainerFacts]
) -> None:
    sites = site_of(posted)
    report = mass_balance(facts, MID_MONTH, group_by=GroupBy.SITE)
    assert {g.key for g in report.groups} <= set(sites.values())
    for group in report.groups:
        assert group.key is not None
        members = {c for c, site in sites.items() if site == group.key}
        assert_figures(group, expected_figures(posted, MID_MONTH, keep=members))


def test_corrected_events_do_not_count(posted: list[Posted], facts: list[ContainerFacts]) -> None:
    window = MID_MONTH
    in_window = [p for p in posted if inside(p.body, window)]
    intake = next(p for p in in_window if p.body["type"] == "intake")
    pickup = next(
        p
        for p in in_window
        if p.body["type"] == "pickup" and p.body["container_id"] != intake.body["container_id"]
    )
    corrections = [
        Posted(
            item.party,
            item.device,
            ev.event(
                "correction",
                item.body["container_id"],
                0,
                base=instant(item.body) + timedelta(hours=1),
                location_id=item.body["location_id"],
                corrects_event_id=item.body["event_id"],
                reason="did_not_occur",
            ),
        )
        for item in (intake, pickup)
    ]
    corrected = posted + corrections
    before = mass_balance(facts, window).totals
    after = mass_balance(replay(corrected), window).totals
    assert_figures(after, expected_figures(corrected, window))

    sealed = {
        p.body["container_id"]: p.body["weight_kg"] for p in posted if p.body["type"] == "sealed"
    }
    assert after.taken_in_containers == before.taken_in_containers - 1
    assert after.intake_kg == pytest.approx(before.intake_kg - intake.body["weight_kg"])
    assert after.shipped_containers == before.shipped_containers - 1
    assert after.sealed_kg == pytest.approx(before.sealed_kg - sealed[pickup.body["container_id"]])


def test_events_after_processing_and_unsealed_containers() -> None:
    """An intake after the container was processed is not effective; no sealed weight → unsealed."""
    base = NOW - timedelta(days=2)
    site, hauler, plant = "site-a", "hauler-a", "plant-a"
    processed = [
        (site, ev.dropoff("BX-mb-1", 0, base=base)),
        (site, ev.sealed("BX-mb-1", 1, base=base, weight_kg=100.0)),
        (hauler, ev.transfer("pickup", "BX-mb-1", 2, site, hauler, base=base, shipment_id="S1")),
        (plant, ev.transfer("intake", "BX-mb-1", 5, hauler, plant, base=base, weight_kg=99.5)),
        (plant, ev.event("processed", "BX-mb-1", 9, base=base, method="shredding")),
        (plant, ev.transfer("intake", "BX-mb-1", 10, hauler, plant, base=base, weight_kg=80.0)),
    ]
    unsealed = [
        (site, ev.dropoff("BX-mb-2", 0, base=base)),
        (hauler, ev.transfer("pickup", "BX-mb-2", 2, site, hauler, base=base, shipment_id="S2")),
    ]
    facts = replay([Posted(party, f"{party}-dev", body) for party, body in processed + unsealed])
    report = mass_balance(facts, Window(base, NOW), rules=CustodyRules())
    totals = report.totals
    assert (totals.shipped_containers, totals.sealed_kg) == (2, 100.0)
    assert (totals.taken_in_containers, totals.intake_kg) == (1, 99.5)
    assert (totals.not_taken_in_containers, totals.not_taken_in_kg) == (1, 0.0)
    assert [(d.container_id, d.kind) for d in totals.discrepancies] == [
        ("BX-mb-2", DiscrepancyKind.UNSEALED)
    ]


def test_the_tolerance_is_the_custody_rules() -> None:
    base = NOW - timedelta(days=2)
    bodies = [
        ("site-a", ev.dropoff("BX-mb-3", 0, base=base)),
        ("site-a", ev.sealed("BX-mb-3", 1, base=base, weight_kg=100.0)),
        (
            "hauler-a",
            ev.transfer("pickup", "BX-mb-3", 2, "site-a", "hauler-a", base=base, shipment_id="S3"),
        ),
        (
            "plant-a",
            ev.transfer("intake", "BX-mb-3", 5, "hauler-a", "plant-a", base=base, weight_kg=97.5),
        ),
    ]
    facts = replay([Posted(party, f"{party}-dev", body) for party, body in bodies])
    window = Window(base, NOW)
    (found,) = mass_balance(facts, window).totals.discrepancies  # 2.5 kg > max(1, 2 kg)
    assert (found.kind, found.difference_kg, found.limit_kg) == (
        DiscrepancyKind.INTAKE,
        pytest.approx(-2.5),
        2.0,
    )
    loose = CustodyRules(weight_tolerance_kg=1.0, weight_tolerance_pct=3.0)
    assert mass_balance(facts, window, rules=loose).totals.discrepancies == ()


def test_windows_need_offsets_and_a_positive_length() -> None:
    with pytest.raises(ValueError, match="offset"):
        Window(datetime(2026, 1, 1), datetime(2026, 2, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="start before"):
        Window(NOW, NOW)


# --- the shipment log -----------------------------------------------------------------------------


def log_rows(text: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == SHIPMENT_LOG_COLUMNS
    return list(reader)


def expected_shipments(posted: list[Posted]) -> dict[str, dict[str, Any]]:
    """Per shipment_id, straight from the dicts (one site and one plant per run here)."""
    sites = site_of(posted)
    voided = {p.body["corrects_event_id"] for p in posted if p.body["type"] == "correction"}
    bodies = [p.body for p in posted if p.body["event_id"] not in voided]
    sealed = {b["container_id"]: b["weight_kg"] for b in bodies if b["type"] == "sealed"}
    chemistry = {}
    for body in bodies:
        if body["type"] == "dropoff":
            chemistry.setdefault(body["container_id"], body["chemistry"])
    intakes = {b["container_id"]: b for b in bodies if b["type"] == "intake"}
    shipments: dict[str, dict[str, Any]] = {}
    for body in bodies:
        if body["type"] != "pickup":
            continue
        container = body["container_id"]
        row = shipments.setdefault(
            body["shipment_id"],
            {
                "containers": [],
                "ship": [],
                "receipt": [],
                "kg": 0.0,
                "intake_kg": 0.0,
                "types": defaultdict(lambda: [0, 0.0]),
                "shipper": set(),
                "receiver": set(),
            },
        )
        row["containers"].append(container)
        row["ship"].append(instant(body))
        row["kg"] += sealed[container]
        row["types"][chemistry[container]][0] += 1
        row["types"][chemistry[container]][1] += sealed[container]
        row["shipper"].add(sites[container])
        intake = intakes.get(container)
        if intake is not None:
            row["receipt"].append(instant(intake))
            row["intake_kg"] += intake["weight_kg"]
            row["receiver"].add(intake["to_party"])
        else:
            row["receiver"].add(body["destination_party"])
    return shipments


def check_row(row: dict[str, str], want: dict[str, Any]) -> None:
    assert row["shipper"] == next(iter(want["shipper"]))
    assert row["receiving_party"] == next(iter(want["receiver"]))
    assert row["containers"] == str(len(want["containers"]))
    assert row["containers_received"] == str(len(want["receipt"]))
    assert row["container_ids"] == ";".join(sorted(want["containers"]))
    assert datetime.fromisoformat(row["ship_date"]) == min(want["ship"])
    if want["receipt"]:
        assert datetime.fromisoformat(row["receipt_date"]) == min(want["receipt"])
    else:
        assert row["receipt_date"] == ""
    assert float(row["sealed_kg"]) == pytest.approx(want["kg"], abs=5e-4)
    assert float(row["intake_kg"]) == pytest.approx(want["intake_kg"], abs=5e-4)
    for kind in CHEMISTRY_TYPES:
        count, kg = want["types"].get(kind, (0, 0.0))
        assert row[f"{kind}_containers"] == str(count)
        assert float(row[f"{kind}_kg"]) == pytest.approx(kg, abs=5e-4)


def test_the_shipment_log_lists_every_shipment_that_left_in_the_window(
    posted: list[Posted], facts: list[ContainerFacts]
) -> None:
    shipments = expected_shipments(posted)
    assert all(len(s["shipper"]) == 1 and len(s["receiver"]) == 1 for s in shipments.values())
    rows = log_rows(write_log_csv(shipment_log(facts, MID_MONTH)))
    want = {
        sid for sid, s in shipments.items() if MID_MONTH.start <= min(s["ship"]) < MID_MONTH.end
    }
    assert len(want) >= 10
    assert [row["shipment_id"] for row in rows] == sorted(
        want, key=lambda sid: (min(shipments[sid]["ship"]), sid)
    )
    for row in rows:
        assert (row["direction"], row["party"], row["other_party"]) == ("", "", "")
        check_row(row, shipments[row["shipment_id"]])


def test_the_shipment_log_from_a_site_and_from_a_plant(
    posted: list[Posted], facts: list[ContainerFacts]
) -> None:
    shipments = expected_shipments(posted)
    window = MID_MONTH
    site = "site-01"
    sent = log_rows(write_log_csv(shipment_log(facts, window, party=site)))
    want_sent = {
        sid
        for sid, s in shipments.items()
        if s["shipper"] == {site} and window.start <= min(s["ship"]) < window.end
    }
    assert {row["shipment_id"] for row in sent} == want_sent != set()
    for row in sent:
        assert (row["direction"], row["party"]) == ("sent", site)
        assert row["other_party"] == row["receiving_party"]
        check_row(row, shipments[row["shipment_id"]])

    plant = "plant-01"
    received = log_rows(write_log_csv(shipment_log(facts, window, party=plant)))
    want_received = {
        sid
        for sid, s in shipments.items()
        if s["receiver"] == {plant}
        and s["receipt"]
        and window.start <= min(s["receipt"]) < window.end
    }
    assert {row["shipment_id"] for row in received} == want_received != set()
    for row in received:
        assert (row["direction"], row["party"]) == ("received", plant)
        assert row["other_party"] == row["shipper"]
        check_row(row, shipments[row["shipment_id"]])
    assert shipment_log(facts, window, party="hauler-01") == []  # carriers keep no such log


def test_shipment_ids_that_look_like_formulas_are_made_inert() -> None:
    base = NOW - timedelta(days=1)
    bodies = [
        ("site-a", ev.dropoff("BX-mb-4", 0, base=base)),
        ("site-a", ev.sealed("BX-mb-4", 1, base=base)),
        (
            "hauler-a",
            ev.transfer(
                "pickup", "BX-mb-4", 2, "site-a", "hauler-a", base=base, shipment_id="=HYPERLINK(1)"
            ),
        ),
    ]
    facts = replay([Posted(party, f"{party}-dev", body) for party, body in bodies])
    (row,) = log_rows(write_log_csv(shipment_log(facts, Window(base, NOW))))
    assert row["shipment_id"] == "'=HYPERLINK(1)"
    assert row["receiving_party"] == ""
    assert row["haulers"] == "hauler-a"


def test_mass_balance_is_a_value(facts: list[ContainerFacts]) -> None:
    report = mass_balance(facts, MID_MONTH, group_by=GroupBy.PLANT)
    assert isinstance(report, MassBalance)
    assert report == mass_balance(list(reversed(facts)), MID_MONTH, group_by=GroupBy.PLANT)
