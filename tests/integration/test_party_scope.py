"""Every party sees its own custody, and no more: party users and scoped auditors over two
sites, two haulers and two plants in two jurisdictions.

The visible containers are computed here independently, from the events as posted: a container
is visible to parties S when one of its events was posted by a party of S or names one as
from_party, to_party or destination_party. The API, CSV exports and EPCIS queries must give
exactly that set; outside it, a container answers as one that does not exist.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from services.bootstrap import build_consumer, build_ingest_app, build_ledger_api
from services.contract.epcis_identifiers import container_uri, id_from_uri
from services.db.engine import make_engine
from services.ledger.domain.custody import CustodyRules
from services.ledger.readside.events import EventQueries
from services.ledger.service.audit import audit_ledger
from services.ledger.service.checkpointer import Checkpointer
from services.ledger.service.subscriptions import SubscriptionDelivery, SubscriptionTiming
from services.registry.principals import ApiRole, PartyRole
from services.registry.store import RegistryStore
from tests.support import events as ev
from tests.support.receiver import receiving
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

PARTIES = {
    "site-n": (PartyRole.SITE, "US-NY"),
    "site-c": (PartyRole.SITE, "US-CA"),
    "hauler-n": (PartyRole.HAULER, "US-NY"),
    "hauler-c": (PartyRole.HAULER, "US-CA"),
    "plant-n": (PartyRole.PLANT, "US-NY"),
    "plant-c": (PartyRole.PLANT, "US-CA"),
}


def lives() -> list[tuple[str, dict[str, Any]]]:
    """(posting party, event) for five containers whose lives cross the two states."""
    posted: list[tuple[str, dict[str, Any]]] = []

    def life(container: str, site: str, hauler: str, plant: str, *, arrives: bool) -> None:
        posted.append((site, ev.dropoff(container, 0, location_id=f"{site}:dock")))
        pickup = ev.transfer(
            "pickup",
            container,
            1,
            site,
            hauler,
            shipment_id=f"BOL-{container}",
            destination_party=plant,
            location_id=f"{site}:dock",
        )
        posted.append((hauler, pickup))
        if arrives:
            posted.append(
                (
                    plant,
                    ev.transfer(
                        "intake",
                        container,
                        3,
                        hauler,
                        plant,
                        weight_kg=40.0,
                        location_id=f"{plant}:gate",
                    ),
                )
            )

    life("PS-K1", "site-n", "hauler-n", "plant-n", arrives=True)
    life("PS-K2", "site-c", "hauler-c", "plant-c", arrives=True)
    life("PS-K3", "site-n", "hauler-c", "plant-c", arrives=False)
    life("PS-K5", "site-c", "hauler-n", "plant-n", arrives=True)
    posted.append(("site-c", ev.dropoff("PS-K4", 0, location_id="site-c:dock")))
    return posted


def visible(posted: list[tuple[str, dict[str, Any]]], scope: set[str] | None) -> set[str]:
    """The rule, computed from the events as posted."""
    seen: dict[str, set[str]] = {}
    for party, event in posted:
        named = {party} | {
            event[key] for key in ("from_party", "to_party", "destination_party") if key in event
        }
        seen.setdefault(event["container_id"], set()).update(named)
    return {c for c, parties in seen.items() if scope is None or parties & scope}


def register_scoped_network(
    registry: RegistryStore,
) -> tuple[dict[str, str], dict[str, str], dict[str, set[str] | None]]:
    """The six parties with a device and a party user each, two scoped auditors and an unscoped
    one: (device tokens by party, API tokens by reader, each reader's parties; None: all)."""
    devices: dict[str, str] = {}
    tokens: dict[str, str] = {}
    for party, (role, jurisdiction) in PARTIES.items():
        registry.add_party(party, party, role, jurisdiction=jurisdiction)
        devices[party] = registry.add_device(f"{party}-dev", party)
        tokens[party] = registry.add_api_token(f"user-{party}", ApiRole.PARTY, party_id=party)
    tokens["ny-regulator"] = registry.add_api_token(
        "ny-regulator", ApiRole.AUDITOR, scope_jurisdictions=("US-NY",)
    )
    tokens["ca-and-hauler-n"] = registry.add_api_token(
        "ca-and-hauler-n",
        ApiRole.AUDITOR,
        scope_jurisdictions=("US-CA",),
        scope_parties=("hauler-n",),
    )
    tokens["auditor"] = registry.add_api_token("auditor", ApiRole.AUDITOR)
    scopes: dict[str, set[str] | None] = {party: {party} for party in PARTIES}
    scopes["ny-regulator"] = {p for p, (_, j) in PARTIES.items() if j == "US-NY"}
    scopes["ca-and-hauler-n"] = {p for p, (_, j) in PARTIES.items() if j == "US-CA"} | {"hauler-n"}
    scopes["auditor"] = None

    return devices, tokens, scopes


@dataclass
class World:
    ledger: TestClient
    engine: Engine
    posted: list[tuple[str, dict[str, Any]]]
    tokens: dict[str, str]
    scopes: dict[str, set[str] | None]

    def get(self, reader: str, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[reader]}"}
        return self.ledger.get(path, params=params, headers=headers)


@pytest.fixture(scope="module")
def world(stack: LiveStack) -> Iterator[World]:
    settings = stack.settings()
    engine = make_engine(settings.database_url, pool_size=1)
    registry = RegistryStore(engine, cache_seconds=0)
    devices, tokens, scopes = register_scoped_network(registry)
    posted = lives()
    stop = threading.Event()
    consumer = threading.Thread(target=build_consumer(settings).run, args=(stop,), daemon=True)
    consumer.start()
    with TestClient(build_ingest_app(settings)) as ingest:
        for party, event in posted:
            headers = {"Authorization": f"Bearer {devices[party]}"}
            answer = ingest.post("/v1/events", json=event, headers=headers)
            assert answer.status_code == 202, answer.text

    def recorded() -> int:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM ledger.entries")).scalar_one())

    wait_for(lambda: recorded() == len(posted), what="every event recorded")
    key = Ed25519PrivateKey.generate()
    Checkpointer(
        engine, key, origin=settings.log_origin, interval_s=1, every_entries=1
    ).checkpoint_now()
    with TestClient(build_ledger_api(settings)) as ledger:
        yield World(ledger, engine, posted, tokens, scopes)
    stop.set()
    consumer.join(timeout=30)
    engine.dispose()


READERS = [*PARTIES, "ny-regulator", "ca-and-hauler-n", "auditor"]


def test_the_rule_gives_a_different_set_to_each_reader(world: World) -> None:
    """The scenario is worth testing: the readers' sets differ and none is empty."""
    sets = {reader: frozenset(visible(world.posted, world.scopes[reader])) for reader in READERS}
    assert all(sets.values())
    assert len(set(sets.values())) >= 6
    assert sets["auditor"] == {"PS-K1", "PS-K2", "PS-K3", "PS-K4", "PS-K5"}
    assert sets["plant-c"] == {"PS-K2", "PS-K3"}  # K3 names plant-c as its destination


@pytest.mark.parametrize("reader", READERS)
def test_lists_exports_and_queries_give_exactly_the_scope(world: World, reader: str) -> None:
    expected = visible(world.posted, world.scopes[reader])

    listed = world.get(reader, "/v1/containers", limit=500)
    assert listed.status_code == 200, listed.text
    assert {item["container_id"] for item in listed.json()["items"]} == expected

    exported = world.get(reader, "/v1/containers.csv", limit=500)
    assert exported.status_code == 200, exported.text
    rows = exported.text.splitlines()[1:]
    assert {row.split(",")[0] for row in rows} == expected

    events = world.get(reader, "/v1/events", limit=500)
    assert {item["container_id"] for item in events.json()["items"]} == expected

    document = world.get(reader, "/epcis/events", perPage="1000")
    assert document.status_code == 200, document.text
    found = set()
    for event in document.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]:
        uri = event.get("parentID") or event["epcList"][0]
        found.add(id_from_uri(uri, "container"))
    assert found == expected

    anomalies = world.get(reader, "/v1/anomalies", limit=200)
    assert {item["container_id"] for item in anomalies.json()["items"]} <= expected


@pytest.mark.parametrize("reader", READERS)
def test_outside_the_scope_a_container_does_not_exist(world: World, reader: str) -> None:
    expected = visible(world.posted, world.scopes[reader])
    unknown = world.get(reader, "/v1/containers/PS-NONE/custody")
    assert unknown.status_code == 404
    for container in visible(world.posted, None):
        for suffix in ("custody", "custody.csv", "custody.epcis.json"):
            answer = world.get(reader, f"/v1/containers/{container}/{suffix}")
            if container in expected:
                assert answer.status_code == 200, answer.text
            else:
                assert answer.status_code == 404, answer.text
                assert answer.json()["detail"] == unknown.json()["detail"].replace(
                    "PS-NONE", container
                )
        by_epc = world.get(reader, f"/epcis/epcs/{quote(container_uri(container), safe='')}/events")
        events = by_epc.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert bool(events) == (container in expected)
        bundle = world.get(reader, f"/v1/containers/{container}/bundle")
        none_bundle = world.get(reader, "/v1/containers/PS-NONE/bundle")
        if container not in expected:
            assert bundle.status_code == none_bundle.status_code == 404
    for _, event in world.posted:
        answer = world.get(reader, f"/v1/events/{event['event_id']}")
        assert (answer.status_code == 200) == (event["container_id"] in expected)


def test_scope_cannot_be_widened_by_parameters_or_borrowed_tokens(world: World) -> None:
    outside = "PS-K2"  # never touched site-n
    assert outside not in visible(world.posted, {"site-n"})
    for params in (
        {"MATCH_anyEPC": container_uri(outside)},
        {"MATCH_anyEPC": "PS-*"},
        {"EQ_source_possessing_party": "site-c"},
    ):
        answer = world.get("site-n", "/epcis/events", **params)
        events = answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert all(
            id_from_uri(e.get("parentID") or e["epcList"][0], "container") != outside
            for e in events
        )
    listed = world.get("site-n", "/v1/containers", custodian="plant-c")
    assert listed.json()["items"] == []
    exported = world.get("site-n", "/v1/containers.csv", custodian="plant-c", state="received")
    assert exported.text.splitlines()[1:] == []
    as_of = world.get("site-n", f"/v1/containers/{outside}/custody", as_of="2100-01-01T00:00:00Z")
    assert as_of.status_code == 404
    anomalies = world.get("site-n", "/v1/anomalies", code="missing_ack")
    assert all(item["container_id"] != outside for item in anomalies.json()["items"])

    page = world.get("auditor", "/epcis/events", perPage="1")
    token = page.headers["link"].split("nextPageToken=")[1].split(">")[0]
    borrowed = world.get("site-n", "/epcis/events", perPage="1", nextPageToken=token)
    assert borrowed.status_code == 400
    assert "another query" in borrowed.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/registry-audit",
        "/log/tile/entries/000",
    ],
)
def test_routes_that_read_every_party_refuse_scoped_readers(world: World, path: str) -> None:
    for reader in ("site-n", "ny-regulator"):
        answer = world.get(reader, path)
        assert answer.status_code == 403, (reader, answer.text)
    assert world.get("auditor", path).status_code != 403


def signed_in(world: World, reader: str) -> TestClient:
    """The ledger's UI as ``reader``, signed in with its token (the cookie set)."""
    answer = world.ledger.post(
        "/ui/signin",
        content=f"token={world.tokens[reader]}&next=/ui/",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return world.ledger


@pytest.mark.parametrize("reader", ["plant-c", "hauler-n", "ny-regulator", "auditor"])
def test_the_ui_shows_exactly_the_scope(world: World, reader: str) -> None:
    expected = visible(world.posted, world.scopes[reader])
    everything = visible(world.posted, None)
    ui = signed_in(world, reader)
    try:
        search = ui.get("/ui/containers", params={"q": "PS-"})
        assert search.status_code == 200
        for container in everything:
            assert (f">{container}</a>" in search.text) == (container in expected), container
            page = ui.get(f"/ui/containers/{container}")
            assert page.status_code == (200 if container in expected else 404), container
            download = ui.get(f"/ui/containers/{container}/download/csv")
            assert download.status_code == (200 if container in expected else 404)
        home = ui.get("/ui/")
        assert home.status_code == 200
        token_id = f"user-{reader}" if reader in PARTIES else reader
        assert f'<span id="signed-in">{token_id} (' in home.text  # who is signed in
        if world.scopes[reader] is None:
            assert "Our containers" not in home.text
        else:
            assert "Our containers" in home.text
            shown = {c for c in everything if f">{c}</a>" in home.text}
            assert shown == expected
        report = ui.get("/ui/mass-balance", params={"from": "2026-01-01", "to": "2027-01-01"})
        assert report.status_code == 200
        assert "the report answered" not in report.text
    finally:
        ui.cookies.clear()


def test_a_party_user_sees_its_own_containers_by_where_they_stand(world: World) -> None:
    ui = signed_in(world, "plant-c")
    try:
        home = ui.get("/ui/").text
    finally:
        ui.cookies.clear()

    def section(name: str) -> str:
        start = home.index(f'id="{name}"')
        return home[start : home.index("</section>", start)]

    assert "PS-K2" in section("in_custody")  # taken in at plant-c
    assert "PS-K3" in section("inbound")  # on its way to plant-c
    assert "PS-K3" not in section("in_custody")
    assert "PS-K2" not in section("inbound")
    assert "plant-c" in home[home.index('id="signed-in"') :][:200]


def test_containers_filter_by_jurisdiction_within_the_scope(world: World) -> None:
    california = {p for p, (_, j) in PARTIES.items() if j == "US-CA"}
    for reader in ("auditor", "site-n", "ny-regulator"):
        answer = world.get(reader, "/v1/containers", jurisdiction="US-CA", limit=500)
        assert answer.status_code == 200, answer.text
        found = {item["container_id"] for item in answer.json()["items"]}
        assert found == visible(world.posted, california) & visible(
            world.posted, world.scopes[reader]
        )
    assert world.get("auditor", "/v1/containers", jurisdiction="California").status_code == 422


def test_a_scoped_readers_cursor_works_for_it_alone(world: World) -> None:
    first = world.get("plant-c", "/v1/containers", limit=1)
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    mine = world.get("plant-c", "/v1/containers", limit=1, cursor=cursor)
    assert mine.status_code == 200
    assert mine.json()["items"] != first.json()["items"]
    for other in ("plant-n", "auditor"):
        borrowed = world.get(other, "/v1/containers", limit=1, cursor=cursor)
        assert borrowed.status_code == 400, other
        assert borrowed.json()["title"] == "Bad cursor"
    auditors = world.get("auditor", "/v1/containers", limit=1).json()["next_cursor"]
    assert world.get("plant-c", "/v1/containers", limit=1, cursor=auditors).status_code == 400
    assert world.get("ny-regulator", "/v1/containers", limit=1, cursor=auditors).status_code == 400
    assert world.get("auditor", "/v1/containers", limit=1, cursor=auditors).status_code == 200


@pytest.mark.parametrize("reader", ["plant-c", "hauler-c", "site-n", "plant-n", "auditor"])
def test_a_certificate_needs_the_whole_shipment_in_scope(world: World, reader: str) -> None:
    shipment = "BOL-PS-K2"  # PS-K2 alone: site-c → hauler-c → plant-c
    allowed = "PS-K2" in visible(world.posted, world.scopes[reader])
    answer = world.get(reader, f"/v1/shipments/{shipment}/certificate.pdf")
    unknown = world.get(reader, "/v1/shipments/BOL-NONE/certificate.pdf")
    if allowed:
        assert answer.status_code == 200, answer.text
        assert answer.content.startswith(b"%PDF")
    else:
        assert answer.status_code == unknown.status_code == 404
        assert answer.json()["detail"] == unknown.json()["detail"].replace("BOL-NONE", shipment)


def test_named_queries_and_subscriptions_of_a_scoped_token_stay_in_its_scope(
    world: World,
) -> None:
    made = world.ledger.post(
        "/epcis/queries",
        json={"name": "our-moves", "query": {"EQ_bizStep": ["consigning"]}},
        headers={"Authorization": f"Bearer {world.tokens['plant-c']}"},
    )
    assert made.status_code == 201, made.text
    for reader in ("plant-c", "site-n", "auditor"):
        answer = world.get(reader, "/epcis/queries/our-moves/events")
        found = {
            id_from_uri(e["epcList"][0], "container")
            for e in answer.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        }
        picked_up = {e["container_id"] for _, e in world.posted if e["type"] == "pickup"}
        assert found == visible(world.posted, world.scopes[reader]) & picked_up, reader
    subscribed = world.ledger.post(
        "/epcis/queries/our-moves/subscriptions",
        json={"dest": "http://127.0.0.1:9/x", "stream": True},
        headers={"Authorization": f"Bearer {world.tokens['plant-c']}"},
    )
    assert subscribed.status_code == 201
    location = subscribed.headers["location"]
    assert world.get("plant-c", location).status_code == 200
    assert world.get("site-n", location).status_code == 404  # another scoped token's
    assert world.get("auditor", location).status_code == 200
    assert world.get("site-n", "/epcis/queries/our-moves/subscriptions").json() == []
    refused = world.ledger.delete(
        "/epcis/queries/our-moves",
        headers={"Authorization": f"Bearer {world.tokens['site-n']}"},
    )
    assert refused.status_code == 403
    deleted = world.ledger.delete(
        "/epcis/queries/our-moves",
        headers={"Authorization": f"Bearer {world.tokens['plant-c']}"},
    )
    assert deleted.status_code == 204


def test_a_party_users_subscription_delivers_its_scope_only(world: World) -> None:
    hauler = {"Authorization": f"Bearer {world.tokens['hauler-n']}"}
    made = world.ledger.post(
        "/epcis/queries", json={"name": "everything-hauler-n", "query": {}}, headers=hauler
    )
    assert made.status_code == 201, made.text
    with receiving() as (url, got):
        delivered = deliver_until_caught_up(world, url, got, hauler)
    assert delivered == visible(world.posted, {"hauler-n"})
    assert delivered != visible(world.posted, None)


def deliver_until_caught_up(
    world: World, url: str, got: list[tuple[bytes, dict[str, str]]], hauler: dict[str, str]
) -> set[str]:
    """Subscribe the hauler's user to every event, deliver until its containers arrived."""
    subscribed = world.ledger.post(
        "/epcis/queries/everything-hauler-n/subscriptions",
        json={
            "dest": url,
            "stream": True,
            "initialRecordTime": "2000-01-01T00:00:00Z",
        },
        headers=hauler,
    )
    assert subscribed.status_code == 201, subscribed.text
    delivery = SubscriptionDelivery(
        world.engine,
        EventQueries(world.engine, CustodyRules()),
        RegistryStore(world.engine, cache_seconds=0),
        timeout_s=5,
        timing=SubscriptionTiming(idle_s=0.05),
    )
    expected = visible(world.posted, {"hauler-n"})

    def delivered() -> set[str]:
        return {
            id_from_uri(e.get("parentID") or e["epcList"][0], "container") or ""
            for body, _ in got
            for e in json.loads(body)["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        }

    with httpx.Client(timeout=5) as client:
        wait_for(
            lambda: (delivery.deliver_next(client) and delivered() == expected) or False,
            what="the hauler's containers delivered",
            timeout=30,
        )
    return delivered()


def test_a_revoked_devices_recorded_events_stay(world: World) -> None:
    """Revocation stops the device, not its past: its events stay recorded and verify."""
    registry = RegistryStore(world.engine, cache_seconds=0)
    registry.revoke_device("site-c-dev", actor="test")
    k4 = world.get("auditor", "/v1/containers/PS-K4/custody")
    assert k4.status_code == 200
    assert [item["event"]["type"] for item in k4.json()["events"]] == ["dropoff"]
    report = audit_ledger(world.engine, None)
    assert report.ok, report
    assert report.checked == len(world.posted)
