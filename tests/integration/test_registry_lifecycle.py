"""Token lifecycle and the registry's audit trail, against a real PostgreSQL: party tokens,
scoped auditors (by party and jurisdiction), expiry, revocation, device-token rotation with an
overlap, last use, and an append-only record of every change."""

from __future__ import annotations

import getpass
import json
from datetime import timedelta

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from services.bootstrap import build_ledger_api
from services.cli import main as cli
from services.db.engine import make_engine
from services.registry.principals import ApiRole, ApiUser, Device, PartyRole
from services.registry.store import RegistryError, RegistryStore
from services.settings import Settings, get_settings
from tests.support.network import register_network
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(stack: LiveStack) -> Settings:
    settings = stack.settings(registry_cache_s=0)
    register_network(settings)
    return settings


@pytest.fixture
def store(settings: Settings) -> RegistryStore:
    return RegistryStore(make_engine(settings.database_url, pool_size=1), cache_seconds=0)


def test_parties_carry_a_jurisdiction(store: RegistryStore) -> None:
    store.add_party("site-ca", "Site CA", PartyRole.SITE, jurisdiction="US-CA", actor="t")
    with pytest.raises(RegistryError, match="not ISO 3166-2"):
        store.add_party("site-x", "X", PartyRole.SITE, jurisdiction="California")
    store.set_jurisdiction("site-a", "US-NV", actor="t")
    by_id = {party["party_id"]: party for party in store.parties()}
    assert by_id["site-ca"]["jurisdiction"] == "US-CA"
    assert by_id["site-a"]["jurisdiction"] == "US-NV"
    with pytest.raises(RegistryError, match="unknown party"):
        store.set_jurisdiction("nobody", "US-CA", actor="t")


def test_party_users_and_scoped_auditors_resolve_their_scope(store: RegistryStore) -> None:
    store.add_party("plant-ca", "Plant CA", PartyRole.PLANT, jurisdiction="US-CA")
    party = store.principal(store.add_api_token("p-1", ApiRole.PARTY, party_id="hauler-a"))
    assert party == ApiUser("p-1", ApiRole.PARTY, "hauler-a", frozenset({"hauler-a"}))
    regulator = store.principal(
        store.add_api_token(
            "reg-ca", ApiRole.AUDITOR, scope_jurisdictions=("US-CA",), scope_parties=("hub-a",)
        )
    )
    assert isinstance(regulator, ApiUser)
    assert regulator.scope is not None
    assert {"plant-ca", "hub-a"} <= regulator.scope
    assert "plant-a" not in regulator.scope
    everyone = store.principal(store.add_api_token("aud-all", ApiRole.AUDITOR))
    assert isinstance(everyone, ApiUser)
    assert everyone.scope is None
    with pytest.raises(RegistryError, match="names its party"):
        store.add_api_token("p-2", ApiRole.PARTY)
    with pytest.raises(RegistryError, match="only auditor tokens are scoped"):
        store.add_api_token("adm-s", ApiRole.ADMIN, scope_parties=("site-a",))
    with pytest.raises(RegistryError, match="unknown party 'nobody'"):
        store.add_api_token("p-3", ApiRole.PARTY, party_id="nobody")


def test_expired_and_revoked_tokens_stop_working(store: RegistryStore, settings: Settings) -> None:
    brief = store.add_api_token("brief", ApiRole.AUDITOR, expires_in=timedelta(milliseconds=50))
    wait_for(lambda: store.principal(brief) is None, what="the token to expire", timeout=10)
    revoked = store.add_api_token("revoked", ApiRole.AUDITOR)
    assert store.principal(revoked) is not None
    store.revoke_token("revoked", actor="t")
    assert store.principal(revoked) is None
    with pytest.raises(RegistryError, match="revoked already"):
        store.revoke_token("revoked")
    with pytest.raises(RegistryError, match="unknown token"):
        store.revoke_token("never-was")
    listed = {token.token_id: token for token in store.tokens()}
    assert listed["revoked"].revoked_at is not None
    assert listed["revoked"].last_used_at is not None
    assert listed["brief"].expires_at is not None
    never = store.add_api_token("forever", ApiRole.ADMIN, expires_in=None)
    assert store.principal(never) is not None
    assert {token.token_id: token for token in store.tokens()}["forever"].expires_at is None

    with TestClient(build_ledger_api(settings)) as ledger:
        answers = [
            ledger.get("/v1/containers", headers={"Authorization": f"Bearer {token}"})
            for token in (brief, revoked, "bca_never-issued-anywhere-at-all")
        ]
    assert {answer.status_code for answer in answers} == {401}
    assert len({answer.text for answer in answers}) == 1  # no oracle of why


def test_device_tokens_rotate_with_an_overlap_and_revoke(store: RegistryStore) -> None:
    first = store.add_device("dev-rot", "site-a")
    second = store.rotate_device_token("dev-rot", timedelta(hours=1), actor="t")
    assert (
        store.principal(first)
        == store.principal(second)
        == Device("dev-rot", "site-a", PartyRole.SITE)
    )
    third = store.rotate_device_token("dev-rot", timedelta(0), actor="t")
    assert store.principal(second) is None  # no overlap left for it
    assert store.principal(first) is None  # two rotations ago
    assert store.principal(third) is not None
    store.revoke_device("dev-rot", actor="t")
    assert store.principal(third) is None
    with pytest.raises(RegistryError, match="is revoked"):
        store.rotate_device_token("dev-rot", timedelta(hours=1))
    device = {item.device_id: item for item in store.devices()}["dev-rot"]
    assert device.revoked_at is not None
    assert device.last_used_at is not None


def test_every_change_is_in_the_append_only_audit_trail(
    store: RegistryStore, settings: Settings
) -> None:
    store.add_party("hub-z", "Hub Z", PartyRole.HUB, actor="cli:alice")
    store.add_device("dev-z", "hub-z", actor="cli:alice")
    store.add_api_token("aud-z", ApiRole.AUDITOR, scope_parties=("hub-z",), actor="cli:bob")
    store.revoke_token("aud-z", actor="cli:bob")
    store.set_jurisdiction("hub-z", "DE-BY", actor="cli:carol")
    trail = store.audit_trail(after_id=None, limit=10_000)
    mine = [(r.actor, r.action, r.subject) for r in trail if r.subject.endswith("-z")]
    assert mine == [
        ("cli:alice", "party.add", "party:hub-z"),
        ("cli:alice", "device.add", "device:dev-z"),
        ("cli:bob", "token.add", "token:aud-z"),
        ("cli:bob", "token.revoke", "token:aud-z"),
        ("cli:carol", "party.jurisdiction", "party:hub-z"),
    ]
    change = next(
        r for r in trail if r.action == "party.jurisdiction" and r.subject == "party:hub-z"
    )
    assert (change.before, change.after) == ({"jurisdiction": None}, {"jurisdiction": "DE-BY"})
    assert all("token_hash" not in (r.after or {}) for r in trail)
    later = store.audit_trail(after_id=trail[-2].id, limit=10)
    assert [r.id for r in later] == [trail[-1].id]

    engine = make_engine(settings.database_url, pool_size=1)  # the application's own role
    for statement in (
        "UPDATE registry.audit SET actor = 'nobody'",
        "DELETE FROM registry.audit",
        "TRUNCATE registry.audit",
    ):
        with pytest.raises(DBAPIError), engine.begin() as connection:
            connection.execute(text(statement))
    engine.dispose()


def test_the_cli_manages_tokens_and_devices_and_shows_the_trail(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("CUSTODY_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    request.addfinalizer(get_settings.cache_clear)
    runner = CliRunner()

    def custody(*args: str) -> Result:
        return runner.invoke(cli.app, list(args))

    added = custody("parties", "add", "plant-tx", "--role", "plant", "--jurisdiction", "US-TX")
    assert added.exit_code == 0, added.output
    bad = custody("parties", "add", "plant-zz", "--role", "plant", "--jurisdiction", "Texas")
    assert bad.exit_code == 1
    assert "not ISO 3166-2" in bad.stderr
    token = custody("tokens", "add", "tx-reg", "--role", "auditor", "--scope-jurisdiction", "US-TX")
    assert token.exit_code == 0, token.output
    assert token.stdout.strip().startswith("bca_")
    assert "expires in 90d" in token.stderr
    party = custody(
        "tokens", "add", "tx-plant", "--role", "party", "--party", "plant-tx", "--expires-in", "12h"
    )
    assert party.exit_code == 0, party.output
    assert custody("tokens", "add", "x", "--role", "auditor", "--expires-in", "soon").exit_code == 2
    listed = custody("tokens", "list")
    assert "tx-reg" in listed.stdout
    assert "US-TX" in listed.stdout
    assert "plant-tx" in listed.stdout
    assert custody("tokens", "revoke", "tx-reg").exit_code == 0
    again = custody("tokens", "revoke", "tx-reg")
    assert again.exit_code == 1
    assert "revoked already" in again.stderr

    device = custody("devices", "add", "tx-gate", "--party", "plant-tx")
    rotated = custody("devices", "rotate", "tx-gate", "--overlap", "2h")
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.strip() != device.stdout.strip()
    assert custody("devices", "revoke", "tx-gate").exit_code == 0
    assert "tx-gate" in custody("devices", "list").stdout

    trail = custody("registry-audit", "--limit", "10000", "--json")
    assert trail.exit_code == 0, trail.output
    records = [json.loads(line) for line in trail.stdout.splitlines()]
    mine = [
        (r["action"], r["subject"])
        for r in records
        if r["actor"] == f"cli:{getpass.getuser()}" and "tx" in r["subject"]
    ]
    assert mine == [
        ("party.add", "party:plant-tx"),
        ("token.add", "token:tx-reg"),
        ("token.add", "token:tx-plant"),
        ("token.revoke", "token:tx-reg"),
        ("device.add", "device:tx-gate"),
        ("device.rotate", "device:tx-gate"),
        ("device.revoke", "device:tx-gate"),
    ]


def test_the_admin_api_changes_the_registry_and_records_who(
    settings: Settings, store: RegistryStore
) -> None:
    admin_token = store.add_api_token("admin-api", ApiRole.ADMIN)
    auditor_token = store.add_api_token("auditor-api", ApiRole.AUDITOR)
    admin = {"Authorization": f"Bearer {admin_token}"}
    with TestClient(build_ledger_api(settings)) as ledger:
        party = ledger.post(
            "/v1/admin/parties",
            json={"party_id": "hub-api", "role": "hub", "jurisdiction": "US-WA"},
            headers=admin,
        )
        assert party.status_code == 201, party.text
        twice = ledger.post(
            "/v1/admin/parties", json={"party_id": "hub-api", "role": "hub"}, headers=admin
        )
        assert twice.status_code == 409
        bad = ledger.post(
            "/v1/admin/parties",
            json={"party_id": "hub-x", "role": "hub", "jurisdiction": "Washington"},
            headers=admin,
        )
        assert bad.status_code == 422
        device = ledger.post(
            "/v1/admin/devices",
            json={"device_id": "hub-api-dev", "party_id": "hub-api"},
            headers=admin,
        )
        assert device.status_code == 201, device.text
        device_token = device.json()["token"]
        assert store.principal(device_token) is not None
        assert device_token not in ledger.get("/v1/admin/devices", headers=admin).text
        token = ledger.post(
            "/v1/admin/tokens",
            json={"token_id": "hub-api-user", "role": "party", "party_id": "hub-api"},
            headers=admin,
        )
        assert token.status_code == 201, token.text
        user = token.json()["token"]
        listed = ledger.get("/v1/admin/tokens", headers=admin)
        assert user not in listed.text
        row = next(t for t in listed.json() if t["token_id"] == "hub-api-user")
        assert row["party_id"] == "hub-api"
        assert row["expires_at"] is not None
        mine = ledger.get("/v1/containers", headers={"Authorization": f"Bearer {user}"})
        assert mine.status_code == 200
        assert mine.json()["items"] == []  # hub-api took part in nothing yet
        revoked = ledger.post("/v1/admin/tokens/hub-api-user/revoke", headers=admin)
        assert revoked.status_code == 200
        assert (
            ledger.get("/v1/containers", headers={"Authorization": f"Bearer {user}"}).status_code
            == 401
        )
        assert ledger.post("/v1/admin/tokens/hub-api-user/revoke", headers=admin).status_code == 409
        assert ledger.post("/v1/admin/tokens/nobody/revoke", headers=admin).status_code == 404
        refused = ledger.get(
            "/v1/admin/tokens", headers={"Authorization": f"Bearer {auditor_token}"}
        )
        assert refused.status_code == 403

        trail = ledger.get(
            "/v1/registry-audit",
            params={"limit": 1000},
            headers={"Authorization": f"Bearer {auditor_token}"},
        )
        assert trail.status_code == 200
        made = [
            (item["actor"], item["action"], item["subject"])
            for item in trail.json()["items"]
            if "hub-api" in item["subject"]
        ]
        signed_in = ledger.post(
            "/ui/signin",
            content=f"token={auditor_token}&next=/ui/",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303
        page = ledger.get("/ui/registry-audit")
        assert page.status_code == 200
        assert "token:admin-api" in page.text
        assert "party:hub-api" in page.text
        assert 'href="/ui/registry-audit"' in page.text  # in the navigation of unscoped readers
        ledger.cookies.clear()
        assert made == [
            ("token:admin-api", "party.add", "party:hub-api"),
            ("token:admin-api", "device.add", "device:hub-api-dev"),
            ("token:admin-api", "token.add", "token:hub-api-user"),
            ("token:admin-api", "token.revoke", "token:hub-api-user"),
        ]
