"""Custody reconstruction (services/ledger/domain/custody.py) against docs/architecture.md §3."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.contract import CustodyEvent, Origin, OriginKind
from services.contract.events import (
    Chemistry,
    Condition,
    Correction,
    CorrectionReason,
    Dropoff,
    Handoff,
    Incident,
    IncidentKind,
    Intake,
    Pickup,
    Processed,
    ProcessMethod,
    ReceiptAck,
    Sealed,
)
from services.ledger.domain.custody import (
    TIME_BASED_CODES,
    AnomalyCode,
    ContainerState,
    CustodyInterval,
    CustodyRules,
    CustodyTrail,
    order_entries,
    reconstruct,
)
from services.ledger.domain.entries import DuplicateConflict, RecordedEntry

CID = "BX-000123"
SITE = "site-a"
HAULER = "hauler-b"
HUB = "hub-c"
PLANT = "plant-d"
CET = timezone(timedelta(hours=1))
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=CET)
DAY = timedelta(days=1)
NOW = T0 + 30 * DAY


# --- factories --------------------------------------------------------------------------------


def _common(at: datetime, location: str, device_seq: int | None) -> dict[str, Any]:
    return {
        "event_id": uuid4(),
        "container_id": CID,
        "occurred_at": at,
        "location_id": location,
        "device_seq": device_seq,
    }


def dropoff(at: datetime, *, device_seq: int | None = None) -> Dropoff:
    return Dropoff(
        type="dropoff", chemistry=Chemistry.LI_ION, **_common(at, "site-a/bay-1", device_seq)
    )


def sealed(at: datetime, weight: float = 120.0, *, device_seq: int | None = None) -> Sealed:
    return Sealed(
        type="sealed",
        weight_kg=weight,
        un_numbers=["UN3480"],
        **_common(at, "site-a/bay-1", device_seq),
    )


def pickup(at: datetime, frm: str = SITE, to: str = HAULER) -> Pickup:
    return Pickup(
        type="pickup",
        from_party=frm,
        to_party=to,
        shipment_id="BOL-1",
        **_common(at, "site-a/dock", None),
    )


def handoff(at: datetime, frm: str = HAULER, to: str = HUB) -> Handoff:
    return Handoff(type="handoff", from_party=frm, to_party=to, **_common(at, "hub-c/yard", None))


def intake(at: datetime, weight: float = 119.5, frm: str = HUB, to: str = PLANT) -> Intake:
    return Intake(
        type="intake",
        from_party=frm,
        to_party=to,
        weight_kg=weight,
        **_common(at, "plant-d/gate", None),
    )


def ack(at: datetime, weight: float = 119.5) -> ReceiptAck:
    return ReceiptAck(
        type="receipt_ack",
        accepted_weight_kg=weight,
        condition=Condition.OK,
        plant_reference="PR-77",
        **_common(at, "plant-d/erp", None),
    )


def processed(at: datetime) -> Processed:
    return Processed(
        type="processed", method=ProcessMethod.HYDROMET, **_common(at, "plant-d/line-2", None)
    )


def incident(at: datetime) -> Incident:
    return Incident(
        type="incident",
        kind=IncidentKind.LEAK,
        description="electrolyte smell",
        **_common(at, "hub-c/yard", None),
    )


def correction(
    at: datetime,
    target: UUID,
    reason: CorrectionReason = CorrectionReason.DID_NOT_OCCUR,
    corrective: Sequence[UUID] = (),
) -> Correction:
    return Correction(
        type="correction",
        corrects_event_id=target,
        reason=reason,
        corrective_event_ids=list(corrective),
        **_common(at, "admin", None),
    )


def rec(
    event: CustodyEvent,
    party: str,
    *,
    device: str | None = "dev-1",
    seq: int = 0,
    received_at: datetime | None = None,
) -> RecordedEntry:
    """A ledger entry; received 30 s after it occurred unless told otherwise."""
    received = received_at if received_at is not None else event.occurred_at + timedelta(seconds=30)
    kind = OriginKind.DEVICE if device is not None else OriginKind.WEBHOOK
    return RecordedEntry(
        seq=seq,
        event=event,
        received_at=received,
        recorded_at=received + timedelta(seconds=1),
        origin=Origin(kind=kind, party_id=party, device_id=device),
        kafka_partition=0,
        kafka_offset=seq,
        prev_hash=b"\0" * 32,
        entry_hash=b"\0" * 32,
    )


def ledger(*entries: RecordedEntry) -> list[RecordedEntry]:
    """Number the entries 1..n in the given (arrival) order."""
    return [dataclasses.replace(e, seq=i, kafka_offset=i) for i, e in enumerate(entries, start=1)]


def life() -> list[RecordedEntry]:
    """dropoff → sealed → pickup → hub handoff → intake → receipt_ack → processed."""
    return ledger(
        rec(dropoff(T0), SITE),
        rec(sealed(T0 + DAY), SITE),
        rec(pickup(T0 + 2 * DAY), HAULER, device="truck-7"),
        rec(handoff(T0 + 3 * DAY), HUB, device="hub-scanner"),
        rec(intake(T0 + 5 * DAY), PLANT, device="gate-1"),
        rec(ack(T0 + 5 * DAY + timedelta(hours=2)), PLANT, device=None),
        rec(processed(T0 + 20 * DAY), PLANT, device="line-2"),
    )


def codes(trail: CustodyTrail) -> list[AnomalyCode]:
    return [a.code for a in trail.anomalies]


def ids(entries: Sequence[RecordedEntry]) -> list[UUID]:
    return [e.event_id for e in entries]


# --- the happy life ---------------------------------------------------------------------------


def test_full_life_states_custodians_and_intervals() -> None:
    entries = life()
    d, _, p, h, i, _, pr = entries
    trail = reconstruct(entries, now=NOW)

    assert trail.container_id == CID
    assert trail.state is ContainerState.PROCESSED
    assert trail.custodian == PLANT
    assert trail.location_id == "plant-d/line-2"
    assert trail.first_dropoff_at == T0
    assert trail.state_since == T0 + 20 * DAY
    assert trail.last_occurred_at == T0 + 20 * DAY
    assert trail.head_seq == 7
    assert trail.anomalies == ()
    assert [e.entry for e in trail.events] == entries
    assert all(e.effective and not e.corrected and e.anomalies == () for e in trail.events)
    assert trail.intervals == (
        CustodyInterval(SITE, T0, T0 + 2 * DAY, d.event_id, p.event_id),
        CustodyInterval(HAULER, T0 + 2 * DAY, T0 + 3 * DAY, p.event_id, h.event_id),
        CustodyInterval(HUB, T0 + 3 * DAY, T0 + 5 * DAY, h.event_id, i.event_id),
        CustodyInterval(PLANT, T0 + 5 * DAY, T0 + 20 * DAY, i.event_id, pr.event_id),
    )


@pytest.mark.parametrize(
    ("upto", "state", "custodian"),
    [
        (1, ContainerState.OPEN, SITE),
        (2, ContainerState.SEALED, SITE),
        (3, ContainerState.IN_TRANSIT, HAULER),
        (4, ContainerState.IN_TRANSIT, HUB),
        (5, ContainerState.RECEIVED, PLANT),
        (6, ContainerState.ACKNOWLEDGED, PLANT),
    ],
)
def test_each_step_of_life(upto: int, state: ContainerState, custodian: str) -> None:
    entries = life()[:upto]
    trail = reconstruct(entries, now=entries[-1].event.occurred_at + timedelta(hours=1))
    assert trail.state is state
    assert trail.custodian == custodian
    assert trail.intervals[-1].custodian == custodian
    assert trail.intervals[-1].end is None
    assert trail.intervals[-1].closed_by is None
    assert trail.anomalies == ()


def test_state_since_is_when_the_state_was_entered_not_last_event() -> None:
    d, s, p, h = life()[:4]
    trail = reconstruct([d, s, p, h], now=NOW)
    # The hub handoff keeps the container in transit: state_since stays at the pickup.
    assert trail.state is ContainerState.IN_TRANSIT
    assert trail.state_since == p.event.occurred_at
    assert trail.location_id == "hub-c/yard"


def test_empty_entries() -> None:
    trail = reconstruct([], now=NOW)
    assert trail.state is None
    assert trail.custodian is None
    assert trail.location_id is None
    assert trail.first_dropoff_at is None
    assert trail.state_since is None
    assert trail.last_occurred_at is None
    assert trail.intervals == ()
    assert trail.events == ()
    assert trail.anomalies == ()
    assert trail.head_seq is None


def test_entries_of_two_containers_are_refused() -> None:
    other = dropoff(T0).model_copy(update={"container_id": "BX-999"})
    with pytest.raises(ValueError, match="more than one container"):
        reconstruct(ledger(rec(dropoff(T0), SITE), rec(other, SITE)), now=NOW)


def test_more_dropoffs_accumulate_without_anomaly() -> None:
    first, second = ledger(rec(dropoff(T0), SITE), rec(dropoff(T0 + DAY), SITE))
    trail = reconstruct([first, second], now=NOW)
    assert trail.state is ContainerState.OPEN
    assert trail.first_dropoff_at == T0
    assert trail.state_since == T0
    assert len(trail.intervals) == 1
    assert trail.anomalies == ()


def test_transfer_to_the_same_custodian_opens_no_interval() -> None:
    d, s, p = life()[:3]
    swap = rec(handoff(T0 + 2 * DAY + timedelta(hours=4), frm=HAULER, to=HAULER), HAULER)
    trail = reconstruct(ledger(d, s, p, swap), now=T0 + 3 * DAY)
    assert [iv.custodian for iv in trail.intervals] == [SITE, HAULER]
    assert trail.intervals[-1].opened_by == p.event_id
    assert trail.anomalies == ()


# --- ordering ---------------------------------------------------------------------------------


def test_arrival_order_does_not_matter_for_distinct_times() -> None:
    entries = life()
    arrived = ledger(*reversed(entries))
    trail = reconstruct(arrived, now=NOW)
    assert [e.entry.event_id for e in trail.events] == ids(entries)
    assert trail.state is ContainerState.PROCESSED
    assert trail.anomalies == ()


def test_occurred_at_compares_instants_across_offsets() -> None:
    utc_first = rec(dropoff(datetime(2024, 3, 1, 8, 30, tzinfo=UTC)), SITE)
    cet_later = rec(sealed(datetime(2024, 3, 1, 9, 40, tzinfo=CET)), SITE)  # 08:40 UTC
    ordered = order_entries(ledger(cet_later, utc_first))
    assert ids(ordered) == [utc_first.event_id, cet_later.event_id]


def test_true_ties_without_device_seq_go_by_ledger_seq() -> None:
    seal = rec(sealed(T0), SITE)
    drop = rec(dropoff(T0), SITE)
    entries = ledger(seal, drop)  # the seal was recorded first
    assert ids(order_entries(entries)) == [seal.event_id, drop.event_id]
    trail = reconstruct(entries, now=T0 + DAY)
    # sealed with nothing before it, then a dropoff on a sealed container: both applied
    assert codes(trail) == [AnomalyCode.OUT_OF_ORDER, AnomalyCode.OUT_OF_ORDER]
    assert trail.state is ContainerState.OPEN
    assert trail.custodian == SITE


def test_device_seq_breaks_ties_within_one_device() -> None:
    seal = rec(sealed(T0.astimezone(UTC), device_seq=8), SITE)  # same instant, other offset
    drop = rec(dropoff(T0, device_seq=7), SITE)
    entries = ledger(seal, drop)
    assert ids(order_entries(entries)) == [drop.event_id, seal.event_id]
    trail = reconstruct(entries, now=T0 + DAY)
    assert trail.state is ContainerState.SEALED
    assert trail.anomalies == ()


def test_device_seq_is_ignored_across_devices() -> None:
    a = rec(dropoff(T0, device_seq=9), SITE, device="dev-a")
    b = rec(dropoff(T0, device_seq=1), SITE, device="dev-b")
    assert ids(order_entries(ledger(a, b))) == [a.event_id, b.event_id]
    assert ids(order_entries(ledger(b, a))) == [b.event_id, a.event_id]


def test_device_seq_reorders_only_the_positions_that_device_holds() -> None:
    late = rec(dropoff(T0, device_seq=5), SITE, device="dev-a")
    other = rec(dropoff(T0), SITE, device="dev-b")
    early = rec(dropoff(T0, device_seq=2), SITE, device="dev-a")
    entries = ledger(late, other, early)
    assert ids(order_entries(entries)) == [early.event_id, other.event_id, late.event_id]
    assert ids(order_entries(reversed(entries))) == [early.event_id, other.event_id, late.event_id]


def test_device_without_device_seq_on_every_event_keeps_seq_order() -> None:
    first = rec(dropoff(T0, device_seq=5), SITE)
    second = rec(dropoff(T0), SITE)
    third = rec(dropoff(T0, device_seq=1), SITE)
    entries = ledger(first, second, third)
    assert ids(order_entries(entries)) == ids(entries)


def test_webhook_events_have_no_device_to_tie_break() -> None:
    one = rec(dropoff(T0, device_seq=5), SITE, device=None)
    two = rec(dropoff(T0, device_seq=1), SITE, device=None)
    assert ids(order_entries(ledger(one, two))) == [one.event_id, two.event_id]


def _event_pool(kinds: list[str], minutes: list[int], target_index: int) -> list[RecordedEntry]:
    """Events of the given kinds at distinct times, from varying parties (anomalies welcome)."""
    built: list[RecordedEntry] = []
    for kind, minute in zip(kinds, minutes, strict=False):
        at = T0 + timedelta(minutes=minute)
        if kind == "dropoff":
            built.append(rec(dropoff(at), SITE))
        elif kind == "sealed":
            built.append(rec(sealed(at, weight=100.0), SITE))
        elif kind == "pickup":
            built.append(rec(pickup(at), HAULER))
        elif kind == "handoff":
            built.append(rec(handoff(at), HUB))
        elif kind == "intake":
            built.append(rec(intake(at, weight=90.0), PLANT))
        elif kind == "ack":
            built.append(rec(ack(at), PLANT, device=None))
        elif kind == "processed":
            built.append(rec(processed(at), PLANT))
        elif kind == "incident":
            built.append(rec(incident(at), HUB))
        elif kind == "correction" and built:
            target = built[target_index % len(built)].event_id
            built.append(rec(correction(at, target), SITE))
    return built


KINDS = [
    "dropoff",
    "sealed",
    "pickup",
    "handoff",
    "intake",
    "ack",
    "processed",
    "incident",
    "correction",
]


@settings(max_examples=150, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=12),
    minutes=st.lists(st.integers(0, 60 * 24 * 40), min_size=12, max_size=12, unique=True),
    target_index=st.integers(0, 20),
    data=st.data(),
)
def test_result_does_not_depend_on_arrival_order(
    kinds: list[str], minutes: list[int], target_index: int, data: st.DataObject
) -> None:
    pool = _event_pool(kinds, minutes, target_index)
    in_time_order = ledger(*sorted(pool, key=lambda e: e.event.occurred_at))
    shuffled = ledger(*data.draw(st.permutations(pool)))
    now = T0 + 50 * DAY

    expected = reconstruct(in_time_order, now=now)
    actual = reconstruct(shuffled, now=now)

    assert actual.state == expected.state
    assert actual.custodian == expected.custodian
    assert actual.intervals == expected.intervals
    assert [(a.code, a.event_id) for a in actual.anomalies] == [
        (a.code, a.event_id) for a in expected.anomalies
    ]
    assert [e.entry.event_id for e in actual.events] == [e.entry.event_id for e in expected.events]
    assert [(e.effective, e.corrected_by) for e in actual.events] == [
        (e.effective, e.corrected_by) for e in expected.events
    ]


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_input_order_does_not_matter_even_with_true_ties(data: st.DataObject) -> None:
    # Same seqs, only the iteration order of the input changes.
    entries = ledger(
        rec(sealed(T0, device_seq=2), SITE),
        rec(dropoff(T0, device_seq=1), SITE),
        rec(dropoff(T0), SITE, device="dev-2"),
        rec(pickup(T0), HAULER, device="truck-7"),
        rec(incident(T0 + DAY), HUB),
    )
    expected = ids(order_entries(entries))
    assert ids(order_entries(data.draw(st.permutations(entries)))) == expected


# --- corrections ------------------------------------------------------------------------------


def test_did_not_occur_voids_a_pickup_and_custody_reverts() -> None:
    d, s, p = life()[:3]
    void = rec(correction(T0 + 2 * DAY + timedelta(hours=1), p.event_id), HAULER)
    trail = reconstruct(ledger(d, s, p, void), now=T0 + 3 * DAY)

    assert trail.state is ContainerState.SEALED
    assert trail.custodian == SITE
    assert trail.state_since == s.event.occurred_at
    assert trail.location_id == "site-a/bay-1"
    assert trail.intervals == (CustodyInterval(SITE, T0, None, d.event_id, None),)
    shown = {e.entry.event_id: e for e in trail.events}
    assert shown[p.event_id].corrected is True
    assert shown[p.event_id].corrected_by == void.event_id
    assert shown[p.event_id].effective is False
    assert shown[void.event_id].effective is True
    assert shown[void.event_id].corrected is False
    assert trail.anomalies == ()
    assert len(trail.events) == 4


def test_two_corrections_of_one_event_name_the_first_in_the_trail() -> None:
    d, s, p = life()[:3]
    later = rec(correction(T0 + 2 * DAY + timedelta(hours=2), p.event_id), SITE)
    earlier = rec(correction(T0 + 2 * DAY + timedelta(hours=1), p.event_id), HAULER)
    trail = reconstruct(ledger(d, s, p, later, earlier), now=T0 + 3 * DAY)
    assert trail.events[2].corrected_by == earlier.event_id
    assert [e.effective for e in trail.events[3:]] == [True, True]
    assert trail.custodian == SITE


def test_correction_applies_whatever_its_position_in_time() -> None:
    d, s, p = life()[:3]
    void = rec(correction(T0 - DAY, p.event_id), SITE)  # occurred_at before everything
    trail = reconstruct(ledger(d, s, p, void), now=T0 + 3 * DAY)
    assert trail.events[0].entry.event_id == void.event_id
    assert trail.custodian == SITE
    assert trail.state is ContainerState.SEALED


def test_incorrect_data_with_a_corrective_event() -> None:
    d, s = life()[:2]
    wrong = rec(pickup(T0 + 2 * DAY, to="hauler-wrong"), HAULER)
    right = rec(pickup(T0 + 2 * DAY, to=HAULER), HAULER)
    fix = rec(
        correction(
            T0 + 2 * DAY + timedelta(hours=1),
            wrong.event_id,
            CorrectionReason.INCORRECT_DATA,
            [right.event_id],
        ),
        HAULER,
    )
    handed = rec(handoff(T0 + 3 * DAY, frm=HAULER, to=HUB), HUB)
    trail = reconstruct(ledger(d, s, wrong, right, fix, handed), now=T0 + 4 * DAY)

    assert [iv.custodian for iv in trail.intervals] == [SITE, HAULER, HUB]
    assert trail.intervals[1].opened_by == right.event_id
    assert trail.custodian == HUB
    assert trail.anomalies == ()  # no mismatch: hauler-wrong never held custody
    shown = {e.entry.event_id: e for e in trail.events}
    assert (shown[wrong.event_id].corrected, shown[wrong.event_id].effective) == (True, False)
    assert (shown[right.event_id].corrected, shown[right.event_id].effective) == (False, True)


def test_without_the_correction_the_wrong_pickup_counts() -> None:
    d, s = life()[:2]
    wrong = rec(pickup(T0 + 2 * DAY, to="hauler-wrong"), HAULER)
    handed = rec(handoff(T0 + 3 * DAY, frm=HAULER, to=HUB), HUB)
    trail = reconstruct(ledger(d, s, wrong, handed), now=T0 + 4 * DAY)
    assert codes(trail) == [AnomalyCode.CUSTODY_MISMATCH]


def test_correction_of_a_correction_reinstates_the_original() -> None:
    d, s, p = life()[:3]
    void = rec(correction(T0 + 2 * DAY + timedelta(hours=1), p.event_id), HAULER)
    undo = rec(correction(T0 + 2 * DAY + timedelta(hours=2), void.event_id), SITE)
    trail = reconstruct(ledger(d, s, p, void, undo), now=T0 + 3 * DAY)
    assert trail.custodian == HAULER
    shown = {e.entry.event_id: e for e in trail.events}
    assert shown[p.event_id].effective is True
    assert shown[p.event_id].corrected is False
    assert shown[void.event_id].corrected_by == undo.event_id
    assert shown[void.event_id].effective is False


def test_correction_of_an_unknown_event_is_shown_but_not_effective() -> None:
    d, s = life()[:2]
    stray = rec(correction(T0 + 2 * DAY, uuid4()), SITE)
    trail = reconstruct(ledger(d, s, stray), now=T0 + 3 * DAY)
    assert trail.state is ContainerState.SEALED
    assert trail.events[-1].entry.event_id == stray.event_id
    assert trail.events[-1].effective is False
    assert trail.anomalies == ()


def test_corrections_in_a_cycle_do_nothing() -> None:
    d, s = life()[:2]
    first = correction(T0 + 2 * DAY, uuid4())
    second = correction(T0 + 2 * DAY + timedelta(hours=1), first.event_id)
    first = first.model_copy(update={"corrects_event_id": second.event_id})
    trail = reconstruct(ledger(d, s, rec(first, SITE), rec(second, SITE)), now=T0 + 3 * DAY)
    assert trail.state is ContainerState.SEALED
    assert [e.effective for e in trail.events[2:]] == [False, False]


def test_voiding_processed_lifts_the_terminal_state() -> None:
    entries = life()
    pr = entries[-1]
    void = rec(correction(T0 + 21 * DAY, pr.event_id), PLANT)
    trail = reconstruct([*entries, dataclasses.replace(void, seq=8)], now=NOW)
    assert trail.state is ContainerState.ACKNOWLEDGED
    assert trail.intervals[-1].end is None


# --- anomalies: each code, with a near miss ---------------------------------------------------


@pytest.mark.parametrize(
    ("from_party", "expected"),
    [(SITE, []), ("site-other", [AnomalyCode.CUSTODY_MISMATCH])],
)
def test_custody_mismatch_on_from_party(from_party: str, expected: list[AnomalyCode]) -> None:
    d, s = life()[:2]
    p = rec(pickup(T0 + 2 * DAY, frm=from_party), HAULER)
    trail = reconstruct(ledger(d, s, p), now=T0 + 3 * DAY)
    assert codes(trail) == expected
    assert trail.custodian == HAULER  # applied either way
    if expected:
        assert trail.anomalies[0].event_id == p.event_id
        assert trail.anomalies[0].detail == (
            "pickup from_party site-other is not the custodian site-a"
        )


@pytest.mark.parametrize(
    ("poster", "expected"),
    [(SITE, []), (HAULER, [AnomalyCode.CUSTODY_MISMATCH])],
)
def test_custody_mismatch_on_a_non_custodian_scan(poster: str, expected: list[AnomalyCode]) -> None:
    d = rec(dropoff(T0), SITE)
    extra = rec(dropoff(T0 + DAY), poster)
    s = rec(sealed(T0 + 2 * DAY), poster)
    trail = reconstruct(ledger(d, extra, s), now=T0 + 3 * DAY)
    assert codes(trail) == expected * 2
    assert trail.custodian == SITE


@pytest.mark.parametrize(
    ("poster", "expected"),
    [(PLANT, []), ("plant-other", [AnomalyCode.CUSTODY_MISMATCH])],
)
def test_custody_mismatch_on_receipt_ack_and_processed(
    poster: str, expected: list[AnomalyCode]
) -> None:
    entries = life()
    entries[5] = dataclasses.replace(
        entries[5], origin=Origin(kind=OriginKind.WEBHOOK, party_id=poster)
    )
    entries[6] = dataclasses.replace(
        entries[6], origin=Origin(kind=OriginKind.DEVICE, party_id=poster, device_id="x")
    )
    trail = reconstruct(entries, now=NOW)
    assert codes(trail) == expected * 2
    assert trail.state is ContainerState.PROCESSED


@pytest.mark.parametrize(
    ("poster", "expected"),
    [(HUB, []), (SITE, [AnomalyCode.CUSTODY_MISMATCH])],
)
def test_custody_mismatch_on_incident(poster: str, expected: list[AnomalyCode]) -> None:
    entries = life()[:4]
    flag = rec(incident(T0 + 3 * DAY + timedelta(hours=1)), poster)
    trail = reconstruct(ledger(*entries, flag), now=T0 + 4 * DAY)
    assert codes(trail) == expected
    assert trail.state is ContainerState.IN_TRANSIT  # an incident is only a flag
    assert trail.events[-1].effective is True


def test_incident_changes_no_state() -> None:
    entries = life()[:2]
    flag = rec(incident(T0 + DAY + timedelta(hours=1)), SITE)
    trail = reconstruct(ledger(*entries, flag), now=T0 + 2 * DAY)
    assert trail.state is ContainerState.SEALED
    assert trail.state_since == T0 + DAY
    assert trail.anomalies == ()


def test_out_of_order_is_recorded_and_the_event_still_applied() -> None:
    d, s = life()[:2]
    skip = rec(intake(T0 + 2 * DAY, weight=120.0, frm=SITE), PLANT)  # no pickup before it
    trail = reconstruct(ledger(d, s, skip), now=T0 + 2 * DAY + timedelta(hours=1))
    assert codes(trail) == [AnomalyCode.OUT_OF_ORDER]
    assert trail.anomalies[0].event_id == skip.event_id
    assert trail.anomalies[0].detail == (
        "intake is not allowed from state sealed; applied as received"
    )
    assert trail.state is ContainerState.RECEIVED
    assert trail.custodian == PLANT
    assert [iv.custodian for iv in trail.intervals] == [SITE, PLANT]
    assert trail.events[-1].effective is True


def test_allowed_intake_is_not_out_of_order() -> None:
    d, s, p = life()[:3]
    ok = rec(intake(T0 + 3 * DAY, weight=120.0, frm=HAULER), PLANT)
    trail = reconstruct(ledger(d, s, p, ok), now=T0 + 3 * DAY + timedelta(hours=1))
    assert trail.anomalies == ()
    assert trail.state is ContainerState.RECEIVED


def test_pickup_without_any_dropoff_opens_custody() -> None:
    p = rec(pickup(T0), HAULER)
    trail = reconstruct([dataclasses.replace(p, seq=1)], now=T0 + DAY)
    assert codes(trail) == [AnomalyCode.OUT_OF_ORDER]
    assert "from state none" in trail.anomalies[0].detail
    assert trail.state is ContainerState.IN_TRANSIT
    assert trail.intervals == (CustodyInterval(HAULER, T0, None, p.event_id, None),)


def test_weight_discrepancy_detail() -> None:
    d, s, p, h = life()[:4]
    light = rec(intake(T0 + 5 * DAY, weight=93.0), PLANT)
    trail = reconstruct(ledger(d, s, p, h, light), now=T0 + 5 * DAY + timedelta(hours=1))
    assert codes(trail) == [AnomalyCode.WEIGHT_DISCREPANCY]
    assert trail.anomalies[0].event_id == light.event_id
    assert trail.anomalies[0].detail == (
        "intake weight 93.0 kg differs from sealed weight 120.0 kg by 27.0 kg (limit 2.4 kg)"
    )


@pytest.mark.parametrize(
    ("sealed_kg", "intake_kg", "flagged"),
    [
        (120.0, 117.7, False),  # 2.3 kg ≤ 2 % of 120 = 2.4 kg
        (120.0, 122.5, True),  # 2.5 kg > 2.4 kg
        (10.0, 9.1, False),  # 0.9 kg ≤ 1 kg floor (2 % would be 0.2 kg)
        (10.0, 8.9, True),  # 1.1 kg > 1 kg
        (100.0, 102.0, False),  # exactly the 2 kg limit is within tolerance
        (10.0, 11.0, False),  # exactly the 1 kg floor is within tolerance
    ],
)
def test_weight_tolerance_is_max_of_kg_and_percent(
    sealed_kg: float, intake_kg: float, flagged: bool
) -> None:
    d, _, p, h = life()[:4]
    s = rec(sealed(T0 + DAY, weight=sealed_kg), SITE)
    i = rec(intake(T0 + 5 * DAY, weight=intake_kg), PLANT)
    trail = reconstruct(ledger(d, s, p, h, i), now=T0 + 5 * DAY + timedelta(hours=1))
    assert codes(trail) == ([AnomalyCode.WEIGHT_DISCREPANCY] if flagged else [])


@pytest.mark.parametrize(("accepted", "flagged"), [(118.0, False), (100.0, True)])
def test_weight_discrepancy_on_accepted_weight(accepted: float, flagged: bool) -> None:
    entries = life()[:5]
    a = rec(ack(T0 + 6 * DAY, weight=accepted), PLANT, device=None)
    trail = reconstruct(ledger(*entries, a), now=T0 + 7 * DAY)
    assert codes(trail) == ([AnomalyCode.WEIGHT_DISCREPANCY] if flagged else [])
    if flagged:
        assert trail.anomalies[0].detail.startswith("accepted weight 100.0 kg differs")


def test_weight_tolerance_is_configurable() -> None:
    strict = CustodyRules(weight_tolerance_kg=0.1, weight_tolerance_pct=0.0)
    entries = life()[:5]  # intake 119.5 vs sealed 120
    assert reconstruct(entries, now=T0 + 5 * DAY).anomalies == ()
    trail = reconstruct(entries, now=T0 + 5 * DAY, rules=strict)
    assert codes(trail) == [AnomalyCode.WEIGHT_DISCREPANCY]
    assert trail.anomalies[0].detail.endswith("by 0.5 kg (limit 0.1 kg)")


def test_no_sealed_weight_no_weight_check() -> None:
    d = rec(dropoff(T0), SITE)
    p = rec(pickup(T0 + DAY), HAULER)
    i = rec(intake(T0 + 2 * DAY, weight=1.0, frm=HAULER), PLANT)
    trail = reconstruct(ledger(d, p, i), now=T0 + 2 * DAY)
    assert AnomalyCode.WEIGHT_DISCREPANCY not in codes(trail)
    assert AnomalyCode.OUT_OF_ORDER in codes(trail)  # pickup straight from open


def test_after_terminal() -> None:
    entries = life()
    late = rec(pickup(T0 + 21 * DAY, frm=PLANT, to=HAULER), HAULER)
    trail = reconstruct([*entries, dataclasses.replace(late, seq=8)], now=NOW)
    assert codes(trail) == [AnomalyCode.AFTER_TERMINAL]
    assert trail.anomalies[0].event_id == late.event_id
    assert trail.state is ContainerState.PROCESSED
    assert trail.custodian == PLANT
    assert trail.location_id == "plant-d/line-2"
    assert trail.intervals[-1].closed_by == entries[-1].event_id
    assert len(trail.intervals) == 4
    assert trail.events[-1].effective is False
    assert trail.last_occurred_at == T0 + 21 * DAY
    assert trail.head_seq == 8


def test_incident_after_processed_is_after_terminal_too() -> None:
    entries = life()
    flag = rec(incident(T0 + 21 * DAY), PLANT)
    trail = reconstruct([*entries, dataclasses.replace(flag, seq=8)], now=NOW)
    assert codes(trail) == [AnomalyCode.AFTER_TERMINAL]


@pytest.mark.parametrize(
    ("lead", "flagged"),
    [(timedelta(minutes=4), False), (timedelta(minutes=5), False), (timedelta(minutes=6), True)],
)
def test_clock_skew(lead: timedelta, flagged: bool) -> None:
    event = dropoff(T0)
    entry = rec(event, SITE, seq=1, received_at=T0 - lead)
    trail = reconstruct([entry], now=T0 + DAY)
    assert codes(trail) == ([AnomalyCode.CLOCK_SKEW] if flagged else [])
    if flagged:
        assert trail.anomalies[0].detail == "occurred_at is 6 min after received_at (limit 5 min)"
        assert trail.events[0].anomalies == trail.anomalies


@pytest.mark.parametrize(
    ("delay", "flagged"),
    [(timedelta(hours=23), False), (timedelta(hours=24), False), (timedelta(hours=25), True)],
)
def test_late_arrival(delay: timedelta, flagged: bool) -> None:
    entry = rec(dropoff(T0), SITE, seq=1, received_at=T0 + delay)
    trail = reconstruct([entry], now=T0 + 2 * DAY)
    assert codes(trail) == ([AnomalyCode.LATE_ARRIVAL] if flagged else [])
    if flagged:
        assert trail.anomalies[0].detail == "received 1 d 1 h after it occurred (limit 1 d)"


def test_timing_anomalies_are_kept_on_corrected_events() -> None:
    d, s = life()[:2]
    p = rec(pickup(T0 + 2 * DAY), HAULER, received_at=T0 + 4 * DAY)
    void = rec(correction(T0 + 4 * DAY, p.event_id), HAULER)
    trail = reconstruct(ledger(d, s, p, void), now=T0 + 5 * DAY)
    assert codes(trail) == [AnomalyCode.LATE_ARRIVAL]
    assert trail.anomalies[0].event_id == p.event_id


def test_duplicate_conflict() -> None:
    entries = life()[:3]
    target = entries[1].event_id
    conflict = DuplicateConflict(target, CID, T0 + 3 * DAY)
    clean = reconstruct(entries, now=T0 + 3 * DAY)
    trail = reconstruct(entries, now=T0 + 3 * DAY, conflicts=[conflict])
    assert clean.anomalies == ()
    assert codes(trail) == [AnomalyCode.DUPLICATE_CONFLICT]
    assert trail.anomalies[0].event_id == target
    assert trail.events[1].anomalies == trail.anomalies


def test_duplicate_conflict_for_an_event_not_in_the_trail_is_still_reported() -> None:
    entries = life()[:5]
    stray = uuid4()
    trail = reconstruct(
        entries,
        now=T0 + 9 * DAY,
        conflicts=[DuplicateConflict(stray, CID, T0 + DAY)],
    )
    # after the event anomalies, before the time-based ones
    assert codes(trail) == [AnomalyCode.DUPLICATE_CONFLICT, AnomalyCode.MISSING_ACK]
    assert trail.anomalies[0].event_id == stray


# --- time-based anomalies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (300 * DAY - timedelta(seconds=1), []),
        (300 * DAY, [AnomalyCode.ACCUMULATION_WARNING]),
        (365 * DAY - timedelta(seconds=1), [AnomalyCode.ACCUMULATION_WARNING]),
        (365 * DAY, [AnomalyCode.ACCUMULATION_LIMIT]),
        (400 * DAY, [AnomalyCode.ACCUMULATION_LIMIT]),
    ],
)
@pytest.mark.parametrize("upto", [1, 2], ids=["open", "sealed"])
def test_accumulation(age: timedelta, expected: list[AnomalyCode], upto: int) -> None:
    d = rec(dropoff(T0), SITE)
    more = rec(dropoff(T0 + 10 * DAY), SITE)
    s = rec(sealed(T0 + 20 * DAY), SITE)
    entries = ledger(d, more, s)[: upto + 1]
    trail = reconstruct(entries, now=T0 + age)
    assert codes(trail) == expected
    assert trail.events[-1].anomalies == ()  # time-based ones belong to the trail only
    if expected:
        assert trail.anomalies[0].event_id == (d.event_id if upto == 1 else s.event_id)


def test_accumulation_not_reported_once_picked_up() -> None:
    entries = life()[:3]
    trail = reconstruct(entries, now=T0 + 400 * DAY)
    assert AnomalyCode.ACCUMULATION_LIMIT not in codes(trail)
    assert codes(trail) == [AnomalyCode.OVERDUE_IN_TRANSIT]


@pytest.mark.parametrize(
    ("age", "flagged"),
    [(14 * DAY, False), (14 * DAY + timedelta(seconds=1), True)],
)
def test_overdue_in_transit(age: timedelta, flagged: bool) -> None:
    entries = life()[:4]  # in transit since the pickup at T0 + 2 d (hub handoff at 3 d)
    pickup_at = entries[2].event.occurred_at
    trail = reconstruct(entries, now=pickup_at + age)
    assert codes(trail) == ([AnomalyCode.OVERDUE_IN_TRANSIT] if flagged else [])
    if flagged:
        assert trail.anomalies[0].event_id == entries[2].event_id
        assert trail.anomalies[0].detail == "in transit for 14 d 1 s (limit 14 d)"


@pytest.mark.parametrize(
    ("age", "flagged"),
    [(72 * timedelta(hours=1), False), (72 * timedelta(hours=1) + timedelta(minutes=1), True)],
)
def test_missing_ack(age: timedelta, flagged: bool) -> None:
    entries = life()[:5]
    received_at = entries[4].event.occurred_at
    trail = reconstruct(entries, now=received_at + age)
    assert codes(trail) == ([AnomalyCode.MISSING_ACK] if flagged else [])
    if flagged:
        assert trail.anomalies[0].event_id == entries[4].event_id


def test_no_missing_ack_once_acknowledged() -> None:
    entries = life()[:6]
    trail = reconstruct(entries, now=T0 + 60 * DAY)
    assert trail.state is ContainerState.ACKNOWLEDGED
    assert trail.anomalies == ()


def test_time_based_thresholds_are_configurable() -> None:
    entries = life()[:5]
    rules = CustodyRules(missing_ack=timedelta(hours=1))
    at = entries[4].event.occurred_at + timedelta(hours=2)
    assert reconstruct(entries, now=at).anomalies == ()
    assert codes(reconstruct(entries, now=at, rules=rules)) == [AnomalyCode.MISSING_ACK]


def test_time_based_codes_set() -> None:
    assert {
        AnomalyCode.ACCUMULATION_WARNING,
        AnomalyCode.ACCUMULATION_LIMIT,
        AnomalyCode.OVERDUE_IN_TRANSIT,
        AnomalyCode.MISSING_ACK,
    } == TIME_BASED_CODES
    assert {code.value for code in AnomalyCode} == {code.name.lower() for code in AnomalyCode}


def test_anomalies_are_in_event_order_then_time_based() -> None:
    d, s, _, h = life()[:4]
    p = rec(pickup(T0 + 2 * DAY, frm="nobody"), HAULER)
    skewed = rec(incident(T0 + 3 * DAY + timedelta(hours=1)), "stranger", received_at=T0)
    trail = reconstruct(ledger(skewed, h, p, s, d), now=T0 + 30 * DAY)
    assert [(a.code, a.event_id) for a in trail.anomalies] == [
        (AnomalyCode.CUSTODY_MISMATCH, p.event_id),
        (AnomalyCode.CUSTODY_MISMATCH, skewed.event_id),
        (AnomalyCode.CLOCK_SKEW, skewed.event_id),
        (AnomalyCode.OVERDUE_IN_TRANSIT, p.event_id),
    ]
