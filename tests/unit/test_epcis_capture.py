"""EPCIS capture mapping (pure): the inverse of the export, refusals by field, event hash IDs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from services.contract import parse_event
from services.contract.epcis_schema import schema_errors
from services.contract.events import event_body
from services.ingest.domain.epcis_capture import CaptureRefused, custody_events, event_id_of
from services.ingest.domain.epcis_event_hash import event_hash_ids
from services.ledger.rendering.epcis import epcis_document
from tests.unit.test_epcis import CREATED, ROLES, full_life

VECTORS = Path(__file__).resolve().parents[1] / "data" / "epcis-event-hash"


def exported() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    trail, bodies = full_life()
    return epcis_document(trail, created=CREATED, party_roles=ROLES), bodies


def captured(event: dict[str, Any], roles: dict[str, str] = ROLES) -> list[dict[str, Any]]:
    return custody_events(event, event_id_of(event["eventID"]), roles)


def normalised(body: dict[str, Any]) -> Any:
    """The event as the contract reads it (times compare as instants: an offset EPCIS cannot
    carry, such as +14:30, is exported in UTC)."""
    return parse_event(body)


def test_every_exported_event_captures_back_to_the_event_that_was_posted() -> None:
    document, bodies = exported()
    assert schema_errors(document) == []
    by_id = {body["event_id"]: body for body in bodies.values()}
    seen = set()
    for event in document["epcisBody"]["eventList"]:
        found = captured(event)
        original = by_id[found[0]["event_id"]]
        assert normalised(found[0]) == normalised(original), event["bc:eventType"]
        seen.add(original["type"])
        if len(found) == 2:  # the event carried the correction in force as errorDeclaration
            correction = event_body(normalised(found[1]))
            assert correction["type"] == "correction"
            assert correction["corrects_event_id"] == original["event_id"]
            assert correction["event_id"] == bodies["correction"]["event_id"]
            assert correction["reason"] == "incorrect_data"
            assert correction["corrective_event_ids"] == [bodies["dropoff"]["event_id"]]
    assert seen == {
        "dropoff",
        "sealed",
        "pickup",
        "handoff",
        "intake",
        "incident",
        "receipt_ack",
        "processed",
    }


def test_without_our_extensions_the_bizstep_and_the_registry_decide() -> None:
    document, bodies = exported()
    for event in document["epcisBody"]["eventList"]:
        plain = {key: value for key, value in event.items() if not key.startswith("bc:")}
        expected = next(
            b for b in bodies.values() if f"urn:uuid:{b['event_id']}" == event["eventID"]
        )
        if expected["type"] in ("sealed", "processed", "incident"):
            with pytest.raises(CaptureRefused):  # their details have no EPCIS field
                captured(plain)
            continue
        assert captured(plain)[0]["type"] == expected["type"], expected["type"]


def first(kind: str) -> dict[str, Any]:
    document, _ = exported()
    return copy.deepcopy(
        next(e for e in document["epcisBody"]["eventList"] if e["bc:eventType"] == kind)
    )


@pytest.mark.parametrize(
    ("kind", "change", "path", "message"),
    [
        ("sealed", lambda e: e.update(bizStep="shipping"), "bizStep", "'shipping' is outside"),
        ("sealed", lambda e: e.pop("bizStep"), "bizStep", "is required"),
        ("sealed", lambda e: e.pop("sensorElementList"), "sensorElementList", "Mass reading"),
        ("sealed", lambda e: e.pop("bc:unNumbers"), "bc:unNumbers", "UN numbers"),
        ("pickup", lambda e: e.pop("sourceList"), "sourceList", "possessing_party source"),
        ("pickup", lambda e: e.pop("bizTransactionList"), "bizTransactionList", "bol"),
        ("sealed", lambda e: e["epcList"].append(e["epcList"][0]), "epcList", "one container"),
        (
            "sealed",
            lambda e: e.update(epcList=["urn:epc:id:sgtin:0614141.107346.2017"]),
            "epcList[0]",
            "not a container URI",
        ),
        ("sealed", lambda e: e.update({"bc:eventType": "pickup"}), "bc:eventType", "does not go"),
        ("sealed", lambda e: e.update(type="TransformationEvent"), "type", "outside"),
    ],
)
def test_events_outside_the_custody_vocabulary_are_refused_by_field(
    kind: str, change: Any, path: str, message: str
) -> None:
    event = first(kind)
    change(event)
    with pytest.raises(CaptureRefused, match=message) as refused:
        captured(event)
    assert refused.value.path == path


def test_event_ids_are_deterministic() -> None:
    assert event_id_of("urn:uuid:9f7c1f1e-3c07-4a9e-9d55-5c1d8e3f00aa") == UUID(
        "9f7c1f1e-3c07-4a9e-9d55-5c1d8e3f00aa"
    )
    hashed = (
        "ni:///sha-256;ffa491b16867e34a7791a8d5389d826afc24e63a121026b6a4004ace38631b4b?ver=CBV2.0"
    )
    assert event_id_of(hashed) == event_id_of(hashed)
    assert event_id_of(hashed) != event_id_of(hashed.replace("ffa", "ffb"))
    with pytest.raises(CaptureRefused, match="not a UUID URN"):
        event_id_of("urn:uuid:nope")


@pytest.mark.parametrize(
    "name",
    ["epcisDocWithSingleEvent", "ReferenceEventHashAlgorithm", "epcisDocWithSensorDataObjectEvent"],
)
def test_event_hash_ids_match_the_reference_vectors(name: str) -> None:
    document = json.loads((VECTORS / f"{name}.jsonld").read_text())
    expected = (VECTORS / f"{name}.hashes").read_text().split()
    events = document["epcisBody"]["eventList"]
    assert event_hash_ids(document["@context"], events) == expected


def test_event_hash_ids_leave_the_events_as_they_were() -> None:
    document = json.loads((VECTORS / "epcisDocWithSensorDataObjectEvent.jsonld").read_text())
    events = document["epcisBody"]["eventList"]
    before = copy.deepcopy(document)
    event_hash_ids(document["@context"], events)
    assert document == before
