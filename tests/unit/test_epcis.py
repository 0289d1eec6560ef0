"""EPCIS 2.0 export (services/ledger/domain/epcis.py) against the GS1 EPCIS 2.0 JSON Schema.

The schema is draft-07 and says ``"format": "uri"`` / ``"date-time"`` for every identifier and
time: the validator (``services/contract/epcis_schema.py``, ``jsonschema-rs``) asserts them with
its own RFC 3986 / RFC 3339 checks, without which a document full of bad URIs would pass. The
official GS1 examples must validate with the same setup.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from jsonschema_rs import Draft7Validator

from services.contract import Origin, OriginKind, parse_event
from services.contract.epcis_identifiers import container_uri, event_uri, party_uri
from services.contract.epcis_schema import DOCUMENT_SCHEMA
from services.contract.epcis_schema import validator as epcis_validator
from services.contract.events import Correction
from services.ledger.domain.custody import CustodyTrail, reconstruct
from services.ledger.domain.entries import RecordedEntry
from services.ledger.rendering.epcis import EPCIS_CONTEXT, EXTENSION_CONTEXT, epcis_document
from services.simulation.scenario import Scenario, ScenarioConfig, build_scenario

STANDARDS = Path(__file__).resolve().parents[3] / "shared" / "standards" / "epcis"
SCHEMA_FILE = STANDARDS / "EPCIS-JSON-Schema.json"
NOW = datetime(2026, 11, 2, 14, 30, 12, 345678, tzinfo=UTC)
CREATED = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)

EXPECTED: dict[str, tuple[str, str, str, str | None]] = {
    # type: (EPCIS event type, action, bizStep, disposition)
    "dropoff": ("AggregationEvent", "ADD", "collecting", "disposed"),
    "sealed": ("ObjectEvent", "OBSERVE", "packing", "container_closed"),
    "pickup": ("ObjectEvent", "OBSERVE", "consigning", "in_transit"),
    "intake": ("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
    "receipt_ack": ("ObjectEvent", "OBSERVE", "accepting", "in_progress"),
    "processed": ("ObjectEvent", "DELETE", "destroying", "destroyed"),
    "incident": ("ObjectEvent", "OBSERVE", "inspecting", "damaged"),
}


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    if not SCHEMA_FILE.is_file():
        pytest.fail(
            f"the GS1 EPCIS 2.0 JSON Schema is missing at {SCHEMA_FILE}: the shared/ folder "
            "with standards/epcis/ must sit beside the checkout"
        )
    shipped = json.loads(DOCUMENT_SCHEMA.read_text(encoding="utf-8"))
    assert shipped == json.loads(SCHEMA_FILE.read_text(encoding="utf-8")), (
        "services/contract/gs1/ must hold GS1's schema unchanged"
    )
    assert shipped["$schema"] == "http://json-schema.org/draft-07/schema#"
    return epcis_validator(DOCUMENT_SCHEMA)


def schema_errors(validator: Draft7Validator, document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(str(step) for step in error.instance_path)}: {error.message}"
        for error in validator.iter_errors(document)
    ]


# --- building trails ----------------------------------------------------------------------------


def entry(body: dict[str, Any], seq: int, party: str, device: str | None) -> RecordedEntry:
    event = parse_event(body)
    received_at = max(NOW, event.occurred_at) + timedelta(seconds=30)
    return RecordedEntry(
        seq=seq,
        event=event,
        received_at=received_at,
        recorded_at=received_at + timedelta(milliseconds=5),
        origin=Origin(
            kind=OriginKind.DEVICE if device else OriginKind.WEBHOOK,
            party_id=party,
            device_id=device,
        ),
        kafka_partition=0,
        kafka_offset=seq,
        prev_hash=bytes(32),
        entry_hash=hashlib.sha256(b"\x00" + event.event_id.bytes).digest(),
    )


def scenario_trails(scenario: Scenario) -> list[CustodyTrail]:
    """Replay a simulated network through the pure reconstruction, as test_scenario does."""
    party_of = {d.device_id: d.party_id for d in scenario.devices}
    seen: set[str] = set()
    entries: dict[str, list[RecordedEntry]] = defaultdict(list)
    seq = 0
    for upload in scenario.uploads:
        for body in upload.events:
            if body["event_id"] in seen:
                continue
            seen.add(body["event_id"])
            seq += 1
            recorded = entry(body, seq, party_of[upload.device_id], upload.device_id)
            entries[recorded.container_id].append(recorded)
    return [reconstruct(items, now=NOW) for items in entries.values()]


def one_trail(events: Iterable[tuple[dict[str, Any], str, str | None]]) -> CustodyTrail:
    return reconstruct(
        [entry(body, seq, party, device) for seq, (body, party, device) in enumerate(events, 1)],
        now=NOW,
    )


def body(event_type: str, hours: float, offset: str = "+00:00", **fields: Any) -> dict[str, Any]:
    moment = NOW - timedelta(days=3) + timedelta(hours=hours)
    tz = datetime.strptime(offset, "%z").tzinfo
    return {
        "event_id": str(uuid4()),
        "type": event_type,
        "container_id": "BX-epcis:1.a",
        "occurred_at": moment.astimezone(tz).isoformat(),
        "location_id": fields.pop("location_id", "site-01:dock"),
        **fields,
    }


def full_life() -> tuple[CustodyTrail, dict[str, dict[str, Any]]]:
    """Every event type once, a hub leg, a webhook receipt and an incorrect_data correction."""
    b: dict[str, dict[str, Any]] = {
        "dropoff": body(
            "dropoff", 0, "+02:00", chemistry="li_ion", battery_count=40, weight_kg=9.5
        ),
        "dropoff2": body("dropoff", 1, "-05:30", chemistry="li_ion", weight_kg=3.0),
        "sealed": body(
            "sealed", 2, weight_kg=120.5, un_numbers=["UN3480"], ddr=["damaged"], seal_id="S 1/2"
        ),
        "pickup": body(
            "pickup",
            3,
            from_party="site-01",
            to_party="hauler-01",
            shipment_id="BOL 7/é",
            destination_party="plant-01",
        ),
        "to_hub": body(
            "handoff", 5, from_party="hauler-01", to_party="hub-01", location_id="hub-01:bay"
        ),
        "from_hub": body(
            "handoff",
            7,
            from_party="hub-01",
            to_party="hauler-02",
            shipment_id="BOL-8",
            location_id="hub-01:bay",
        ),
        "intake": body(
            "intake",
            9,
            from_party="hauler-02",
            to_party="plant-01",
            weight_kg=121.0,
            location_id="plant-01:gate",
        ),
        "incident": body(
            "incident",
            9.5,
            "+14:30",
            kind="leak",
            description="electrolyte smell, drum isolated",
            location_id="plant-01:gate",
            note="see photo, ref #12",
        ),
        "receipt_ack": body(
            "receipt_ack",
            10,
            accepted_weight_kg=119.0,
            condition="ok",
            plant_reference="GR-2026/0042",
            shipment_id="BOL-8",
            location_id="plant-01:gate",
        ),
        "processed": body(
            "processed", 30, method="shredding", input_weight_kg=119.0, location_id="plant-01:line"
        ),
    }
    b["correction"] = body(
        "correction",
        4,
        "+01:00",
        corrects_event_id=b["dropoff2"]["event_id"],
        reason="incorrect_data",
        corrective_event_ids=[b["dropoff"]["event_id"]],
        note="second scan, weight belongs to the first",
    )
    posters = {
        "dropoff": ("site-01", "dev-site"),
        "dropoff2": ("site-01", "dev-site"),
        "sealed": ("site-01", "dev-site"),
        "correction": ("site-01", "dev-site"),
        "pickup": ("hauler-01", "dev-truck"),
        "to_hub": ("hub-01", "dev-hub"),
        "from_hub": ("hub-01", "dev-hub"),
        "intake": ("plant-01", "dev-gate"),
        "incident": ("plant-01", "dev-gate"),
        "receipt_ack": ("plant-01", None),
        "processed": ("plant-01", "dev-line"),
    }
    trail = one_trail((b[name], *posters[name]) for name in b)
    return trail, b


ROLES = {"site-01": "site", "hauler-01": "hauler", "hauler-02": "hauler", "hub-01": "hub"}
ROLES |= {"plant-01": "plant"}


@pytest.fixture(scope="module")
def network() -> Scenario:
    return build_scenario(ScenarioConfig(run_id="epcis1", now=NOW, containers=150))


@pytest.fixture(scope="module")
def trails(network: Scenario) -> list[CustodyTrail]:
    return scenario_trails(network)


@pytest.fixture(scope="module")
def roles(network: Scenario) -> dict[str, str]:
    return {party.party_id: party.role.value for party in network.parties}


@pytest.fixture(scope="module")
def documents(trails: list[CustodyTrail], roles: dict[str, str]) -> list[dict[str, Any]]:
    return [epcis_document(trail, created=CREATED, party_roles=roles) for trail in trails]


def by_event_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {event["eventID"]: event for event in document["epcisBody"]["eventList"]}


# --- the validator setup is right ---------------------------------------------------------------


@pytest.mark.parametrize(
    "example", sorted(path.name for path in (STANDARDS / "examples").glob("*.jsonld"))
)
def test_the_official_examples_validate(validator: Draft7Validator, example: str) -> None:
    document = json.loads((STANDARDS / "examples" / example).read_text(encoding="utf-8"))
    assert schema_errors(validator, document) == []


def test_the_official_examples_are_there() -> None:
    examples = STANDARDS / "examples"
    assert len(list(examples.glob("*.jsonld"))) >= 5, f"official EPCIS examples missing: {examples}"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda e: e.update(eventID="urn:uuid:not a uri"), "a space in a URI"),
        (lambda e: e.update(epcList=["BX-000123"]), "a bare id is not a URI"),
        (lambda e: e.update(eventTime="2026-02-30T10:00:00Z"), "no such day"),
        (lambda e: e.update(eventTime="2026-02-03 10:00:00"), "no offset, no T"),
        (lambda e: e.update(bizStep="urn:epcglobal:cbv:bizstep:packing"), "CBV terms as URNs"),
        (lambda e: e.update(disposition="sealed"), "not a CBV disposition"),
        (lambda e: e.update(eventTimeZoneOffset="+14:30"), "offset out of range"),
        (lambda e: e.update(myField=1), "an extension field without a prefix"),
        (lambda e: e.update(errorDeclaration={"reason": "did_not_occur"}), "no declarationTime"),
        (lambda e: e.pop("action"), "an ObjectEvent needs an action"),
        (lambda e: e.update(eventTimeZoneOffset="+00:00\n"), "ECMA-262 patterns: $ ends it"),
        (lambda e: e.update(eventID="http://[::1]/e"), "is_uri, not the library's uri check"),
    ],
)
def test_the_validator_rejects_broken_events(
    validator: Draft7Validator, change: Any, reason: str
) -> None:
    trail, _ = full_life()
    document = epcis_document(trail, created=CREATED)
    sealed = next(e for e in document["epcisBody"]["eventList"] if e["bc:eventType"] == "sealed")
    assert schema_errors(validator, document) == []
    change(sealed)
    assert schema_errors(validator, document), reason


# --- every export of a simulated network validates ------------------------------------------------


def test_every_container_of_a_simulated_network_validates(
    validator: Draft7Validator,
    network: Scenario,
    trails: list[CustodyTrail],
    documents: list[dict[str, Any]],
) -> None:
    assert len(documents) == 150 == network.summary.containers
    failures = {
        trail.container_id: errors
        for trail, document in zip(trails, documents, strict=True)
        if (errors := schema_errors(validator, document))
    }
    assert failures == {}
    events = sum(len(document["epcisBody"]["eventList"]) for document in documents)
    assert events == network.summary.events - network.summary.corrections


def test_the_document_header(documents: list[dict[str, Any]]) -> None:
    document = documents[0]
    assert document["@context"] == [EPCIS_CONTEXT, EXTENSION_CONTEXT]
    assert document["type"] == "EPCISDocument"
    assert document["schemaVersion"] == "2.0"
    assert document["creationDate"] == "2026-11-03T09:00:00.000000Z"


def test_one_event_per_scan_in_trail_order_without_corrections(
    trails: list[CustodyTrail], documents: list[dict[str, Any]]
) -> None:
    for trail, document in zip(trails, documents, strict=True):
        expected = [
            event_uri(item.entry.event_id)
            for item in trail.events
            if not isinstance(item.entry.event, Correction)
        ]
        assert [e["eventID"] for e in document["epcisBody"]["eventList"]] == expected
        assert [e["bc:ledgerSeq"] for e in document["epcisBody"]["eventList"]] == [
            item.entry.seq for item in trail.events if item.entry.event.type != "correction"
        ]


def test_biz_step_and_disposition_per_type(
    documents: list[dict[str, Any]], roles: dict[str, str]
) -> None:
    seen: Counter[str] = Counter()
    for document in documents:
        for event in document["epcisBody"]["eventList"]:
            kind = event["bc:eventType"]
            seen[kind] += 1
            if kind == "handoff":
                to_party = event["destinationList"][0]["destination"].rsplit("/", 1)[1]
                receiving = roles[to_party] in ("hub", "plant")
                step = ("receiving", "in_progress") if receiving else ("consigning", "in_transit")
                assert (event["type"], event["action"]) == ("ObjectEvent", "OBSERVE")
                assert (event["bizStep"], event["disposition"]) == step
                continue
            assert (
                event["type"],
                event["action"],
                event["bizStep"],
                event["disposition"],
            ) == EXPECTED[kind]
    assert {"dropoff", "sealed", "pickup", "handoff", "intake", "processed"} <= set(seen)
    assert "correction" not in seen


def test_event_ids_are_unique_and_stable_across_exports(
    trails: list[CustodyTrail], documents: list[dict[str, Any]], roles: dict[str, str]
) -> None:
    ids = [e["eventID"] for d in documents for e in d["epcisBody"]["eventList"]]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", event_id) for event_id in ids)
    later = CREATED + timedelta(days=40)
    for trail, document in zip(trails[:20], documents[:20], strict=True):
        again = epcis_document(trail, created=later, party_roles=roles)
        assert again["epcisBody"] == document["epcisBody"]
        assert again["creationDate"] != document["creationDate"]


def test_scenario_corrections_declare_errors_on_the_voided_dropoff(
    validator: Draft7Validator, trails: list[CustodyTrail], documents: list[dict[str, Any]]
) -> None:
    declared = 0
    for trail, document in zip(trails, documents, strict=True):
        events = by_event_id(document)
        for item in trail.events:
            correction = item.entry.event
            if not isinstance(correction, Correction):
                if not item.corrected:
                    assert "errorDeclaration" not in events[event_uri(item.entry.event_id)]
                continue
            assert item.effective
            voided = events[event_uri(correction.corrects_event_id)]
            declaration = voided["errorDeclaration"]
            assert declaration["reason"] == "did_not_occur"
            assert datetime.fromisoformat(declaration["declarationTime"]) == correction.occurred_at
            assert declaration["bc:correctionEventID"] == event_uri(correction.event_id)
            assert "correctiveEventIDs" not in declaration  # the scenario names none
            assert schema_errors(validator, document) == []
            declared += 1
    assert declared >= 1


def test_weights_are_mass_reports_in_kgm(documents: list[dict[str, Any]]) -> None:
    for document in documents:
        for event in document["epcisBody"]["eventList"]:
            if event["bc:eventType"] in ("sealed", "intake"):
                (element,) = event["sensorElementList"]
                (report,) = element["sensorReport"]
                assert report["type"] == "Mass"
                assert report["uom"] == "KGM"
                assert report["value"] > 0
                assert element["sensorMetadata"]["time"] == event["eventTime"]


def test_transfers_name_possessing_parties_and_the_bill_of_lading(
    documents: list[dict[str, Any]],
) -> None:
    for document in documents:
        for event in document["epcisBody"]["eventList"]:
            if event["bc:eventType"] != "pickup":
                continue
            assert event["sourceList"][0]["type"] == "possessing_party"
            assert event["destinationList"][0]["type"] == "possessing_party"
            assert event["destinationList"][0]["destination"].startswith(party_uri("hauler-"))
            (bol,) = event["bizTransactionList"]
            assert bol["type"] == "bol"
            assert "bizLocation" not in event


# --- every type, by hand ------------------------------------------------------------------------


def test_a_full_life_validates_and_maps_every_type(validator: Draft7Validator) -> None:
    trail, bodies = full_life()
    document = epcis_document(trail, created=CREATED, party_roles=ROLES)
    assert schema_errors(validator, document) == []
    events = by_event_id(document)
    assert len(events) == len(bodies) - 1

    def of(name: str) -> dict[str, Any]:
        return events[event_uri(UUID(bodies[name]["event_id"]))]

    for name, expected in EXPECTED.items():
        event = of(name)
        assert (event["type"], event["action"], event["bizStep"], event["disposition"]) == (
            expected
        ), name
    assert (of("to_hub")["bizStep"], of("to_hub")["disposition"]) == ("receiving", "in_progress")
    assert (of("from_hub")["bizStep"], of("from_hub")["disposition"]) == (
        "consigning",
        "in_transit",
    )
    assert "bizLocation" in of("to_hub")
    assert "bizLocation" not in of("from_hub")

    dropoff = of("dropoff")
    assert dropoff["parentID"] == container_uri("BX-epcis:1.a")
    assert dropoff["parentID"] == "https://battery-custody.example/container/BX-epcis:1.a"
    assert dropoff["childQuantityList"] == [
        {"epcClass": "https://battery-custody.example/battery-class/li_ion", "quantity": 40}
    ]
    assert of("dropoff2")["childQuantityList"][0]["quantity"] == 3.0
    assert of("dropoff2")["childQuantityList"][0]["uom"] == "KGM"
    assert dropoff["eventTimeZoneOffset"] == "+02:00"
    assert dropoff["eventTime"].endswith("+02:00")
    assert of("dropoff2")["eventTimeZoneOffset"] == "-05:30"
    assert (
        datetime.fromisoformat(dropoff["eventTime"]) == parse_event(bodies["dropoff"]).occurred_at
    )

    pickup = of("pickup")
    assert pickup["bizTransactionList"] == [
        {
            "type": "bol",
            "bizTransaction": "https://battery-custody.example/shipment/BOL%207%2F%C3%A9",
        }
    ]
    assert pickup["sourceList"] == [{"type": "possessing_party", "source": party_uri("site-01")}]
    assert pickup["destinationList"] == [
        {"type": "possessing_party", "destination": party_uri("hauler-01")}
    ]
    assert pickup["bc:destinationParty"] == party_uri("plant-01")
    assert pickup["readPoint"] == {"id": "https://battery-custody.example/location/site-01:dock"}

    receipt = of("receipt_ack")
    assert {t["type"] for t in receipt["bizTransactionList"]} == {"bol", "recadv"}
    recadv = next(t for t in receipt["bizTransactionList"] if t["type"] == "recadv")
    assert recadv["bizTransaction"].endswith("/party/plant-01/receipt/GR-2026%2F0042")
    assert receipt["sensorElementList"][0]["sensorReport"][0]["value"] == 119.0
    assert "deviceID" not in receipt["sensorElementList"][0]["sensorMetadata"]
    assert "bc:device" not in receipt

    processed = of("processed")
    assert processed["sensorElementList"][0]["sensorReport"][0] == {
        "type": "Mass",
        "value": 119.0,
        "uom": "KGM",
    }
    assert of("sealed")["bc:sealID"] == "S 1/2"
    assert of("sealed")["bc:ddr"] == ["damaged"]

    incident = of("incident")  # +14:30 is outside EPCIS's offsets: expressed in UTC
    assert incident["eventTimeZoneOffset"] == "+00:00"
    assert (
        datetime.fromisoformat(incident["eventTime"]) == parse_event(bodies["incident"]).occurred_at
    )
    assert incident["bc:note"] == "see photo, ref #12"
    assert incident["bc:incidentKind"] == "leak"


def test_a_corrected_event_carries_a_valid_error_declaration(validator: Draft7Validator) -> None:
    trail, bodies = full_life()
    document = epcis_document(trail, created=CREATED, party_roles=ROLES)
    events = by_event_id(document)
    corrected = events[event_uri(UUID(bodies["dropoff2"]["event_id"]))]
    assert corrected["errorDeclaration"] == {
        "declarationTime": bodies["correction"]["occurred_at"],
        "reason": "incorrect_data",
        "correctiveEventIDs": [event_uri(UUID(bodies["dropoff"]["event_id"]))],
        "bc:correctionEventID": event_uri(UUID(bodies["correction"]["event_id"])),
        "bc:declaredBy": party_uri("site-01"),
        "bc:note": "second scan, weight belongs to the first",
    }
    assert corrected["errorDeclaration"]["declarationTime"].endswith("+01:00")
    for event_id in corrected["errorDeclaration"]["correctiveEventIDs"]:
        assert event_id in events
    assert event_uri(UUID(bodies["correction"]["event_id"])) not in events
    only = {
        "@context": document["@context"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": document["creationDate"],
        "epcisBody": {"eventList": [corrected]},
    }
    assert schema_errors(validator, only) == []
    others = [e for e in events.values() if e is not corrected]
    assert all("errorDeclaration" not in e for e in others)


def test_a_correction_of_the_correction_removes_the_declaration() -> None:
    trail, bodies = full_life()
    undo = body(
        "correction",
        4.5,
        corrects_event_id=bodies["correction"]["event_id"],
        reason="did_not_occur",
    )
    entries = [item.entry for item in trail.events]
    entries.append(entry(undo, len(entries) + 1, "site-01", "dev-site"))
    document = epcis_document(reconstruct(entries, now=NOW), created=CREATED)
    assert all("errorDeclaration" not in e for e in document["epcisBody"]["eventList"])


def test_without_party_roles_a_handoff_is_consigning() -> None:
    trail, bodies = full_life()
    document = epcis_document(trail, created=CREATED)
    to_hub = by_event_id(document)[event_uri(UUID(bodies["to_hub"]["event_id"]))]
    assert (to_hub["bizStep"], to_hub["disposition"]) == ("consigning", "in_transit")


@pytest.mark.parametrize(
    ("condition", "disposition"),
    [
        ("ok", "in_progress"),
        ("discrepancy", "in_progress"),
        ("damaged", "damaged"),
        ("rejected", "non_conformant"),
    ],
)
def test_receipt_condition_sets_the_disposition(
    validator: Draft7Validator, condition: str, disposition: str
) -> None:
    ack = body(
        "receipt_ack",
        1,
        accepted_weight_kg=0.0,
        condition=condition,
        plant_reference="R=1,2",
    )
    document = epcis_document(one_trail([(ack, "plant-01", None)]), created=CREATED)
    (event,) = document["epcisBody"]["eventList"]
    assert event["disposition"] == disposition
    assert schema_errors(validator, document) == []


def test_a_naive_creation_time_is_refused() -> None:
    trail, _ = full_life()
    with pytest.raises(ValueError, match="aware"):
        epcis_document(trail, created=CREATED.replace(tzinfo=None))
