"""EPCIS-style query terms (services/ledger/domain/event_filter.py) agree with the EPCIS export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from services.contract import Origin, OriginKind, parse_event
from services.contract.epcis_identifiers import container_uri, location_uri
from services.contract.events import EventType
from services.ledger.domain.custody import TrailEvent
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.event_filter import (
    BIZ_STEP_TYPES,
    NO_BIZ_LOCATION,
    QueryTermError,
    biz_step_name,
    biz_step_of,
    container_id_of,
    location_id_of,
    match_epcs,
    select_steps,
    split_list,
)
from services.ledger.rendering.epcis import epcis_event

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
ROLES = {"site-a": "site", "hauler-a": "hauler", "hub-a": "hub", "plant-a": "plant"}
FIELDS: dict[str, dict[str, Any]] = {
    "dropoff": {"chemistry": "li_ion"},
    "sealed": {"weight_kg": 10.0, "un_numbers": ["UN3480"]},
    "pickup": {"from_party": "site-a", "to_party": "hauler-a", "shipment_id": "S-1"},
    "handoff": {"from_party": "hauler-a", "to_party": "hub-a"},
    "intake": {"from_party": "hauler-a", "to_party": "plant-a", "weight_kg": 10.0},
    "receipt_ack": {"accepted_weight_kg": 10.0, "condition": "ok", "plant_reference": "R-1"},
    "processed": {"method": "shredding"},
    "incident": {"kind": "damaged", "description": "dent"},
}


def exported(event_type: str, **overrides: Any) -> tuple[dict[str, Any], RecordedEntry]:
    body = {
        "event_id": str(uuid4()),
        "type": event_type,
        "container_id": "BX-0001",
        "occurred_at": T0.isoformat(),
        "location_id": "site-a:dock",
        **FIELDS[event_type],
        **overrides,
    }
    entry = RecordedEntry(
        seq=1,
        event=parse_event(body),
        received_at=T0 + timedelta(seconds=5),
        recorded_at=T0 + timedelta(seconds=6),
        origin=Origin(kind=OriginKind.DEVICE, party_id="site-a", device_id="d-1"),
        kafka_partition=0,
        kafka_offset=1,
        prev_hash=b"\0" * 32,
        entry_hash=b"\0" * 32,
    )
    item = TrailEvent(entry=entry, corrected=False, corrected_by=None, effective=True, anomalies=())
    return epcis_event(item, party_roles=ROLES), entry


@pytest.mark.parametrize("event_type", sorted(FIELDS))
def test_every_biz_step_matches_the_epcis_export(event_type: str) -> None:
    document, entry = exported(event_type)
    step = document["bizStep"]
    to_party = getattr(entry.event, "to_party", None)
    assert biz_step_of(event_type, to_party, ROLES) == step
    if event_type != "handoff":
        assert EventType(event_type) in BIZ_STEP_TYPES[step]
    assert (("bizLocation" in document) is False) == (
        EventType(event_type) in NO_BIZ_LOCATION or document["bizStep"] == "consigning"
    )


@pytest.mark.parametrize(("to_party", "step"), [("hub-a", "receiving"), ("hauler-b", "consigning")])
def test_a_handoff_is_receiving_or_consigning_by_its_receiver(to_party: str, step: str) -> None:
    document, _ = exported("handoff", to_party=to_party)
    assert document["bizStep"] == step
    assert biz_step_of("handoff", to_party, ROLES) == step
    selection = select_steps([step])
    assert selection.receiving_handoffs is (step == "receiving")
    assert selection.consigning_handoffs is (step == "consigning")


def test_every_exported_step_is_queryable_and_corrections_have_none() -> None:
    assert set(BIZ_STEP_TYPES) == {
        "collecting",
        "packing",
        "consigning",
        "receiving",
        "accepting",
        "destroying",
        "inspecting",
    }
    covered = set().union(*BIZ_STEP_TYPES.values()) | {EventType.HANDOFF}
    assert covered == set(EventType) - {EventType.CORRECTION}
    assert biz_step_of("correction", None, ROLES) is None


def test_biz_step_names_accept_short_names_and_uris() -> None:
    assert biz_step_name("receiving") == "receiving"
    assert biz_step_name("urn:epcglobal:cbv:bizstep:packing") == "packing"
    assert biz_step_name("https://ref.gs1.org/cbv/BizStep-destroying") == "destroying"
    with pytest.raises(QueryTermError, match="unknown bizStep 'shipping'"):
        biz_step_name("shipping")
    selection = select_steps(["collecting", "receiving"])
    assert selection.event_types == {EventType.DROPOFF, EventType.INTAKE}
    assert selection.receiving_handoffs
    assert not selection.consigning_handoffs


def test_epcs_take_ids_uris_and_prefix_patterns() -> None:
    assert container_id_of("BX-1:2") == "BX-1:2"
    assert container_id_of(container_uri("BX-1:2")) == "BX-1:2"
    match = match_epcs(["BX-1", container_uri("BX-2"), "BX-9*", container_uri("AB-") + "*"])
    assert match.container_ids == ("BX-1", "BX-2")
    assert match.prefixes == ("BX-9", "AB-")
    with pytest.raises(QueryTermError):
        container_id_of(container_uri(""))


def test_locations_take_ids_and_uris() -> None:
    assert location_id_of("plant-a:gate 2") == "plant-a:gate 2"
    assert location_id_of(location_uri("plant-a:gate 2")) == "plant-a:gate 2"


def test_lists_split_on_commas_and_repeats() -> None:
    assert split_list(["a,b", " c ", ",", "d"]) == ["a", "b", "c", "d"]
