"""Who may call what: every endpoint of both services, with every kind of credential.

The expected table below is written out by hand, and a test checks it names exactly the routes
the two apps serve (read from ``app.routes``), so a new endpoint fails here until someone
decides who may call it.

Credentials travel the way each endpoint takes them: a bearer token for the APIs, the sign-in
cookie for the UI pages, the form for ``POST /ui/signin``. Plant webhooks take no bearer token
at all (Standard Webhooks signatures; their own test is at the end): no column opens them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from services.bootstrap import build_ingest_app, build_ledger_api
from services.contract.epcis_identifiers import container_uri, location_uri
from services.db.engine import make_engine
from services.ledger.domain.integrity.tiles import TileRef, tile_ref_for_size
from services.registry.principals import ApiRole
from services.registry.store import RegistryStore, new_webhook_secret
from tests.support import events as ev
from tests.support.recorded_ledger import RecordedLedger, record_ledger
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for
from tests.support.webhook_signing import receipt_body, signed_headers

pytestmark = pytest.mark.integration

CREDENTIALS = (
    "none",
    "bad",
    "expired",
    "revoked",
    "site_device",
    "hauler_device",
    "plant_device",
    "party",
    "scoped_auditor",
    "auditor",
    "admin",
)
EVERYONE = frozenset(CREDENTIALS)
DEVICES = frozenset({"site_device", "hauler_device", "plant_device"})
API_USERS = frozenset({"auditor", "admin"})
#: Readers within a scope too: a party user of site-a, an auditor scoped to site-a (the recorded
#: container passed through site-a, so both may read it).
READERS = API_USERS | {"party", "scoped_auditor"}
ADMINS = frozenset({"admin"})
UNAUTHENTICATED = frozenset({"none", "bad", "expired", "revoked"})
NOBODY: frozenset[str] = frozenset()

How = Literal["public", "bearer", "cookie", "form", "signature"]
Service = Literal["ingest", "ledger"]

# (service, method, path) → how the credential is presented, who is let in.
EXPECTED: dict[tuple[Service, str, str], tuple[How, frozenset[str]]] = {
    # ingest
    ("ingest", "GET", "/openapi.json"): ("public", EVERYONE),
    ("ingest", "GET", "/docs"): ("public", EVERYONE),
    ("ingest", "GET", "/docs/oauth2-redirect"): ("public", EVERYONE),
    ("ingest", "GET", "/redoc"): ("public", EVERYONE),
    ("ingest", "GET", "/healthz"): ("public", EVERYONE),
    ("ingest", "GET", "/readyz"): ("public", EVERYONE),
    ("ingest", "GET", "/metrics"): ("public", EVERYONE),
    ("ingest", "POST", "/v1/events"): ("bearer", DEVICES),
    ("ingest", "POST", "/v1/events/batch"): ("bearer", DEVICES),
    ("ingest", "POST", "/v1/webhooks/plants/{party_id}"): ("signature", NOBODY),
    ("ingest", "OPTIONS", "/epcis/capture"): ("public", EVERYONE),
    ("ingest", "POST", "/epcis/capture"): ("bearer", DEVICES),
    ("ingest", "POST", "/epcis/events"): ("bearer", DEVICES),
    ("ingest", "GET", "/epcis/capture"): ("bearer", DEVICES),
    ("ingest", "GET", "/epcis/capture/{capture_id}"): ("bearer", DEVICES),
    # ledger: operations and documentation
    ("ledger", "GET", "/openapi.json"): ("public", EVERYONE),
    ("ledger", "GET", "/docs"): ("public", EVERYONE),
    ("ledger", "GET", "/docs/oauth2-redirect"): ("public", EVERYONE),
    ("ledger", "GET", "/redoc"): ("public", EVERYONE),
    ("ledger", "GET", "/healthz"): ("public", EVERYONE),
    ("ledger", "GET", "/readyz"): ("public", EVERYONE),
    ("ledger", "GET", "/metrics"): ("public", EVERYONE),
    # ledger API
    ("ledger", "GET", "/v1/containers"): ("bearer", READERS),
    ("ledger", "GET", "/v1/containers.csv"): ("bearer", READERS),
    ("ledger", "GET", "/v1/containers/{container_id}/custody"): ("bearer", READERS),
    ("ledger", "GET", "/v1/containers/{container_id}/custody.csv"): ("bearer", READERS),
    ("ledger", "GET", "/v1/containers/{container_id}/custody.epcis.json"): ("bearer", READERS),
    ("ledger", "GET", "/v1/containers/{container_id}/bundle"): ("bearer", READERS),
    ("ledger", "GET", "/v1/events"): ("bearer", READERS),
    ("ledger", "GET", "/v1/events/{event_id}"): ("bearer", READERS),
    ("ledger", "GET", "/v1/events/{event_id}/proof"): ("bearer", READERS),
    ("ledger", "GET", "/v1/anomalies"): ("bearer", READERS),
    ("ledger", "GET", "/v1/checkpoints/latest"): ("bearer", READERS),
    ("ledger", "GET", "/v1/checkpoints/consistency"): ("bearer", READERS),
    ("ledger", "GET", "/v1/checkpoints/key"): ("public", EVERYONE),  # the verifier key
    ("ledger", "GET", "/v1/webhook-deliveries"): ("bearer", READERS),
    ("ledger", "GET", "/v1/reports/mass-balance"): ("bearer", READERS),
    ("ledger", "GET", "/v1/reports/shipment-log.csv"): ("bearer", READERS),
    ("ledger", "GET", "/v1/shipments/{shipment_id:path}/certificate.pdf"): ("bearer", READERS),
    # ledger: the admin API and the registry's audit trail
    ("ledger", "GET", "/v1/admin/parties"): ("bearer", ADMINS),
    ("ledger", "POST", "/v1/admin/parties"): ("bearer", ADMINS),
    ("ledger", "PATCH", "/v1/admin/parties/{party_id}"): ("bearer", ADMINS),
    ("ledger", "GET", "/v1/admin/devices"): ("bearer", ADMINS),
    ("ledger", "POST", "/v1/admin/devices"): ("bearer", ADMINS),
    ("ledger", "POST", "/v1/admin/devices/{device_id}/revoke"): ("bearer", ADMINS),
    ("ledger", "POST", "/v1/admin/devices/{device_id}/rotate"): ("bearer", ADMINS),
    ("ledger", "GET", "/v1/admin/tokens"): ("bearer", ADMINS),
    ("ledger", "POST", "/v1/admin/tokens"): ("bearer", ADMINS),
    ("ledger", "POST", "/v1/admin/tokens/{token_id}/revoke"): ("bearer", ADMINS),
    ("ledger", "PUT", "/v1/admin/plants/{party_id}/webhook"): ("bearer", ADMINS),
    ("ledger", "POST", "/v1/admin/plants/{party_id}/rotate-secret"): ("bearer", ADMINS),
    ("ledger", "GET", "/v1/registry-audit"): ("bearer", API_USERS),
    # ledger: the EPCIS 2.0 query interface
    ("ledger", "GET", "/epcis/events"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/events/{event_id:path}"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/eventTypes/{value:path}/events"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/epcs/{value:path}/events"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/bizSteps/{value:path}/events"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/bizLocations/{value:path}/events"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/readPoints/{value:path}/events"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/dispositions/{value:path}/events"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/queries"): ("bearer", READERS),
    ("ledger", "POST", "/epcis/queries"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/queries/{query_name}"): ("bearer", READERS),
    ("ledger", "DELETE", "/epcis/queries/{query_name}"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/queries/{query_name}/events"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/queries/{query_name}/subscriptions"): ("bearer", READERS),
    ("ledger", "POST", "/epcis/queries/{query_name}/subscriptions"): ("bearer", READERS),
    ("ledger", "GET", "/epcis/queries/{query_name}/subscriptions/{subscription_id}"): (
        "bearer",
        READERS,
    ),
    ("ledger", "DELETE", "/epcis/queries/{query_name}/subscriptions/{subscription_id}"): (
        "bearer",
        READERS,
    ),
    # ledger: the public read path of the transparency log (entry bundles carry custody data)
    ("ledger", "GET", "/log/checkpoint"): ("public", EVERYONE),
    ("ledger", "GET", "/log/tile/{path:path}"): ("public", EVERYONE),
    ("ledger", "GET", "/log/tile/entries/{path:path}"): ("bearer", API_USERS),
    # ledger UI
    ("ledger", "GET", "/ui/static/{name}"): ("public", EVERYONE),
    ("ledger", "GET", "/ui/signin"): ("public", EVERYONE),
    ("ledger", "POST", "/ui/signin"): ("form", READERS),
    ("ledger", "POST", "/ui/signout"): ("public", EVERYONE),
    ("ledger", "GET", "/ui/"): ("cookie", READERS),
    ("ledger", "GET", "/ui/containers"): ("cookie", READERS),
    ("ledger", "GET", "/ui/containers/{container_id}"): ("cookie", READERS),
    ("ledger", "GET", "/ui/containers/{container_id}/download/{kind}"): ("cookie", READERS),
    ("ledger", "GET", "/ui/anomalies"): ("cookie", READERS),
    ("ledger", "GET", "/ui/mass-balance"): ("cookie", READERS),
    ("ledger", "GET", "/ui/registry-audit"): ("cookie", API_USERS),
}

WINDOW = {"from": ev.at(-24), "to": ev.at(48)}
QUERIES: dict[str, dict[str, str]] = {
    "/v1/checkpoints/consistency": {"first": "{tree_size}", "second": "{tree_size}"},
    "/v1/reports/mass-balance": WINDOW,
    "/v1/reports/shipment-log.csv": WINDOW,
}


@dataclass
class Env:
    recorded: RecordedLedger
    clients: dict[Service, TestClient]
    tokens: dict[str, str | None]
    capture_ids: dict[str, str]  # a capture job of each device's own party
    subscriptions: dict[tuple[str, str], str]  # (API user, "keep" | "delete") → subscription id


@pytest.fixture(scope="module")
def env(stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    recorded = record_ledger(stack, tmp_path_factory.mktemp("authz"))
    network = recorded.network
    store = RegistryStore(make_engine(recorded.settings.database_url, pool_size=1))
    expired = store.add_api_token(
        "expired-1", ApiRole.AUDITOR, expires_in=timedelta(milliseconds=1)
    )
    revoked = store.add_api_token("revoked-1", ApiRole.AUDITOR)
    store.revoke_token("revoked-1")
    wait_for(lambda: store.principal(expired) is None, what="the token to expire", timeout=10)
    for device in ("authz-revoke", "authz-rotate"):
        store.add_device(device, "site-a")
    store.add_api_token("authz-token", ApiRole.AUDITOR)
    tokens: dict[str, str | None] = {
        "none": None,
        "bad": "bca_not-a-token-anyone-was-given",
        "expired": expired,
        "revoked": revoked,
        "party": store.add_api_token("party-1", ApiRole.PARTY, party_id="site-a"),
        "scoped_auditor": store.add_api_token(
            "scoped-1", ApiRole.AUDITOR, scope_parties=("site-a",)
        ),
        "site_device": network.tokens["site-a-dev"],
        "hauler_device": network.tokens["hauler-a-dev"],
        "plant_device": network.tokens["plant-a-dev"],
        "auditor": network.auditor,
        "admin": network.admin,
    }
    settings = recorded.settings
    with (
        TestClient(build_ingest_app(settings), follow_redirects=False) as ingest,
        TestClient(build_ledger_api(settings), follow_redirects=False) as ledger,
    ):
        capture_ids = {}
        for credential in ("site_device", "hauler_device", "plant_device"):
            response = ingest.post(
                "/epcis/capture",
                json=epcis_document(epcis_incident()),
                headers={"Authorization": f"Bearer {tokens[credential]}"},
            )
            assert response.status_code == 202, response.text
            capture_ids[credential] = response.json()["captureID"]
        subscriptions = {}
        for user in sorted(READERS):
            auditor = {"Authorization": f"Bearer {tokens[user]}"}
            for name in (f"authz-{user}", f"authz-delete-{user}"):
                response = ledger.post(
                    "/epcis/queries", json={"name": name, "query": {}}, headers=auditor
                )
                assert response.status_code == 201, response.text
            for purpose in ("keep", "delete"):
                response = ledger.post(
                    f"/epcis/queries/authz-{user}/subscriptions",
                    json={"dest": "http://127.0.0.1:9/epcis", "stream": True},
                    headers=auditor,
                )
                assert response.status_code == 201, response.text
                subscriptions[(user, purpose)] = response.json()["subscriptionID"]
        yield Env(
            recorded, {"ingest": ingest, "ledger": ledger}, tokens, capture_ids, subscriptions
        )


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for route in iter_route_contexts(app.routes):
        assert route.path is not None
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def test_the_table_names_exactly_the_served_routes(env: Env) -> None:
    served = {("ingest", *route) for route in served_routes(env.clients["ingest"].app)}  # type: ignore[arg-type]
    served |= {("ledger", *route) for route in served_routes(env.clients["ledger"].app)}  # type: ignore[arg-type]
    assert served - EXPECTED.keys() == set(), "routes nobody decided on: add them to EXPECTED"
    assert EXPECTED.keys() - served == set(), "EXPECTED names routes that are gone"


def concrete_path(env: Env, path: str) -> str:
    recorded = env.recorded
    first_tile = tile_ref_for_size(0, 0, recorded.tree_size)
    entries_tile = TileRef(-1, first_tile.index, first_tile.width)
    values = {
        "{container_id}": recorded.container_id,
        "{event_id}": recorded.event_id,
        "{shipment_id:path}": quote(recorded.shipment_id, safe=""),
        "{party_id}": "plant-a",
        "{name}": "ui.css",
        "{kind}": "csv",
        "/log/tile/entries/{path:path}": "/log/" + entries_tile.path(),
        "/log/tile/{path:path}": "/log/" + first_tile.path(),
        "/epcis/events/{event_id:path}": f"/epcis/events/urn:uuid:{recorded.event_id}",
        "/epcis/eventTypes/{value:path}": "/epcis/eventTypes/AggregationEvent",
        "/epcis/epcs/{value:path}": "/epcis/epcs/"
        + quote(container_uri(recorded.container_id), safe=""),
        "/epcis/bizSteps/{value:path}": "/epcis/bizSteps/collecting",
        "/epcis/bizLocations/{value:path}": "/epcis/bizLocations/loc-1",
        "/epcis/readPoints/{value:path}": "/epcis/readPoints/loc-1",
        "/epcis/dispositions/{value:path}": "/epcis/dispositions/disposed",
    }
    for name, value in values.items():
        path = path.replace(name, value)
    return path


def request(env: Env, service: Service, method: str, path: str, credential: str) -> httpx.Response:
    how, _ = EXPECTED[(service, method, path)]
    token = env.tokens[credential]
    url = concrete_path(env, path)
    size = str(env.recorded.tree_size)
    params = {
        key: value.replace("{tree_size}", size) for key, value in QUERIES.get(path, {}).items()
    }
    kwargs: dict[str, Any] = {"params": params}
    headers: dict[str, str] = {}
    if how == "cookie":
        if token is not None:
            headers["Cookie"] = f"custody_ui_token={token}"
    elif how == "form":
        kwargs["content"] = f"token={token or ''}&next=/ui/"
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if path == "/v1/events":
        kwargs["json"] = incident()
    elif path == "/v1/events/batch":
        kwargs["json"] = {"events": [incident()]}
    elif path == "/epcis/capture" and method == "POST":
        kwargs["json"] = epcis_document(epcis_incident())
    elif path == "/epcis/events":
        kwargs["json"] = epcis_incident()
    elif path == "/epcis/capture/{capture_id}":
        url = f"/epcis/capture/{env.capture_ids.get(credential, uuid.uuid4())}"
    elif path.startswith("/epcis/queries"):
        url, kwargs["json"] = epcis_query_request(env, method, path, credential)
    elif path.startswith("/v1/admin/"):
        url, kwargs["json"] = admin_request(path, url)
    client = env.clients[service]
    response: httpx.Response = client.request(method, url, headers=headers, **kwargs)
    return response


def admin_request(path: str, url: str) -> tuple[str, dict[str, Any] | None]:
    """Each admin change names something of its own, so every allowed call succeeds once."""
    fresh = uuid.uuid4().hex[:8]
    url = url.replace(
        "{device_id}", "authz-revoke" if url.endswith("/revoke") else "authz-rotate"
    ).replace("{token_id}", "authz-token")
    bodies: dict[str, dict[str, Any]] = {
        "/v1/admin/parties": {"party_id": f"p-{fresh}", "role": "site", "jurisdiction": "US-CA"},
        "/v1/admin/parties/{party_id}": {"jurisdiction": "US-NV"},
        "/v1/admin/devices": {"device_id": f"d-{fresh}", "party_id": "site-a"},
        "/v1/admin/devices/{device_id}/rotate": {"overlap_hours": 1},
        "/v1/admin/tokens": {"token_id": f"t-{fresh}", "role": "auditor"},
        "/v1/admin/plants/{party_id}/webhook": {"url": "http://127.0.0.1:9/receipts"},
        "/v1/admin/plants/{party_id}/rotate-secret": {"grace_hours": 1},
    }
    return url, bodies.get(path)


def epcis_query_request(
    env: Env, method: str, path: str, credential: str
) -> tuple[str, dict[str, Any] | None]:
    """A URL naming the caller's own named query and subscription (the auditor's for those
    who are refused), and the body a POST needs."""
    user = credential if credential in READERS else "auditor"
    name = f"authz-delete-{user}" if path == "/epcis/queries/{query_name}" else f"authz-{user}"
    purpose = "delete" if method == "DELETE" else "keep"
    url = path.replace("{query_name}", name).replace(
        "{subscription_id}", env.subscriptions[(user, purpose)]
    )
    if method != "POST":
        return url, None
    if path == "/epcis/queries":
        return url, {"name": f"authz-new-{uuid.uuid4().hex[:8]}", "query": {}}
    return url, {"dest": "http://127.0.0.1:9/epcis", "stream": True}


def epcis_incident() -> dict[str, Any]:
    """An incident as an EPCIS event (every party may post one)."""
    return {
        "type": "ObjectEvent",
        "eventTime": ev.at(1),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [container_uri(ev.unique_container("AZ"))],
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "disposition": "damaged",
        "readPoint": {"id": location_uri("site-a:dock")},
        "bc:description": "dented lid",
    }


def epcis_document(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": [
            "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
            {"bc": "https://battery-custody.example/epcis/"},
        ],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": ev.at(2),
        "epcisBody": {"eventList": list(events)},
    }


def incident() -> dict[str, Any]:
    """An event every party may post (an incident), so a device's 403 can only be about it."""
    return ev.event(
        "incident", ev.unique_container("AZ"), 1, kind="damaged", description="dented lid"
    )


def signin_redirect(response: httpx.Response) -> bool:
    location = response.headers.get("location", "")
    return response.status_code == 303 and location.startswith("/ui/signin")


CASES = [
    pytest.param(service, method, path, credential, id=f"{service} {method} {path} [{credential}]")
    for (service, method, path), (how, _) in EXPECTED.items()
    if how != "signature"
    for credential in CREDENTIALS
]


@pytest.mark.parametrize(("service", "method", "path", "credential"), CASES)
def test_only_the_expected_credentials_get_in(
    env: Env, service: Service, method: str, path: str, credential: str
) -> None:
    how, allowed = EXPECTED[(service, method, path)]
    response = request(env, service, method, path, credential)
    answer = f"{response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, answer
    if credential in allowed:
        if how == "form":
            assert response.status_code == 303, answer
            assert response.headers["location"] == "/ui/"
            assert "custody_ui_token=bca_" in response.headers["set-cookie"]
        elif how == "public":
            assert response.status_code in (200, 204, 303), answer  # signing out redirects
        else:
            assert response.status_code in (200, 201, 202, 204), answer
        return
    if how == "cookie" and credential in READERS:  # signed in, but the page is not for it
        assert response.status_code == 404, answer
    elif how == "cookie":
        assert signin_redirect(response), answer
    elif how == "form":
        assert response.status_code == 401, answer
        assert "set-cookie" not in response.headers
    else:
        expected = 401 if credential in UNAUTHENTICATED else 403
        assert response.status_code == expected, answer
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == expected
        if expected == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_the_api_ignores_the_ui_cookie_and_the_ui_ignores_bearer_tokens(env: Env) -> None:
    ledger, auditor = env.clients["ledger"], env.tokens["auditor"]
    response = ledger.get("/v1/containers", headers={"Cookie": f"custody_ui_token={auditor}"})
    assert response.status_code == 401
    response = ledger.get("/ui/containers", headers={"Authorization": f"Bearer {auditor}"})
    assert signin_redirect(response)


def test_plant_webhooks_open_only_to_the_plants_own_signature(env: Env) -> None:
    ingest, recorded = env.clients["ingest"], env.recorded
    body = receipt_body(recorded.container_id, 5.5)

    def post(party: str, headers: dict[str, str]) -> int:
        answer = ingest.post(f"/v1/webhooks/plants/{party}", content=body, headers=headers)
        assert answer.status_code < 500, answer.text
        return answer.status_code

    for credential, token in env.tokens.items():
        bearer = {"Authorization": f"Bearer {token}"} if token else {}
        assert post("plant-a", bearer) == 400, credential  # no signature headers at all
    other_secret = new_webhook_secret()
    assert post("plant-a", signed_headers(body, other_secret)) == 401
    assert post("site-a", signed_headers(body, recorded.plant_secret)) == 401
    assert post("plant-zz", signed_headers(body, recorded.plant_secret)) == 401
    with_bearer = {
        **signed_headers(body, other_secret),
        "Authorization": f"Bearer {env.tokens['admin']}",
    }
    assert post("plant-a", with_bearer) == 401
    assert post("plant-a", signed_headers(body, recorded.plant_secret)) == 202
