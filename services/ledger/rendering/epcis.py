"""A custody trail as a GS1 EPCIS 2.0 JSON-LD document (docs/exports.md). Pure.

Every recorded scan becomes one EPCIS event, in trail order, with the bizStep and disposition
of the table in docs/architecture.md §3 given as CBV short names (the GS1 JSON Schema accepts
CBV terms only as short names: a ``urn:epcglobal:cbv:…`` URI fails its ``vocab-other-uri``
pattern):

- ``dropoff``     AggregationEvent ADD      collecting / disposed
- ``sealed``      ObjectEvent OBSERVE       packing / container_closed
- ``pickup``      ObjectEvent OBSERVE       consigning / in_transit
- ``handoff``     ObjectEvent OBSERVE       consigning / in_transit, or receiving / in_progress
  when ``to_party`` is a hub or plant (``party_roles``)
- ``intake``      ObjectEvent OBSERVE       receiving / in_progress
- ``receipt_ack`` ObjectEvent OBSERVE       accepting / in_progress (damaged, non_conformant
  by condition)
- ``processed``   ObjectEvent DELETE        destroying / destroyed
- ``incident``    ObjectEvent OBSERVE       inspecting / damaged

A ``correction`` in force is not an event of its own: the event it corrects carries an
``errorDeclaration`` (declarationTime = the correction's occurred_at, reason, correctiveEventIDs
= its ``corrective_event_ids``). Identifiers are URIs: ``urn:uuid:<event_id>`` for events (the
ledger keeps event ids unique, so they are stable across exports), and private HTTPS URIs under
``NAMESPACE`` for containers, parties, locations, devices, shipments and receipts. Fields of our
own travel as ``bc:`` extension properties (``EXTENSION_CONTEXT``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.contract.epcis_identifiers import (
    NAMESPACE,
    RECEIVING_ROLES,
    battery_class_uri,
    container_uri,
    device_uri,
    event_uri,
    location_uri,
    party_uri,
    receipt_uri,
    shipment_uri,
)
from services.contract.events import (
    Condition,
    Correction,
    Dropoff,
    Handoff,
    Incident,
    Intake,
    Pickup,
    Processed,
    ReceiptAck,
    Sealed,
)
from services.ledger.domain.custody import CustodyTrail, TrailEvent
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.hashing import format_instant

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
EXTENSION_PREFIX = "bc"
EXTENSION_CONTEXT: dict[str, str] = {EXTENSION_PREFIX: f"{NAMESPACE}epcis/"}
MEDIA_TYPE = "application/ld+json"

_MAX_OFFSET = timedelta(hours=14)


def _bc(name: str) -> str:
    return f"{EXTENSION_PREFIX}:{name}"


# --- times --------------------------------------------------------------------------------------


def _offset_text(offset: timedelta) -> str:
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def event_time(moment: datetime) -> tuple[str, str]:
    """``eventTime`` in the device's own offset and ``eventTimeZoneOffset``.

    EPCIS allows offsets from -14:00 to +14:00 in whole minutes; any other offset a device
    sent is expressed in UTC instead (the original text stays in the recorded entry).
    """
    offset = moment.utcoffset()
    if offset is None:
        raise ValueError("naive datetime cannot be exported")
    if abs(offset) > _MAX_OFFSET or offset % timedelta(minutes=1):
        moment, offset = moment.astimezone(UTC), timedelta(0)
    return moment.isoformat(), _offset_text(offset)


# --- events -------------------------------------------------------------------------------------


def _mass(kg: float, moment: str, device_id: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"time": moment}
    if device_id is not None:
        metadata["deviceID"] = device_uri(device_id)
    return {
        "sensorMetadata": metadata,
        "sensorReport": [{"type": "Mass", "value": kg, "uom": "KGM"}],
    }


def _possession(from_party: str, to_party: str) -> dict[str, Any]:
    return {
        "sourceList": [{"type": "possessing_party", "source": party_uri(from_party)}],
        "destinationList": [{"type": "possessing_party", "destination": party_uri(to_party)}],
    }


def _bol(shipment_id: str | None) -> list[dict[str, str]]:
    if shipment_id is None:
        return []
    return [{"type": "bol", "bizTransaction": shipment_uri(shipment_id)}]


_RECEIPT_DISPOSITION = {
    Condition.OK: "in_progress",
    Condition.DISCREPANCY: "in_progress",
    Condition.DAMAGED: "damaged",
    Condition.REJECTED: "non_conformant",
}


def _mapping(
    item: TrailEvent, party_roles: Mapping[str, str], moment: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(EPCIS fields after the common ones, ``bc:`` extension fields) for one scan."""
    entry = item.entry
    event = entry.event
    device = entry.origin.device_id
    at_location = True  # whether the container stays at location_id (bizLocation)
    fields: dict[str, Any] = {}
    extension: dict[str, Any] = {}
    weights: list[dict[str, Any]] = []
    transactions: list[dict[str, str]] = []

    if isinstance(event, Dropoff):
        children: dict[str, Any] = {"epcClass": battery_class_uri(event.chemistry.value)}
        if event.battery_count is not None:
            children["quantity"] = event.battery_count
        elif event.weight_kg is not None:
            children.update(quantity=event.weight_kg, uom="KGM")
        fields = {
            "type": "AggregationEvent",
            "parentID": container_uri(event.container_id),
            "childQuantityList": [children],
            "action": "ADD",
            "bizStep": "collecting",
            "disposition": "disposed",
        }
        if event.weight_kg is not None:
            weights.append(_mass(event.weight_kg, moment, device))
        extension[_bc("chemistry")] = event.chemistry.value
    else:
        fields = {"type": "ObjectEvent", "epcList": [container_uri(event.container_id)]}
        if isinstance(event, Sealed):
            fields.update(action="OBSERVE", bizStep="packing", disposition="container_closed")
            weights.append(_mass(event.weight_kg, moment, device))
            extension[_bc("unNumbers")] = list(event.un_numbers)
            if event.ddr:
                extension[_bc("ddr")] = [value.value for value in event.ddr]
            if event.seal_id is not None:
                extension[_bc("sealID")] = event.seal_id
        elif isinstance(event, Pickup):
            fields.update(action="OBSERVE", bizStep="consigning", disposition="in_transit")
            fields.update(_possession(event.from_party, event.to_party))
            transactions += _bol(event.shipment_id)
            at_location = False
            if event.destination_party is not None:
                extension[_bc("destinationParty")] = party_uri(event.destination_party)
        elif isinstance(event, Handoff):
            receiving = party_roles.get(event.to_party) in RECEIVING_ROLES
            step, disposition = (
                ("receiving", "in_progress") if receiving else ("consigning", "in_transit")
            )
            fields.update(action="OBSERVE", bizStep=step, disposition=disposition)
            fields.update(_possession(event.from_party, event.to_party))
            transactions += _bol(event.shipment_id)
            at_location = receiving
        elif isinstance(event, Intake):
            fields.update(action="OBSERVE", bizStep="receiving", disposition="in_progress")
            fields.update(_possession(event.from_party, event.to_party))
            weights.append(_mass(event.weight_kg, moment, device))
        elif isinstance(event, ReceiptAck):
            fields.update(
                action="OBSERVE",
                bizStep="accepting",
                disposition=_RECEIPT_DISPOSITION[event.condition],
            )
            transactions += _bol(event.shipment_id)
            transactions.append(
                {
                    "type": "recadv",
                    "bizTransaction": receipt_uri(entry.origin.party_id, event.plant_reference),
                }
            )
            weights.append(_mass(event.accepted_weight_kg, moment, device))
            extension[_bc("condition")] = event.condition.value
            extension[_bc("plantReference")] = event.plant_reference
        elif isinstance(event, Processed):
            fields.update(action="DELETE", bizStep="destroying", disposition="destroyed")
            if event.input_weight_kg is not None:
                weights.append(_mass(event.input_weight_kg, moment, device))
            extension[_bc("method")] = event.method.value
            at_location = False
        elif isinstance(event, Incident):
            fields.update(action="OBSERVE", bizStep="inspecting", disposition="damaged")
            extension[_bc("incidentKind")] = event.kind.value
            extension[_bc("description")] = event.description
        else:  # pragma: no cover - corrections are never mapped (see epcis_document)
            raise ValueError(f"no EPCIS mapping for {event.type}")

    fields["readPoint"] = {"id": location_uri(event.location_id)}
    if at_location:
        fields["bizLocation"] = {"id": location_uri(event.location_id)}
    if transactions:
        fields["bizTransactionList"] = transactions
    if weights:
        fields["sensorElementList"] = weights
    return fields, extension


def _error_declaration(correction: Correction, posted_by: str) -> dict[str, Any]:
    declared_at, _ = event_time(correction.occurred_at)
    declaration: dict[str, Any] = {
        "declarationTime": declared_at,
        "reason": correction.reason.value,
    }
    if correction.corrective_event_ids:
        declaration["correctiveEventIDs"] = [
            event_uri(event_id) for event_id in correction.corrective_event_ids
        ]
    declaration[_bc("correctionEventID")] = event_uri(correction.event_id)
    declaration[_bc("declaredBy")] = party_uri(posted_by)
    if correction.note is not None:
        declaration[_bc("note")] = correction.note
    return declaration


def epcis_event(
    item: TrailEvent,
    *,
    party_roles: Mapping[str, str] | None = None,
    correction: TrailEvent | None = None,
) -> dict[str, Any]:
    """One trail event as an EPCIS 2.0 event; ``correction`` is the correction in force."""
    entry = item.entry
    event = entry.event
    moment, offset = event_time(event.occurred_at)
    common: dict[str, Any] = {
        "eventID": event_uri(entry.event_id),
        "eventTime": moment,
        "eventTimeZoneOffset": offset,
        "recordTime": format_instant(entry.recorded_at),
    }
    fields, extension = _mapping(item, party_roles or {}, moment)
    document: dict[str, Any] = {"type": fields.pop("type"), **common, **fields}
    if correction is not None:
        if not isinstance(correction.entry.event, Correction):
            raise ValueError(f"{correction.entry.event_id} is not a correction")
        document["errorDeclaration"] = _error_declaration(
            correction.entry.event, correction.entry.origin.party_id
        )
    document[_bc("eventType")] = event.type
    document.update(extension)
    document[_bc("ledgerSeq")] = entry.seq
    document[_bc("entryHash")] = entry.entry_hash.hex()
    document[_bc("receivedAt")] = format_instant(entry.received_at)
    document[_bc("postedBy")] = party_uri(entry.origin.party_id)
    if entry.origin.device_id is not None:
        document[_bc("device")] = device_uri(entry.origin.device_id)
    if event.device_seq is not None:
        document[_bc("deviceSeq")] = event.device_seq
    if event.note is not None:
        document[_bc("note")] = event.note
    if item.anomalies:
        document[_bc("anomalies")] = [anomaly.code.value for anomaly in item.anomalies]
    return document


def epcis_document(
    trail: CustodyTrail,
    *,
    created: datetime,
    party_roles: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The EPCISDocument of a custody trail: one event per scan, corrections declared."""
    if created.utcoffset() is None:
        raise ValueError("created must be an aware datetime")
    by_id = {item.entry.event_id: item for item in trail.events}
    events = [
        epcis_event(
            item,
            party_roles=party_roles,
            correction=by_id.get(item.corrected_by) if item.corrected_by else None,
        )
        for item in trail.events
        if not isinstance(item.entry.event, Correction)
    ]
    return {
        "@context": [EPCIS_CONTEXT, dict(EXTENSION_CONTEXT)],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": format_instant(created),
        "epcisBody": {"eventList": events},
    }


def epcis_events(
    entries: Sequence[RecordedEntry],
    trails: Mapping[str, CustodyTrail],
    *,
    party_roles: Mapping[str, str],
    declared_only: bool = False,
) -> list[dict[str, Any]]:
    """Recorded entries as the EPCIS events of a query's results.

    An event corrected by a correction in force carries its ``errorDeclaration``; ``trails``
    holds the trails of the containers that have corrections (the others' events stand as
    recorded). Corrections are left out (each is its target's declaration), and with
    ``declared_only`` so is every event without one. Query results carry no ``bc:anomalies``:
    anomalies are judgements on a whole trail, in its export and ``/v1/containers/{id}/custody``.
    """
    by_container: dict[str, dict[UUID, TrailEvent]] = {}
    events = []
    for entry in entries:
        if isinstance(entry.event, Correction):
            continue
        container_id = entry.event.container_id
        trail = trails.get(container_id)
        if trail is None:
            if declared_only:
                continue
            item = TrailEvent(
                entry, corrected=False, corrected_by=None, effective=True, anomalies=()
            )
            events.append(epcis_event(item, party_roles=party_roles))
            continue
        if container_id not in by_container:
            by_container[container_id] = {item.entry.event_id: item for item in trail.events}
        by_id = by_container[container_id]
        item = replace(by_id[entry.event_id], anomalies=())
        correction = by_id.get(item.corrected_by) if item.corrected_by else None
        if declared_only and correction is None:
            continue
        events.append(epcis_event(item, party_roles=party_roles, correction=correction))
    return events


def epcis_query_document(
    events: list[dict[str, Any]], *, created: datetime, subscription_id: str | None = None
) -> dict[str, Any]:
    """An EPCISQueryDocument of a SimpleEventQuery's results (GS1's query schema)."""
    results: dict[str, Any] = {"queryName": "SimpleEventQuery"}
    if subscription_id is not None:
        results["subscriptionID"] = subscription_id
    results["resultsBody"] = {"eventList": events}
    return {
        "@context": [EPCIS_CONTEXT, dict(EXTENSION_CONTEXT)],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": format_instant(created),
        "epcisBody": {"queryResults": results},
    }
