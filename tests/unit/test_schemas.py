"""The checked-in JSON Schemas match the pydantic contract, and both reject the same bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from services.contract.envelope import Envelope
from services.contract.events import parse_event
from services.contract.json_schemas import render_schemas

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"


def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS_DIR / name).read_text(encoding="utf-8"))
    return schema


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name), format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_checked_in_schemas_match_the_contract() -> None:
    rendered = render_schemas()
    on_disk = {path.name for path in SCHEMAS_DIR.glob("*.schema.json")}
    assert on_disk == set(rendered), (
        f"schemas/ holds {sorted(on_disk)}, the contract renders {sorted(rendered)}: "
        "run `custody schemas` and commit the result"
    )
    for name, text in rendered.items():
        assert (SCHEMAS_DIR / name).read_text(encoding="utf-8") == text, (
            f"schemas/{name} drifted from the pydantic contract: run `custody schemas` and "
            "commit the result"
        )


@pytest.mark.parametrize("name", sorted(render_schemas()))
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    schema = load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://battery-custody.example/schemas/{name}"
    assert schema["title"]


COMMON = {
    "container_id": "BX-000123",
    "occurred_at": "2025-03-01T09:30:00+01:00",
    "location_id": "site-001/dock-2",
}
DROPOFF = {
    **COMMON,
    "event_id": "0b7e8a52-6a5e-4c1e-9a53-3f1f0f5b6d01",
    "type": "dropoff",
    "chemistry": "li_ion",
    "battery_count": 40,
    "weight_kg": 12.5,
    "device_seq": 7,
}
SEALED = {
    **COMMON,
    "event_id": "0b7e8a52-6a5e-4c1e-9a53-3f1f0f5b6d02",
    "type": "sealed",
    "weight_kg": 13.0,
    "un_numbers": ["UN3480", "UN3090"],
    "ddr": ["damaged"],
    "seal_id": "SEAL-77",
}
PICKUP = {
    **COMMON,
    "event_id": "0b7e8a52-6a5e-4c1e-9a53-3f1f0f5b6d03",
    "type": "pickup",
    "occurred_at": "2025-03-02T14:00:00Z",
    "from_party": "site-001",
    "to_party": "hauler-acme",
    "shipment_id": "BOL-2025-0042",
    "destination_party": "plant-north",
}
VALID = {"dropoff": DROPOFF, "sealed": SEALED, "pickup": PICKUP}


@pytest.mark.parametrize("event", VALID.values(), ids=list(VALID))
def test_valid_events_pass_schema_and_parser(event: dict[str, Any]) -> None:
    errors = [error.message for error in validator("scan-event.schema.json").iter_errors(event)]
    assert errors == []
    assert parse_event(event).type == event["type"]


# name → (event, whether the JSON Schema rejects it too)
INVALID: dict[str, tuple[dict[str, Any], bool]] = {
    # "format": "date-time" is only checked when the optional rfc3339-validator package is
    # installed; with jsonschema alone a naive time passes the schema, so only the parser is held
    # to it here (the schema still documents the format).
    "naive_timestamp": ({**DROPOFF, "occurred_at": "2025-03-01T09:30:00"}, False),
    "unknown_field": ({**DROPOFF, "colour": "red"}, True),
    "unknown_type": ({**DROPOFF, "type": "teleported"}, True),
    "bad_container_id": ({**DROPOFF, "container_id": "-bad id!"}, True),
}


@pytest.mark.parametrize(("event", "schema_rejects"), INVALID.values(), ids=list(INVALID))
def test_invalid_events_are_rejected(event: dict[str, Any], schema_rejects: bool) -> None:
    with pytest.raises(ValidationError):
        parse_event(event)
    if schema_rejects:
        assert not validator("scan-event.schema.json").is_valid(event)


def test_schema_declares_offset_timestamps() -> None:
    dropoff = load("scan-event.schema.json")["$defs"]["Dropoff"]
    assert dropoff["properties"]["occurred_at"]["format"] == "date-time"


def test_batch_request_schema_bounds() -> None:
    batch = validator("batch-request.schema.json")
    assert batch.is_valid({"events": [DROPOFF, SEALED, PICKUP]})
    assert not batch.is_valid({"events": []})
    assert not batch.is_valid({"events": [DROPOFF] * 501})
    assert not batch.is_valid({"events": [DROPOFF], "extra": 1})
    assert not batch.is_valid({"events": [{**DROPOFF, "colour": "red"}]})


def test_envelope_schema_accepts_what_ingest_writes() -> None:
    envelope = Envelope.model_validate(
        {
            "event": PICKUP,
            "received_at": "2025-03-02T14:00:05+00:00",
            "origin": {"kind": "device", "party_id": "hauler-acme", "device_id": "scanner-9"},
        }
    )
    message = json.loads(envelope.model_dump_json())
    errors = [error.message for error in validator("envelope.schema.json").iter_errors(message)]
    assert errors == []
    assert not validator("envelope.schema.json").is_valid({**message, "partition": 3})
