"""The custody timeline layout (services/ledger/ui/timeline.py): a pure function of a trail."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from services.contract import CustodyEvent, Origin, OriginKind
from services.contract.events import (
    Chemistry,
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
    Sealed,
)
from services.ledger.domain.custody import AnomalyCode, reconstruct
from services.ledger.domain.entries import RecordedEntry
from services.ledger.ui.timeline import LABEL_WIDTH, MIN_GAP, TICKS, Timeline, build_timeline

CID = "BX-TL-0001"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
NOW = T0 + 10 * H


def _common(at: datetime, location: str = "loc") -> dict[str, Any]:
    return {"event_id": uuid4(), "container_id": CID, "occurred_at": at, "location_id": location}


def dropoff(at: datetime) -> Dropoff:
    return Dropoff(type="dropoff", chemistry=Chemistry.LI_ION, **_common(at))


def sealed(at: datetime, weight: float = 120.0) -> Sealed:
    return Sealed(type="sealed", weight_kg=weight, un_numbers=["UN3480"], **_common(at))


def pickup(at: datetime, frm: str, to: str) -> Pickup:
    return Pickup(type="pickup", from_party=frm, to_party=to, shipment_id="S-1", **_common(at))


def handoff(at: datetime, frm: str, to: str) -> Handoff:
    return Handoff(type="handoff", from_party=frm, to_party=to, **_common(at))


def intake(at: datetime, frm: str, to: str, weight: float) -> Intake:
    return Intake(type="intake", from_party=frm, to_party=to, weight_kg=weight, **_common(at))


def processed(at: datetime) -> Processed:
    return Processed(type="processed", method=ProcessMethod.SHREDDING, **_common(at))


def incident(at: datetime) -> Incident:
    return Incident(type="incident", kind=IncidentKind.DAMAGED, description="dent", **_common(at))


def correction(at: datetime, target: CustodyEvent) -> Correction:
    return Correction(
        type="correction",
        corrects_event_id=target.event_id,
        reason=CorrectionReason.DID_NOT_OCCUR,
        **_common(at),
    )


def rec(event: CustodyEvent, party: str) -> RecordedEntry:
    received = event.occurred_at + timedelta(seconds=20)
    return RecordedEntry(
        seq=0,
        event=event,
        received_at=received,
        recorded_at=received + timedelta(seconds=1),
        origin=Origin(kind=OriginKind.DEVICE, party_id=party, device_id=f"{party}-dev"),
        kafka_partition=0,
        kafka_offset=0,
        prev_hash=b"\0" * 32,
        entry_hash=b"\0" * 32,
    )


def layout(*entries: RecordedEntry, now: datetime = NOW) -> tuple[Timeline, list[RecordedEntry]]:
    numbered = [dataclasses.replace(e, seq=i, kafka_offset=i) for i, e in enumerate(entries, 1)]
    return build_timeline(reconstruct(numbered, now=now)), numbered


def hub_life() -> list[RecordedEntry]:
    """site-a → hauler-a → hub-a → hauler-b → plant-a, intake 100 kg against 120 kg sealed."""
    return [
        rec(dropoff(T0), "site-a"),
        rec(sealed(T0 + H), "site-a"),
        rec(pickup(T0 + 2 * H, "site-a", "hauler-a"), "hauler-a"),
        rec(handoff(T0 + 3 * H, "hauler-a", "hub-a"), "hub-a"),
        rec(handoff(T0 + 5 * H, "hub-a", "hauler-b"), "hauler-b"),
        rec(intake(T0 + 6 * H, "hauler-b", "plant-a", 100.0), "plant-a"),
        rec(processed(T0 + 8 * H), "plant-a"),
    ]


def test_lanes_follow_custody_order_one_per_custodian() -> None:
    timeline, _ = layout(*hub_life())
    assert [lane.custodian for lane in timeline.lanes] == [
        "site-a",
        "hauler-a",
        "hub-a",
        "hauler-b",
        "plant-a",
    ]
    assert [lane.index for lane in timeline.lanes] == [0, 1, 2, 3, 4]
    ys = [lane.y for lane in timeline.lanes]
    assert ys == sorted(ys)
    assert len(set(ys)) == len(ys)


def test_one_marker_per_event_in_the_holders_lane() -> None:
    timeline, entries = layout(*hub_life())
    assert [m.event_id for m in timeline.markers] == [e.event_id for e in entries]
    lanes = {lane.index: lane.custodian for lane in timeline.lanes}
    # a transfer sits in the receiving lane; everything else in the holder's
    assert [lanes[m.lane] for m in timeline.markers] == [
        "site-a",
        "site-a",
        "hauler-a",
        "hub-a",
        "hauler-b",
        "plant-a",
        "plant-a",
    ]
    for marker in timeline.markers:
        assert marker.y == timeline.lanes[marker.lane].y


def test_markers_keep_time_order_with_a_minimum_gap_inside_the_plot() -> None:
    same_time = T0 + H
    timeline, _ = layout(
        rec(dropoff(T0), "site-a"),
        rec(sealed(same_time), "site-a"),
        rec(pickup(same_time, "site-a", "hauler-a"), "hauler-a"),
        rec(incident(T0 + 30 * H), "hauler-a"),
    )
    xs = [m.x for m in timeline.markers]
    assert xs[0] == LABEL_WIDTH
    assert all(b - a >= MIN_GAP - 0.1 for a, b in itertools.pairwise(xs))
    assert xs[-1] <= timeline.plot_right
    assert timeline.width > timeline.plot_right
    # the long wait takes more room than the short ones
    assert xs[3] - xs[2] > xs[1] - xs[0] > xs[2] - xs[1]


def test_connectors_join_consecutive_intervals_at_the_handoff() -> None:
    timeline, entries = layout(*hub_life())
    assert len(timeline.bars) == 5
    assert [(c.from_lane, c.to_lane) for c in timeline.connectors] == [
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 4),
    ]
    x_of = {m.event_id: m.x for m in timeline.markers}
    transfers = [entries[2], entries[3], entries[4], entries[5]]
    assert [c.event_id for c in timeline.connectors] == [e.event_id for e in transfers]
    for connector, transfer in zip(timeline.connectors, transfers, strict=True):
        assert connector.x == x_of[transfer.event_id]
        assert connector.y1 == timeline.lanes[connector.from_lane].y
        assert connector.y2 == timeline.lanes[connector.to_lane].y
    for before, after in zip(timeline.bars, timeline.bars[1:], strict=False):
        assert before.x2 == after.x1
    assert not any(bar.ongoing for bar in timeline.bars)


def test_anomalies_are_flagged_on_their_markers() -> None:
    timeline, entries = layout(*hub_life())
    flagged = {m.event_id: m.anomalies for m in timeline.markers if m.anomalies}
    assert flagged == {entries[5].event_id: (AnomalyCode.WEIGHT_DISCREPANCY.value,)}
    intake_marker = next(m for m in timeline.markers if m.event_id == entries[5].event_id)
    assert "weight_discrepancy" in intake_marker.title


def test_time_based_anomaly_lands_on_the_event_that_entered_the_state() -> None:
    life = hub_life()[:3]
    timeline, entries = layout(*life, now=T0 + 20 * 24 * H)
    flagged = {m.event_id: m.anomalies for m in timeline.markers if m.anomalies}
    assert flagged == {entries[2].event_id: (AnomalyCode.OVERDUE_IN_TRANSIT.value,)}
    assert timeline.bars[-1].ongoing
    assert timeline.bars[-1].x2 > timeline.plot_right


def test_corrected_events_are_flagged_and_change_no_lane() -> None:
    wrong = pickup(T0 + 2 * H, "site-a", "hauler-x")
    timeline, entries = layout(
        rec(dropoff(T0), "site-a"),
        rec(sealed(T0 + H), "site-a"),
        rec(wrong, "hauler-x"),
        rec(correction(T0 + 3 * H, wrong), "hauler-x"),
        rec(pickup(T0 + 4 * H, "site-a", "hauler-a"), "hauler-a"),
    )
    assert [lane.custodian for lane in timeline.lanes] == ["site-a", "hauler-a"]
    by_id = {m.event_id: m for m in timeline.markers}
    voided = by_id[entries[2].event_id]
    assert voided.corrected
    assert not voided.effective
    assert voided.lane == 0
    assert "corrected" in voided.title
    assert [m.corrected for m in timeline.markers] == [False, False, True, False, False]
    assert len(timeline.connectors) == 1


def test_a_custodian_holding_twice_keeps_one_lane() -> None:
    timeline, _ = layout(
        rec(dropoff(T0), "site-a"),
        rec(sealed(T0 + H), "site-a"),
        rec(pickup(T0 + 2 * H, "site-a", "hauler-a"), "hauler-a"),
        rec(handoff(T0 + 3 * H, "hauler-a", "hub-a"), "hub-a"),
        rec(handoff(T0 + 4 * H, "hub-a", "hauler-a"), "hauler-a"),
    )
    assert [lane.custodian for lane in timeline.lanes] == ["site-a", "hauler-a", "hub-a"]
    assert [bar.lane for bar in timeline.bars] == [0, 1, 2, 1]
    assert [(c.from_lane, c.to_lane) for c in timeline.connectors] == [(0, 1), (1, 2), (2, 1)]


def test_ticks_are_evenly_spaced_and_labelled() -> None:
    timeline, _ = layout(*hub_life())
    assert len(timeline.ticks) == TICKS
    xs = [tick.x for tick in timeline.ticks]
    steps = [b - a for a, b in itertools.pairwise(xs)]
    assert max(steps) - min(steps) < 1
    assert timeline.ticks[0].label == "03-02 08:00"
    assert timeline.ticks[-1].label == "03-02 16:00"


def test_labels_name_parties_and_long_names_are_shortened() -> None:
    numbered = [dataclasses.replace(e, seq=i) for i, e in enumerate(hub_life(), 1)]
    trail = reconstruct(numbered, now=NOW)
    timeline = build_timeline(trail, labels={"site-a": "Collection point with a long name"})
    first = timeline.lanes[0]
    assert first.label.endswith("…")
    assert len(first.label) <= 20
    assert first.title == "Collection point with a long name (site-a)"
    assert timeline.lanes[1].label == "hauler-a"


def test_single_event_and_empty_trails() -> None:
    timeline, _ = layout(rec(dropoff(T0), "site-a"))
    assert [lane.custodian for lane in timeline.lanes] == ["site-a"]
    assert len(timeline.markers) == 1
    assert timeline.bars[0].ongoing
    assert len(timeline.ticks) == 1
    assert timeline.connectors == ()
