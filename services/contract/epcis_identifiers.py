"""The URIs by which EPCIS names the ledger's events, containers, parties and places.

Shared by the EPCIS export (``services/ledger/rendering/epcis.py``), the EPCIS-style event query
(``services/ledger/domain/event_filter.py``), which accepts these URIs as well as plain ids, and
EPCIS capture at ingest, which reads them back (``id_from_uri``). Pure.
"""

from __future__ import annotations

from urllib.parse import quote, unquote
from uuid import UUID

NAMESPACE = "https://battery-custody.example/"

RECEIVING_ROLES = frozenset({"hub", "plant"})
"""Party roles for which a handoff to them is ``receiving`` rather than ``consigning``."""


def _segment(value: str) -> str:
    """One URI path segment: everything but unreserved characters and ':' percent-encoded."""
    return quote(value, safe=":")


def event_uri(event_id: UUID) -> str:
    return f"urn:uuid:{event_id}"


def container_uri(container_id: str) -> str:
    return f"{NAMESPACE}container/{_segment(container_id)}"


def party_uri(party_id: str) -> str:
    return f"{NAMESPACE}party/{_segment(party_id)}"


def device_uri(device_id: str) -> str:
    return f"{NAMESPACE}device/{_segment(device_id)}"


def location_uri(location_id: str) -> str:
    return f"{NAMESPACE}location/{_segment(location_id)}"


def shipment_uri(shipment_id: str) -> str:
    return f"{NAMESPACE}shipment/{_segment(shipment_id)}"


def receipt_uri(party_id: str, plant_reference: str) -> str:
    return f"{NAMESPACE}party/{_segment(party_id)}/receipt/{_segment(plant_reference)}"


def battery_class_uri(chemistry: str) -> str:
    return f"{NAMESPACE}battery-class/{_segment(chemistry)}"


def id_from_uri(uri: str, kind: str) -> str | None:
    """The id inside one of our URIs of ``kind`` (container, party, location, shipment, …).

    A value that is not such a URI is None; callers say which field it came from.
    """
    prefix = f"{NAMESPACE}{kind}/"
    if not uri.startswith(prefix):
        return None
    rest = uri[len(prefix) :]
    if not rest or "/" in rest:
        return None
    return unquote(rest)
