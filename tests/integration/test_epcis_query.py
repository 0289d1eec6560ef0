"""The EPCIS 2.0 query interface over a real ledger: every standard parameter we answer, the
resource forms, paging by token, EPCIS exceptions, named queries and subscription control.

Every query is narrowed to this module's containers (``MATCH_anyEPC=<prefix>*``) because the
database is shared with other modules.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from services.bootstrap import build_consumer, build_ingest_app, build_ledger_api
from services.contract.epcis_identifiers import (
    container_uri,
    location_uri,
    party_uri,
    shipment_uri,
)
from services.contract.epcis_schema import schema_errors
from services.db.engine import make_engine
from services.ledger.domain.custody import CustodyRules
from services.ledger.domain.epcis_subscription import signature_valid
from services.ledger.readside.events import EventQueries
from services.ledger.service.subscriptions import SubscriptionDelivery, SubscriptionTiming
from services.registry.store import RegistryStore
from services.settings import Settings
from tests.support import events as ev
from tests.support.network import Network, register_network
from tests.support.receiver import receiving
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(stack: LiveStack) -> tuple[Settings, Network]:
    settings = stack.settings()
    return settings, register_network(settings)


@pytest.fixture(scope="module")
def consumer(env: tuple[Settings, Network]) -> Iterator[None]:
    settings, _ = env
    stop = threading.Event()
    runner = build_consumer(settings)
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


def entry_count(settings: Settings, prefix: str) -> int:
    engine = make_engine(settings.database_url, pool_size=1)
    with engine.connect() as connection:
        count: int = connection.execute(
            text("SELECT count(*) FROM ledger.entries WHERE container_id LIKE :p"),
            {"p": prefix + "%"},
        ).scalar_one()
    engine.dispose()
    return count


@pytest.fixture(scope="module")
def recorded(env: tuple[Settings, Network], consumer: None) -> dict[str, Any]:
    """Container A's life (with a correction) at one location, container B's dropoff elsewhere."""
    settings, network = env
    prefix = f"EQ{uuid.uuid4().hex[:8]}"
    a, b = f"{prefix}-A", f"{prefix}-B"
    here, there = f"dock-{prefix}", f"yard-{prefix}"
    bol = f"BOL-{prefix}"
    events = {
        "dropoff": ev.dropoff(a, 0, location_id=here, battery_count=10),
        "extra": ev.dropoff(a, 0.5, location_id=here, weight_kg=2.0),
        "sealed": ev.sealed(a, 1, location_id=here),
        "pickup": ev.transfer(
            "pickup", a, 2, "site-a", "hauler-a", shipment_id=bol, location_id=here
        ),
        "b": ev.dropoff(b, 0, location_id=there),
    }
    to_hub = ev.transfer("handoff", a, 4, "hauler-a", "hub-a", shipment_id=bol, location_id=here)
    correction = ev.event(
        "correction",
        a,
        3,
        location_id=here,
        corrects_event_id=events["extra"]["event_id"],
        reason="did_not_occur",
    )
    with TestClient(build_ingest_app(settings)) as ingest:
        site = network.headers("site-a-dev")
        # One at a time where two containers meet, so ledger order is the order of this list.
        first_four = [events[key] for key in ("dropoff", "extra", "sealed", "pickup")]
        posted = ingest.post("/v1/events/batch", json={"events": first_four}, headers=site)
        assert posted.status_code == 200, posted.text
        wait_for(lambda: entry_count(settings, prefix) == 4, what="four entries")
        assert ingest.post("/v1/events", json=events["b"], headers=site).status_code == 202
        wait_for(lambda: entry_count(settings, prefix) == 5, what="five entries")
        hub = ingest.post("/v1/events", json=to_hub, headers=network.headers("hub-a-dev"))
        assert hub.status_code == 202, hub.text
        wait_for(lambda: entry_count(settings, prefix) == 6, what="six entries")
        corrected = ingest.post("/v1/events", json=correction, headers=site)
        assert corrected.status_code == 202, corrected.text
    wait_for(lambda: entry_count(settings, prefix) == 7, what="the correction")
    events["to_hub"] = to_hub
    return {
        "prefix": prefix,
        "a": a,
        "b": b,
        "here": here,
        "bol": bol,
        "events": events,
        "ids": {f"urn:uuid:{body['event_id']}": key for key, body in events.items()},
    }


@pytest.fixture(scope="module")
def ledger(env: tuple[Settings, Network]) -> Iterator[TestClient]:
    settings, _ = env
    with TestClient(build_ledger_api(settings)) as client:
        yield client


def query(
    ledger: TestClient,
    network: Network,
    recorded: dict[str, Any],
    path: str = "/epcis/events",
    **params: str,
) -> Any:
    return ledger.get(
        path,
        params={"MATCH_anyEPC": f"{recorded['prefix']}*", **params},
        headers=network.auditor_headers(),
    )


def found(response: Any, recorded: dict[str, Any]) -> list[str]:
    assert response.status_code == 200, response.text
    document = response.json()
    assert schema_errors(document) == []
    return [
        recorded["ids"][event["eventID"]]
        for event in document["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    ]


def test_every_event_comes_back_as_a_valid_query_document(
    env: tuple[Settings, Network], recorded: dict[str, Any], ledger: TestClient
) -> None:
    _, network = env
    response = query(ledger, network, recorded)
    assert found(response, recorded) == ["dropoff", "extra", "sealed", "pickup", "b", "to_hub"]
    assert response.headers["GS1-EPCIS-Version"] == "2.0.0"
    assert response.headers["GS1-CBV-Version"] == "2.0.0"
    assert "link" not in response.headers
    document = response.json()
    assert document["type"] == "EPCISQueryDocument"
    results = document["epcisBody"]["queryResults"]
    assert results["queryName"] == "SimpleEventQuery"
    extra = results["resultsBody"]["eventList"][1]
    assert extra["errorDeclaration"]["reason"] == "did_not_occur"
    assert extra["bc:eventType"] == "dropoff"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"eventType": "AggregationEvent"}, ["dropoff", "extra", "b"]),
        ({"eventType": "ObjectEvent"}, ["sealed", "pickup", "to_hub"]),
        (
            {"eventType": "ObjectEvent|AggregationEvent"},
            ["dropoff", "extra", "sealed", "pickup", "b", "to_hub"],
        ),
        ({"eventType": "TransformationEvent"}, []),
        ({"EQ_action": "ADD"}, ["dropoff", "extra", "b"]),
        ({"EQ_action": "OBSERVE"}, ["sealed", "pickup", "to_hub"]),
        ({"EQ_bizStep": "receiving"}, ["to_hub"]),
        ({"EQ_bizStep": "collecting|packing"}, ["dropoff", "extra", "sealed", "b"]),
        ({"EQ_bizStep": "urn:epcglobal:cbv:bizstep:consigning"}, ["pickup"]),
        ({"EQ_bizStep": "shipping"}, []),
        ({"EQ_disposition": "in_transit"}, ["pickup"]),
        ({"EQ_disposition": "in_progress"}, ["to_hub"]),
        ({"EQ_disposition": "container_closed|disposed"}, ["dropoff", "extra", "sealed", "b"]),
        ({"EQ_bizTransaction_bol": "BOL"}, ["pickup", "to_hub"]),
        ({"EXISTS_errorDeclaration": "true"}, ["extra"]),
        (
            {"EXISTS_errorDeclaration": "false"},
            ["dropoff", "extra", "sealed", "pickup", "b", "to_hub"],
        ),
        (
            {"GE_eventTime": "2026-11-02T09:00:00Z", "LT_eventTime": "2026-11-02T10:00:00.5Z"},
            ["sealed", "pickup"],
        ),
        ({"GE_eventTime": "2026-11-02T10:00:00+01:00"}, ["sealed", "pickup", "to_hub"]),
        ({"GE_recordTime": "2100-01-01T00:00:00Z"}, []),
        (
            {"LT_recordTime": "2100-01-01T00:00:00Z"},
            ["dropoff", "extra", "sealed", "pickup", "b", "to_hub"],
        ),
        ({"EQ_source_possessing_party": party_uri("site-a")}, ["pickup"]),
        ({"EQ_destination_possessing_party": party_uri("hub-a")}, ["to_hub"]),
        ({"EQ_source_owning_party": party_uri("site-a")}, []),
        ({"EQ_eventID": "urn:uuid:SEALED"}, ["sealed"]),
        ({"EQ_eventID": "ni:///sha-256;00?ver=CBV2.0"}, []),
    ],
)
def test_each_parameter_selects_what_the_export_says(
    env: tuple[Settings, Network],
    recorded: dict[str, Any],
    ledger: TestClient,
    params: dict[str, str],
    expected: list[str],
) -> None:
    _, network = env
    values = {
        name: value.replace("BOL", shipment_uri(recorded["bol"])).replace(
            "SEALED", recorded["events"]["sealed"]["event_id"]
        )
        if name in ("EQ_bizTransaction_bol", "EQ_eventID")
        else value
        for name, value in params.items()
    }
    assert found(query(ledger, network, recorded, **values), recorded) == expected


def test_epc_location_and_parent_terms(
    env: tuple[Settings, Network], recorded: dict[str, Any], ledger: TestClient
) -> None:
    _, network = env
    a = recorded["a"]
    here = location_uri(recorded["here"])
    assert found(query(ledger, network, recorded, MATCH_epc=container_uri(a)), recorded) == [
        "sealed",
        "pickup",
        "to_hub",
    ]
    assert found(query(ledger, network, recorded, MATCH_parentID=a), recorded) == [
        "dropoff",
        "extra",
    ]
    assert found(query(ledger, network, recorded, EQ_readPoint=here), recorded) == [
        "dropoff",
        "extra",
        "sealed",
        "pickup",
        "to_hub",
    ]
    # The container leaves with the pickup: that event has no bizLocation.
    assert found(query(ledger, network, recorded, EQ_bizLocation=recorded["here"]), recorded) == [
        "dropoff",
        "extra",
        "sealed",
        "to_hub",
    ]


def test_resource_forms_are_the_same_queries(
    env: tuple[Settings, Network], recorded: dict[str, Any], ledger: TestClient
) -> None:
    _, network = env
    auditor = network.auditor_headers()
    a_uri = quote(container_uri(recorded["a"]), safe="")
    by_epc = ledger.get(f"/epcis/epcs/{a_uri}/events", headers=auditor)
    assert found(by_epc, recorded) == ["dropoff", "extra", "sealed", "pickup", "to_hub"]
    assert found(
        query(ledger, network, recorded, "/epcis/eventTypes/AggregationEvent/events"), recorded
    ) == ["dropoff", "extra", "b"]
    assert found(query(ledger, network, recorded, "/epcis/bizSteps/packing/events"), recorded) == [
        "sealed"
    ]
    assert found(
        query(ledger, network, recorded, "/epcis/dispositions/in_transit/events"), recorded
    ) == ["pickup"]
    location = quote(location_uri(recorded["here"]), safe="")
    assert found(
        query(ledger, network, recorded, f"/epcis/readPoints/{location}/events"), recorded
    ) == ["dropoff", "extra", "sealed", "pickup", "to_hub"]
    assert found(
        query(ledger, network, recorded, f"/epcis/bizLocations/{location}/events"), recorded
    ) == ["dropoff", "extra", "sealed", "to_hub"]

    sealed = f"urn:uuid:{recorded['events']['sealed']['event_id']}"
    one = ledger.get(f"/epcis/events/{quote(sealed, safe='')}", headers=auditor)
    assert found(one, recorded) == ["sealed"]
    missing = ledger.get(f"/epcis/events/urn:uuid:{uuid.uuid4()}", headers=auditor)
    assert missing.status_code == 404
    assert missing.json()["type"] == "epcisException:NoSuchResourceException"
    twice = query(ledger, network, recorded, "/epcis/bizSteps/packing/events", EQ_bizStep="x")
    assert twice.status_code == 400


def test_pages_follow_the_link_header_to_the_end(
    env: tuple[Settings, Network], recorded: dict[str, Any], ledger: TestClient
) -> None:
    _, network = env
    response = query(ledger, network, recorded, perPage="2")
    pages = [found(response, recorded)]
    while "link" in response.headers:
        link = response.headers["link"]
        assert link.endswith('>; rel="next"')
        assert response.headers["GS1-Next-Page-Token-Expires"].endswith("Z")
        response = ledger.get(link[1 : link.index(">")], headers=network.auditor_headers())
        pages.append(found(response, recorded))
    assert pages == [["dropoff", "extra"], ["sealed", "pickup"], ["b", "to_hub"], []]

    first = query(ledger, network, recorded, perPage="2")
    token = first.headers["link"].split("nextPageToken=")[1].split(">")[0]
    other = query(ledger, network, recorded, perPage="2", EQ_action="ADD", nextPageToken=token)
    assert other.status_code == 400
    assert "another query" in other.json()["detail"]
    forged = query(ledger, network, recorded, nextPageToken="bm90LWEtdG9rZW4")
    assert forged.status_code == 400


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"EQ_colour": "red"}, "unknown query parameter 'EQ_colour'"),
        (
            {"orderBy": "eventTime"},
            "orderBy is an EPCIS query parameter this repository does not answer",
        ),
        ({"GE_eventTime": "yesterday"}, "GE_eventTime: 'yesterday' is not an RFC 3339 date-time"),
        ({"GE_eventTime": "2026-11-02T09:00:00"}, "needs a date, a time and a UTC offset"),
        ({"eventType": "Event"}, "eventType: 'Event' is not an EPCIS event type"),
        (
            {"EQ_bizStep": "colecting"},
            "EQ_bizStep: 'colecting' is neither a CBV 2.0 term nor a URI",
        ),
        ({"EQ_action": "add"}, "EQ_action: 'add' is not ADD, OBSERVE or DELETE"),
        ({"EXISTS_errorDeclaration": "yes"}, "EXISTS_errorDeclaration: give true or false"),
        ({"EQ_bizTransaction_po": "urn:x:1"}, "answers EQ_bizTransaction only for type bol"),
        ({"EQ_eventID": "not a uri"}, "EQ_eventID: 'not a uri' is not a URI"),
        ({"perPage": "0"}, "perPage: give one whole number from 1 to 1000"),
        ({"perPage": "1001"}, "perPage: give one whole number from 1 to 1000"),
        ({"EQ_readPoint": "x" * 201}, "EQ_readPoint: at most 200 characters a value"),
    ],
)
def test_bad_parameters_are_epcis_query_parameter_exceptions(
    env: tuple[Settings, Network],
    recorded: dict[str, Any],
    ledger: TestClient,
    params: dict[str, str],
    message: str,
) -> None:
    _, network = env
    response = query(ledger, network, recorded, **params)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["GS1-EPCIS-Version"] == "2.0.0"
    problem = response.json()
    assert problem["type"] == "epcisException:QueryParameterException"
    assert message in problem["detail"]


def test_only_auditors_query(
    env: tuple[Settings, Network], recorded: dict[str, Any], ledger: TestClient
) -> None:
    _, network = env
    assert ledger.get("/epcis/events").status_code == 401
    device = ledger.get("/epcis/events", headers=network.headers("site-a-dev"))
    assert device.status_code in (401, 403)
    admin = ledger.get(
        "/epcis/events",
        params={"MATCH_anyEPC": f"{recorded['prefix']}*"},
        headers={"Authorization": f"Bearer {network.admin}"},
    )
    assert found(admin, recorded) == ["dropoff", "extra", "sealed", "pickup", "b", "to_hub"]


def test_named_queries_and_their_subscriptions(
    env: tuple[Settings, Network], recorded: dict[str, Any], ledger: TestClient
) -> None:
    _, network = env
    auditor = network.auditor_headers()
    name = f"moves-{recorded['prefix']}"
    definition = {
        "MATCH_anyEPC": [container_uri(recorded["prefix"]) + "*"],
        "EQ_bizStep": ["consigning", "receiving"],
    }
    created = ledger.post(
        "/epcis/queries", json={"name": name, "query": definition}, headers=auditor
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/epcis/queries/{name}"
    again = ledger.post("/epcis/queries", json={"name": name, "query": definition}, headers=auditor)
    assert again.status_code == 409
    assert again.json()["type"] == "epcisException:ResourceAlreadyExistsException"
    assert ledger.get(f"/epcis/queries/{name}", headers=auditor).json()["query"] == definition
    assert name in [item["name"] for item in ledger.get("/epcis/queries", headers=auditor).json()]
    events = ledger.get(f"/epcis/queries/{name}/events", headers=auditor)
    assert found(events, recorded) == ["pickup", "to_hub"]
    paged = ledger.get(f"/epcis/queries/{name}/events?perPage=1", headers=auditor)
    assert found(paged, recorded) == ["pickup"]
    link = paged.headers["link"]
    assert found(ledger.get(link[1 : link.index(">")], headers=auditor), recorded) == ["to_hub"]
    narrowed = ledger.get(f"/epcis/queries/{name}/events?EQ_action=ADD", headers=auditor)
    assert narrowed.status_code == 400

    for bad, exception in [
        ({"name": "x y", "query": {}}, "ValidationException"),
        ({"name": "bad-1", "query": {"EQ_colour": ["red"]}}, "QueryParameterException"),
        ({"name": "bad-2", "query": {"GE_eventTime": 5}}, "QueryParameterException"),
        (
            {"name": "bad-3", "query": {"EQ_source_possessing_party": ["site a"]}},
            "QueryValidationException",
        ),
    ]:
        refused = ledger.post("/epcis/queries", json=bad, headers=auditor)
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["type"] == f"epcisException:{exception}", refused.text

    subscriptions = f"/epcis/queries/{name}/subscriptions"
    stream = ledger.post(
        subscriptions,
        json={"dest": "http://127.0.0.1:9/epcis", "signatureToken": "s3cret", "stream": True},
        headers=auditor,
    )
    assert stream.status_code == 201, stream.text
    shown = stream.json()
    assert "signatureToken" not in shown
    assert "s3cret" not in stream.text
    assert shown["stream"] is True
    assert shown["signed"] is True
    assert stream.headers["location"] == f"{subscriptions}/{shown['subscriptionID']}"
    scheduled = ledger.post(
        subscriptions,
        json={
            "dest": "https://receiver.example/x",
            "schedule": {"hour": "1", "minute": "5"},
            "reportIfEmpty": True,
        },
        headers=auditor,
    )
    assert scheduled.status_code == 201, scheduled.text
    listed = ledger.get(subscriptions, headers=auditor).json()
    assert {item["subscriptionID"] for item in listed} == {
        shown["subscriptionID"],
        scheduled.json()["subscriptionID"],
    }
    for bad in [
        {"dest": "ftp://x/y", "stream": True},
        {"dest": "http://x/y"},
        {"dest": "http://x/y", "stream": True, "schedule": {"minute": "1"}},
        {"dest": "http://x/y", "schedule": {"minute": "61"}},
        {"dest": "http://x/y", "schedule": {"dayOfMonth": "31", "month": "2"}},
        {"dest": "http://x/y", "stream": True, "colour": "red"},
    ]:
        refused = ledger.post(subscriptions, json=bad, headers=auditor)
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["type"] == "epcisException:SubscriptionControlsException"

    one = f"{subscriptions}/{shown['subscriptionID']}"
    assert ledger.get(one, headers=auditor).status_code == 200
    assert ledger.delete(one, headers=auditor).status_code == 204
    assert ledger.get(one, headers=auditor).status_code == 404
    assert ledger.delete(f"/epcis/queries/{name}", headers=auditor).status_code == 204
    other = f"{subscriptions}/{scheduled.json()['subscriptionID']}"
    assert ledger.get(other, headers=auditor).status_code == 404
    assert ledger.get(f"/epcis/queries/{name}", headers=auditor).status_code == 404
    assert (
        ledger.post(
            subscriptions, json={"dest": "http://x/y", "stream": True}, headers=auditor
        ).status_code
        == 404
    )


def test_a_scheduled_subscription_reports_what_matched_and_empty_reports_when_asked(
    env: tuple[Settings, Network], recorded: dict[str, Any], ledger: TestClient
) -> None:
    settings, network = env
    auditor = network.auditor_headers()
    with receiving() as (url, posts):
        by_name = scheduled_reports(settings, auditor, recorded, ledger, url, posts)
    moves, none = (by_name[f"{n}-{recorded['prefix']}"] for n in ("sched-moves", "sched-none"))
    first = [e["bc:eventType"] for e in moves[0]["resultsBody"]["eventList"]]
    assert first == ["pickup"]  # what matched since initialRecordTime
    assert moves[1]["resultsBody"]["eventList"] == []  # nothing new: an empty report, as asked
    assert all(report["resultsBody"]["eventList"] == [] for report in none)


def scheduled_reports(
    settings: Settings,
    auditor: dict[str, str],
    recorded: dict[str, Any],
    ledger: TestClient,
    url: str,
    posts: list[tuple[bytes, dict[str, str]]],
) -> dict[str, list[dict[str, Any]]]:
    """Two scheduled subscriptions (every second), delivered until each sent two reports;
    every report checked (signature, schema); the reports by named query."""
    every_second = {"second": "[0-59]"}
    names = {"sched-moves": ["consigning"], "sched-none": ["shipping"]}
    ids = {}
    for name, steps in names.items():
        query = {"MATCH_anyEPC": [container_uri(recorded["prefix"]) + "*"], "EQ_bizStep": steps}
        name = f"{name}-{recorded['prefix']}"
        assert (
            ledger.post(
                "/epcis/queries", json={"name": name, "query": query}, headers=auditor
            ).status_code
            == 201
        )
        made = ledger.post(
            f"/epcis/queries/{name}/subscriptions",
            json={
                "dest": url,
                "signatureToken": "tok",
                "schedule": every_second,
                "reportIfEmpty": True,
                "initialRecordTime": "2000-01-01T00:00:00Z",
            },
            headers=auditor,
        )
        assert made.status_code == 201, made.text
        ids[made.json()["subscriptionID"]] = name
    engine = make_engine(settings.database_url, pool_size=2)
    delivery = SubscriptionDelivery(
        engine,
        EventQueries(engine, CustodyRules()),
        RegistryStore(engine, cache_seconds=0),
        timeout_s=5,
        timing=SubscriptionTiming(idle_s=0.05, retry_base_s=0.05, retry_max_s=0.2),
    )

    def reports_of(subscription_id: str) -> list[dict[str, Any]]:
        documents = [json.loads(body) for body, _ in posts]
        return [
            document["epcisBody"]["queryResults"]
            for document in documents
            if document["epcisBody"]["queryResults"]["subscriptionID"] == subscription_id
        ]

    with httpx.Client(timeout=5) as client:

        def two_reports_each() -> bool:
            delivery.deliver_next(client)
            return all(len(reports_of(sid)) >= 2 for sid in ids)

        wait_for(two_reports_each, what="two scheduled reports of each subscription", timeout=30)
    engine.dispose()
    for body, headers in posts:
        assert signature_valid("tok", body, headers.get("GS1-Signature", ""))
        assert schema_errors(json.loads(body)) == []
    return {ids[sid]: reports_of(sid) for sid in ids}
