"""The simulated network and its upload plan (services/simulation/scenario.py), pure."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.contract import Origin, OriginKind, parse_event
from services.contract.events import Correction
from services.ingest.domain.permissions import check_may_post, check_parties_known
from services.ledger.domain.custody import TIME_BASED_CODES, AnomalyCode, reconstruct
from services.ledger.domain.entries import RecordedEntry
from services.registry.principals import Device, PartyRole
from services.simulation.scenario import (
    CLOCK_OFFSET,
    LATE_AFTER,
    MAX_BATCH_EVENTS,
    STATES,
    Scenario,
    ScenarioConfig,
    build_scenario,
)

NOW = datetime(2026, 11, 2, 14, 30, 12, 345678, tzinfo=UTC)
PARTY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{2,63}$")
UN_NUMBERS = {"UN3480", "UN3481", "UN3090", "UN3091"}


def config(**changes: Any) -> ScenarioConfig:
    return ScenarioConfig(**{"run_id": "t1a2b3", "now": NOW, **changes})


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(config())


def events_of(scenario: Scenario) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every distinct event by id, with the device that uploads it."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for upload in scenario.uploads:
        for event in upload.events:
            found.setdefault(event["event_id"], (upload.device_id, event))
    return found


def by_container(scenario: Scenario) -> dict[str, list[dict[str, Any]]]:
    containers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, event in events_of(scenario).values():
        containers[event["container_id"]].append(event)
    for events in containers.values():
        events.sort(key=lambda e: e["occurred_at"])
    return containers


def true_time(scenario: Scenario, device_id: str, event: dict[str, Any]) -> datetime:
    occurred = datetime.fromisoformat(event["occurred_at"])
    return occurred - scenario.device(device_id).clock_offset


# --- determinism and configuration ---------------------------------------------------------------


def test_the_same_config_gives_the_same_plan(scenario: Scenario) -> None:
    assert build_scenario(config()) == scenario


def test_another_seed_gives_another_plan(scenario: Scenario) -> None:
    other = build_scenario(config(seed=8))
    assert other.uploads != scenario.uploads


def test_the_run_id_renames_but_does_not_reshape(scenario: Scenario) -> None:
    other = build_scenario(config(run_id="zz9"))
    assert other.summary == scenario.summary
    assert not set(events_of(other)) & set(events_of(scenario))
    assert not {d.device_id for d in other.devices} & {d.device_id for d in scenario.devices}
    assert all(
        event["container_id"].startswith("BX-zz9-") for _, event in events_of(other).values()
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"run_id": "Bad_Id"},
        {"run_id": ""},
        {"now": NOW.replace(tzinfo=None)},
        {"containers": 0},
        {"days": 0},
        {"sites": 1},
        {"max_batch": MAX_BATCH_EVENTS + 1},
    ],
)
def test_bad_configs_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        config(**changes)


@pytest.mark.parametrize("containers", [1, 2, 7, 40])
def test_small_networks_still_build(containers: int) -> None:
    small = build_scenario(config(containers=containers, days=3, sites=2))
    assert small.summary.containers == containers
    assert len(by_container(small)) == containers
    for upload in small.uploads:
        for event in upload.events:
            parse_event(event)


# --- the network ---------------------------------------------------------------------------------


def test_network_parties_and_devices(scenario: Scenario) -> None:
    roles = Counter(party.role for party in scenario.parties)
    assert roles == {PartyRole.SITE: 6, PartyRole.HAULER: 2, PartyRole.HUB: 1, PartyRole.PLANT: 2}
    ids = [party.party_id for party in scenario.parties]
    assert {
        "site-01",
        "site-06",
        "hauler-01",
        "hauler-02",
        "hub-01",
        "plant-01",
        "plant-02",
    } <= set(ids)
    assert all(PARTY_ID.match(party_id) for party_id in ids)
    device_ids = [device.device_id for device in scenario.devices]
    assert len(set(device_ids)) == len(device_ids)
    assert all(d.startswith("sim-t1a2b3-") and len(d) <= 64 for d in device_ids)
    per_party = Counter(device.party_id for device in scenario.devices)
    assert set(per_party) == set(ids)
    assert set(per_party.values()) <= {1, 2}
    roles_of = {party.party_id: party.role for party in scenario.parties}
    assert all(device.role is roles_of[device.party_id] for device in scenario.devices)


def test_exactly_one_site_scanner_runs_fast(scenario: Scenario) -> None:
    skewed = [device for device in scenario.devices if device.clock_offset]
    assert [device.device_id for device in skewed] == [scenario.skewed_device]
    assert skewed[0].role is PartyRole.SITE
    assert skewed[0].clock_offset == CLOCK_OFFSET


# --- every event is valid and allowed -----------------------------------------------------------


def test_every_event_validates_and_its_device_may_post_it(scenario: Scenario) -> None:
    devices = {d.device_id: Device(d.device_id, d.party_id, d.role) for d in scenario.devices}
    roles = {party.party_id: party.role for party in scenario.parties}
    poster_of: dict[str, str] = {}
    checked = 0
    for upload in scenario.uploads:
        device = devices[upload.device_id]
        for body in upload.events:
            event = parse_event(body)
            check_parties_known(event, roles)
            corrected_poster = None
            if isinstance(event, Correction):
                corrected_poster = poster_of[str(event.corrects_event_id)]
            check_may_post(device, event, corrected_poster=corrected_poster)
            poster_of.setdefault(body["event_id"], device.party_id)
            checked += 1
    assert checked == scenario.summary.events_to_post


def test_ids_and_fields_look_real(scenario: Scenario) -> None:
    containers = by_container(scenario)
    assert len(containers) == scenario.summary.containers == 300
    for container_id, events in containers.items():
        assert CONTAINER_ID.match(container_id)
        assert container_id.startswith("BX-t1a2b3-")
        dropoffs = [e for e in events if e["type"] == "dropoff"]
        assert 1 <= len(dropoffs) <= 3
        assert events[0]["type"] == "dropoff"
        for sealed in (e for e in events if e["type"] == "sealed"):
            assert 20 <= sealed["weight_kg"] <= 400
            assert set(sealed["un_numbers"]) <= UN_NUMBERS
        sites = {e["location_id"].split(":")[0] for e in dropoffs}
        assert len(sites) == 1


def test_event_ids_are_unique(scenario: Scenario) -> None:
    firsts = [e["event_id"] for u in scenario.uploads if not u.duplicate for e in u.events]
    assert len(firsts) == len(set(firsts)) == scenario.summary.events


# --- time ----------------------------------------------------------------------------------------


def test_nothing_occurs_after_now_but_on_the_fast_clock(scenario: Scenario) -> None:
    for device_id, event in events_of(scenario).values():
        occurred = datetime.fromisoformat(event["occurred_at"])
        assert occurred.tzinfo is not None
        if device_id == scenario.skewed_device:
            assert occurred <= NOW + CLOCK_OFFSET
        else:
            assert occurred <= NOW
        assert occurred >= NOW - timedelta(days=31) + scenario.device(device_id).clock_offset


def test_device_seq_is_monotonic_per_device(scenario: Scenario) -> None:
    per_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for device_id, event in events_of(scenario).values():
        per_device[device_id].append(event)
    for events in per_device.values():
        events.sort(key=lambda e: e["device_seq"])
        assert [e["device_seq"] for e in events] == list(range(1, len(events) + 1))
        times = [datetime.fromisoformat(e["occurred_at"]) for e in events]
        assert times == sorted(times)


def test_uploads_come_in_time_order_after_their_events(scenario: Scenario) -> None:
    uploads = scenario.uploads
    regular = [u for u in uploads if not u.correction]
    assert [u.at for u in regular] == sorted(u.at for u in regular)
    corrections = [u for u in uploads if u.correction]
    assert uploads[len(regular) :] == tuple(corrections)
    for upload in uploads:
        assert upload.at <= NOW
        for event in upload.events:
            assert true_time(scenario, upload.device_id, event) <= upload.at


def test_batches_hold_1_to_500_events(scenario: Scenario) -> None:
    assert all(1 <= len(u.events) <= MAX_BATCH_EVENTS for u in scenario.uploads)
    assert any(len(u.events) > 1 for u in scenario.uploads)
    assert any(len(u.events) == 1 for u in scenario.uploads)


def test_big_backlogs_are_split_into_batches() -> None:
    small_batches = build_scenario(config(max_batch=5))
    assert all(len(u.events) <= 5 for u in small_batches.uploads)
    same_time = Counter((u.device_id, u.at) for u in small_batches.uploads if not u.duplicate)
    assert max(same_time.values()) > 1
    assert small_batches.summary.events == build_scenario(config()).summary.events


def test_batches_are_shuffled(scenario: Scenario) -> None:
    shuffled = 0
    for upload in scenario.uploads:
        seqs = [e["device_seq"] for e in upload.events]
        shuffled += seqs != sorted(seqs)
    assert shuffled > 0


def test_some_uploads_are_late(scenario: Scenario) -> None:
    late = 0
    for upload in scenario.uploads:
        oldest = min(true_time(scenario, upload.device_id, e) for e in upload.events)
        assert upload.late == (upload.at - oldest > LATE_AFTER)
        late += upload.late
    assert late == scenario.summary.late_uploads
    assert 0 < late < len(scenario.uploads) / 2


def test_some_batches_are_sent_twice_unchanged(scenario: Scenario) -> None:
    originals = {
        frozenset(e["event_id"] for e in u.events): u for u in scenario.uploads if not u.duplicate
    }
    duplicates = [u for u in scenario.uploads if u.duplicate]
    assert len(duplicates) == scenario.summary.duplicate_uploads
    assert 1 <= len(duplicates) <= 0.05 * len(scenario.uploads)
    for duplicate in duplicates:
        original = originals[frozenset(e["event_id"] for e in duplicate.events)]
        assert original.device_id == duplicate.device_id
        assert original.at <= duplicate.at
        by_id = {e["event_id"]: e for e in original.events}
        assert all(event == by_id[event["event_id"]] for event in duplicate.events)
    assert scenario.summary.duplicate_events == sum(len(u.events) for u in duplicates)
    assert scenario.summary.events_to_post == scenario.summary.events + sum(
        len(u.events) for u in duplicates
    )


# --- custody lives -------------------------------------------------------------------------------


def test_shipments_and_hub_legs(scenario: Scenario) -> None:
    shipments: dict[str, set[str]] = defaultdict(set)
    hub_containers = set()
    picked = set()
    for events in by_container(scenario).values():
        for event in events:
            if event["type"] == "pickup":
                shipments[event["shipment_id"]].add(event["container_id"])
                assert event["destination_party"].startswith("plant-")
                picked.add(event["container_id"])
            if event["type"] == "handoff" and event["to_party"] == "hub-01":
                hub_containers.add(event["container_id"])
    assert len(shipments) == scenario.summary.shipments
    assert any(len(members) > 1 for members in shipments.values())
    assert 0.1 < len(hub_containers) / len(picked) < 0.5


def test_intake_weights_match_sealed_but_for_the_planted_discrepancies(
    scenario: Scenario,
) -> None:
    off = 0
    for events in by_container(scenario).values():
        sealed = next((e["weight_kg"] for e in events if e["type"] == "sealed"), None)
        for intake in (e for e in events if e["type"] == "intake"):
            assert sealed is not None
            ratio = abs(intake["weight_kg"] - sealed) / sealed
            if ratio > 0.05:
                off += 1
            else:
                assert ratio <= 0.005
    assert off == scenario.summary.expected_anomalies["weight_discrepancy"] >= 1


def test_mismatched_pickups_name_another_site(scenario: Scenario) -> None:
    mismatched = 0
    for events in by_container(scenario).values():
        site = events[0]["location_id"].split(":")[0]
        for pickup in (e for e in events if e["type"] == "pickup"):
            if pickup["from_party"] != site:
                assert pickup["from_party"].startswith("site-")
                mismatched += 1
    assert mismatched == scenario.summary.expected_anomalies["custody_mismatch"] >= 1


def test_corrections_void_a_dropoff_of_the_same_party(scenario: Scenario) -> None:
    events = events_of(scenario)
    corrections = [u for u in scenario.uploads if u.correction]
    assert len(corrections) == scenario.summary.corrections >= 1
    for upload in corrections:
        (body,) = upload.events
        assert body["type"] == "correction"
        assert body["reason"] == "did_not_occur"
        original_device, original = events[body["corrects_event_id"]]
        assert original["type"] == "dropoff"
        assert original_device == upload.device_id
        assert original["occurred_at"] < body["occurred_at"]


def test_the_ledger_would_see_every_state_and_exactly_the_planted_anomalies(
    scenario: Scenario,
) -> None:
    """Replay the plan through the pure reconstruction, as if posted promptly at NOW."""
    received_at = NOW + timedelta(seconds=30)
    party_of = {d.device_id: d.party_id for d in scenario.devices}
    entries: dict[str, list[RecordedEntry]] = defaultdict(list)
    for seq, (device_id, body) in enumerate(events_of(scenario).values(), start=1):
        event = parse_event(body)
        entries[event.container_id].append(
            RecordedEntry(
                seq=seq,
                event=event,
                received_at=received_at,
                recorded_at=received_at,
                origin=Origin(
                    kind=OriginKind.DEVICE, party_id=party_of[device_id], device_id=device_id
                ),
                kafka_partition=0,
                kafka_offset=seq,
                prev_hash=b"",
                entry_hash=b"",
            )
        )
    states: Counter[str] = Counter()
    anomalies: Counter[str] = Counter()
    corrected = 0
    for container_entries in entries.values():
        trail = reconstruct(container_entries, now=NOW)
        assert trail.state is not None
        states[trail.state.value] += 1
        corrected += sum(event.corrected for event in trail.events)
        for anomaly in trail.anomalies:
            if anomaly.code not in TIME_BASED_CODES and anomaly.code != AnomalyCode.LATE_ARRIVAL:
                anomalies[anomaly.code.value] += 1
    assert dict(states) == {k: v for k, v in scenario.summary.states.items() if v}
    assert all(scenario.summary.states[state] > 0 for state in STATES)
    assert dict(anomalies) == scenario.summary.expected_anomalies
    assert corrected == scenario.summary.corrections
    assert scenario.summary.expected_anomalies["clock_skew"] >= 1


def test_summary_rows_name_every_figure(scenario: Scenario) -> None:
    labels = [label for label, _ in scenario.summary.rows()]
    assert "late uploads (> 24 h)" in labels
    assert "expected anomaly weight_discrepancy" in labels
    assert "state in_transit" in labels
