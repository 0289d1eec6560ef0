"""The EPCIS query language, schedules and subscription requests (pure parts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.contract.events import Condition, EventType
from services.ledger.domain.epcis_query import (
    PER_PAGE_DEFAULT,
    QueryParameterError,
    event_filter,
    next_page_token,
    per_page,
    query_digest,
    read_page_token,
    terms_from_json,
    terms_from_query_string,
)
from services.ledger.domain.epcis_subscription import (
    SubscriptionError,
    parse_subscription,
    retry_delay,
    signature,
    signature_valid,
)
from services.ledger.domain.event_filter import DISPOSITIONS, TypeSelection
from services.ledger.domain.query_schedule import ScheduleError, next_fire, parse_schedule
from tests.unit.test_event_filter import exported

NOW = datetime(2026, 12, 8, 10, 30, 15, tzinfo=UTC)


def selects(selection: TypeSelection, document: dict[str, Any], event_type: str) -> bool:
    if EventType(event_type) in selection.event_types:
        return True
    if event_type == "handoff":
        receiving = document["bizStep"] == "receiving"
        return selection.receiving_handoffs if receiving else selection.consigning_handoffs
    if event_type == "receipt_ack":
        return Condition(document["bc:condition"]) in selection.receipt_conditions
    return False


@pytest.mark.parametrize(
    ("event_type", "overrides"),
    [
        ("dropoff", {}),
        ("sealed", {}),
        ("pickup", {}),
        ("handoff", {}),
        ("handoff", {"to_party": "hauler-b"}),
        ("intake", {}),
        ("receipt_ack", {}),
        ("receipt_ack", {"condition": "damaged"}),
        ("receipt_ack", {"condition": "rejected"}),
        ("receipt_ack", {"condition": "discrepancy"}),
        ("processed", {}),
        ("incident", {}),
    ],
)
def test_each_disposition_selects_exactly_what_the_export_gives(
    event_type: str, overrides: dict[str, Any]
) -> None:
    document, _ = exported(event_type, **overrides)
    chosen = [
        name for name, selection in DISPOSITIONS.items() if selects(selection, document, event_type)
    ]
    assert chosen == [document["disposition"]]


@pytest.mark.parametrize(
    ("event_type", "epcis_type", "action"),
    [
        ("dropoff", "AggregationEvent", "ADD"),
        ("sealed", "ObjectEvent", "OBSERVE"),
        ("processed", "ObjectEvent", "DELETE"),
        ("incident", "ObjectEvent", "OBSERVE"),
    ],
)
def test_event_type_and_action_follow_the_export(
    event_type: str, epcis_type: str, action: str
) -> None:
    document, _ = exported(event_type)
    assert (document["type"], document["action"]) == (epcis_type, action)
    by_type = event_filter({"eventType": [epcis_type]}).selections[-1]
    by_action = event_filter({"EQ_action": [action]}).selections[-1]
    assert EventType(event_type) in by_type.event_types
    assert EventType(event_type) in by_action.event_types


def test_corrections_are_never_events() -> None:
    always = event_filter({}).selections[0]
    assert EventType.CORRECTION not in always.event_types
    assert always.event_types == frozenset(EventType) - {EventType.CORRECTION}


def test_query_strings_split_on_pipes_and_repeats() -> None:
    pairs = [("EQ_bizStep", "collecting|packing"), ("EQ_bizStep", "receiving"), ("x", "|")]
    assert terms_from_query_string(pairs) == {
        "EQ_bizStep": ["collecting", "packing", "receiving"],
        "x": [],
    }
    with pytest.raises(QueryParameterError, match="x: needs a value"):
        event_filter({"x": []})


def test_json_queries_take_lists_strings_and_booleans() -> None:
    assert terms_from_json({"EQ_bizStep": ["a", "b"], "GE_eventTime": "t", "EXISTS_x": True}) == {
        "EQ_bizStep": ["a", "b"],
        "GE_eventTime": ["t"],
        "EXISTS_x": ["true"],
    }
    with pytest.raises(QueryParameterError, match="GE_eventTime: give a string"):
        terms_from_json({"GE_eventTime": 1700000000})


def test_terms_become_filter_fields() -> None:
    flt = event_filter(
        {
            "GE_eventTime": ["2026-11-02T08:00:00Z"],
            "LT_recordTime": ["2026-11-03T08:00:00.250+02:00"],
            "EQ_source_possessing_party": ["https://battery-custody.example/party/site-a"],
            "EQ_destination_possessing_party": ["hub-a"],
            "EQ_bizTransaction_bol": ["https://battery-custody.example/shipment/BOL%201"],
            "EQ_eventID": ["urn:uuid:0b5a3f5e-8a52-4f0e-9d4c-2f7c1f0d9e11", "ni:///sha-256;x"],
            "EXISTS_errorDeclaration": ["true"],
            "MATCH_parentID": ["BX-1", "AB*"],
        }
    )
    assert flt.ge_event_time == datetime(2026, 11, 2, 8, tzinfo=UTC)
    assert flt.lt_record_time is not None
    assert flt.lt_record_time.utcoffset() == timedelta(hours=2)
    assert flt.from_parties == ("site-a",)
    assert flt.to_parties == ("hub-a",)
    assert flt.shipments == ("BOL 1",)
    assert [str(i) for i in flt.event_ids] == ["0b5a3f5e-8a52-4f0e-9d4c-2f7c1f0d9e11"]
    assert flt.corrected_only
    assert flt.epc_matches[0].container_ids == ("BX-1",)
    assert flt.epc_matches[0].prefixes == ("AB",)
    assert flt.selections[-1].event_types == {EventType.DROPOFF}


def test_standard_values_outside_our_vocabulary_select_nothing() -> None:
    for terms in (
        {"EQ_bizStep": ["shipping"]},
        {"EQ_disposition": ["urn:epcglobal:cbv:disp:recalled"]},
        {"eventType": ["TransformationEvent"]},
        {"EQ_source_owning_party": ["urn:x"]},
        {"EQ_eventID": ["ni:///sha-256;abc?ver=CBV2.0"]},
    ):
        selection = event_filter(terms).selections[-1]
        assert selection == TypeSelection(frozenset()), terms


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"EQ_colour": ["red"]}, "unknown query parameter 'EQ_colour'"),
        ({"WD_readPoint": ["x"]}, "WD_readPoint is an EPCIS query parameter"),
        ({"GE_eventTime": ["a", "b"]}, "GE_eventTime: give one time, not 2"),
        ({"LT_eventTime": ["2026-11-02"]}, "needs a date, a time and a UTC offset"),
        ({"eventType": ["Thing"]}, "eventType: 'Thing' is not an EPCIS event type"),
        ({"EQ_disposition": ["brokn"]}, "EQ_disposition: 'brokn' is neither a CBV 2.0 term"),
        ({"EQ_action": ["observe"]}, "EQ_action: 'observe' is not ADD, OBSERVE or DELETE"),
        ({"EXISTS_errorDeclaration": ["1"]}, "give true or false"),
        ({"EQ_bizTransaction_recadv": ["urn:x"]}, "only for type bol"),
        ({"EQ_eventID": ["urn:uuid:nope"]}, "is not a UUID URN"),
        ({"MATCH_epc": [" "]}, "MATCH_epc"),
        ({"EQ_readPoint": [""]}, "EQ_readPoint"),
    ],
)
def test_bad_terms_name_the_parameter(terms: dict[str, list[str]], message: str) -> None:
    with pytest.raises(QueryParameterError, match=message):
        event_filter(terms)


def test_per_page_is_bounded() -> None:
    assert per_page({}) == PER_PAGE_DEFAULT
    assert per_page({"perPage": ["1000"]}) == 1000
    for bad in (["0"], ["1001"], ["ten"], ["1", "2"], ["-5"]):
        with pytest.raises(QueryParameterError, match="perPage"):
            per_page({"perPage": bad})


def test_page_tokens_are_bound_to_their_query_and_expire() -> None:
    terms = {"EQ_bizStep": ["packing", "collecting"], "perPage": ["5"]}
    digest = query_digest(terms, "events")
    assert digest == query_digest({"EQ_bizStep": ["collecting", "packing"]}, "events")
    assert digest != query_digest(terms, "bizSteps")
    token = next_page_token(4711, digest, NOW).encode()
    assert read_page_token(token, digest, NOW + timedelta(minutes=59)) == 4711
    with pytest.raises(QueryParameterError, match="expired"):
        read_page_token(token, digest, NOW + timedelta(hours=1))
    with pytest.raises(QueryParameterError, match="another query"):
        read_page_token(token, query_digest({}, "events"), NOW)
    for forged in ("", "!!", "bm90LWEtdG9rZW4", "OTk5OTk5OTk5OTk5OTk5OTk5OTkuMS5h"):
        with pytest.raises(QueryParameterError, match="not a token"):
            read_page_token(forged, digest, NOW)


# --- schedules -----------------------------------------------------------------------------------


def test_a_daily_schedule_fires_at_its_time() -> None:
    schedule = parse_schedule({"hour": "1", "minute": "5"})
    assert next_fire(schedule, NOW) == datetime(2026, 12, 9, 1, 5, tzinfo=UTC)
    assert next_fire(schedule, datetime(2026, 12, 9, 1, 4, 59, tzinfo=UTC)) == datetime(
        2026, 12, 9, 1, 5, tzinfo=UTC
    )


def test_ranges_lists_and_days() -> None:
    every_quarter = parse_schedule({"minute": "0,15,30,45", "second": "[0-1]"})
    assert next_fire(every_quarter, NOW) == datetime(2026, 12, 8, 10, 45, tzinfo=UTC)
    assert next_fire(every_quarter, datetime(2026, 12, 8, 10, 45, tzinfo=UTC)) == datetime(
        2026, 12, 8, 10, 45, 1, tzinfo=UTC
    )
    mondays = parse_schedule({"dayOfWeek": "1", "hour": "[6-7]", "minute": "0"})
    fire = next_fire(mondays, NOW)  # 8 December 2026 is a Tuesday
    assert fire == datetime(2026, 12, 14, 6, 0, tzinfo=UTC)
    leap = parse_schedule({"month": "2", "dayOfMonth": "29", "hour": "0", "minute": "0"})
    assert next_fire(leap, NOW) == datetime(2028, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"minute": "60"}, "schedule.minute: '60' is outside 0–59"),
        ({"hour": "[5-2]"}, "schedule.hour: '\\[5-2\\]' is outside 0–23"),
        ({"second": "a"}, "schedule.second: 'a' is not a number or a range"),
        ({"minute": 5}, "schedule.minute: give numbers"),
        ({"dayOfMonth": "31", "month": "2|4"}, "'2|4' is not a number"),
        ({"dayOfMonth": "30", "month": "2"}, "no date has that day"),
        ({"week": "1"}, "unknown field 'week'"),
    ],
)
def test_bad_schedules_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(fields)


# --- subscriptions -------------------------------------------------------------------------------


def test_a_stream_subscription() -> None:
    wanted = parse_subscription(
        {"dest": "https://erp.example/epcis", "signatureToken": "t", "stream": True}
    )
    assert wanted.stream
    assert wanted.schedule is None
    assert wanted.signature_token == "t"
    scheduled = parse_subscription(
        {
            "dest": "http://127.0.0.1:8080/x",
            "schedule": {"minute": "5"},
            "reportIfEmpty": True,
            "initialRecordTime": "2026-12-01T00:00:00Z",
        }
    )
    assert scheduled.parsed_schedule is not None
    assert scheduled.initial_record_time == datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a JSON object"),
        ({"dest": "x", "stream": True}, "not an http or https URL"),
        ({"dest": "mailto:a@b", "stream": True}, "not an http or https URL"),
        ({"dest": "http://h:99999/", "stream": True}, "not a URL"),
        ({"dest": "http://h/"}, "either stream: true or a schedule"),
        ({"dest": "http://h/", "stream": False}, "either stream: true or a schedule"),
        ({"dest": "http://h/", "stream": True, "reportIfEmpty": True}, "applies to a schedule"),
        ({"dest": "http://h/", "stream": "yes"}, "true or false"),
        ({"dest": "http://h/", "stream": True, "signatureToken": ""}, "signatureToken"),
        ({"dest": "http://h/", "schedule": {"hour": "25"}}, "schedule.hour"),
        ({"dest": "http://h/", "stream": True, "initialRecordTime": "today"}, "initialRecordTime"),
        ({"dest": "http://h/", "stream": True, "secret": "x"}, "unknown field 'secret'"),
    ],
)
def test_bad_subscriptions_are_refused(body: Any, message: str) -> None:
    with pytest.raises(SubscriptionError, match=message):
        parse_subscription(body)


def test_signatures_are_hmac_sha256_of_the_body() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    signed = signature("Jefe", b"what do ya want for nothing?")
    assert signed == "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert signature_valid("Jefe", b"what do ya want for nothing?", signed)
    assert not signature_valid("Jefe", b"what do ya want for nothing!", signed)


def test_retries_back_off_and_honour_retry_after() -> None:
    assert [retry_delay(n, 1.0, 300.0, None) for n in (1, 2, 3, 9, 10)] == [1, 2, 4, 256, 300]
    assert retry_delay(1, 1.0, 300.0, 30.0) == 30.0
    assert retry_delay(1, 1.0, 300.0, 9999.0) == 300.0
    assert retry_delay(8, 1.0, 300.0, 5.0) == 128.0
