"""Which events a device may post for its party (pure; docs/architecture.md §3 and issue #2)."""

from __future__ import annotations

from collections.abc import Mapping

from services.contract.events import (
    Correction,
    CustodyEvent,
    Dropoff,
    Handoff,
    Incident,
    Intake,
    Pickup,
    Processed,
    ReceiptAck,
    Sealed,
    parties_of,
)
from services.registry.principals import Device, PartyRole


class NotAllowed(Exception):
    """The device's party may not post this event (HTTP 403)."""


class UnknownParty(Exception):
    """The event names a party the registry does not know (HTTP 422)."""

    def __init__(self, field: str, party_id: str) -> None:
        super().__init__(f"{field}: unknown party {party_id!r}")
        self.field = field
        self.party_id = party_id


def check_parties_known(event: CustodyEvent, roles: Mapping[str, PartyRole]) -> None:
    named = event.__dict__  # a field-by-field getattr would raise inside pydantic per miss
    for field in ("from_party", "to_party", "destination_party"):
        party = named.get(field)
        if party is not None and party not in roles:
            raise UnknownParty(field, party)


def check_may_post(
    device: Device, event: CustodyEvent, *, corrected_poster: str | None = None
) -> None:
    """Raise NotAllowed unless ``device`` may post ``event``.

    ``corrected_poster`` is the party that posted the event a correction targets.
    """
    party, role = device.party_id, device.party_role
    match event:
        case Dropoff() | Sealed():
            if role is not PartyRole.SITE:
                raise NotAllowed(f"only sites post {event.type} events; {party} is a {role}")
        case Pickup() | Handoff() | Intake():
            if party not in parties_of(event)[:2]:
                raise NotAllowed(
                    f"{party} may only post transfers it takes part in "
                    f"(from_party {event.from_party}, to_party {event.to_party})"
                )
            if isinstance(event, Intake) and role is not PartyRole.PLANT:
                raise NotAllowed(f"only plants post intake events; {party} is a {role}")
        case Processed():
            if role is not PartyRole.PLANT:
                raise NotAllowed(f"only plants post processed events; {party} is a {role}")
        case ReceiptAck():
            raise NotAllowed("receipt_ack events come only from a plant's signed webhook")
        case Incident():
            pass
        case Correction():
            if corrected_poster is None:
                raise NotAllowed(f"event {event.corrects_event_id} is not recorded")
            if corrected_poster != party:
                raise NotAllowed(
                    f"only the original poster ({corrected_poster}) may correct "
                    f"event {event.corrects_event_id}"
                )
