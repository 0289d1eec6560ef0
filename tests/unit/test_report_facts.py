"""Report facts (services/ledger/domain/report_facts.py): read from a trail, stored as JSON."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from services.contract import Origin, OriginKind, parse_event
from services.ledger.domain.custody import CustodyTrail, reconstruct
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.report_facts import (
    ContainerFacts,
    container_facts,
    facts_document,
    facts_from_document,
)
from services.simulation.scenario import ScenarioConfig, build_scenario
from tests.support import events as ev

NOW = datetime(2026, 11, 2, 14, 30, 12, tzinfo=UTC)
BASE = NOW - timedelta(days=2)


def trails(posted: list[tuple[str, dict[str, Any]]]) -> dict[str, CustodyTrail]:
    entries: dict[str, list[RecordedEntry]] = defaultdict(list)
    for seq, (party, body) in enumerate(posted):
        event = parse_event(body)
        origin = Origin(kind=OriginKind.DEVICE, party_id=party, device_id=f"{party}-dev")
        entries[event.container_id].append(
            RecordedEntry(seq, event, NOW, NOW, origin, 0, seq, b"", b"")
        )
    return {cid: reconstruct(items, now=NOW) for cid, items in entries.items()}


def stored(facts: ContainerFacts) -> ContainerFacts:
    """Through JSON as the read model keeps them (orjson, as the database engine)."""
    document = orjson.loads(orjson.dumps(facts_document(facts)))
    return facts_from_document(facts.container_id, document)


def test_the_facts_of_a_simulated_month_survive_their_json_form() -> None:
    scenario = build_scenario(ScenarioConfig(run_id="rf", now=NOW, containers=150, days=30, seed=5))
    party_of = {device.device_id: device.party_id for device in scenario.devices}
    seen: set[str] = set()
    posted = []
    for upload in scenario.uploads:
        for body in upload.events:
            if body["event_id"] not in seen:
                seen.add(body["event_id"])
                posted.append((party_of[upload.device_id], body))
    found = [container_facts(trail) for trail in trails(posted).values()]
    assert sum(f.intake is not None for f in found) >= 50
    assert any(f.pickup is not None and f.intake is None for f in found)
    for facts in found:
        assert stored(facts) == facts


def test_the_sealed_weight_is_the_one_shipped() -> None:
    site, hauler = "site-a", "hauler-a"
    posted = [
        (site, ev.dropoff("BX-rf-1", 0, base=BASE)),
        (site, ev.sealed("BX-rf-1", 1, base=BASE, weight_kg=100.0)),
        (site, ev.sealed("BX-rf-1", 2, base=BASE, weight_kg=101.0)),
        (hauler, ev.transfer("pickup", "BX-rf-1", 3, site, hauler, base=BASE, shipment_id="S")),
        (hauler, ev.sealed("BX-rf-1", 4, base=BASE, weight_kg=90.0)),
        (site, ev.dropoff("BX-rf-2", 0, base=BASE)),
        (site, ev.sealed("BX-rf-2", 1, base=BASE, weight_kg=50.0)),
        (site, ev.sealed("BX-rf-2", 2, base=BASE, weight_kg=55.0)),
    ]
    found = {cid: container_facts(trail) for cid, trail in trails(posted).items()}
    assert found["BX-rf-1"].sealed_kg == 101.0  # the last before the pickup
    assert found["BX-rf-2"].sealed_kg == 55.0  # not picked up: the last
    assert found["BX-rf-1"].shipment_id == "S"
    assert found["BX-rf-2"].shipment_id is None


def test_site_and_plant_without_a_dropoff_or_an_intake() -> None:
    hauler = "hauler-a"
    pickup = ev.transfer(
        "pickup",
        "BX-rf-3",
        3,
        "site-b",
        hauler,
        base=BASE,
        shipment_id="S3",
        destination_party="plant-b",
    )
    (facts,) = (container_facts(t) for t in trails([(hauler, pickup)]).values())
    assert (facts.site, facts.chemistry, facts.plant, facts.sealed_kg) == (
        hauler,
        None,
        "plant-b",
        None,
    )
    assert facts.pickup is not None
    assert (facts.pickup.event_id, facts.pickup.to_party) == (pickup["event_id"], hauler)
    assert stored(facts) == facts


def test_times_keep_their_instant_and_offset() -> None:
    local = timezone(timedelta(hours=-5))
    site = "site-a"
    dropoff = ev.dropoff("BX-rf-4", 0, base=BASE.astimezone(local))
    sealed = ev.sealed("BX-rf-4", 1, base=BASE.astimezone(local))
    pickup = ev.transfer(
        "pickup",
        "BX-rf-4",
        2.000001,
        site,
        "hauler-a",
        base=BASE.astimezone(local),
        shipment_id="S",
    )
    (trail,) = trails([(site, dropoff), (site, sealed), ("hauler-a", pickup)]).values()
    facts = stored(container_facts(trail))
    assert facts.pickup is not None
    assert facts.pickup.at == BASE + timedelta(hours=2.000001)
    assert facts.pickup.at.utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize("kind", ["intake", "pickup"])
def test_corrected_events_are_not_facts(kind: str) -> None:
    site, hauler, plant = "site-a", "hauler-a", "plant-a"
    posted = [
        (site, ev.dropoff("BX-rf-5", 0, base=BASE)),
        (site, ev.sealed("BX-rf-5", 1, base=BASE)),
        (hauler, ev.transfer("pickup", "BX-rf-5", 2, site, hauler, base=BASE, shipment_id="S")),
        (plant, ev.transfer("intake", "BX-rf-5", 5, hauler, plant, base=BASE, weight_kg=119.0)),
    ]
    target = next(body for _, body in posted if body["type"] == kind)
    correction = ev.event(
        "correction",
        "BX-rf-5",
        6,
        base=BASE,
        corrects_event_id=target["event_id"],
        reason="did_not_occur",
    )
    (before,) = (container_facts(t) for t in trails(posted).values())
    (after,) = (container_facts(t) for t in trails([*posted, (site, correction)]).values())
    assert getattr(before, kind) is not None
    assert getattr(after, kind) is None
