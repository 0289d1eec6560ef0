"""EPCIS 2.0 events → custody events: the inverse of the export mapping (docs/epcis.md). Pure.

An event is read by its ``bizStep`` (CBV short name or URI); ``bc:`` extension fields, which
our own exports carry, fill in what EPCIS has no field for and settle the cases the bizStep
leaves open (a ``consigning`` pickup or handoff). Anything outside the custody vocabulary is
refused with the field path and the reason; nothing is guessed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from services.contract.epcis_identifiers import NAMESPACE, id_from_uri

EXTENSION = "bc:"
CBV_PREFIXES = ("https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:")
DISPOSITION_PREFIXES = ("https://ref.gs1.org/cbv/Disp-", "urn:epcglobal:cbv:disp:")
BIZ_STEPS = {
    "collecting": "dropoff",
    "packing": "sealed",
    "consigning": "pickup or handoff",
    "receiving": "intake or handoff",
    "accepting": "receipt_ack",
    "destroying": "processed",
    "inspecting": "incident",
}
_TYPES_OF_STEP = {
    "collecting": {"dropoff"},
    "packing": {"sealed"},
    "consigning": {"pickup", "handoff"},
    "receiving": {"intake", "handoff"},
    "accepting": {"receipt_ack"},
    "destroying": {"processed"},
    "inspecting": {"incident"},
}
_CONDITION_OF_DISPOSITION = {
    "in_progress": "ok",
    "damaged": "damaged",
    "non_conformant": "rejected",
}
_CORRECTION_REASONS = {"did_not_occur", "incorrect_data"}


class CaptureRefused(ValueError):
    """One EPCIS event that does not map to a custody event; ``path`` is where, in the event."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def event_id_of(epcis_id: str) -> uuid.UUID:
    """``urn:uuid:X`` is X; any other eventID (e.g. a CBV ni:/// hash) maps to a UUIDv5 of it."""
    if epcis_id.lower().startswith("urn:uuid:"):
        try:
            return uuid.UUID(epcis_id[len("urn:uuid:") :])
        except ValueError as error:
            raise CaptureRefused("eventID", f"not a UUID URN: {epcis_id!r}") from error
    return uuid.uuid5(uuid.NAMESPACE_URL, epcis_id)


def short_name(value: Any, prefixes: tuple[str, ...]) -> str | None:
    if not isinstance(value, str):
        return None
    for prefix in prefixes:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value


@dataclass(frozen=True)
class _Reader:
    event: Mapping[str, Any]

    def extension(self, name: str) -> Any:
        return self.event.get(EXTENSION + name)

    def our_id(self, value: Any, kind: str, path: str) -> str:
        found = id_from_uri(value, kind) if isinstance(value, str) else None
        if found is None:
            raise CaptureRefused(path, f"not a {kind} URI of this service ({NAMESPACE}{kind}/…)")
        return found

    def container(self, event_type: str) -> str:
        if event_type == "AggregationEvent":
            return self.our_id(self.event.get("parentID"), "container", "parentID")
        epcs = self.event.get("epcList") or []
        if len(epcs) != 1:
            raise CaptureRefused("epcList", f"one container per custody event, not {len(epcs)}")
        return self.our_id(epcs[0], "container", "epcList[0]")

    def party(self, list_name: str, key: str) -> str:
        items = [
            item
            for item in self.event.get(list_name) or []
            if short_name(item.get("type"), ("https://ref.gs1.org/cbv/SDT-",)) == "possessing_party"
        ]
        if len(items) != 1:
            raise CaptureRefused(
                list_name, f"one possessing_party {key} is required for a transfer"
            )
        return self.our_id(items[0].get(key), "party", f"{list_name}[possessing_party].{key}")

    def mass(self, required_for: str | None) -> float | None:
        for element in self.event.get("sensorElementList") or []:
            for report in element.get("sensorReport") or []:
                kind = short_name(report.get("type"), ("gs1:", "https://gs1.org/voc/"))
                if kind == "Mass" and report.get("uom") == "KGM" and "value" in report:
                    value = report["value"]
                    if not isinstance(value, int | float) or isinstance(value, bool):
                        raise CaptureRefused("sensorElementList", "a Mass value must be a number")
                    return float(value)
        if required_for is not None:
            raise CaptureRefused(
                "sensorElementList", f"a Mass reading in KGM is required for {required_for}"
            )
        return None

    def transaction(self, kind: str) -> str | None:
        for item in self.event.get("bizTransactionList") or []:
            if short_name(item.get("type"), ("https://ref.gs1.org/cbv/BTT-",)) == kind:
                value = item.get("bizTransaction")
                if kind == "bol":
                    return self.our_id(value, "shipment", "bizTransactionList[bol]")
                return str(value)
        return None

    def required_extension(self, name: str, for_what: str) -> Any:
        value = self.extension(name)
        if value is None:
            raise CaptureRefused(EXTENSION + name, f"is required for {for_what}")
        return value


def custody_events(
    event: Mapping[str, Any], event_id: uuid.UUID, party_roles: Mapping[str, str]
) -> list[dict[str, Any]]:
    """The custody events (as contract JSON) of one EPCIS event: one, or two with a correction.

    ``event_id`` is the event's id (see :func:`event_id_of`); ``party_roles`` names each
    registered party's role, which tells a ``consigning`` pickup from a handoff.
    """
    read = _Reader(event)
    epcis_type = event.get("type")
    if epcis_type not in ("ObjectEvent", "AggregationEvent"):
        raise CaptureRefused("type", f"{epcis_type} is outside the custody vocabulary")
    step = short_name(event.get("bizStep"), CBV_PREFIXES)
    if step is None:
        raise CaptureRefused("bizStep", "is required: it says which custody event this is")
    if step not in BIZ_STEPS:
        known = ", ".join(f"{name} ({kind})" for name, kind in BIZ_STEPS.items())
        raise CaptureRefused("bizStep", f"{step!r} is outside the custody vocabulary: {known}")
    custody_type = _custody_type(read, step, party_roles)
    readpoint = event.get("readPoint") or {}
    body: dict[str, Any] = {
        "type": custody_type,
        "event_id": str(event_id),
        "container_id": read.container(str(epcis_type)),
        "occurred_at": event.get("eventTime"),
        "location_id": read.our_id(readpoint.get("id"), "location", "readPoint.id"),
    }
    for name, field in (("deviceSeq", "device_seq"), ("note", "note")):
        if read.extension(name) is not None:
            body[field] = read.extension(name)
    body.update(_fields(read, custody_type, step))
    found = [body]
    declaration = event.get("errorDeclaration")
    if declaration is not None:
        found.append(_correction(declaration, body, event_id))
    return found


def _custody_type(read: _Reader, step: str, party_roles: Mapping[str, str]) -> str:
    candidates = _TYPES_OF_STEP[step]
    declared = read.extension("eventType")
    if declared is not None:
        if declared not in candidates:
            raise CaptureRefused(
                EXTENSION + "eventType", f"{declared!r} does not go with bizStep {step!r}"
            )
        return str(declared)
    if len(candidates) == 1:
        return next(iter(candidates))
    if step == "consigning":
        source = read.party("sourceList", "source")
        return "pickup" if party_roles.get(source) == "site" else "handoff"
    destination = read.party("destinationList", "destination")
    has_mass = read.mass(None) is not None
    return "intake" if party_roles.get(destination) == "plant" and has_mass else "handoff"


def _fields(read: _Reader, custody_type: str, step: str) -> dict[str, Any]:
    if custody_type == "dropoff":
        return _dropoff(read)
    if custody_type == "sealed":
        fields: dict[str, Any] = {
            "weight_kg": read.mass("packing"),
            "un_numbers": read.required_extension("unNumbers", "packing (the UN numbers)"),
        }
        if read.extension("ddr") is not None:
            fields["ddr"] = read.extension("ddr")
        if read.extension("sealID") is not None:
            fields["seal_id"] = read.extension("sealID")
        return fields
    if custody_type in ("pickup", "handoff", "intake"):
        fields = {
            "from_party": read.party("sourceList", "source"),
            "to_party": read.party("destinationList", "destination"),
        }
        shipment = read.transaction("bol")
        if custody_type == "intake":
            fields["weight_kg"] = read.mass("an intake")
        elif shipment is not None:
            fields["shipment_id"] = shipment
        elif custody_type == "pickup":
            raise CaptureRefused(
                "bizTransactionList", "a bol (the shipment) is required for a pickup"
            )
        destination = read.extension("destinationParty")
        if custody_type == "pickup" and destination is not None:
            fields["destination_party"] = read.our_id(
                destination, "party", EXTENSION + "destinationParty"
            )
        return fields
    if custody_type == "receipt_ack":
        return _receipt(read)
    if custody_type == "processed":
        fields = {"method": read.required_extension("method", "destroying (shredding, …)")}
        weight = read.mass(None)
        if weight is not None:
            fields["input_weight_kg"] = weight
        return fields
    kind = read.extension("incidentKind")
    if (
        kind is None
        and short_name(read.event.get("disposition"), DISPOSITION_PREFIXES) == "damaged"
    ):
        kind = "damaged"
    if kind is None:
        raise CaptureRefused(EXTENSION + "incidentKind", f"is required for {step}")
    return {"kind": kind, "description": read.required_extension("description", step)}


def _dropoff(read: _Reader) -> dict[str, Any]:
    if read.event.get("type") != "AggregationEvent":
        raise CaptureRefused("type", "a collecting (dropoff) event is an AggregationEvent")
    children = read.event.get("childQuantityList") or [{}]
    child = children[0]
    chemistry = read.extension("chemistry")
    if chemistry is None:
        chemistry = id_from_uri(str(child.get("epcClass", "")), "battery-class")
    if chemistry is None:
        raise CaptureRefused(
            "childQuantityList[0].epcClass",
            "the battery chemistry (a battery-class URI) is required",
        )
    fields: dict[str, Any] = {"chemistry": chemistry}
    weight = read.mass(None)
    quantity = child.get("quantity")
    if quantity is not None and child.get("uom") is None:
        fields["battery_count"] = quantity
    elif quantity is not None and child.get("uom") == "KGM" and weight is None:
        weight = float(quantity)
    if weight is not None:
        fields["weight_kg"] = weight
    return fields


def _receipt(read: _Reader) -> dict[str, Any]:
    condition = read.extension("condition")
    if condition is None:
        disposition = short_name(read.event.get("disposition"), DISPOSITION_PREFIXES)
        condition = _CONDITION_OF_DISPOSITION.get(str(disposition))
    if condition is None:
        raise CaptureRefused("disposition", "the receipt's condition cannot be read from it")
    reference = read.extension("plantReference")
    if reference is None:
        recadv = read.transaction("recadv")
        reference = unquote(recadv.rpartition("/receipt/")[2]) if recadv else None
    if not reference:
        raise CaptureRefused("bizTransactionList", "a recadv (the plant's reference) is required")
    fields: dict[str, Any] = {
        "accepted_weight_kg": read.mass("accepting"),
        "condition": condition,
        "plant_reference": reference,
    }
    shipment = read.transaction("bol")
    if shipment is not None:
        fields["shipment_id"] = shipment
    return fields


def _correction(
    declaration: Mapping[str, Any], corrected: dict[str, Any], event_id: uuid.UUID
) -> dict[str, Any]:
    reason = short_name(
        declaration.get("reason"), ("https://ref.gs1.org/cbv/ER-", "urn:epcglobal:cbv:er:")
    )
    if reason not in _CORRECTION_REASONS:
        raise CaptureRefused(
            "errorDeclaration.reason", f"{reason!r} is not did_not_occur or incorrect_data"
        )
    declared = declaration.get(EXTENSION + "correctionEventID")
    correction_id = (
        event_id_of(declared)
        if isinstance(declared, str)
        else uuid.uuid5(uuid.NAMESPACE_URL, f"{event_id}#errorDeclaration")
    )
    correction: dict[str, Any] = {
        "type": "correction",
        "event_id": str(correction_id),
        "container_id": corrected["container_id"],
        "occurred_at": declaration.get("declarationTime"),
        "location_id": corrected["location_id"],
        "corrects_event_id": corrected["event_id"],
        "reason": reason,
        "corrective_event_ids": [
            str(event_id_of(str(item))) for item in declaration.get("correctiveEventIDs") or []
        ],
    }
    if declaration.get(EXTENSION + "note") is not None:
        correction["note"] = declaration[EXTENSION + "note"]
    return correction
