"""The EPCIS 2.0 query language (GS1 EPCIS 2.0 §8.2.7, SimpleEventQuery) over the ledger. Pure.

A query's parameters come from a URL query string (each value pipe-delimited, ``|``) or from a
named query's JSON body (``query-schema.json``: arrays of strings, times as strings, booleans);
``terms_from_query_string`` and ``terms_from_json`` bring both to one form (name → values), and
``event_filter`` reads that into an ``EventFilter`` over recorded entries, with the meaning the
EPCIS export gives each event (``rendering/epcis.py``):

- ``eventType``: a dropoff is an ``AggregationEvent``, every other scan an ``ObjectEvent``; a
  correction is no event (it is the ``errorDeclaration`` of the event it corrects).
- ``EQ_action``: ADD (dropoff), DELETE (processed), OBSERVE (the others).
- ``EQ_bizStep`` / ``EQ_disposition``: the CBV terms the export uses (``event_filter.py``).
- ``MATCH_epc`` (epcList: every ObjectEvent), ``MATCH_parentID`` (the dropoff's container),
  ``MATCH_anyEPC`` (either); ids, our container URIs, or a prefix ending in ``*``.
- ``EQ_source_possessing_party`` / ``EQ_destination_possessing_party``: pickups, handoffs and
  intakes from / to those parties; ``EQ_bizTransaction_bol``: events naming those shipments.
- ``EXISTS_errorDeclaration=true``: events a correction in force declares in error.
- ``EQ_eventID``: the exported ``urn:uuid:`` ids.

A standard value outside our vocabulary (``EQ_bizStep=shipping``, ``eventType=TransformationEvent``,
a source type other than possessing_party) is a valid query that selects nothing. A name that is
not an EPCIS query parameter, one we do not answer, or a malformed value is a
``QueryParameterError``: nothing is silently ignored.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.contract.epcis_identifiers import id_from_uri
from services.contract.events import EventType
from services.ledger.domain.event_filter import (
    BIZ_STEP_TYPES,
    DISPOSITIONS,
    EpcMatch,
    EventFilter,
    QueryTermError,
    TypeSelection,
    location_id_of,
    match_epcs,
    select_dispositions,
    select_steps,
)

PER_PAGE_DEFAULT = 100
PER_PAGE_MAX = 1000
PAGE_TOKEN_LIFETIME = timedelta(hours=1)
PAGING = frozenset({"perPage", "nextPageToken"})

EPCIS_EVENT_TYPES = frozenset(
    {
        "ObjectEvent",
        "AggregationEvent",
        "TransactionEvent",
        "TransformationEvent",
        "AssociationEvent",
    }
)
CBV_BIZ_STEPS = frozenset(
    [
        "accepting",
        "arriving",
        "assembling",
        "collecting",
        "commissioning",
        "consigning",
        "creating_class_instance",
        "cycle_counting",
        "decommissioning",
        "departing",
        "destroying",
        "disassembling",
        "dispensing",
        "encoding",
        "entering_exiting",
        "holding",
        "inspecting",
        "installing",
        "killing",
        "loading",
        "other",
        "packing",
        "picking",
        "receiving",
        "removing",
        "repackaging",
        "repairing",
        "replacing",
        "reserving",
        "retail_selling",
        "shipping",
        "staging_outbound",
        "stock_taking",
        "stocking",
        "storing",
        "transporting",
        "unloading",
        "unpacking",
        "void_shipping",
        "sensor_reporting",
        "sampling",
    ]
)
CBV_DISPOSITIONS = frozenset(
    [
        "active",
        "container_closed",
        "damaged",
        "destroyed",
        "dispensed",
        "disposed",
        "encoded",
        "expired",
        "in_progress",
        "in_transit",
        "inactive",
        "no_pedigree_match",
        "non_sellable_other",
        "partially_dispensed",
        "recalled",
        "reserved",
        "retail_sold",
        "returned",
        "sellable_accessible",
        "sellable_not_accessible",
        "stolen",
        "unknown",
        "available",
        "completeness_verified",
        "completeness_inferred",
        "conformant",
        "container_open",
        "mismatch_instance",
        "mismatch_class",
        "mismatch_quantity",
        "needs_replacement",
        "non_conformant",
        "unavailable",
    ]
)
_ACTIONS: dict[str, frozenset[EventType]] = {
    "ADD": frozenset({EventType.DROPOFF}),
    "DELETE": frozenset({EventType.PROCESSED}),
    "OBSERVE": frozenset(EventType)
    - {EventType.DROPOFF, EventType.PROCESSED, EventType.CORRECTION},
}
_EVENTS = frozenset(EventType) - {EventType.CORRECTION}
_OBJECT_EVENTS = _EVENTS - {EventType.DROPOFF}
_TYPES_OF: dict[str, frozenset[EventType]] = {
    "AggregationEvent": frozenset({EventType.DROPOFF}),
    "ObjectEvent": _OBJECT_EVENTS,
}
_NOTHING = TypeSelection(frozenset())
TIME_PARAMETERS = ("GE_eventTime", "LT_eventTime", "GE_recordTime", "LT_recordTime")
_SOURCE = re.compile(r"EQ_(source|destination)_(.+)")
_TRANSACTION = re.compile(r"EQ_bizTransaction_(.+)")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_STEP_PREFIXES = ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-")
_DISPOSITION_PREFIXES = ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-")
_UUID_URI = "urn:uuid:"

SUPPORTED = (
    "eventType",
    *TIME_PARAMETERS,
    "EQ_action",
    "EQ_bizStep",
    "EQ_disposition",
    "EQ_readPoint",
    "EQ_bizLocation",
    "MATCH_epc",
    "MATCH_parentID",
    "MATCH_anyEPC",
    "EQ_source_possessing_party",
    "EQ_destination_possessing_party",
    "EQ_bizTransaction_bol",
    "EXISTS_errorDeclaration",
    "EQ_eventID",
)
"""The parameters answered, as the OpenAPI document lists them (besides perPage and the token)."""

NOT_ANSWERED = frozenset(
    {
        "EQ_persistentDisposition_set",
        "EQ_persistentDisposition_unset",
        "WD_readPoint",
        "WD_bizLocation",
        "EQ_transformationID",
        "MATCH_inputEPC",
        "MATCH_outputEPC",
        "MATCH_epcClass",
        "MATCH_inputEPCClass",
        "MATCH_outputEPCClass",
        "MATCH_anyEPCClass",
        "EQ_quantity",
        "GT_quantity",
        "GE_quantity",
        "LT_quantity",
        "LE_quantity",
        "GE_errorDeclarationTime",
        "LT_errorDeclarationTime",
        "EQ_errorReason",
        "EQ_correctiveEventID",
        "orderBy",
        "orderDirection",
        "eventCountLimit",
        "maxEventCount",
        "GE_startTime",
        "LT_startTime",
        "GE_endTime",
        "LT_endTime",
        "EQ_type",
        "EQ_deviceID",
        "EQ_dataProcessingMethod",
        "EQ_microorganism",
        "EQ_chemicalSubstance",
        "EQ_bizRules",
        "EQ_stringValue",
        "EQ_hexBinaryValue",
        "EQ_uriValue",
        "EQ_booleanValue",
    }
)
"""Standard EPCIS parameters this repository refuses rather than ignores."""

Terms = Mapping[str, Sequence[str]]


class QueryParameterError(ValueError):
    """A parameter the query interface cannot answer; the message names it and says why.
    The API answers it as ``epcisException:QueryParameterException`` (400)."""


def terms_from_query_string(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Query-string parameters by name: values pipe-delimited and/or repeated, blanks dropped."""
    terms: dict[str, list[str]] = {}
    for name, value in pairs:
        values = terms.setdefault(name, [])
        values.extend(part for part in value.split("|") if part.strip())
    return terms


def terms_from_json(query: Mapping[str, Any]) -> dict[str, list[str]]:
    """A named query's ``query`` object (already valid against GS1's query schema) as terms."""
    terms: dict[str, list[str]] = {}
    for name, value in query.items():
        if isinstance(value, bool):
            terms[name] = ["true" if value else "false"]
        elif isinstance(value, str):
            terms[name] = [value]
        elif isinstance(value, list) and all(isinstance(item, str) for item in value):
            terms[name] = list(value)
        else:
            raise QueryParameterError(
                f"{name}: give a string, a list of strings or a boolean (times as RFC 3339 "
                "strings), not {value!r}"
            )
    return terms


def parse_instant(text: str) -> datetime:
    """An RFC 3339 date-time with a date, a time and an offset; ValueError saying why not."""
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 date-time") from None
    if moment.tzinfo is None or "T" not in text.upper():
        raise ValueError(f"{text!r} needs a date, a time and a UTC offset")
    return moment


def _instant(name: str, values: Sequence[str]) -> datetime:
    if len(values) != 1:
        raise QueryParameterError(f"{name}: give one time, not {len(values)}")
    try:
        return parse_instant(values[0].strip())
    except ValueError as error:
        raise QueryParameterError(f"{name}: {error}") from None


def _vocabulary(
    name: str,
    values: Sequence[str],
    ours: Iterable[str],
    standard: frozenset[str],
    prefixes: tuple[str, ...],
) -> list[str]:
    """The values of ours; standard values and other URIs select nothing; anything else fails."""
    known = set(ours)
    kept: list[str] = []
    for value in values:
        text = value.strip()
        for prefix in prefixes:
            if text.startswith(prefix):
                text = text[len(prefix) :]
                break
        if text in known:
            kept.append(text)
        elif text not in standard and not _URI.fullmatch(text):
            raise QueryParameterError(
                f"{name}: {value!r} is neither a CBV 2.0 term nor a URI "
                f"(this ledger uses: {', '.join(sorted(known))})"
            )
    return kept


def _event_types(values: Sequence[str]) -> TypeSelection:
    types: set[EventType] = set()
    for value in values:
        text = value.strip()
        if text in _TYPES_OF:
            types |= _TYPES_OF[text]
        elif text not in EPCIS_EVENT_TYPES and not _URI.fullmatch(text):
            raise QueryParameterError(
                f"eventType: {value!r} is not an EPCIS event type "
                f"({', '.join(sorted(EPCIS_EVENT_TYPES))}) nor an extension type URI"
            )
    return TypeSelection(frozenset(types))


def _actions(values: Sequence[str]) -> TypeSelection:
    types: set[EventType] = set()
    for value in values:
        if value not in _ACTIONS:
            raise QueryParameterError(f"EQ_action: {value!r} is not ADD, OBSERVE or DELETE")
        types |= _ACTIONS[value]
    return TypeSelection(frozenset(types))


def _ids(name: str, values: Sequence[str], kind: str) -> tuple[str, ...]:
    """Ids from our URIs of ``kind`` or bare ids (a URI of anything else matches nothing)."""
    found = []
    for value in values:
        text = value.strip()
        found.append(id_from_uri(text, kind) or text)
    if not all(found):
        raise QueryParameterError(f"{name}: an empty value names nothing")
    return tuple(found)


def _event_ids(values: Sequence[str]) -> tuple[UUID, ...] | None:
    """Our events' ids; None when no value is one of ours (the query then selects nothing)."""
    found: list[UUID] = []
    for value in values:
        text = value.strip()
        if not _URI.fullmatch(text):
            raise QueryParameterError(f"EQ_eventID: {value!r} is not a URI")
        if text.lower().startswith(_UUID_URI):
            try:
                found.append(UUID(text[len(_UUID_URI) :]))
            except ValueError:
                raise QueryParameterError(f"EQ_eventID: {value!r} is not a UUID URN") from None
    return tuple(found) or None


def _boolean(name: str, values: Sequence[str]) -> bool:
    if len(values) != 1 or values[0].strip().lower() not in ("true", "false"):
        raise QueryParameterError(f"{name}: give true or false")
    return values[0].strip().lower() == "true"


def _matches(name: str, values: Sequence[str]) -> EpcMatch:
    try:
        return match_epcs(values)
    except QueryTermError as error:
        raise QueryParameterError(f"{name}: {error}") from None


def event_filter(terms: Terms) -> EventFilter:
    """The filter a query's terms describe (paging terms excluded), or ``QueryParameterError``."""
    times: dict[str, datetime] = {}
    selections: list[TypeSelection] = [TypeSelection(_EVENTS)]
    epc_matches: list[EpcMatch] = []
    fields: dict[str, Any] = {}
    for name, values in terms.items():
        if name in PAGING:
            continue
        if not values:
            raise QueryParameterError(f"{name}: needs a value")
        source = _SOURCE.fullmatch(name)
        transaction = _TRANSACTION.fullmatch(name)
        if name in TIME_PARAMETERS:
            times[name] = _instant(name, values)
        elif name == "eventType":
            selections.append(_event_types(values))
        elif name == "EQ_action":
            selections.append(_actions(values))
        elif name == "EQ_bizStep":
            kept = _vocabulary(name, values, BIZ_STEP_TYPES, CBV_BIZ_STEPS, _STEP_PREFIXES)
            selections.append(select_steps(kept))
        elif name == "EQ_disposition":
            kept = _vocabulary(name, values, DISPOSITIONS, CBV_DISPOSITIONS, _DISPOSITION_PREFIXES)
            selections.append(select_dispositions(kept))
        elif name in ("EQ_readPoint", "EQ_bizLocation"):
            try:
                located = tuple(location_id_of(value) for value in values)
            except QueryTermError as error:
                raise QueryParameterError(f"{name}: {error}") from None
            fields["read_points" if name == "EQ_readPoint" else "biz_locations"] = located
        elif name == "MATCH_epc":
            selections.append(TypeSelection(_OBJECT_EVENTS))
            epc_matches.append(_matches(name, values))
        elif name == "MATCH_parentID":
            selections.append(TypeSelection(frozenset({EventType.DROPOFF})))
            epc_matches.append(_matches(name, values))
        elif name == "MATCH_anyEPC":
            epc_matches.append(_matches(name, values))
        elif source is not None:
            if source.group(2) == "possessing_party":
                key = "from_parties" if source.group(1) == "source" else "to_parties"
                fields[key] = _ids(name, values, "party")
            else:
                selections.append(_NOTHING)  # we record no other kind of source or destination
        elif transaction is not None:
            if transaction.group(1) != "bol":
                raise QueryParameterError(
                    f"{name}: this repository answers EQ_bizTransaction only for type bol"
                )
            fields["shipments"] = _ids(name, values, "shipment")
        elif name == "EXISTS_errorDeclaration":
            fields["corrected_only"] = _boolean(name, values)
        elif name == "EQ_eventID":
            ids = _event_ids(values)
            if ids is None:
                selections.append(_NOTHING)
            else:
                fields["event_ids"] = ids
        elif name in NOT_ANSWERED:
            raise QueryParameterError(
                f"{name} is an EPCIS query parameter this repository does not answer "
                f"(it answers: {', '.join(SUPPORTED)})"
            )
        else:
            raise QueryParameterError(f"unknown query parameter {name!r}")
    return EventFilter(
        ge_event_time=times.get("GE_eventTime"),
        lt_event_time=times.get("LT_eventTime"),
        ge_record_time=times.get("GE_recordTime"),
        lt_record_time=times.get("LT_recordTime"),
        selections=tuple(selections),
        epc_matches=tuple(epc_matches),
        **fields,
    )


def per_page(terms: Terms) -> int:
    values = terms.get("perPage")
    if not values:
        return PER_PAGE_DEFAULT
    text = values[0].strip()
    if len(values) != 1 or not text.isdigit() or not 1 <= int(text) <= PER_PAGE_MAX:
        raise QueryParameterError(f"perPage: give one whole number from 1 to {PER_PAGE_MAX}")
    return int(text)


# --- page tokens --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageToken:
    """Where the next page starts: after ``after_seq``, for the query with ``digest``.

    It names a position in the append-only ledger, so it carries no secret: a client that
    edits one can only page from elsewhere in what its query may read anyway.
    """

    after_seq: int
    expires: datetime
    digest: str

    def encode(self) -> str:
        text = f"{self.after_seq}.{int(self.expires.timestamp())}.{self.digest}"
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def query_digest(terms: Terms, resource: str = "") -> str:
    """A digest of a query's terms (paging aside) that a page token is bound to."""
    parts = [resource]
    for name in sorted(terms):
        if name not in PAGING:
            parts.append(name + "=" + "|".join(sorted(value.strip() for value in terms[name])))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def next_page_token(after_seq: int, digest: str, now: datetime) -> PageToken:
    return PageToken(after_seq, now + PAGE_TOKEN_LIFETIME, digest)


def read_page_token(token: str, digest: str, now: datetime) -> int:
    """The seq a page continues after, or ``QueryParameterError`` for a token that is not one
    we issued for this very query, or has expired."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        seq, expires, bound = text.split(".")
        if not (seq.isdigit() and expires.isdigit() and len(seq) <= 18 and len(expires) <= 12):
            raise ValueError(text)
    except ValueError:
        raise QueryParameterError("nextPageToken: not a token this repository issued") from None
    if bound != digest:
        raise QueryParameterError(
            "nextPageToken: it was issued for another query; repeat the query's parameters"
        )
    if datetime.fromtimestamp(int(expires), UTC) <= now:
        raise QueryParameterError("nextPageToken: it has expired; start the query again")
    return int(seq)
