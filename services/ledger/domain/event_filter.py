"""EPCIS-style event query terms (GS1 EPCIS 2.0 §8.2.7 spirit) mapped onto ledger entries. Pure.

- ``EQ_bizStep`` names CBV business steps. Each maps to the event types that ``epcis.py``
  exports with that step (``BIZ_STEP_TYPES``; a unit test checks it against ``epcis_event``).
  A ``handoff`` is the one ambiguous type: ``epcis.py`` exports it as ``receiving`` when its
  ``to_party`` is a hub or a plant and as ``consigning`` otherwise, so a query for either step
  selects handoffs by the registry role of their ``to_party`` (``HANDOFF_STEP``).
  A ``correction`` has no bizStep: it is exported as the ``errorDeclaration`` of the event it
  corrects, so no bizStep selects it.
- ``MATCH_epc`` takes container ids or their EPCIS URIs (``epcis_identifiers.container_uri``);
  a trailing ``*`` matches every container id that starts with what precedes it.
- ``EQ_bizLocation`` / ``EQ_readPoint`` take location ids or their URIs
  (``epcis_identifiers.location_uri``).
  Every exported event's readPoint is its ``location_id``; its bizLocation is the same except
  for events after which the container is no longer there (``NO_BIZ_LOCATION``: pickup,
  processed and a consigning handoff), which carry none and so never match ``EQ_bizLocation``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote
from uuid import UUID

from services.contract.epcis_identifiers import NAMESPACE, RECEIVING_ROLES
from services.contract.events import Condition, EventType


@dataclass(frozen=True, slots=True)
class TypeSelection:
    """A set of exported event kinds: event types, handoffs by their receiver's role, and
    receipt acknowledgements by their condition (what a set of bizSteps or dispositions selects).
    An empty selection selects nothing."""

    event_types: frozenset[EventType]
    receiving_handoffs: bool = False
    consigning_handoffs: bool = False
    receipt_conditions: frozenset[Condition] = frozenset()


@dataclass(frozen=True, slots=True)
class EpcMatch:
    container_ids: tuple[str, ...]
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class EventFilter:
    """Terms over recorded entries; an entry matches when it meets every term given.

    ``selections`` and ``epc_matches`` each hold several terms, all of which must hold; the
    values inside one term are alternatives.
    """

    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    ge_record_time: datetime | None = None
    lt_record_time: datetime | None = None
    selections: tuple[TypeSelection, ...] = ()
    biz_locations: tuple[str, ...] = ()
    read_points: tuple[str, ...] = ()
    epc_matches: tuple[EpcMatch, ...] = ()
    from_parties: tuple[str, ...] = ()
    to_parties: tuple[str, ...] = ()
    shipments: tuple[str, ...] = ()
    event_ids: tuple[UUID, ...] = ()
    corrected_only: bool = False
    """Only events some correction names (whether it is in force is for the trail to say)."""
    scope: frozenset[str] | None = None
    """Only containers these parties took part in (``readside/scope.py``); None: all."""


BIZ_STEP_TYPES: dict[str, frozenset[EventType]] = {
    "collecting": frozenset({EventType.DROPOFF}),
    "packing": frozenset({EventType.SEALED}),
    "consigning": frozenset({EventType.PICKUP}),
    "receiving": frozenset({EventType.INTAKE}),
    "accepting": frozenset({EventType.RECEIPT_ACK}),
    "destroying": frozenset({EventType.PROCESSED}),
    "inspecting": frozenset({EventType.INCIDENT}),
}
"""bizStep → the event types always exported with it (handoff aside, see HANDOFF_STEP)."""

HANDOFF_STEP = {True: "receiving", False: "consigning"}
"""A handoff's bizStep by whether its ``to_party`` has a receiving role (hub or plant)."""

DISPOSITIONS: dict[str, TypeSelection] = {
    "disposed": TypeSelection(frozenset({EventType.DROPOFF})),
    "container_closed": TypeSelection(frozenset({EventType.SEALED})),
    "in_transit": TypeSelection(frozenset({EventType.PICKUP}), consigning_handoffs=True),
    "in_progress": TypeSelection(
        frozenset({EventType.INTAKE}),
        receiving_handoffs=True,
        receipt_conditions=frozenset({Condition.OK, Condition.DISCREPANCY}),
    ),
    "damaged": TypeSelection(
        frozenset({EventType.INCIDENT}), receipt_conditions=frozenset({Condition.DAMAGED})
    ),
    "non_conformant": TypeSelection(
        frozenset(), receipt_conditions=frozenset({Condition.REJECTED})
    ),
    "destroyed": TypeSelection(frozenset({EventType.PROCESSED})),
}
"""disposition → the events ``epcis.py`` exports with it."""

NO_BIZ_LOCATION = frozenset({EventType.PICKUP, EventType.PROCESSED, EventType.CORRECTION})
"""Types exported without a bizLocation (and a consigning handoff)."""

_STEP_PREFIXES = ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-")
_CONTAINER_PREFIX = f"{NAMESPACE}container/"
_LOCATION_PREFIX = f"{NAMESPACE}location/"


class QueryTermError(ValueError):
    """A query term that cannot be understood; the message says which and why."""


def biz_step_name(value: str) -> str:
    """The CBV short name of a bizStep given as a short name, a URN or a GS1 web URI."""
    text = value.strip()
    for prefix in _STEP_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if text not in BIZ_STEP_TYPES:
        known = ", ".join(sorted(BIZ_STEP_TYPES))
        raise QueryTermError(f"EQ_bizStep: unknown bizStep {value!r} (known: {known})")
    return text


def select_steps(values: Iterable[str]) -> TypeSelection:
    steps = {biz_step_name(value) for value in values}
    types: set[EventType] = set()
    for step in steps:
        types |= BIZ_STEP_TYPES[step]
    return TypeSelection(
        frozenset(types), HANDOFF_STEP[True] in steps, HANDOFF_STEP[False] in steps
    )


def select_dispositions(values: Iterable[str]) -> TypeSelection:
    """The events exported with any of these dispositions (CBV short names of ours)."""
    types: set[EventType] = set()
    conditions: set[Condition] = set()
    receiving = consigning = False
    for value in values:
        selection = DISPOSITIONS[value]
        types |= selection.event_types
        conditions |= selection.receipt_conditions
        receiving |= selection.receiving_handoffs
        consigning |= selection.consigning_handoffs
    return TypeSelection(frozenset(types), receiving, consigning, frozenset(conditions))


def handoff_receiving(to_party: str, party_roles: Mapping[str, str]) -> bool:
    return party_roles.get(to_party) in RECEIVING_ROLES


def biz_step_of(
    event_type: str, to_party: str | None, party_roles: Mapping[str, str]
) -> str | None:
    """The bizStep an event is exported with (None for a correction)."""
    if event_type == EventType.HANDOFF:
        return HANDOFF_STEP[handoff_receiving(to_party or "", party_roles)]
    for step, types in BIZ_STEP_TYPES.items():
        if event_type in types:
            return step
    return None


def container_id_of(value: str) -> str:
    """A container id from itself or its EPCIS URI."""
    text = value.strip()
    if text.startswith(_CONTAINER_PREFIX):
        text = unquote(text[len(_CONTAINER_PREFIX) :])
    if not text:
        raise QueryTermError(f"MATCH_epc: {value!r} names no container")
    return text


def match_epcs(values: Iterable[str]) -> EpcMatch:
    exact: list[str] = []
    prefixes: list[str] = []
    for value in values:
        text = value.strip()
        if text.endswith("*"):
            prefix = text[:-1]
            prefixes.append(
                unquote(prefix[len(_CONTAINER_PREFIX) :])
                if prefix.startswith(_CONTAINER_PREFIX)
                else prefix
            )
        else:
            exact.append(container_id_of(text))
    return EpcMatch(tuple(exact), tuple(prefixes))


def location_id_of(value: str) -> str:
    """A location id from itself or its EPCIS URI."""
    text = value.strip()
    if text.startswith(_LOCATION_PREFIX):
        text = unquote(text[len(_LOCATION_PREFIX) :])
    if not text:
        raise QueryTermError(f"location {value!r} names no location")
    return text


def split_list(values: Iterable[str]) -> list[str]:
    """Query values given repeated and/or comma-separated, blanks dropped."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
