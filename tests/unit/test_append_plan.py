"""Pure append planning: gapless seq, per-container chains, replays and conflicts."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from services.contract import Envelope, Origin, OriginKind, parse_event
from services.contract.events import event_body
from services.ledger.domain.append import PendingEvent, plan_append
from services.ledger.domain.integrity.hashing import (
    ZERO_HASH,
    entry_document,
    entry_hash,
    format_instant,
)
from tests.support import events as ev

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ORIGIN = Origin(kind=OriginKind.DEVICE, party_id="site-a", device_id="d1")


def pending(raw: dict[str, object], offset: int) -> PendingEvent:
    event = parse_event(raw)
    envelope = Envelope(event=event, received_at=NOW, origin=ORIGIN)
    return PendingEvent(envelope, event_body(event), 0, offset)


def test_entry_hash_is_sha256_of_zero_byte_and_canonical_json() -> None:
    document = {"seq": 1, "b": [1.5, "x"], "a": {"z": None}}
    expected = hashlib.sha256(b"\x00" + b'{"a":{"z":null},"b":[1.5,"x"],"seq":1}').digest()
    assert entry_hash(document) == expected
    assert rfc8785.dumps(document) == b'{"a":{"z":null},"b":[1.5,"x"],"seq":1}'


def test_format_instant_is_utc_with_microseconds() -> None:
    moment = datetime.fromisoformat("2026-11-02T09:30:00.5+01:00")
    assert format_instant(moment) == "2026-11-02T08:30:00.500000Z"


@settings(max_examples=500, deadline=None)
@given(st.datetimes(timezones=st.timezones()))
def test_format_instant_keeps_the_form_stored_hashes_were_made_with(moment: datetime) -> None:
    """The fast form equals strftime's, down to years before 1000 (written unpadded)."""
    try:
        expected = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except OverflowError:
        return
    assert format_instant(moment) == expected


def test_seq_is_gapless_and_chains_are_per_container() -> None:
    a, b = "BX-A1", "BX-B1"
    items = [pending(ev.dropoff(a), 0), pending(ev.dropoff(b), 1), pending(ev.sealed(a), 2)]
    plan = plan_append(
        items, recorded_bodies={}, next_seq=10, chain_heads={b: b"\x07" * 32}, recorded_at=NOW
    )
    assert [entry.seq for entry in plan.entries] == [10, 11, 12]
    first_a, first_b, second_a = plan.entries
    assert first_a.prev_hash == ZERO_HASH
    assert first_b.prev_hash == b"\x07" * 32
    assert second_a.prev_hash == first_a.entry_hash
    document = entry_document(
        seq=12,
        event=items[2].body,
        received_at=NOW,
        recorded_at=NOW,
        origin=ORIGIN.model_dump(mode="json"),
        kafka_partition=0,
        kafka_offset=2,
        prev_hash=first_a.entry_hash,
    )
    assert second_a.entry_hash == entry_hash(document)


def test_identical_replays_are_skipped_and_changed_content_is_a_conflict() -> None:
    raw = ev.dropoff("BX-A2")
    recorded = pending(raw, 0)
    changed = pending({**raw, "note": "edited"}, 2)
    plan = plan_append(
        [pending(raw, 1), changed, pending(raw, 3)],
        recorded_bodies={recorded.envelope.event.event_id: recorded.body},
        next_seq=5,
        chain_heads={},
        recorded_at=NOW,
    )
    assert plan.entries == []
    assert plan.replays == 2
    assert [conflict.pending for conflict in plan.conflicts] == [changed]
    assert "different content" in plan.conflicts[0].reason


def test_a_duplicate_inside_one_batch_is_recorded_once() -> None:
    raw = ev.dropoff("BX-A3")
    plan = plan_append(
        [pending(raw, 0), pending(raw, 1)],
        recorded_bodies={},
        next_seq=0,
        chain_heads={},
        recorded_at=NOW,
    )
    assert [entry.seq for entry in plan.entries] == [0]
    assert plan.replays == 1


def test_any_field_change_changes_the_hash() -> None:
    base = {
        "seq": 3,
        "event": {"weight_kg": 10.0},
        "received_at": NOW,
        "recorded_at": NOW,
        "origin": {"kind": "device"},
        "kafka_partition": 1,
        "kafka_offset": 9,
        "prev_hash": ZERO_HASH,
    }
    reference = entry_hash(entry_document(**base))  # type: ignore[arg-type]
    variants = [
        {"seq": 4},
        {"event": {"weight_kg": 10.5}},
        {"kafka_offset": 10},
        {"prev_hash": b"\x01" * 32},
        {"origin": {"kind": "webhook"}},
    ]
    for change in variants:
        assert entry_hash(entry_document(**{**base, **change})) != reference, change  # type: ignore[arg-type]
