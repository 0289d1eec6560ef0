"""Who may post what (pure)."""

from __future__ import annotations

import pytest

from services.contract import parse_event
from services.ingest.domain.permissions import (
    NotAllowed,
    UnknownParty,
    check_may_post,
    check_parties_known,
)
from services.registry.principals import Device, PartyRole
from tests.support import events as ev

C = "BX-PERM-1"
SITE = Device("s1", "site-a", PartyRole.SITE)
HAULER = Device("h1", "hauler-a", PartyRole.HAULER)
HUB = Device("u1", "hub-a", PartyRole.HUB)
PLANT = Device("p1", "plant-a", PartyRole.PLANT)

PICKUP = ev.transfer("pickup", C, 2, "site-a", "hauler-a", shipment_id="B")
HANDOFF = ev.transfer("handoff", C, 3, "hauler-a", "hub-a")
INTAKE = ev.transfer("intake", C, 4, "hauler-a", "plant-a", weight_kg=10.0)
PROCESSED = ev.event("processed", C, 5, method="shredding")
INCIDENT = ev.event("incident", C, 5, kind="leak", description="wet")
ACK = ev.event("receipt_ack", C, 5, accepted_weight_kg=1.0, condition="ok", plant_reference="R")

ALLOWED = [
    (SITE, ev.dropoff(C)),
    (SITE, ev.sealed(C)),
    (SITE, PICKUP),
    (HAULER, PICKUP),
    (HAULER, HANDOFF),
    (HUB, HANDOFF),
    (PLANT, INTAKE),
    (PLANT, PROCESSED),
    (SITE, INCIDENT),
    (HUB, INCIDENT),
]
REFUSED = [
    (HAULER, ev.dropoff(C), "only sites"),
    (PLANT, ev.sealed(C), "only sites"),
    (HUB, PICKUP, "takes part in"),
    (PLANT, HANDOFF, "takes part in"),
    (HUB, INTAKE, "takes part in"),
    (HAULER, INTAKE, "only plants post intake"),
    (SITE, PROCESSED, "only plants"),
    (PLANT, ACK, "signed webhook"),
]


@pytest.mark.parametrize(("device", "raw"), ALLOWED)
def test_allowed(device: Device, raw: dict[str, object]) -> None:
    check_may_post(device, parse_event(raw))


@pytest.mark.parametrize(("device", "raw", "reason"), REFUSED)
def test_refused(device: Device, raw: dict[str, object], reason: str) -> None:
    with pytest.raises(NotAllowed, match=reason):
        check_may_post(device, parse_event(raw))


def test_intake_is_posted_by_the_receiving_plant_only() -> None:
    intake_by_site = ev.transfer("intake", C, 4, "site-a", "plant-a", weight_kg=10.0)
    with pytest.raises(NotAllowed, match="only plants post intake"):
        check_may_post(SITE, parse_event(intake_by_site))


def test_corrections_only_by_the_original_poster() -> None:
    correction = parse_event(
        ev.event("correction", C, 6, corrects_event_id=PICKUP["event_id"], reason="did_not_occur")
    )
    check_may_post(HAULER, correction, corrected_poster="hauler-a")
    with pytest.raises(NotAllowed, match="original poster"):
        check_may_post(SITE, correction, corrected_poster="hauler-a")
    with pytest.raises(NotAllowed, match="not recorded"):
        check_may_post(HAULER, correction, corrected_poster=None)


def test_unknown_parties_are_named() -> None:
    roles = {"site-a": PartyRole.SITE, "hauler-a": PartyRole.HAULER}
    check_parties_known(parse_event(PICKUP), roles)
    with pytest.raises(UnknownParty) as failure:
        check_parties_known(parse_event(HANDOFF), roles)
    assert (failure.value.field, failure.value.party_id) == ("to_party", "hub-a")
